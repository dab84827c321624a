#include <catch2/catch.hpp>

#include <saga/clock.hpp>
#include <saga/endpoint_policy.hpp>

#include <chrono>
#include <optional>

using namespace std::chrono_literals;

namespace {
const saga::time_point policy_t0 = saga::virtual_clock::default_start();
}  // namespace

// ---- token bucket ----------------------------------------------------------------------------

TEST_CASE("a token bucket lets a burst through, then says how long to wait",
          "[endpoint_policy][token_bucket]") {
    saga::token_bucket bucket({.per_second = 10, .burst = 3}, policy_t0);
    CHECK_FALSE(bucket.try_acquire(policy_t0).has_value());
    CHECK_FALSE(bucket.try_acquire(policy_t0).has_value());
    CHECK_FALSE(bucket.try_acquire(policy_t0).has_value());

    const auto wait = bucket.try_acquire(policy_t0);
    REQUIRE(wait.has_value());
    // 10 per second: the next token is 100 ms away
    CHECK(*wait >= 100ms);
    CHECK(*wait <= 101ms);
    // asking again does not take anything
    CHECK(bucket.try_acquire(policy_t0).has_value());

    SECTION("after the wait, one token is there") {
        CHECK_FALSE(bucket.try_acquire(policy_t0 + *wait).has_value());
        CHECK(bucket.try_acquire(policy_t0 + *wait).has_value());
    }
    SECTION("half way, the wait is half as long") {
        const auto rest = bucket.try_acquire(policy_t0 + 50ms);
        REQUIRE(rest.has_value());
        CHECK(*rest >= 49ms);
        CHECK(*rest <= 51ms);
    }
}

TEST_CASE("a token bucket refills at its rate up to the burst size",
          "[endpoint_policy][token_bucket]") {
    saga::token_bucket bucket({.per_second = 4, .burst = 2}, policy_t0);
    CHECK_FALSE(bucket.try_acquire(policy_t0));
    CHECK_FALSE(bucket.try_acquire(policy_t0));
    CHECK(bucket.try_acquire(policy_t0));

    SECTION("a long quiet spell refills only up to the burst") {
        const auto later = policy_t0 + 1h;
        CHECK_FALSE(bucket.try_acquire(later));
        CHECK_FALSE(bucket.try_acquire(later));
        CHECK(bucket.try_acquire(later));
    }
    SECTION("one token every 1/rate seconds") {
        CHECK_FALSE(bucket.try_acquire(policy_t0 + 250ms));
        CHECK(bucket.try_acquire(policy_t0 + 250ms));
        CHECK_FALSE(bucket.try_acquire(policy_t0 + 500ms));
        CHECK_FALSE(bucket.try_acquire(policy_t0 + 750ms));
        CHECK(bucket.try_acquire(policy_t0 + 750ms));
    }
    SECTION("time going backwards adds no tokens") {
        CHECK(bucket.try_acquire(policy_t0 - 10s));
        CHECK(bucket.try_acquire(policy_t0));
    }
}

TEST_CASE("a token bucket without a rate never limits", "[endpoint_policy][token_bucket]") {
    saga::token_bucket bucket({.per_second = 0, .burst = 1}, policy_t0);
    for (int i = 0; i < 1000; ++i) CHECK_FALSE(bucket.try_acquire(policy_t0));
}

TEST_CASE("a token bucket with a burst below 1 still lets one through",
          "[endpoint_policy][token_bucket]") {
    saga::token_bucket bucket({.per_second = 1, .burst = 0}, policy_t0);
    CHECK_FALSE(bucket.try_acquire(policy_t0));
    const auto wait = bucket.try_acquire(policy_t0);
    REQUIRE(wait);
    CHECK(*wait >= 1000ms);
    CHECK(*wait <= 1001ms);
    CHECK_FALSE(bucket.try_acquire(policy_t0 + 1s));
}

// ---- circuit breaker -------------------------------------------------------------------------

