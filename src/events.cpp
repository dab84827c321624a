#include <saga/events.hpp>

#include <array>
#include <utility>

namespace saga {
namespace {

using namespace std::string_view_literals;

constexpr std::array names{
    std::pair{event_type::saga_started, "saga_started"sv},
    std::pair{event_type::attempt_started, "attempt_started"sv},
    std::pair{event_type::group_started, "group_started"sv},
    std::pair{event_type::reply_received, "reply_received"sv},
    std::pair{event_type::attempt_timed_out, "attempt_timed_out"sv},
    std::pair{event_type::attempt_failed, "attempt_failed"sv},
    std::pair{event_type::retry_scheduled, "retry_scheduled"sv},
    std::pair{event_type::retry_due, "retry_due"sv},
    std::pair{event_type::step_completed, "step_completed"sv},
    std::pair{event_type::step_failed, "step_failed"sv},
    std::pair{event_type::step_skipped, "step_skipped"sv},
    std::pair{event_type::step_waiting, "step_waiting"sv},
    std::pair{event_type::signal_received, "signal_received"sv},
    std::pair{event_type::signal_consumed, "signal_consumed"sv},
    std::pair{event_type::wait_deadline_passed, "wait_deadline_passed"sv},
    std::pair{event_type::pivot_passed, "pivot_passed"sv},
    std::pair{event_type::forward_failed, "forward_failed"sv},
    std::pair{event_type::compensation_started, "compensation_started"sv},
    std::pair{event_type::step_compensated, "step_compensated"sv},
    std::pair{event_type::compensation_failed, "compensation_failed"sv},
    std::pair{event_type::status_changed, "status_changed"sv},
    std::pair{event_type::saga_paused, "saga_paused"sv},
    std::pair{event_type::saga_resumed, "saga_resumed"sv},
    std::pair{event_type::cancel_requested, "cancel_requested"sv},
    std::pair{event_type::operator_retry, "operator_retry"sv},
    std::pair{event_type::step_skipped_by_operator, "step_skipped_by_operator"sv},
    std::pair{event_type::compensation_skipped, "compensation_skipped"sv},
    std::pair{event_type::lock_released, "lock_released"sv},
    std::pair{event_type::saga_completed, "saga_completed"sv},
    std::pair{event_type::saga_compensated, "saga_compensated"sv},
    std::pair{event_type::saga_failed, "saga_failed"sv},
    std::pair{event_type::saga_compensation_failed, "saga_compensation_failed"sv},
    std::pair{event_type::saga_cancelled, "saga_cancelled"sv},
};

// Every enumerator has its name, in declaration order.
constexpr bool complete() {
    for (std::size_t i = 0; i < names.size(); ++i)
        if (static_cast<std::size_t>(names[i].first) != i) return false;
    return static_cast<std::size_t>(event_type::saga_cancelled) + 1 == names.size();
}
static_assert(complete(), "events.cpp: every event_type needs its name, in order");

}  // namespace

std::string_view to_string(event_type t) noexcept {
    const auto i = static_cast<std::size_t>(t);
    return i < names.size() ? names[i].second : "unknown"sv;
}

std::optional<event_type> parse_event_type(std::string_view name) noexcept {
    for (const auto& [type, n] : names)
        if (n == name) return type;
    return std::nullopt;
}

std::string_view to_string(direction d) noexcept {
    return d == direction::forward ? "forward"sv : "compensation"sv;
}

}  // namespace saga
