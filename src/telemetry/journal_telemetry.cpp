// Each case below reproduces what src/telemetry.cpp does for the history entry the event
// becomes (legacy/history.cpp), switching on the typed event instead of its name.

#include "journal_telemetry.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "../legacy/history.hpp"
#include "../machine/ids.hpp"
#include "core_metrics.hpp"
#include "levels.hpp"

namespace saga::telemetry {
namespace {

double seconds_between(time_point a, time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

std::optional<time_point> started_at(const machine::instance& st, std::string_view unit) {
    auto it = st.units.find(unit);
    return it == st.units.end() ? std::nullopt : it->second.started_at;
}

/// The events whose history entry carries `who` (and so counts as an operator action).
bool operator_action(const event& e) {
    switch (e.type) {
        case event_type::saga_paused:
        case event_type::saga_resumed:
        case event_type::operator_retry:
        case event_type::step_skipped_by_operator:
        case event_type::compensation_skipped:
        case event_type::lock_released: return true;
        case event_type::cancel_requested: return !e.who.empty() || !e.why.empty();
        default: return false;
    }
}

}  // namespace

journal_telemetry::journal_telemetry(telemetry_options o)
    : options_(std::move(o)),
      metrics_(options_.metrics ? options_.metrics : std::make_shared<metrics_registry>()),
      log_(options_.log_sink ? options_.log_sink : std::make_shared<json_lines_sink>(stderr)) {
    describe_core_metrics(*metrics_);
}

void journal_telemetry::set_gauges(gauge_sources sources) {
    register_core_gauges(*metrics_, std::move(sources));
}

void journal_telemetry::commit_took(double seconds) {
    metrics_->observe("saga_transition_commit_seconds", {}, seconds);
}

void journal_telemetry::release_took(double seconds) {
    metrics_->observe("saga_outbox_lag_seconds", {}, seconds);
}

void journal_telemetry::purged(std::size_t n) {
    metrics_->add("saga_instances_purged_total", {}, static_cast<double>(n));
}

// ---- label sets, made once per definition, step, action and reason ---------------------------

journal_telemetry::definition_labels& journal_telemetry::labels_of(std::string_view definition) {
    auto it = definitions_.find(definition);
    if (it == definitions_.end()) {
        definition_labels d;
        d.plain = {{"definition", std::string(definition)}};
        it = definitions_.emplace(std::string(definition), std::move(d)).first;
    }
    return it->second;
}

const journal_telemetry::step_labels& journal_telemetry::labels_of(definition_labels& d,
                                                                   std::string_view unit) {
    const auto step = machine::base_name(unit);  // an item counts for its for-each step
    auto it = d.steps.find(step);
    if (it == d.steps.end()) {
        const auto& def = d.plain.front().second;
        step_labels s;
        s.plain = {{"definition", def}, {"step", std::string(step)}};
        s.completed = {{"definition", def}, {"step", std::string(step)}, {"outcome", "completed"}};
        s.failed = {{"definition", def}, {"step", std::string(step)}, {"outcome", "failed"}};
        s.compensated = {
            {"definition", def}, {"step", std::string(step)}, {"outcome", "compensated"}};
        s.compensation_failed = s.failed;
        it = d.steps.emplace(std::string(step), std::move(s)).first;
    }
    return it->second;
}

const metric_labels& journal_telemetry::single(std::map<std::string, metric_labels, std::less<>>& m,
                                               const char* name, std::string_view value) {
    auto it = m.find(value);
    if (it == m.end())
        it = m.emplace(std::string(value), metric_labels{{name, std::string(value)}}).first;
    return it->second;
}

// ---- records --------------------------------------------------------------------------------

void journal_telemetry::on_record(const instance_head& head, const journal_record& rec,
                                  const machine::instance& after) {
    if (any_logged(rec)) {
        std::vector<history_entry> entries;
        legacy::append_history(rec, after, entries);
        on_record(head, rec, after, entries);
        return;
    }
    on_record(head, rec, after, {});
}

void journal_telemetry::on_record(const instance_head& head, const journal_record& rec,
                                  const machine::instance& after,
                                  std::span<const history_entry> entries) {
    const auto tc = options_.span_exporter ? trace_context::parse(after.traceparent)
                                           : std::optional<trace_context>();
    for (const auto& e : rec.events) {
        metrics_for(head, rec, after, e);
        if (tc) span_for(head, rec, after, *tc, e);
    }
    if (entries.empty()) return;
    const auto parsed = tc ? tc : trace_context::parse(after.traceparent);
    log(head, parsed ? parsed->trace_id : std::string(), entries);
}

bool journal_telemetry::any_logged(const journal_record& rec) const {
    if (options_.log_level == saga::log_level::off) return false;
    for (const auto& e : rec.events) {
        const auto name = legacy::name_of(e);
        if (!name.empty() && logs(level_of(name))) return true;
    }
    return false;
}

void journal_telemetry::metrics_for(const instance_head& head, const journal_record& rec,
                                    const machine::instance& after, const event& e) {
    const bool fwd = e.dir == direction::forward;
    const metric_labels* labels = nullptr;
    const char* family = nullptr;
    std::optional<double> observed;
    {
        std::lock_guard lock(mutex_);
        switch (e.type) {
            case event_type::saga_started:
                family = "saga_instances_started_total";
                labels = &labels_of(head.definition).plain;
                break;
            case event_type::step_completed:
            case event_type::step_failed:
                if (auto since = started_at(after, e.unit)) {
                    const auto& s = labels_of(labels_of(head.definition), e.unit);
                    family = "saga_step_duration_seconds";
                    labels = e.type == event_type::step_completed ? &s.completed : &s.failed;
                    observed = seconds_between(*since, rec.at);
                }
                break;
            case event_type::retry_scheduled:
                if (!fwd) break;  // compensation_retry_scheduled: not counted
                family = "saga_step_retries_total";
                labels = &labels_of(labels_of(head.definition), e.unit).plain;
                break;
            case event_type::attempt_timed_out:
                if (!fwd) break;  // compensation_timed_out: not counted
                family = "saga_step_timeouts_total";
                labels = &labels_of(labels_of(head.definition), e.unit).plain;
                break;
            case event_type::step_compensated:
            case event_type::compensation_failed: {
                const auto& s = labels_of(labels_of(head.definition), e.unit);
                family = "saga_compensations_total";
                labels = e.type == event_type::step_compensated ? &s.compensated
                                                                : &s.compensation_failed;
                break;
            }
            default:
                if (auto ended = ending_of(e.type)) {
                    auto& d = labels_of(head.definition);
                    auto it = d.ended.find(*ended);
                    if (it == d.ended.end())
                        it = d.ended
                                 .emplace(*ended,
                                          metric_labels{d.plain.front(),
                                                        {"status", std::string(to_string(*ended))}})
                                 .first;
                    family = "saga_instances_ended_total";
                    labels = &it->second;
                }
                break;
        }
    }
    // Label sets are never erased: the pointers stay valid outside the lock.
    if (family) {
        if (observed)
            metrics_->observe(family, *labels, *observed);
        else
            metrics_->add(family, *labels);
    }
    if (operator_action(e)) {
        const metric_labels* action = nullptr;
        {
            std::lock_guard lock(mutex_);
            action = &single(actions_, "action", legacy::name_of(e));
        }
        metrics_->add("saga_operator_actions_total", *action);
    }
}

void journal_telemetry::span_for(const instance_head& head, const journal_record& rec,
                                 const machine::instance& after, const trace_context& tc,
                                 const event& e) {
    const auto& id = head.id;
    if (e.type == event_type::saga_started || e.type == event_type::compensation_started) {
        std::lock_guard lock(mutex_);
        compensation_clock_[id] = rec.at;
        return;
    }
    const bool step = e.type == event_type::step_completed || e.type == event_type::step_failed;
    const bool undo =
        e.type == event_type::step_compensated || e.type == event_type::compensation_failed;
    const auto ended = ending_of(e.type);
    if (!step && !undo && !ended) return;

    const auto saga_span = derive_span_id(tc.trace_id, "saga|" + id);
    span s;
    s.trace_id = tc.trace_id;
    s.attributes = {{"saga.id", id},
                    {"saga.definition", head.definition},
                    {"saga.definition_version", head.definition_version}};
    if (!head.correlation_key.empty()) s.attributes["saga.correlation_key"] = head.correlation_key;
    s.end = rec.at;
    if (step) {
        s.span_id = derive_span_id(tc.trace_id, fmt::format("{}|{}|step", id, e.unit));
        s.parent_span_id = saga_span;
        s.name = "step " + e.unit;
        s.kind = "step";
        s.start = started_at(after, e.unit).value_or(rec.at);
        s.ok = e.type == event_type::step_completed;
        if (!s.ok) s.status_message = e.error;
        s.attributes["saga.step"] = e.unit;
        s.attributes["saga.attempts"] = e.attempt;
    } else if (undo) {
        s.span_id = derive_span_id(tc.trace_id, fmt::format("{}|{}|compensate", id, e.unit));
        s.parent_span_id = saga_span;
        s.name = "compensate " + e.unit;
        s.kind = "compensation";
        {
            // Compensations run one at a time: each starts where the previous one ended.
            std::lock_guard lock(mutex_);
            auto& boundary = compensation_clock_[id];
            s.start = boundary == time_point{} ? rec.at : boundary;
            boundary = rec.at;
        }
        s.ok = e.type == event_type::step_compensated;
        if (!s.ok) s.status_message = e.error;
        s.attributes["saga.step"] = e.unit;
        s.attributes["saga.attempts"] = e.attempt;
    } else {
        s.span_id = saga_span;
        if (tc.span_id != saga_span) s.parent_span_id = tc.span_id;  // the caller's span
        s.name = "saga " + head.definition;
        s.kind = "saga";
        s.start = head.created_at;
        s.ok = *ended == saga_status::completed;
        if (!s.ok) s.status_message = fmt::format("{}: {}", to_string(*ended), after.error);
        s.attributes["saga.status"] = std::string(to_string(*ended));
        std::lock_guard lock(mutex_);
        compensation_clock_.erase(id);
    }
    try {
        options_.span_exporter->export_span(s);
    } catch (...) {
    }
}

// ---- logs -----------------------------------------------------------------------------------

void journal_telemetry::write(const log_record& r) const {
    try {
        log_->write(r);
    } catch (...) {
    }
}

void journal_telemetry::log(const instance_head& head, const std::string& trace_id,
                            std::span<const history_entry> entries) const {
    for (const auto& h : entries) {
        const auto level = level_of(h.event);
        if (!logs(level)) continue;
        log_record r;
        r.at = h.at;
        r.level = level;
        r.message = h.event;
        r.saga_id = head.id;
        r.definition = head.definition;
        r.definition_version = head.definition_version;
        r.step = h.step;
        r.attempt = h.attempt;
        r.correlation_id = head.correlation_key;
        r.trace_id = trace_id;
        if (h.detail.is_object()) r.fields = h.detail;
        write(r);
    }
}

void journal_telemetry::warn(std::string_view what, time_point at) const {
    if (!logs(saga::log_level::warn)) return;
    log_record r;
    r.at = at;
    r.level = saga::log_level::warn;
    r.message = std::string(what);
    write(r);
}

// ---- ignored inputs -------------------------------------------------------------------------

void journal_telemetry::count_ignored(machine::ignore_reason reason) {
    const metric_labels* labels = nullptr;
    {
        std::lock_guard lock(mutex_);
        labels = &single(reasons_, "reason", machine::to_string(reason));
    }
    metrics_->add("saga_replies_ignored_total", *labels);
}

void journal_telemetry::ignored(machine::ignore_reason reason, const std::string& message_id,
                                log_record r) {
    count_ignored(reason);
    if (!logs(saga::log_level::debug)) return;
    r.level = saga::log_level::debug;
    r.message = "reply_ignored";
    r.fields = {{"reason", machine::to_string(reason)}};
    if (!message_id.empty()) r.fields["message_id"] = message_id;
    write(r);
}

void journal_telemetry::on_ignored(const instance_head& head, const machine::instance& state,
                                   std::span<const machine::ignored_input> inputs, time_point at) {
    for (const auto& in : inputs) {
        log_record r;
        r.at = at;
        r.saga_id = head.id;
        r.definition = head.definition;
        r.definition_version = head.definition_version;
        r.step = in.unit;
        r.correlation_id = head.correlation_key;
        if (auto tc = trace_context::parse(state.traceparent)) r.trace_id = tc->trace_id;
        ignored(in.reason, in.message_id, std::move(r));
    }
}

void journal_telemetry::on_unrouted(const envelope& message, machine::ignore_reason reason,
                                    time_point at) {
    log_record r;
    r.at = at;
    r.saga_id = message.saga_id;
    r.step = message.step;
    ignored(reason, message.message_id, std::move(r));
}

}  // namespace saga::telemetry
