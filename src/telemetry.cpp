// Telemetry: every committed history entry is one source for logs, metrics and spans, so the
// three always agree with the durable history (docs/operations.md lists what each carries).

#include <fmt/format.h>

#include "engine_impl.hpp"
#include "telemetry/core_metrics.hpp"
#include "telemetry/levels.hpp"

namespace saga::detail {

namespace {

std::string_view base_of(std::string_view key) {
    auto pos = key.find('[');
    return pos == std::string_view::npos ? key : key.substr(0, pos);
}

using saga::telemetry::ending_of;
using saga::telemetry::level_of;

template <class D>
double seconds(D d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

void engine_impl::init_telemetry() {
    metrics_ = options_.metrics ? options_.metrics : std::make_shared<metrics_registry>();
    log_ = options_.log_sink ? options_.log_sink : std::make_shared<json_lines_sink>(stderr);
    saga::telemetry::describe_core_metrics(*metrics_);
    saga::telemetry::gauge_sources g;
    g.in_flight = [life = lifeline_] {
        double n = 0;
        with_engine(life,
                    [&](engine_impl& self) { n = static_cast<double>(self.active_instances()); });
        return n;
    };
    g.outbox_unreleased = [life = lifeline_] {
        double n = 0;
        with_engine(life, [&](engine_impl& self) {
            n = static_cast<double>(self.outbox_in_flight_.load());
        });
        return n;
    };
    g.circuits = [life = lifeline_] {
        std::vector<std::pair<std::string, double>> out;
        with_engine(life, [&](engine_impl& self) {
            std::vector<std::string> names;
            {
                std::lock_guard lock(self.mutex_);
                for (const auto& [name, rt] : self.endpoints_) names.push_back(name);
            }
            for (auto& name : names) {
                const auto st = self.endpoint_circuit(name);
                out.emplace_back(std::move(name), saga::telemetry::circuit_gauge(st));
            }
        });
        return out;
    };
    saga::telemetry::register_core_gauges(*metrics_, std::move(g));
    if (store_) store_->set_metrics(metrics_);
}

void engine_impl::warn(std::string_view what) const {
    if (options_.log_level > log_level::warn) return;
    log_record r;
    r.at = clock_->now();
    r.level = log_level::warn;
    r.message = std::string(what);
    try {
        log_->write(r);
    } catch (...) {
    }
}

void engine_impl::telemetry(const instance_record& record, std::span<const history_entry> entries,
                            const instance_state& state) {
    const auto trace_id = [&] {
        auto tc = trace_context::parse(state.traceparent);
        return tc ? tc->trace_id : std::string();
    }();
    for (const auto& e : entries) {
        // metrics
        const std::string step(base_of(e.step));
        if (e.event == "saga_started") {
            metrics_->add("saga_instances_started_total", {{"definition", record.definition}});
        } else if (auto ended = ending_of(e.event)) {
            metrics_->add(
                "saga_instances_ended_total",
                {{"definition", record.definition}, {"status", std::string(to_string(*ended))}});
        } else if (e.event == "step_completed" || e.event == "step_failed") {
            auto u = state.units.find(e.step);
            if (u != state.units.end() && u->second.started_at)
                metrics_->observe(
                    "saga_step_duration_seconds",
                    {{"definition", record.definition},
                     {"step", step},
                     {"outcome", e.event == "step_completed" ? "completed" : "failed"}},
                    seconds(e.at - *u->second.started_at));
        } else if (e.event == "retry_scheduled") {
            metrics_->add("saga_step_retries_total",
                          {{"definition", record.definition}, {"step", step}});
        } else if (e.event == "step_timed_out") {
            metrics_->add("saga_step_timeouts_total",
                          {{"definition", record.definition}, {"step", step}});
        } else if (e.event == "step_compensated" || e.event == "compensation_failed") {
            metrics_->add("saga_compensations_total",
                          {{"definition", record.definition},
                           {"step", step},
                           {"outcome", e.event == "step_compensated" ? "compensated" : "failed"}});
        }
        if (e.detail.is_object() && e.detail.contains("who"))
            metrics_->add("saga_operator_actions_total", {{"action", e.event}});

        // logs
        const auto level = level_of(e.event);
        if (level >= options_.log_level) {
            log_record r;
            r.at = e.at;
            r.level = level;
            r.message = e.event;
            r.saga_id = record.id;
            r.definition = record.definition;
            r.definition_version = record.definition_version;
            r.step = e.step;
            r.attempt = e.attempt;
            r.correlation_id = record.correlation_key;
            r.trace_id = trace_id;
            if (e.detail.is_object()) r.fields = e.detail;
            try {
                log_->write(r);
            } catch (...) {
            }
        }

        // spans
        if (options_.span_exporter) trace(record, e, state);
    }
}

std::string engine_impl::step_traceparent(const instance& inst, const std::string& key,
                                          bool compensating) const {
    auto tc = trace_context::parse(inst.state.traceparent);
    if (!tc) return inst.state.traceparent;
    tc->span_id = derive_span_id(
        tc->trace_id, fmt::format("{}|{}|{}", inst.id, key, compensating ? "compensate" : "step"));
    return tc->traceparent();
}

void engine_impl::trace(const instance_record& record, const history_entry& e,
                        const instance_state& state) {
    auto tc = trace_context::parse(state.traceparent);
    if (!tc) return;
    const auto saga_span = derive_span_id(tc->trace_id, "saga|" + record.id);
    span s;
    s.trace_id = tc->trace_id;
    s.attributes = {{"saga.id", record.id},
                    {"saga.definition", record.definition},
                    {"saga.definition_version", record.definition_version}};
    if (!record.correlation_key.empty())
        s.attributes["saga.correlation_key"] = record.correlation_key;
    const auto unit = state.units.find(e.step);
    if (e.event == "compensation_started" || e.event == "saga_started") {
        std::lock_guard lock(trace_mutex_);
        compensation_clock_[record.id] = e.at;
        return;
    }
    if (e.event == "step_completed" || e.event == "step_failed") {
        s.span_id = derive_span_id(tc->trace_id, fmt::format("{}|{}|step", record.id, e.step));
        s.parent_span_id = saga_span;
        s.name = "step " + e.step;
        s.kind = "step";
        s.start =
            unit != state.units.end() && unit->second.started_at ? *unit->second.started_at : e.at;
        s.end = e.at;
        s.ok = e.event == "step_completed";
        if (!s.ok) s.status_message = e.detail.value("error", std::string());
        s.attributes["saga.step"] = e.step;
        s.attributes["saga.attempts"] = e.attempt;
    } else if (e.event == "step_compensated" || e.event == "compensation_failed") {
        s.span_id =
            derive_span_id(tc->trace_id, fmt::format("{}|{}|compensate", record.id, e.step));
        s.parent_span_id = saga_span;
        s.name = "compensate " + e.step;
        s.kind = "compensation";
        {
            // Compensations run one at a time: each starts where the previous one ended.
            std::lock_guard lock(trace_mutex_);
            auto& boundary = compensation_clock_[record.id];
            s.start = boundary == time_point{} ? e.at : boundary;
            boundary = e.at;
        }
        s.end = e.at;
        s.ok = e.event == "step_compensated";
        if (!s.ok) s.status_message = e.detail.value("error", std::string());
        s.attributes["saga.step"] = e.step;
        s.attributes["saga.attempts"] = e.attempt;
    } else if (auto ended = ending_of(e.event)) {
        s.span_id = saga_span;
        if (tc->span_id != saga_span) s.parent_span_id = tc->span_id;  // the caller's span
        s.name = "saga " + record.definition;
        s.kind = "saga";
        s.start = record.created_at;
        s.end = e.at;
        s.ok = *ended == saga_status::completed;
        if (!s.ok) s.status_message = fmt::format("{}: {}", to_string(*ended), state.error);
        s.attributes["saga.status"] = std::string(to_string(*ended));
        std::lock_guard lock(trace_mutex_);
        compensation_clock_.erase(record.id);
    } else {
        return;
    }
    try {
        options_.span_exporter->export_span(s);
    } catch (...) {
    }
}

}  // namespace saga::detail