TEST_CASE("a circuit opens after N consecutive failures", "[endpoint_policy][circuit_breaker]") {
    saga::circuit_breaker breaker({.failure_threshold = 3, .cool_down = 10s});
    CHECK(breaker.state(policy_t0) == saga::circuit_state::closed);
    CHECK(breaker.allow(policy_t0));

    breaker.record_failure(policy_t0);
    breaker.record_failure(policy_t0);
    CHECK(breaker.state(policy_t0) == saga::circuit_state::closed);
    CHECK(breaker.allow(policy_t0));

    breaker.record_failure(policy_t0);
    CHECK(breaker.state(policy_t0) == saga::circuit_state::open);
    CHECK_FALSE(breaker.allow(policy_t0));
    CHECK_FALSE(breaker.allow(policy_t0 + 9999ms));
}

TEST_CASE("a success resets the count of consecutive failures",
          "[endpoint_policy][circuit_breaker]") {
    saga::circuit_breaker breaker({.failure_threshold = 3, .cool_down = 10s});
    breaker.record_failure(policy_t0);
    breaker.record_failure(policy_t0);
    breaker.record_success();
    breaker.record_failure(policy_t0);
    breaker.record_failure(policy_t0);
    CHECK(breaker.state(policy_t0) == saga::circuit_state::closed);
    CHECK(breaker.allow(policy_t0));
    breaker.record_failure(policy_t0);
    CHECK(breaker.state(policy_t0) == saga::circuit_state::open);
}

TEST_CASE("after the cool-down an open circuit lets exactly one probe through",
          "[endpoint_policy][circuit_breaker]") {
    saga::circuit_breaker breaker({.failure_threshold = 2, .cool_down = 10s});
    breaker.record_failure(policy_t0);
    breaker.record_failure(policy_t0);
    REQUIRE(breaker.state(policy_t0) == saga::circuit_state::open);

    const auto t1 = policy_t0 + 10s;
    CHECK(breaker.state(t1) == saga::circuit_state::half_open);
    CHECK(breaker.allow(t1));  // the probe
    CHECK(breaker.state(t1) == saga::circuit_state::half_open);
    CHECK_FALSE(breaker.allow(t1));  // only one probe at a time
    CHECK_FALSE(breaker.allow(t1 + 1h));

    SECTION("a successful probe closes the circuit") {
        breaker.record_success();
        CHECK(breaker.state(t1) == saga::circuit_state::closed);
        CHECK(breaker.allow(t1));
        CHECK(breaker.allow(t1));
        // and the failure count starts again from zero
        breaker.record_failure(t1);
        CHECK(breaker.state(t1) == saga::circuit_state::closed);
        breaker.record_failure(t1);
        CHECK(breaker.state(t1) == saga::circuit_state::open);
    }
    SECTION("a failed probe reopens the circuit for another cool-down") {
        const auto t2 = t1 + 1s;
        breaker.record_failure(t2);
        CHECK(breaker.state(t2) == saga::circuit_state::open);
        CHECK_FALSE(breaker.allow(t2));
        CHECK_FALSE(breaker.allow(t2 + 9s));
        CHECK(breaker.state(t2 + 10s) == saga::circuit_state::half_open);
        CHECK(breaker.allow(t2 + 10s));
        CHECK_FALSE(breaker.allow(t2 + 10s));
    }
}

TEST_CASE("a disabled circuit breaker always allows", "[endpoint_policy][circuit_breaker]") {
    saga::circuit_breaker breaker({.failure_threshold = 0, .cool_down = 10s});
    for (int i = 0; i < 100; ++i) breaker.record_failure(policy_t0);
    CHECK(breaker.allow(policy_t0));
    CHECK(breaker.allow(policy_t0));
    CHECK(breaker.state(policy_t0) == saga::circuit_state::closed);
    CHECK(breaker.state(policy_t0 + 1h) == saga::circuit_state::closed);
}

TEST_CASE("the default endpoint policy neither limits nor breaks", "[endpoint_policy]") {
    const saga::endpoint_policy policy;
    saga::token_bucket bucket(policy.rate, policy_t0);
    saga::circuit_breaker breaker(policy.breaker);
    for (int i = 0; i < 50; ++i) {
        CHECK_FALSE(bucket.try_acquire(policy_t0));
        breaker.record_failure(policy_t0);
        CHECK(breaker.allow(policy_t0));
    }
}

TEST_CASE("circuit states have names", "[endpoint_policy][circuit_breaker]") {
    CHECK(saga::to_string(saga::circuit_state::closed) == "closed");
    CHECK(saga::to_string(saga::circuit_state::open) == "open");
    CHECK(saga::to_string(saga::circuit_state::half_open) == "half_open");
}
