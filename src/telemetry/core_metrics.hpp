#pragma once
// The metric families every engine core registers, described in one place: their names, types
// and help texts (docs/operations.md, "Metrics"), and the gauges read when the registry renders.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <saga/endpoint_policy.hpp>
#include <saga/metrics.hpp>

namespace saga::telemetry {

/// What the gauges read when the registry is rendered; each may be empty (no series). They are
/// called on the rendering thread and must stay callable as long as the registry renders (give
/// them a weak pointer to the engine, as the engine gives its lifeline).
struct gauge_sources {
    /// saga_instances_in_flight
    std::function<double()> in_flight;
    /// saga_outbox_unreleased
    std::function<double()> outbox_unreleased;
    /// saga_circuit_state: (endpoint, 0 closed, 1 half open, 2 open)
    std::function<std::vector<std::pair<std::string, double>>()> circuits;
};

/// The value of saga_circuit_state for `s`: 0 closed, 1 half open, 2 open.
[[nodiscard]] constexpr double circuit_gauge(circuit_state s) noexcept {
    return s == circuit_state::closed ? 0.0 : s == circuit_state::half_open ? 1.0 : 2.0;
}

/// Describes the counters and histograms of the core: instances started and ended, step
/// durations, retries, timeouts, compensations, operator actions, commit and outbox latency,
/// and ignored replies.
void describe_core_metrics(metrics_registry& m);

/// Registers the core's gauges (in flight, outbox unreleased, circuit state) over `sources`.
void register_core_gauges(metrics_registry& m, gauge_sources sources);

}  // namespace saga::telemetry
