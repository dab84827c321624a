#include <saga/endpoint_policy.hpp>

#include <algorithm>
#include <cmath>

namespace saga {

token_bucket::token_bucket(rate_limit limit, time_point now)
    : limit_(limit), tokens_(std::max(1.0, limit.burst)), last_(now) {}

void token_bucket::refill(time_point now) {
    if (now <= last_) return;
    const double secs = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(std::max(1.0, limit_.burst), tokens_ + secs * limit_.per_second);
    last_ = now;
}

std::optional<duration> token_bucket::try_acquire(time_point now) {
    if (limit_.per_second <= 0) return std::nullopt;
    std::lock_guard lock(mutex_);
    refill(now);
    if (tokens_ >= 1.0) {
        tokens_ -= 1.0;
        return std::nullopt;
    }
    const double wait_s = (1.0 - tokens_) / limit_.per_second;
    return duration{
        std::max<duration::rep>(1, static_cast<duration::rep>(std::ceil(wait_s * 1000.0)))};
}

std::string_view to_string(circuit_state s) noexcept {
    switch (s) {
        case circuit_state::closed: return "closed";
        case circuit_state::open: return "open";
        case circuit_state::half_open: return "half_open";
    }
    return "unknown";
}

circuit_breaker::circuit_breaker(circuit_breaker_policy policy) : policy_(policy) {}

bool circuit_breaker::allow(time_point now) {
    if (policy_.failure_threshold == 0) return true;
    std::lock_guard lock(mutex_);
    switch (state_) {
        case circuit_state::closed: return true;
        case circuit_state::open:
            if (now - opened_at_ < policy_.cool_down) return false;
            state_ = circuit_state::half_open;
            probe_in_flight_ = true;
            return true;
        case circuit_state::half_open:
            if (probe_in_flight_) return false;
            probe_in_flight_ = true;
            return true;
    }
    return true;
}

void circuit_breaker::record_success() {
    if (policy_.failure_threshold == 0) return;
    std::lock_guard lock(mutex_);
    state_ = circuit_state::closed;
    failures_ = 0;
    probe_in_flight_ = false;
}

void circuit_breaker::record_failure(time_point now) {
    if (policy_.failure_threshold == 0) return;
    std::lock_guard lock(mutex_);
    probe_in_flight_ = false;
    if (state_ == circuit_state::half_open) {
        state_ = circuit_state::open;
        opened_at_ = now;
        return;
    }
    if (++failures_ >= policy_.failure_threshold && state_ == circuit_state::closed) {
        state_ = circuit_state::open;
        opened_at_ = now;
    }
}

circuit_state circuit_breaker::state(time_point now) {
    std::lock_guard lock(mutex_);
    if (state_ == circuit_state::open && now - opened_at_ >= policy_.cool_down &&
        policy_.failure_threshold != 0)
        return circuit_state::half_open;
    return state_;
}

}  // namespace saga
