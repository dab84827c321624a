#pragma once
/// @file retry.hpp
/// Retry policies: how often and how fast a failed step (or compensation) is tried again.

#include <cstdint>
#include <limits>

#include <saga/clock.hpp>
#include <saga/error.hpp>

namespace saga {

/// Exponential backoff with a cap and jitter. Only transient failures are retried; a
/// permanent failure fails the step at once whatever the policy says.
struct retry_policy {
    /// attempts in all, the first included (1: never retry; `unlimited`: retry forever)
    std::uint32_t max_attempts = 3;
    /// delay before the second attempt
    duration initial_backoff = std::chrono::milliseconds{100};
    /// each further delay is the previous one times this (>= 1)
    double multiplier = 2.0;
    /// no delay is longer than this
    duration max_backoff = std::chrono::seconds{30};
    /// each delay is spread uniformly over +/- this fraction of itself (0 to 1)
    double jitter = 0.2;

    static constexpr std::uint32_t unlimited = std::numeric_limits<std::uint32_t>::max();

    /// No retries: one attempt.
    [[nodiscard]] static retry_policy none() { return {.max_attempts = 1}; }
    /// `attempts` attempts with exponential backoff from `initial`, capped at `cap`.
    [[nodiscard]] static retry_policy exponential(std::uint32_t attempts, duration initial,
                                                  duration cap = std::chrono::seconds{30}) {
        return {.max_attempts = attempts, .initial_backoff = initial, .max_backoff = cap};
    }
    /// Retries forever with exponential backoff (what steps after the pivot get by default).
    [[nodiscard]] static retry_policy forever(duration initial = std::chrono::milliseconds{200},
                                              duration cap = std::chrono::seconds{60}) {
        return {.max_attempts = unlimited, .initial_backoff = initial, .max_backoff = cap};
    }

    /// The delay after failed attempt number `attempt` (1-based), jittered deterministically
    /// from `seed` so that a run can be replayed.
    [[nodiscard]] duration backoff(std::uint32_t attempt, std::uint64_t seed) const;
    /// Whether another attempt is allowed after `attempt` attempts.
    [[nodiscard]] bool allows_another(std::uint32_t attempt) const noexcept {
        return max_attempts == unlimited || attempt < max_attempts;
    }
    /// `errc::invalid_definition` naming the bad field, or success.
    [[nodiscard]] result<void> validate() const;
};

}  // namespace saga
