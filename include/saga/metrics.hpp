#pragma once
/// @file metrics.hpp
/// A small metrics registry (counters, gauges, histograms with labels) that renders the
/// Prometheus text exposition format. The engine records into one (`engine::metrics()`); the
/// embedding service exposes `prometheus_text()` on its own HTTP endpoint, or merges the
/// families into its own registry.
///
/// ```cpp
/// auto& m = engine.metrics();
/// std::string body = m.prometheus_text();  // serve as text/plain; version=0.0.4
/// ```

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace saga {

/// Label pairs of one series, e.g. `{{"definition", "publish"}, {"step", "reserve_budget"}}`.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// Kinds of metric family, as Prometheus names them.
enum class metric_type { counter, gauge, histogram };

/// Default histogram buckets, in seconds: 0.5 ms to 60 s.
[[nodiscard]] const std::vector<double>& default_seconds_buckets();

/// A thread-safe set of metric families. Names follow Prometheus rules
/// (`[a-zA-Z_:][a-zA-Z0-9_:]*`); a value recorded under a name that was not described is described
/// on the fly as untyped help-less counter/gauge/histogram, so recording never fails.
class metrics_registry {
public:
    /// Declares a family: its type, help text and (histograms) bucket upper bounds.
    void describe(std::string_view name, metric_type type, std::string_view help,
                  std::vector<double> buckets = {});
    /// Adds `value` (>= 0) to a counter series.
    void add(std::string_view name, const metric_labels& labels, double value = 1);
    /// Sets a gauge series.
    void set(std::string_view name, const metric_labels& labels, double value);
    /// Records one observation in a histogram series.
    void observe(std::string_view name, const metric_labels& labels, double value);
    /// A gauge family computed when rendered (e.g. instances in flight, circuit states):
    /// `fn` returns the series and their values. Replaces an earlier callback of that name.
    void gauge_callback(std::string_view name, std::string_view help,
                        std::function<std::vector<std::pair<metric_labels, double>>()> fn);

    /// The current value of a counter or gauge series (0 if absent); histograms: their count.
    [[nodiscard]] double value(std::string_view name, const metric_labels& labels = {}) const;
    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    [[nodiscard]] std::string prometheus_text() const;

private:
    struct series {
        double value = 0;  // counter/gauge value, histogram sum
        std::uint64_t count = 0;
        std::vector<std::uint64_t> bucket_counts;
    };
    struct family {
        metric_type type = metric_type::counter;
        std::string help;
        std::vector<double> buckets;
        std::map<metric_labels, series> series_;
        std::function<std::vector<std::pair<metric_labels, double>>()> callback;
    };
    family& family_of(std::string_view name, metric_type type);

    mutable std::mutex mutex_;
    std::map<std::string, family, std::less<>> families_;
};

}  // namespace saga
