// machine::apply: what each event means for the state. The only code that changes an instance;
// replaying a journal is this function over its events.

#include <fmt/format.h>

#include <algorithm>

#include "ids.hpp"
#include "machine.hpp"
#include "status_rules.hpp"

namespace saga::machine {

std::optional<time_point> wake_at(const instance& s) {
    // Nothing fires while the saga is paused or once it is terminal (fire_due); what fell due
    // while it was paused fires once it is resumed, when this answers the due time again.
    if (s.status == saga_status::paused || is_terminal(s.status)) return std::nullopt;
    std::optional<time_point> best;
    auto consider = [&](const std::optional<time_point>& t) {
        if (t && (!best || *t < *best)) best = t;
    };
    for (const auto& [key, u] : s.units) {
        consider(u.deadline);
        consider(u.retry_at);
    }
    return best;
}

namespace {

bool is_group(const compiled& def, std::string_view key) {
    if (item_index(key)) return false;
    auto it = def.nodes.find(base_name(key));
    return it != def.nodes.end() && (it->second->kind == detail::node_kind::parallel ||
                                     it->second->kind == detail::node_kind::for_each);
}

void close(unit& u, time_point at) {
    u.finished_at = at;
    u.deadline.reset();
    u.retry_at.reset();
}

void begin_compensation(const compiled& def, instance& st, time_point at) {
    st.compensating = true;
    for (auto& [key, u] : st.units) {
        switch (u.status) {
            case step_status::waiting:
                u.status = step_status::skipped;
                close(u, at);
                break;
            case step_status::pending:
                // Attempted before, its retry due but not started: like a retrying step, it may
                // have taken effect.
                if (u.attempts == 0) break;
                [[fallthrough]];
            case step_status::retrying:
                u.status = step_status::failed;
                close(u, at);
                if (u.uncertain) u.seq = ++st.seq;
                break;
            case step_status::running:
                if (is_group(def, key)) {
                    u.status = step_status::failed;  // a group: its members settle on their own
                    u.finished_at = at;
                    break;
                }
                u.abandoned = true;  // let it settle: its reply decides whether it is compensated
                break;
            default: break;
        }
    }
}

void operator_retry(instance& st) {
    if (st.status == saga_status::compensation_failed) {
        for (auto& [key, u] : st.units) {
            if (u.status != step_status::compensation_failed) continue;
            u.status = u.uncertain && u.seq == 0 ? step_status::failed : step_status::completed;
            u.compensation_attempts = 0;
            ++u.compensation_generation;
            u.finished_at.reset();
        }
        st.status = saga_status::compensating;
    } else {
        for (auto& [key, u] : st.units) {
            if (u.status != step_status::failed) continue;
            u.status = u.items ? step_status::running : step_status::pending;
            if (!u.items) {
                u.attempts = 0;
                ++u.forward_generation;
            }
            u.error.clear();
            u.finished_at.reset();
        }
        st.forward_failed = false;
        st.status = saga_status::running;
    }
    st.error.clear();
}

}  // namespace

void apply(const compiled& def, instance& st, const event& e, time_point at) {
    st.updated_at = at;
    unit saga_level;  // events about the saga itself touch no unit
    unit& u = e.unit.empty() ? saga_level : st.units[e.unit];
    const bool fwd = e.dir == direction::forward;
    switch (e.type) {
        case event_type::saga_started:
            // The instance's header comes from its first event, so a journal alone rebuilds it.
            st.status = saga_status::running;
            st.created_at = at;
            st.correlation_key = e.name;
            if (e.payload.is_object()) {
                st.exclusive = e.payload.value("exclusive", false);
                st.traceparent = e.payload.value("traceparent", std::string());
            }
            break;
        case event_type::attempt_started:
            if (fwd) {
                u.status = step_status::running;
                u.attempts = e.attempt;
                if (!u.started_at) u.started_at = at;
            } else {
                u.status = step_status::compensating;
                u.compensation_attempts = e.attempt;
            }
            u.deadline = e.due;
            u.retry_at.reset();
            break;
        case event_type::group_started:
            u.status = step_status::running;
            u.started_at = at;
            if (e.payload.is_array()) {
                u.attempts = 1;
                u.items = std::vector<nlohmann::json>(e.payload.begin(), e.payload.end());
            }
            break;
        case event_type::reply_received:
            if (fwd && u.status == step_status::retrying)
                u.status = step_status::running;  // a late reply wins
            u.retry_at.reset();
            break;
        case event_type::attempt_timed_out: u.deadline.reset(); break;
        case event_type::attempt_failed:
            u.error = e.error;
            u.deadline.reset();
            if (e.uncertain) u.uncertain = *e.uncertain;
            break;
        case event_type::retry_scheduled:
            if (fwd) u.status = step_status::retrying;
            u.retry_at = e.due;
            break;
        case event_type::retry_due:
            u.retry_at.reset();
            if (fwd) {
                u.status = step_status::pending;
            } else {
                u.status = u.uncertain && u.seq == 0 ? step_status::failed : step_status::completed;
            }
            break;
        case event_type::step_completed:
            u.status = step_status::completed;
            u.seq = ++st.seq;
            u.error = e.error;
            close(u, at);
            break;
        case event_type::step_failed:
            u.status = step_status::failed;
            u.error = e.error;
            close(u, at);
            if (u.uncertain && !is_group(def, e.unit))
                u.seq = ++st.seq;  // may have taken effect: compensate it in order
            break;
        case event_type::step_skipped:
            u.status = step_status::skipped;
            close(u, at);
            break;
        case event_type::step_waiting:
            u.status = step_status::waiting;
            u.attempts = 1;
            u.started_at = at;
            u.deadline = e.due;
            break;
        case event_type::signal_received:
            st.signals[e.name].push_back(e.payload);
            if (!e.message_id.empty()) {
                st.consumed_ids.push_back(e.message_id);
                while (st.consumed_ids.size() > consumed_ids_kept) st.consumed_ids.pop_front();
            }
            break;
        case event_type::signal_consumed: {
            auto it = st.signals.find(e.name);
            if (it != st.signals.end()) {
                if (!it->second.empty()) it->second.pop_front();
                if (it->second.empty()) st.signals.erase(it);
            }
            break;
        }
        case event_type::wait_deadline_passed: u.deadline.reset(); break;
        case event_type::pivot_passed: st.pivot_passed = true; break;
        case event_type::forward_failed:
            st.forward_failed = true;
            st.error = e.error;
            break;
        case event_type::compensation_started:
            st.error = e.error;
            begin_compensation(def, st, at);
            break;
        case event_type::step_compensated:
            u.status = step_status::compensated;  // a forward error, if any, stays visible
            close(u, at);
            break;
        case event_type::compensation_failed:
            u.status = step_status::compensation_failed;
            u.error = e.error;
            close(u, at);
            st.error = fmt::format("compensation of step '{}' failed: {}", e.unit, e.error);
            break;
        case event_type::status_changed: st.status = e.status; break;
        case event_type::saga_paused: st.status = saga_status::paused; break;
        case event_type::saga_resumed: st.status = moving_status(st); break;
        case event_type::cancel_requested:
            st.cancel_requested = true;
            if (st.status == saga_status::paused) st.status = moving_status(st);
            break;
        case event_type::operator_retry: operator_retry(st); break;
        case event_type::step_skipped_by_operator:
            u.status = step_status::skipped;
            close(u, at);
            if (st.status == saga_status::failed) {
                st.forward_failed = false;
                st.error.clear();
                st.status = saga_status::running;
            }
            break;
        case event_type::compensation_skipped:
            u.status = step_status::compensated;
            close(u, at);
            if (st.status != saga_status::paused) st.status = saga_status::compensating;
            st.error.clear();
            break;
        case event_type::lock_released: st.exclusive = false; break;
        case event_type::saga_completed: st.status = saga_status::completed; break;
        case event_type::saga_compensated: st.status = saga_status::compensated; break;
        case event_type::saga_failed: st.status = saga_status::failed; break;
        case event_type::saga_compensation_failed:
            st.status = saga_status::compensation_failed;
            break;
        case event_type::saga_cancelled: st.status = saga_status::cancelled; break;
    }
}

}  // namespace saga::machine
