#pragma once
/// @file endpoint_policy.hpp
/// Per-endpoint protection for remote steps: a token-bucket rate limit and a circuit breaker.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>

#include <saga/clock.hpp>
#include <saga/error.hpp>

namespace saga {

/// A token bucket: `per_second` tokens are added each second, up to `burst`.
struct rate_limit {
    /// sustained rate; 0 means unlimited
    double per_second = 0;
    /// bucket size: how many sends may go at once after a quiet spell (>= 1)
    double burst = 1;
};

/// A circuit breaker: opens after `failure_threshold` consecutive failures; after `cool_down`
/// one probe is let through (half-open); its success closes the circuit, its failure reopens it.
struct circuit_breaker_policy {
    /// consecutive failures that open the circuit; 0 disables the breaker
    std::uint32_t failure_threshold = 0;
    /// how long the circuit stays open before a probe
    duration cool_down = std::chrono::seconds{30};
};

/// The policies of one endpoint.
struct endpoint_policy {
    rate_limit rate;
    circuit_breaker_policy breaker;
};

/// Thread-safe token bucket.
class token_bucket {
public:
    explicit token_bucket(rate_limit limit, time_point now = {});
    /// Takes a token if one is there (returns nullopt), or returns how long until one is.
    [[nodiscard]] std::optional<duration> try_acquire(time_point now);

private:
    void refill(time_point now);
    std::mutex mutex_;
    rate_limit limit_;
    double tokens_;
    time_point last_;
};

/// The three states of a circuit breaker.
enum class circuit_state { closed, open, half_open };
[[nodiscard]] std::string_view to_string(circuit_state s) noexcept;

/// Thread-safe circuit breaker.
class circuit_breaker {
public:
    explicit circuit_breaker(circuit_breaker_policy policy);
    /// Whether a call may go now. In half-open state only one probe is allowed at a time.
    [[nodiscard]] bool allow(time_point now);
    /// Reports the outcome of a call that was allowed.
    void record_success();
    void record_failure(time_point now);
    [[nodiscard]] circuit_state state(time_point now);

private:
    std::mutex mutex_;
    circuit_breaker_policy policy_;
    circuit_state state_ = circuit_state::closed;
    std::uint32_t failures_ = 0;
    time_point opened_at_{};
    bool probe_in_flight_ = false;
};

}  // namespace saga
