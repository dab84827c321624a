#include "levels.hpp"

#include <array>
#include <utility>

namespace saga::telemetry {
namespace {

using namespace std::string_view_literals;

// Every history event name that is not logged at debug.
constexpr std::array levels{
    std::pair{"saga_failed"sv, log_level::error},
    std::pair{"saga_compensation_failed"sv, log_level::error},
    std::pair{"compensation_failed"sv, log_level::error},
    std::pair{"step_failed"sv, log_level::warn},
    std::pair{"step_timed_out"sv, log_level::warn},
    std::pair{"compensation_attempt_failed"sv, log_level::warn},
    std::pair{"forward_failed"sv, log_level::warn},
    std::pair{"compensation_started"sv, log_level::warn},
    std::pair{"wait_deadline_passed"sv, log_level::warn},
    std::pair{"saga_paused"sv, log_level::warn},
    std::pair{"operator_retry"sv, log_level::warn},
    std::pair{"step_skipped_by_operator"sv, log_level::warn},
    std::pair{"compensation_skipped"sv, log_level::warn},
    std::pair{"lock_released"sv, log_level::warn},
    std::pair{"cancel_requested"sv, log_level::warn},
    std::pair{"saga_started"sv, log_level::info},
    std::pair{"saga_completed"sv, log_level::info},
    std::pair{"saga_compensated"sv, log_level::info},
    std::pair{"saga_cancelled"sv, log_level::info},
    std::pair{"step_completed"sv, log_level::info},
    std::pair{"step_compensated"sv, log_level::info},
    std::pair{"retry_scheduled"sv, log_level::info},
    std::pair{"signal_received"sv, log_level::info},
    std::pair{"saga_resumed"sv, log_level::info},
    std::pair{"pivot_passed"sv, log_level::info},
};

constexpr std::array endings{
    std::pair{event_type::saga_completed, saga_status::completed},
    std::pair{event_type::saga_compensated, saga_status::compensated},
    std::pair{event_type::saga_cancelled, saga_status::cancelled},
    std::pair{event_type::saga_failed, saga_status::failed},
    std::pair{event_type::saga_compensation_failed, saga_status::compensation_failed},
};

}  // namespace

log_level level_of(std::string_view event) noexcept {
    for (const auto& [name, level] : levels)
        if (name == event) return level;
    return log_level::debug;
}

std::optional<saga_status> ending_of(event_type t) noexcept {
    for (const auto& [type, status] : endings)
        if (type == t) return status;
    return std::nullopt;
}

std::optional<saga_status> ending_of(std::string_view event) noexcept {
    // The outcome events keep their names in history (legacy/history.cpp).
    if (auto t = parse_event_type(event)) return ending_of(*t);
    return std::nullopt;
}

}  // namespace saga::telemetry
