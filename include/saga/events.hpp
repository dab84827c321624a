#pragma once
/// @file events.hpp
/// The typed history of an instance: what happened in a transition, as an `enum class` with
/// typed attributes. Names appear only at the edges (`to_string`, JSON, logs, the dashboard).
/// See docs/internals.md, "The machine".

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <saga/clock.hpp>
#include <saga/envelope.hpp>
#include <saga/status.hpp>

namespace saga {

/// Whether an attempt does a step's work or undoes it. Every attempt event carries one, so
/// forward and compensation attempts share their event types.
enum class direction : std::uint8_t {
    forward,
    compensation,
};

/// What happened. One enumerator per kind of fact; its attributes are the fields of `event`
/// named in its comment.
enum class event_type : std::uint8_t {
    /// the instance was created (`name`: its correlation key; `payload`: definition, version,
    /// exclusive, traceparent)
    saga_started,
    /// an attempt of `unit` began (`dir`, `attempt`, `due`: its deadline if any, `endpoint`)
    attempt_started,
    /// a group (parallel, for-each) began (`count`: branches or items; `payload`: the items)
    group_started,
    /// a participant answered `attempt` of `unit` (`dir`, `reply`)
    reply_received,
    /// `attempt` of `unit` passed its deadline (`dir`)
    attempt_timed_out,
    /// `attempt` of `unit` failed (`dir`, `error`, `transient`, `uncertain` when it changes)
    attempt_failed,
    /// another attempt will start at `due` (`dir`, `attempt`: the one that failed)
    retry_scheduled,
    /// the retry of `unit` is due: the unit may start again (`dir`)
    retry_due,
    /// `unit` completed forward (`attempt`)
    step_completed,
    /// `unit` failed for good (`attempt`, `error`)
    step_failed,
    /// `unit` was skipped: its `when` said no, or its group was
    step_skipped,
    /// a wait `unit` opened for signal `name` (`due`: its deadline if any)
    step_waiting,
    /// a signal or transport event `name` arrived (`payload`, `message_id`)
    signal_received,
    /// wait `unit` took the oldest queued signal `name`
    signal_consumed,
    /// wait `unit` passed its deadline
    wait_deadline_passed,
    /// the pivot `unit` completed: from now on only forward
    pivot_passed,
    /// a step failed for good after the pivot: the saga ends `failed` once nothing runs
    /// (`error`)
    forward_failed,
    /// the saga began to undo what completed (`error`: the reason)
    compensation_started,
    /// the compensation of `unit` succeeded (`attempt`)
    step_compensated,
    /// the compensation of `unit` failed for good (`attempt`, `error`)
    compensation_failed,
    /// the saga's status became `status` (running, waiting, compensating)
    status_changed,
    /// an operator paused the saga (`who`, `why`)
    saga_paused,
    /// an operator resumed it (`who`, `why`)
    saga_resumed,
    /// cancel requested (`error`: the reason; `who`, `why` when an operator asked)
    cancel_requested,
    /// an operator asked to retry the failed steps or compensations (`who`, `why`)
    operator_retry,
    /// an operator skipped forward step `unit` (`who`, `why`, `status`: what it was)
    step_skipped_by_operator,
    /// an operator skipped the failed compensation of `unit` (`who`, `why`)
    compensation_skipped,
    /// an operator released the instance's correlation-key lock (`who`, `why`)
    lock_released,
    /// terminal and settled outcomes (`error` where there is one)
    saga_completed,
    saga_compensated,
    saga_failed,
    saga_compensation_failed,
    saga_cancelled,
};

/// One fact of a transition. Fields an event type does not use stay empty.
struct event {
    event_type type = event_type::saga_started;
    /// the step, branch step or for-each item (`name[i]`) it is about; empty for the saga
    std::string unit;
    direction dir = direction::forward;
    std::uint32_t attempt = 0;
    /// a deadline or a retry's due time
    std::optional<time_point> due;
    std::string error;
    bool transient = false;
    /// set when the event changes whether the unit may have taken effect
    std::optional<bool> uncertain;
    reply_status reply = reply_status::success;
    saga_status status = saga_status::running;
    /// a signal name, an endpoint, a correlation key: what the type's comment says
    std::string name;
    std::string message_id;
    std::string who;
    std::string why;
    std::uint64_t count = 0;
    nlohmann::json payload;

    friend bool operator==(const event&, const event&) = default;
};

/// The event's name as shown in history, logs and the API (`"step_completed"`).
[[nodiscard]] std::string_view to_string(event_type t) noexcept;
/// The type named `name`, or nothing.
[[nodiscard]] std::optional<event_type> parse_event_type(std::string_view name) noexcept;
[[nodiscard]] std::string_view to_string(direction d) noexcept;

}  // namespace saga
