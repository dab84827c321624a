#pragma once
/// @file status.hpp
/// Statuses of saga instances and of their steps.

#include <optional>
#include <string_view>

namespace saga {

/// Where a saga instance stands.
enum class saga_status {
    /// moving forward: steps are running or about to
    running,
    /// moving forward, but every open step waits for a signal or event
    waiting,
    /// a step failed (or the saga was cancelled) and completed steps are being undone
    compensating,
    /// every step completed (terminal)
    completed,
    /// a step failed and every completed step was compensated (terminal)
    compensated,
    /// a step after the pivot failed for good; waits for an operator
    failed,
    /// a compensation could not succeed; waits for an operator, nothing else is undone
    compensation_failed,
    /// cancelled on request and compensated (terminal)
    cancelled,
    /// held by an operator: no step starts until resumed
    paused,
};

/// Where one step (or one for-each item) stands.
enum class step_status {
    /// not started yet
    pending,
    /// running: a local function runs, or a command waits for its reply
    running,
    /// failed transiently; the next attempt is scheduled
    retrying,
    /// waiting for a signal or event
    waiting,
    /// done
    completed,
    /// failed for good
    failed,
    /// not run: its condition was false, or the saga failed before it could run
    skipped,
    /// being undone
    compensating,
    /// undone
    compensated,
    /// its compensation failed for good
    compensation_failed,
};

/// True for completed, compensated and cancelled: nothing more will ever happen.
[[nodiscard]] constexpr bool is_terminal(saga_status s) noexcept {
    return s == saga_status::completed || s == saga_status::compensated ||
           s == saga_status::cancelled;
}
/// True when the instance will not move without an operator: terminal, failed,
/// compensation_failed or paused. `engine::async_wait` completes on these.
[[nodiscard]] constexpr bool is_settled(saga_status s) noexcept {
    return is_terminal(s) || s == saga_status::failed || s == saga_status::compensation_failed ||
           s == saga_status::paused;
}

/// Names as used in JSON, logs and the store ("running", "compensation_failed", ...).
[[nodiscard]] std::string_view to_string(saga_status s) noexcept;
[[nodiscard]] std::string_view to_string(step_status s) noexcept;
/// Parses a name back; nullopt for an unknown name.
[[nodiscard]] std::optional<saga_status> parse_saga_status(std::string_view s) noexcept;
[[nodiscard]] std::optional<step_status> parse_step_status(std::string_view s) noexcept;

}  // namespace saga
