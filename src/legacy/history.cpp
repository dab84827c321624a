// Typed events -> today's history entries. The cases below name the functions of src/engine.cpp
// that write the entries they reproduce; docs/internals.md, "History compatibility", says what
// still differs.

#include "history.hpp"

#include <chrono>

#include "../machine/ids.hpp"
#include "../machine/snapshot.hpp"

namespace saga::legacy {
namespace {

using nlohmann::json;

std::int64_t ms_between(time_point a, time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

bool forward(const event& e) {
    return e.dir == direction::forward;
}

void add(std::vector<history_entry>& out, const journal_record& rec, std::string_view name,
         const std::string& step, std::uint32_t attempt, json detail = json::object()) {
    out.push_back(
        {rec.saga_id, rec.version, rec.at, std::string(name), step, attempt, std::move(detail)});
}

/// `operator_entry` of today's engine: who and why, always both.
json note(const event& e) {
    return json{{"who", e.who}, {"why", e.why}};
}

/// The error detail of the saga-level outcome events (`engine_impl::settle`).
json settle_detail(const event& e) {
    json d = json::object();
    if (!e.error.empty()) d["error"] = e.error;
    return d;
}

/// A for-each step whose `items` hook failed: today's engine writes its `step_failed` only,
/// the machine a `group_started` with no items first (so that the failure has attempt 1).
bool items_failed(const journal_record& rec, std::size_t i) {
    const auto& e = rec.events[i];
    if (!e.payload.is_array() || !e.payload.empty() || i + 1 >= rec.events.size()) return false;
    const auto& next = rec.events[i + 1];
    return next.type == event_type::step_failed && next.unit == e.unit;
}

/// Maps event `i` of `rec`; `started_at(unit)` gives when the unit's first attempt began.
template <class StartedAt>
void map_event(const journal_record& rec, std::size_t i, const StartedAt& started_at,
               std::vector<history_entry>& out) {
    const event& e = rec.events[i];
    const auto name = name_of(e);
    switch (e.type) {
        case event_type::saga_started: {
            // engine_impl::start
            const bool p = e.payload.is_object();
            add(out, rec, name, e.unit, 0,
                json{{"definition", p ? e.payload.value("definition", std::string()) : ""},
                     {"version", p ? e.payload.value("version", std::uint32_t{0}) : 0u},
                     {"correlation_key", e.name}});
            return;
        }
        case event_type::attempt_started: {
            // start_attempt: the endpoint of a remote step; start_compensation: nothing
            json d = json::object();
            if (forward(e) && !e.name.empty()) d["endpoint"] = e.name;
            add(out, rec, name, e.unit, e.attempt, std::move(d));
            return;
        }
        case event_type::group_started:
            if (e.payload.is_array()) {
                // drive_for_each: attempt 1, the number of items
                if (items_failed(rec, i)) return;
                add(out, rec, name, e.unit, 1, json{{"items", e.count}});
            } else {
                // drive_node, parallel: attempt 0, the number of branches
                add(out, rec, name, e.unit, 0, json{{"branches", e.count}});
            }
            return;
        case event_type::reply_received:
            // A refusal of the runtime's own (an open circuit) comes without a message id: it is
            // no reply, and today's engine shows none (it fails the attempt as it starts it).
            if (e.message_id.empty()) return;
            add(out, rec, name, e.unit, e.attempt, json{{"status", to_string(e.reply)}});
            return;
        case event_type::attempt_timed_out:
        case event_type::step_compensated: add(out, rec, name, e.unit, e.attempt); return;
        case event_type::attempt_failed:
            add(out, rec, name, e.unit, e.attempt,
                json{{"error", e.error}, {"transient", e.transient}});
            return;
        case event_type::retry_scheduled:
            add(out, rec, name, e.unit, e.attempt,
                json{{"delay_ms", e.due ? ms_between(rec.at, *e.due) : 0}});
            return;
        case event_type::retry_due: return;  // a timer firing: today's engine writes nothing
        case event_type::step_completed: {
            // complete_unit: the time since the first attempt (or the wait, or the group) began
            json d = json::object();
            if (auto since = started_at(e.unit)) d["duration_ms"] = ms_between(*since, rec.at);
            add(out, rec, name, e.unit, e.attempt, std::move(d));
            return;
        }
        case event_type::step_failed:
        case event_type::compensation_failed:
            add(out, rec, name, e.unit, e.attempt, json{{"error", e.error}});
            return;
        case event_type::step_waiting:
        case event_type::signal_consumed:
            add(out, rec, name, e.unit, e.attempt, json{{"signal", e.name}});
            return;
        case event_type::signal_received:
            // engine_impl::signal
            add(out, rec, name, e.unit, 0, json{{"signal", e.name}, {"payload", e.payload}});
            return;
        case event_type::step_skipped:
        case event_type::wait_deadline_passed:  // handle_timer: attempt 0
        case event_type::pivot_passed: add(out, rec, name, e.unit, 0); return;
        case event_type::forward_failed:
            add(out, rec, name, e.unit, 0, json{{"error", e.error}});
            return;
        case event_type::compensation_started:
            add(out, rec, name, e.unit, 0, json{{"reason", e.error}});
            return;
        case event_type::status_changed:
            // advance_once; one to `compensating` stays only if it is alone (finish_record)
            add(out, rec, name, e.unit, 0, json{{"status", to_string(e.status)}});
            return;
        case event_type::saga_paused:
        case event_type::saga_resumed: add(out, rec, name, e.unit, 0, note(e)); return;
        case event_type::cancel_requested: {
            // engine_impl::cancel: who and why only when an operator asked
            json d{{"reason", e.error}};
            if (!e.who.empty() || !e.why.empty()) d.update(note(e));
            add(out, rec, name, e.unit, 0, std::move(d));
            return;
        }
        case event_type::operator_retry: {
            auto d = note(e);
            d["steps"] = e.payload.is_array() ? e.payload : json::array();
            add(out, rec, name, e.unit, 0, std::move(d));
            return;
        }
        case event_type::step_skipped_by_operator:
        case event_type::compensation_skipped: {
            auto d = note(e);
            d["was"] = e.name;
            add(out, rec, name, e.unit, 0, std::move(d));
            return;
        }
        case event_type::lock_released: {
            auto d = note(e);
            d["correlation_key"] = e.name;
            add(out, rec, name, e.unit, 0, std::move(d));
            return;
        }
        case event_type::saga_completed:
        case event_type::saga_compensated:
        case event_type::saga_failed:
        case event_type::saga_compensation_failed:
        case event_type::saga_cancelled: add(out, rec, name, e.unit, 0, settle_detail(e)); return;
    }
}

/// Today's engine records a change to `compensating` only in a transition that records nothing
/// else (advance_once: "even when nothing else changed"); otherwise the status changes silently.
void finish_record(std::vector<history_entry>& out, std::size_t begin) {
    if (out.size() - begin <= 1) return;
    for (std::size_t i = out.size(); i-- > begin;) {
        const auto& h = out[i];
        if (h.event == "status_changed" &&
            h.detail.value("status", std::string()) == to_string(saga_status::compensating))
            out.erase(out.begin() + static_cast<std::ptrdiff_t>(i));
    }
}

std::optional<time_point> started_in(const machine::instance& st, std::string_view unit) {
    auto it = st.units.find(unit);
    return it == st.units.end() ? std::nullopt : it->second.started_at;
}

}  // namespace

std::string_view name_of(const event& e) noexcept {
    const bool fwd = forward(e);
    switch (e.type) {
        case event_type::attempt_started: return fwd ? "step_started" : "compensation_step_started";
        case event_type::group_started: return "step_started";
        case event_type::reply_received:
            return fwd ? "reply_received" : "compensation_reply_received";
        case event_type::attempt_timed_out:
            return fwd ? "step_timed_out" : "compensation_timed_out";
        case event_type::attempt_failed:
            return fwd ? "attempt_failed" : "compensation_attempt_failed";
        case event_type::retry_scheduled:
            return fwd ? "retry_scheduled" : "compensation_retry_scheduled";
        case event_type::retry_due: return {};
        default: return to_string(e.type);  // every other event keeps its name
    }
}

history_translator::history_translator(std::shared_ptr<const machine::compiled> def,
                                       std::string saga_id)
    : def_(std::move(def)) {
    state_.id = std::move(saga_id);
}

history_translator::history_translator(std::shared_ptr<const machine::compiled> def,
                                       machine::instance state, std::optional<saga_status> shown)
    : def_(std::move(def)), state_(std::move(state)), shown_(shown.value_or(state_.status)) {}

bool history_translator::sync_local(std::string_view unit) const {
    auto it = def_->nodes.find(machine::base_name(unit));
    if (it == def_->nodes.end()) return false;
    const auto& n = *it->second;
    if (n.kind == detail::node_kind::parallel) return false;
    if (n.kind == detail::node_kind::for_each && !machine::item_index(unit)) return false;
    return n.forward.kind == detail::action::how::local;
}

void history_translator::translate(const journal_record& rec, std::vector<history_entry>& out) {
    if (rec.snapshot && rec.events.empty()) {
        // The whole state and no events: the instance was carried over from another store (a
        // schema v1 file's migration writes its record 1 so); what happened before is not in
        // the journal. One entry says so; the records after it go on from that state.
        if (auto st = machine::decode_snapshot(*rec.snapshot)) {
            state_ = std::move(st).value();
            shown_ = state_.status;
        }
        add(out, rec, "migrated", {}, 0, json{{"status", to_string(state_.status)}});
        return;
    }
    const auto begin = out.size();
    const auto started_at = [this](std::string_view unit) { return started_in(state_, unit); };
    bool local_ended = false;  // a synchronous local step's attempt ended in this record
    for (std::size_t i = 0; i < rec.events.size(); ++i) {
        const auto& e = rec.events[i];
        const auto status_before = state_.status;
        // begin_compensation: every unit compensation leaves behind, in unit order, after
        // compensation_started (its state before the event says which)
        std::vector<std::pair<std::string, std::uint32_t>> abandoned;
        if (e.type == event_type::compensation_started) {
            for (const auto& [key, u] : state_.units) {
                if (u.status == step_status::waiting || u.status == step_status::retrying ||
                    (u.status == step_status::pending && u.attempts > 0))
                    abandoned.emplace_back(key, u.attempts);
            }
        }
        machine::apply(*def_, state_, e, rec.at);
        if (e.type == event_type::status_changed) {
            // to running or waiting: worked out as today's engine would, below
            if (e.status != saga_status::compensating) continue;
            shown_ = e.status;
        } else if (state_.status != status_before) {
            shown_ = state_.status;  // pause, resume, retry, skip, settle: as today's engine
        }
        if ((e.type == event_type::step_completed || e.type == event_type::attempt_failed) &&
            e.dir == direction::forward && sync_local(e.unit))
            local_ended = true;
        map_event(rec, i, started_at, out);
        for (const auto& [key, attempts] : abandoned)
            add(out, rec, "step_abandoned", key, attempts);
    }
    // advance_once: the status at the end of a transition, recorded when it changed. Today's
    // engine runs a synchronous local step inside the transition that starts it, and one such
    // step per transition: a transition never ends with one running. So while the machine runs
    // one, the status today's engine would show is not known yet (the step has just started),
    // or is the status with that step not started (another one has just ended, and today's
    // engine would have left this one for its next transition).
    const bool moving =
        !state_.compensating && !state_.forward_failed &&
        (state_.status == saga_status::running || state_.status == saga_status::waiting);
    if (moving) {
        bool locals = false;
        for (const auto& [key, u] : state_.units)
            if (u.status == step_status::running && sync_local(key)) locals = true;
        if (!locals || local_ended) {
            bool any_running = false;
            bool any_waiting = false;
            for (const auto& [key, u] : state_.units) {
                if (u.status == step_status::retrying ||
                    (u.status == step_status::running && !sync_local(key)))
                    any_running = true;
                if (u.status == step_status::waiting) any_waiting = true;
            }
            const auto status =
                !any_running && any_waiting ? saga_status::waiting : saga_status::running;
            if (status != shown_) {
                add(out, rec, "status_changed", {}, 0, json{{"status", to_string(status)}});
                shown_ = status;
            }
        }
    }
    finish_record(out, begin);
}

std::vector<history_entry> history_translator::translate(const journal_record& rec) {
    std::vector<history_entry> out;
    translate(rec, out);
    return out;
}

std::vector<history_entry> to_history(std::shared_ptr<const machine::compiled> def,
                                      std::span<const journal_record> journal) {
    std::vector<history_entry> out;
    if (journal.empty()) return out;
    history_translator t(std::move(def), journal.front().saga_id);
    for (const auto& rec : journal) t.translate(rec, out);
    return out;
}

void append_history(const journal_record& rec, const machine::instance& after,
                    std::vector<history_entry>& out) {
    const auto begin = out.size();
    const auto started_at = [&after](std::string_view unit) { return started_in(after, unit); };
    for (std::size_t i = 0; i < rec.events.size(); ++i) map_event(rec, i, started_at, out);
    finish_record(out, begin);
}

std::vector<history_entry> to_history(const journal_record& rec, const machine::instance& after) {
    std::vector<history_entry> out;
    append_history(rec, after, out);
    return out;
}

}  // namespace saga::legacy
