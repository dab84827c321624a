// machine::decide and machine::start: inputs in, events and effects out. The driver of the
// definition's steps, compensation, due times and operator actions; the step kinds live in
// kinds/, the attempt path in attempt.cpp.

#include <algorithm>
#include <tuple>

#include "context.hpp"

namespace saga::machine {
namespace {

using detail::node;
using detail::node_kind;

void index_steps(compiled& c, const std::vector<node>& steps, bool& pivot_seen) {
    for (const auto& n : steps) {
        c.nodes.emplace(n.name, &n);
        if (pivot_seen) c.after_pivot.insert(&n);
        for (const auto& b : n.branches) {
            bool inner = pivot_seen;
            index_steps(c, b.steps, inner);
        }
        if (n.pivot) pivot_seen = true;
    }
}

result<void> check_names(const std::vector<node>& steps) {
    for (const auto& n : steps) {
        if (!valid_step_name(n.name))
            return saga::error{errc::invalid_definition,
                               fmt::format("step name '{}' is not valid: 1 to 100 letters, digits, "
                                           "'_', '-' or '.'",
                                           n.name)};
        for (const auto& b : n.branches) {
            SAGA_TRY(check_names(b.steps));
        }
    }
    return success();
}

bool compensable(const node& n, std::string_view key) {
    if (n.compensation.empty()) return false;
    if (n.kind == node_kind::for_each) return item_index(key).has_value();
    return n.kind == node_kind::local || n.kind == node_kind::remote;
}

bool is_group(const context& c, std::string_view key) {
    if (item_index(key)) return false;
    const node* n = c.node_of(key);
    return n && (n->kind == node_kind::parallel || n->kind == node_kind::for_each);
}

void settle(context& c, event_type type) {
    event e;
    e.type = type;
    e.error = c.st.error;
    c.emit(std::move(e));
}

progress drive_node(context& c, const node& n) {
    if (c.unit_of(n.name).status == step_status::pending) {
        if (c.halted()) return progress::blocked;
        if (n.when) {
            if (!n.when(c.data)) {
                skip(c, n);
                return progress::done;
            }
        }
    }
    switch (n.kind) {
        case node_kind::local:
        case node_kind::remote: return drive_leaf(c, n, n.name);
        case node_kind::wait: return drive_wait(c, n);
        case node_kind::parallel: return drive_parallel(c, n);
        case node_kind::for_each: return drive_for_each(c, n);
    }
    return progress::blocked;
}

void drive_compensation(context& c) {
    const std::string* best = nullptr;
    std::uint64_t best_seq = 0;
    for (const auto& [key, u] : c.st.units) {
        if (u.status == step_status::compensation_failed) {
            // It failed while the saga was paused.
            settle(c, event_type::saga_compensation_failed);
            return;
        }
        if (u.status == step_status::running || u.status == step_status::compensating)
            return;  // settle first
        const bool candidate =
            u.status == step_status::completed || (u.status == step_status::failed && u.uncertain);
        if (!candidate || u.seq == 0 || u.seq < best_seq) continue;
        const node* n = c.node_of(key);
        if (!n || !compensable(*n, key)) continue;
        best = &key;
        best_seq = u.seq;
    }
    if (!best) {
        settle(c,
               c.st.cancel_requested ? event_type::saga_cancelled : event_type::saga_compensated);
        return;
    }
    const std::string key = *best;
    start_attempt(c, *c.node_of(key), key, direction::compensation);
}

void set_status(context& c, saga_status s) {
    if (c.st.status == s) return;
    event e;
    e.type = event_type::status_changed;
    e.status = s;
    c.emit(std::move(e));
}

void advance_once(context& c) {
    auto& st = c.st;
    if (is_settled(st.status)) return;
    // A cancel is accepted only before the pivot; the pivot may complete before the cancel is
    // seen here (a reply in the same batch): the cancel still holds, as it would had it been
    // seen first (the pivot's step is then left running and settles).
    if (st.cancel_requested && !st.compensating && !st.forward_failed) {
        event e;
        e.type = event_type::compensation_started;
        e.error = "cancelled";
        c.emit(std::move(e));
    }
    if (!c.halted()) {
        const auto p = drive_sequence(c, c.def.model->steps);
        if (p == progress::done && !c.halted()) {
            settle(c, event_type::saga_completed);
            return;
        }
    }
    if (st.compensating) {
        set_status(c, saga_status::compensating);
        drive_compensation(c);
        return;
    }
    bool any_running = false;
    bool any_waiting = false;
    std::vector<std::string> open_groups;
    for (const auto& [key, u] : st.units) {
        const bool group = is_group(c, key);
        if (u.status == step_status::running && group) open_groups.push_back(key);
        if ((u.status == step_status::running || u.status == step_status::retrying) && !group)
            any_running = true;
        if (u.status == step_status::waiting) any_waiting = true;
    }
    if (st.forward_failed) {
        if (any_running) return;
        // A group whose member failed past the pivot is not driven any more (the saga has
        // halted): it fails with the saga once nothing runs, so that the saga can settle.
        for (const auto& key : open_groups) {
            event e;
            e.type = event_type::step_failed;
            e.unit = key;
            e.error = "a member failed";
            c.emit(std::move(e));
        }
        settle(c, event_type::saga_failed);
        return;
    }
    set_status(c, !any_running && any_waiting ? saga_status::waiting : saga_status::running);
}

/// Drives the instance as far as it goes: a step that settles at once (a consumed signal, a
/// refused command) lets the next one start in the same decision.
void advance(context& c) {
    for (int pass = 0; pass < 10000; ++pass) {
        const auto before = c.out.events.size();
        advance_once(c);
        if (c.out.events.size() == before || is_settled(c.st.status)) return;
    }
}

// ---- due times ------------------------------------------------------------------------------

struct due_item {
    time_point at;
    std::string unit;
    bool retry;  // a retry is due (else a deadline passed)
};

void fire(context& c, const due_item& d) {
    const auto& u = c.unit_of(d.unit);
    const node* n = c.node_of(d.unit);
    if (!n) return;
    const bool compensating = u.status == step_status::compensating;
    const auto dir = compensating ? direction::compensation : direction::forward;
    if (d.retry) {
        if (u.retry_at != d.at) return;  // changed by an earlier item of this tick
        c.emit(event_type::retry_due, d.unit, dir,
               compensating ? u.compensation_attempts : u.attempts);
        return;
    }
    if (u.deadline != d.at) return;
    if (u.status == step_status::waiting) {
        wait_deadline(c, *n, d.unit);
        return;
    }
    if (u.status != step_status::running && !compensating) return;
    const auto attempt = compensating ? u.compensation_attempts : u.attempts;
    const auto& a = compensating ? n->compensation : n->forward;
    c.emit(event_type::attempt_timed_out, d.unit, dir, attempt);
    if (a.kind == detail::action::how::local_async)
        c.out.effects.emplace_back(cancel_local_effect{d.unit, dir, attempt});
    attempt_done(
        c, *n, d.unit, dir,
        saga::error{errc::timeout,
                    compensating
                        ? fmt::format("compensation of '{}' attempt {} timed out", d.unit, attempt)
                        : fmt::format("step '{}' attempt {} timed out", d.unit, attempt)},
        !compensating);
}

void fire_due(context& c) {
    if (c.st.status == saga_status::paused || is_terminal(c.st.status)) return;
    std::vector<due_item> due;
    for (const auto& [key, u] : c.st.units) {
        if (u.retry_at && *u.retry_at <= c.now) due.push_back({*u.retry_at, key, true});
        if (u.deadline && *u.deadline <= c.now) due.push_back({*u.deadline, key, false});
    }
    std::sort(due.begin(), due.end(), [](const due_item& a, const due_item& b) {
        return std::tie(a.at, a.unit, a.retry) < std::tie(b.at, b.unit, b.retry);
    });
    for (const auto& d : due) fire(c, d);
}

// ---- inputs ---------------------------------------------------------------------------------

saga::error finished(const instance& st, std::string_view what) {
    return {errc::saga_finished,
            fmt::format("saga '{}' is {}: {} refused", st.id, to_string(st.status), what)};
}

saga::error wrong_state(const instance& st, std::string_view what, std::string_view needs) {
    return {errc::invalid_state, fmt::format("saga '{}' is {}: {} needs it {}", st.id,
                                             to_string(st.status), what, needs)};
}

/// Refuses `what` on a saga that cannot take it: terminal, or (unless `on_settled`) settled
/// and not paused.
result<void> open_for(const instance& st, std::string_view what, bool on_settled) {
    if (is_terminal(st.status) ||
        (!on_settled && is_settled(st.status) && st.status != saga_status::paused))
        return finished(st, what);
    return success();
}

result<void> on_signal(context& c, const signal_input& s) {
    if (s.name.empty()) return saga::error{errc::invalid_argument, "a signal needs a name"};
    SAGA_TRY(open_for(c.st, fmt::format("signal '{}'", s.name), false));
    if (!s.message_id.empty() && std::find(c.st.consumed_ids.begin(), c.st.consumed_ids.end(),
                                           s.message_id) != c.st.consumed_ids.end()) {
        c.out.ignored.push_back({{}, s.message_id, ignore_reason::duplicate});
        return success();
    }
    event e;
    e.type = event_type::signal_received;
    e.name = s.name;
    e.payload = s.payload;
    e.message_id = s.message_id;
    c.emit(std::move(e));
    return success();
}

void on_local_done(context& c, const local_done_input& l) {
    // The step ran against the data, whatever becomes of its outcome.
    c.data_touched();
    auto it = c.st.units.find(l.unit);
    const node* n = c.node_of(l.unit);
    if (it == c.st.units.end() || !n) return;
    const auto& u = it->second;
    const bool open = l.dir == direction::forward
                          ? u.status == step_status::running && u.attempts == l.attempt
                          : u.status == step_status::compensating &&
                                u.compensation_attempts == l.attempt && !u.retry_at;
    if (!open) {
        c.out.ignored.push_back({l.unit, {}, ignore_reason::not_waiting});
        return;
    }
    attempt_done(c, *n, l.unit, l.dir, l.outcome);
}

event operator_event(event_type type, const operator_input& o, std::string unit = {}) {
    event e;
    e.type = type;
    e.unit = std::move(unit);
    e.who = o.who;
    e.why = o.why;
    return e;
}

result<void> on_skip(context& c, const operator_input& o) {
    auto& st = c.st;
    const node* n = c.node_of(o.step);
    if (!n || (item_index(o.step) && n->kind != node_kind::for_each))
        return saga::error{errc::not_found,
                           fmt::format("saga '{}' has no step '{}'", st.id, o.step)};
    if (n->kind == node_kind::parallel || (n->kind == node_kind::for_each && !item_index(o.step)))
        return saga::error{errc::invalid_argument,
                           fmt::format("step '{}' of saga '{}' is a group: skip its steps or "
                                       "items instead",
                                       o.step, st.id)};
    const auto before = c.unit_of(o.step).status;
    event e;
    if (before == step_status::compensation_failed) {
        e = operator_event(event_type::compensation_skipped, o, o.step);
    } else if (before == step_status::failed || before == step_status::retrying ||
               before == step_status::waiting || before == step_status::running ||
               before == step_status::pending) {
        if (st.compensating)
            return saga::error{errc::invalid_state,
                               fmt::format("saga '{}' is compensating: step '{}' cannot be "
                                           "skipped forward",
                                           st.id, o.step)};
        e = operator_event(event_type::step_skipped_by_operator, o, o.step);
        // A running local step's result, should it come, is then ignored; a waiting
        // command's reply too.
        if (before == step_status::running && n->forward.kind == detail::action::how::local_async)
            c.out.effects.emplace_back(
                cancel_local_effect{o.step, direction::forward, c.unit_of(o.step).attempts});
    } else {
        return saga::error{errc::invalid_state,
                           fmt::format("step '{}' of saga '{}' is {}: only a failed, retrying, "
                                       "waiting, running or pending step, or a failed "
                                       "compensation, can be skipped",
                                       o.step, st.id, to_string(before))};
    }
    e.status = st.status;
    e.name = std::string(to_string(before));
    c.emit(std::move(e));
    return success();
}

result<void> on_operator(context& c, const operator_input& o) {
    auto& st = c.st;
    switch (o.action) {
        case operator_action::pause: {
            SAGA_TRY(open_for(st, "pause", false));
            if (st.status == saga_status::paused) return success();
            c.emit(operator_event(event_type::saga_paused, o));
            return success();
        }
        case operator_action::resume: {
            SAGA_TRY(open_for(st, "resume", true));
            if (st.status != saga_status::paused) return wrong_state(st, "resume", "paused");
            c.emit(operator_event(event_type::saga_resumed, o));
            return success();
        }
        case operator_action::cancel: {
            SAGA_TRY(open_for(st, "cancel", false));
            if (st.pivot_passed)
                return saga::error{
                    errc::past_pivot,
                    fmt::format("saga '{}' is past its pivot and can only go forward", st.id)};
            if (st.cancel_requested || st.compensating)
                return saga::error{
                    errc::invalid_state,
                    fmt::format("saga '{}' is {} already: cancel refused", st.id,
                                st.cancel_requested ? "being cancelled" : "compensating")};
            auto e = operator_event(event_type::cancel_requested, o);
            e.error = o.step;  // the reason
            c.emit(std::move(e));
            return success();
        }
        case operator_action::retry: {
            SAGA_TRY(open_for(st, "retry", true));
            const bool comp = st.status == saga_status::compensation_failed;
            if (!comp && st.status != saga_status::failed)
                return wrong_state(st, "retry", "failed or compensation_failed");
            auto e = operator_event(event_type::operator_retry, o);
            e.payload = nlohmann::json::array();
            for (const auto& [key, u] : st.units)
                if (u.status == (comp ? step_status::compensation_failed : step_status::failed))
                    e.payload.push_back(key);
            c.emit(std::move(e));
            return success();
        }
        case operator_action::skip: {
            SAGA_TRY(open_for(st, "skip step", true));
            return on_skip(c, o);
        }
        case operator_action::release_lock: {
            SAGA_TRY(open_for(st, "release lock", true));
            if (!st.exclusive) return success();
            auto e = operator_event(event_type::lock_released, o);
            e.name = st.correlation_key;
            c.emit(std::move(e));
            return success();
        }
    }
    return success();
}

}  // namespace

progress drive_sequence(context& c, const std::vector<node>& steps) {
    for (const auto& n : steps) {
        const auto p = drive_node(c, n);
        if (p != progress::done) return p;
    }
    return progress::done;
}

progress drive_leaf(context& c, const node& n, const std::string& key) {
    if (c.unit_of(key).status == step_status::pending) start_attempt(c, n, key, direction::forward);
    return progress_of(c.unit_of(key).status);
}

void skip(context& c, const node& n) {
    c.emit(event_type::step_skipped, n.name);
    for (const auto& b : n.branches)
        for (const auto& s : b.steps) skip(c, s);
}

result<std::shared_ptr<const compiled>> compile(std::shared_ptr<const detail::model> m) {
    if (!m) return saga::error{errc::invalid_argument, "no definition"};
    SAGA_TRY(check_names(m->steps));
    auto c = std::make_shared<compiled>();
    c->model = std::move(m);
    bool pivot_seen = false;
    index_steps(*c, c->model->steps, pivot_seen);
    return std::shared_ptr<const compiled>(std::move(c));
}

decision start(const compiled& def, const config& cfg, instance& state, detail::data_box& data,
               time_point now) {
    decision out;
    context c(def, cfg, state, data, now, out);
    event e;
    e.type = event_type::saga_started;
    e.name = state.correlation_key;
    e.payload = {{"definition", def.model->name},
                 {"version", def.model->version},
                 {"exclusive", state.exclusive},
                 {"traceparent", state.traceparent}};
    c.emit(std::move(e));
    advance(c);
    return out;
}

decision decide(const compiled& def, const config& cfg, instance& state, detail::data_box& data,
                std::span<const input> inputs, time_point now) {
    decision out;
    context c(def, cfg, state, data, now, out);
    out.outcomes.reserve(inputs.size());
    for (const auto& in : inputs) {
        result<void> r = success();
        std::visit(
            [&](const auto& i) {
                using T = std::decay_t<decltype(i)>;
                if constexpr (std::is_same_v<T, reply_input>) {
                    if (is_terminal(state.status))
                        out.ignored.push_back({i.unit, i.message_id, ignore_reason::finished});
                    else
                        handle_reply(c, i);
                } else if constexpr (std::is_same_v<T, signal_input>) {
                    r = on_signal(c, i);
                } else if constexpr (std::is_same_v<T, local_done_input>) {
                    on_local_done(c, i);
                } else if constexpr (std::is_same_v<T, operator_input>) {
                    r = on_operator(c, i);
                }
                // tick_input: due times fire below, as in every decision
            },
            in);
        out.outcomes.push_back(std::move(r));
        fire_due(c);
        advance(c);
    }
    if (inputs.empty()) {
        fire_due(c);
        advance(c);
    }
    return out;
}

}  // namespace saga::machine
