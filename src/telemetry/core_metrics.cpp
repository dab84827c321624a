#include "core_metrics.hpp"

namespace saga::telemetry {

void describe_core_metrics(metrics_registry& m) {
    m.describe("saga_instances_started_total", metric_type::counter,
               "Saga instances started, by definition");
    m.describe("saga_instances_ended_total", metric_type::counter,
               "Saga instances that ended (completed, compensated, cancelled) or stopped for an "
               "operator (failed, compensation_failed), by definition and status");
    m.describe("saga_step_duration_seconds", metric_type::histogram,
               "Time from a step's first attempt to its outcome, by definition, step and outcome");
    m.describe("saga_step_retries_total", metric_type::counter,
               "Step attempts scheduled again after a transient failure");
    m.describe("saga_step_timeouts_total", metric_type::counter, "Step attempts that timed out");
    m.describe("saga_compensations_total", metric_type::counter,
               "Compensations by definition, step and outcome (compensated, failed)");
    m.describe("saga_operator_actions_total", metric_type::counter,
               "Operator actions recorded in sagas' histories, by action");
    m.describe("saga_instances_purged_total", metric_type::counter,
               "Finished instances deleted from the store by retention "
               "(engine_options::retention)");
    m.describe("saga_transition_commit_seconds", metric_type::histogram,
               "Time from handing a transition to the store until it is durable");
    m.describe("saga_outbox_lag_seconds", metric_type::histogram,
               "Time from a message's transition being durable until the transport accepted it");
    m.describe("saga_replies_ignored_total", metric_type::counter,
               "Replies, signals and local step results that changed nothing (forged, or stale: "
               "a duplicate, a late copy, an answer to an attempt no longer open, for a saga "
               "that is gone or finished), by reason");
}

void register_core_gauges(metrics_registry& m, gauge_sources sources) {
    m.gauge_callback("saga_instances_in_flight", "Saga instances cached and not settled",
                     [fn = std::move(sources.in_flight)] {
                         std::vector<std::pair<metric_labels, double>> out;
                         if (fn) out.push_back({{}, fn()});
                         return out;
                     });
    m.gauge_callback("saga_outbox_unreleased",
                     "Messages durable in the outbox and not yet accepted by the transport",
                     [fn = std::move(sources.outbox_unreleased)] {
                         std::vector<std::pair<metric_labels, double>> out;
                         if (fn) out.push_back({{}, fn()});
                         return out;
                     });
    m.gauge_callback("saga_circuit_state",
                     "Circuit breaker state by endpoint: 0 closed, 1 half open, 2 open",
                     [fn = std::move(sources.circuits)] {
                         std::vector<std::pair<metric_labels, double>> out;
                         if (!fn) return out;
                         for (auto& [endpoint, state] : fn())
                             out.push_back({{{"endpoint", std::move(endpoint)}}, state});
                         return out;
                     });
}

}  // namespace saga::telemetry
