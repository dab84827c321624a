#pragma once
// Logs, metrics and spans of core v2, fed once per committed journal record: the same metric
// families (names, labels, types, help texts), JSON log lines (fields, levels) and spans (names,
// derived ids, attributes) as today's engine makes from its history entries (src/telemetry.cpp,
// docs/operations.md), plus `saga_replies_ignored_total{reason}` for the inputs a decision
// ignored. Thread-safe: actors of different instances may feed it at once.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <saga/journal_store.hpp>
#include <saga/log.hpp>
#include <saga/metrics.hpp>
#include <saga/state_store.hpp>
#include <saga/tracing.hpp>

#include "../machine/machine.hpp"
#include "core_metrics.hpp"

namespace saga::telemetry {

struct telemetry_options {
    /// where metrics go (several engines may share one); null: a registry of its own
    std::shared_ptr<metrics_registry> metrics;
    /// where log lines go; null: JSON lines on stderr, as today's engine
    std::shared_ptr<saga::log_sink> log_sink;
    /// the least important level written
    saga::log_level log_level = saga::log_level::warn;
    /// receives the finished saga, step and compensation spans; null: none
    std::shared_ptr<saga::span_exporter> span_exporter;
};

class journal_telemetry {
public:
    /// Describes every family today's engine describes, and saga_replies_ignored_total.
    explicit journal_telemetry(telemetry_options o = {});

    /// One committed record of instance `head` (its head after the record, or before it when
    /// the record did not change it: only the id, definition, version, correlation key and
    /// creation time are read), with `after`, the instance after the record. The log lines
    /// are made from the record's history entries (legacy::append_history), only when one of
    /// its events is at or above the log level; at debug, its `status_changed` and
    /// `step_abandoned` lines are then not quite today's (docs/internals.md, "History
    /// compatibility"): pass a history_translator's entries to the overload below for those.
    void on_record(const instance_head& head, const journal_record& rec,
                   const machine::instance& after);
    /// Same, with the record's history entries already made by the caller (observers need them
    /// too); the log lines are made from `entries`.
    void on_record(const instance_head& head, const journal_record& rec,
                   const machine::instance& after, std::span<const history_entry> entries);

    /// The inputs a decision of `head` ignored, at `at`: saga_replies_ignored_total{reason}
    /// and a debug line `reply_ignored` for each (`reason`, `message_id`).
    void on_ignored(const instance_head& head, const machine::instance& state,
                    std::span<const machine::ignored_input> ignored, time_point at);
    /// A message the runtime ignored before any instance could use it (a reply for a saga id
    /// no instance has, or whose idempotency key names no attempt): counted, and a debug line
    /// `reply_ignored` with the saga id, step and message id.
    void on_unrouted(const envelope& message, machine::ignore_reason reason, time_point at);

    /// saga_transition_commit_seconds: a transition handed to the store until it is durable.
    void commit_took(double seconds);
    /// saga_outbox_lag_seconds: a transition durable until the transport accepted a message.
    void release_took(double seconds);
    /// `n` finished instances deleted by retention
    void purged(std::size_t n);
    /// Registers the gauges saga_instances_in_flight, saga_outbox_unreleased and
    /// saga_circuit_state with their help texts.
    void set_gauges(gauge_sources sources);

    /// A warning of the runtime's own ("saga 'x': commit failed, will retry: ..."), as today's
    /// engine_impl::warn writes it.
    void warn(std::string_view what, time_point at) const;

    [[nodiscard]] metrics_registry& metrics() const noexcept { return *metrics_; }
    [[nodiscard]] const std::shared_ptr<metrics_registry>& metrics_ptr() const noexcept {
        return metrics_;
    }
    /// Whether a line at `level` is written.
    [[nodiscard]] bool logs(saga::log_level level) const noexcept {
        return level >= options_.log_level && options_.log_level != saga::log_level::off;
    }

private:
    void count_ignored(machine::ignore_reason reason);
    /// Counts an ignored input and, at debug, writes `r` as its `reply_ignored` line.
    void ignored(machine::ignore_reason reason, const std::string& message_id, log_record r);
    /// The label sets of one step of one definition, made once.
    struct step_labels {
        metric_labels plain;  // definition, step
        metric_labels completed, failed;
        metric_labels compensated, compensation_failed;
    };
    struct definition_labels {
        metric_labels plain;  // definition
        std::map<saga_status, metric_labels> ended;
        std::map<std::string, step_labels, std::less<>> steps;
    };

    definition_labels& labels_of(std::string_view definition);
    const step_labels& labels_of(definition_labels& d, std::string_view unit);
    const metric_labels& single(std::map<std::string, metric_labels, std::less<>>& m,
                                const char* name, std::string_view value);

    void metrics_for(const instance_head& head, const journal_record& rec,
                     const machine::instance& after, const event& e);
    void span_for(const instance_head& head, const journal_record& rec,
                  const machine::instance& after, const trace_context& tc, const event& e);
    void log(const instance_head& head, const std::string& trace_id,
             std::span<const history_entry> entries) const;
    [[nodiscard]] bool any_logged(const journal_record& rec) const;
    void write(const log_record& r) const;

    telemetry_options options_;
    std::shared_ptr<metrics_registry> metrics_;
    std::shared_ptr<saga::log_sink> log_;

    std::mutex mutex_;  // the label caches and the compensation clock
    std::map<std::string, definition_labels, std::less<>> definitions_;
    std::map<std::string, metric_labels, std::less<>> actions_;
    std::map<std::string, metric_labels, std::less<>> reasons_;
    /// saga id -> when its last compensation span ended (or compensation began)
    std::unordered_map<std::string, time_point> compensation_clock_;
};

}  // namespace saga::telemetry
