#include <saga/metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace saga {

const std::vector<double>& default_seconds_buckets() {
    static const std::vector<double> b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
    return b;
}

metrics_registry::family& metrics_registry::family_of(std::string_view name, metric_type type) {
    auto it = families_.find(name);
    if (it == families_.end()) {
        family f;
        f.type = type;
        if (type == metric_type::histogram) f.buckets = default_seconds_buckets();
        it = families_.emplace(std::string(name), std::move(f)).first;
    }
    return it->second;
}

void metrics_registry::describe(std::string_view name, metric_type type, std::string_view help,
                                std::vector<double> buckets) {
    std::lock_guard lock(mutex_);
    auto& f = family_of(name, type);
    f.type = type;
    f.help = std::string(help);
    if (type == metric_type::histogram) {
        if (buckets.empty()) buckets = default_seconds_buckets();
        std::sort(buckets.begin(), buckets.end());
        f.buckets = std::move(buckets);
    }
}

void metrics_registry::add(std::string_view name, const metric_labels& labels, double value) {
    std::lock_guard lock(mutex_);
    family_of(name, metric_type::counter).series_[labels].value += value;
}

void metrics_registry::set(std::string_view name, const metric_labels& labels, double value) {
    std::lock_guard lock(mutex_);
    family_of(name, metric_type::gauge).series_[labels].value = value;
}

void metrics_registry::observe(std::string_view name, const metric_labels& labels, double value) {
    std::lock_guard lock(mutex_);
    auto& f = family_of(name, metric_type::histogram);
    auto& s = f.series_[labels];
    if (s.bucket_counts.size() != f.buckets.size()) s.bucket_counts.assign(f.buckets.size(), 0);
    s.value += value;
    ++s.count;
    for (std::size_t i = 0; i < f.buckets.size(); ++i)
        if (value <= f.buckets[i]) ++s.bucket_counts[i];
}

void metrics_registry::gauge_callback(
    std::string_view name, std::string_view help,
    std::function<std::vector<std::pair<metric_labels, double>>()> fn) {
    std::lock_guard lock(mutex_);
    auto& f = family_of(name, metric_type::gauge);
    f.type = metric_type::gauge;
    f.help = std::string(help);
    f.callback = std::move(fn);
}

double metrics_registry::value(std::string_view name, const metric_labels& labels) const {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0;
    auto s = it->second.series_.find(labels);
    if (s == it->second.series_.end()) return 0;
    return it->second.type == metric_type::histogram ? static_cast<double>(s->second.count)
                                                     : s->second.value;
}

namespace {

std::string escape_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escape_help(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    return fmt::format("{}", v);
}

std::string label_text(const metric_labels& labels, std::string_view extra_name = {},
                       std::string_view extra_value = {}) {
    if (labels.empty() && extra_name.empty()) return {};
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) out += ',';
        first = false;
        out += fmt::format("{}=\"{}\"", k, escape_label(v));
    }
    if (!extra_name.empty()) {
        if (!first) out += ',';
        out += fmt::format("{}=\"{}\"", extra_name, extra_value);
    }
    out += '}';
    return out;
}

std::string_view type_name(metric_type t) {
    switch (t) {
        case metric_type::counter: return "counter";
        case metric_type::gauge: return "gauge";
        case metric_type::histogram: return "histogram";
    }
    return "untyped";
}

}  // namespace

std::string metrics_registry::prometheus_text() const {
    // Callbacks run outside the lock: they may read engine state that records metrics.
    std::vector<
        std::pair<std::string, std::function<std::vector<std::pair<metric_labels, double>>()>>>
        callbacks;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [name, f] : families_)
            if (f.callback) callbacks.emplace_back(name, f.callback);
    }
    std::map<std::string, std::vector<std::pair<metric_labels, double>>> computed;
    for (auto& [name, fn] : callbacks) computed[name] = fn();

    std::string out;
    std::lock_guard lock(mutex_);
    for (const auto& [name, f] : families_) {
        if (!f.help.empty()) out += fmt::format("# HELP {} {}\n", name, escape_help(f.help));
        out += fmt::format("# TYPE {} {}\n", name, type_name(f.type));
        if (f.callback) {
            for (const auto& [labels, v] : computed[name])
                out += fmt::format("{}{} {}\n", name, label_text(labels), number(v));
            continue;
        }
        for (const auto& [labels, s] : f.series_) {
            if (f.type != metric_type::histogram) {
                out += fmt::format("{}{} {}\n", name, label_text(labels), number(s.value));
                continue;
            }
            for (std::size_t i = 0; i < f.buckets.size(); ++i) {
                const auto c = i < s.bucket_counts.size() ? s.bucket_counts[i] : 0;
                out += fmt::format("{}_bucket{} {}\n", name,
                                   label_text(labels, "le", number(f.buckets[i])), c);
            }
            out += fmt::format("{}_bucket{} {}\n", name, label_text(labels, "le", "+Inf"), s.count);
            out += fmt::format("{}_sum{} {}\n", name, label_text(labels), number(s.value));
            out += fmt::format("{}_count{} {}\n", name, label_text(labels), s.count);
        }
    }
    return out;
}

}  // namespace saga
