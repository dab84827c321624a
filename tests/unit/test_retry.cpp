#include <catch2/catch.hpp>

#include <saga/retry.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

/// A policy whose delays are exact (no jitter).
saga::retry_policy exact(std::uint32_t attempts = 10) {
    return {.max_attempts = attempts,
            .initial_backoff = 100ms,
            .multiplier = 2.0,
            .max_backoff = 10s,
            .jitter = 0.0};
}

}  // namespace

TEST_CASE("backoff grows exponentially from the initial delay", "[retry][backoff]") {
    const auto p = exact();
    CHECK(p.backoff(1, 0) == 100ms);
    CHECK(p.backoff(2, 0) == 200ms);
    CHECK(p.backoff(3, 0) == 400ms);
    CHECK(p.backoff(4, 0) == 800ms);
    CHECK(p.backoff(5, 0) == 1600ms);

    SECTION("with another multiplier") {
        auto q = p;
        q.multiplier = 3.0;
        CHECK(q.backoff(1, 0) == 100ms);
        CHECK(q.backoff(2, 0) == 300ms);
        CHECK(q.backoff(3, 0) == 900ms);
    }
    SECTION("a multiplier of 1 gives a constant delay") {
        auto q = p;
        q.multiplier = 1.0;
        for (std::uint32_t a = 1; a <= 20; ++a) CHECK(q.backoff(a, 0) == 100ms);
    }
    SECTION("attempt 0 is treated as the first attempt") {
        CHECK(p.backoff(0, 0) == 100ms);
    }
}

TEST_CASE("backoff is capped at max_backoff", "[retry][backoff]") {
    auto p = exact();
    p.max_backoff = 1s;
    CHECK(p.backoff(4, 0) == 800ms);
    CHECK(p.backoff(5, 0) == 1s);
    CHECK(p.backoff(6, 0) == 1s);
    CHECK(p.backoff(60, 0) == 1s);

    SECTION("even for attempt numbers where the exponential overflows a double") {
        CHECK(p.backoff(5000, 0) == 1s);
        CHECK(p.backoff(std::numeric_limits<std::uint32_t>::max(), 0) == 1s);
    }
    SECTION("with jitter, no delay ever exceeds the cap") {
        p.jitter = 0.5;
        for (std::uint64_t seed = 0; seed < 200; ++seed) {
            for (std::uint32_t a : {1U, 3U, 5U, 6U, 10U, 100U, 5000U}) {
                const auto d = p.backoff(a, seed);
                CHECK(d <= 1s);
                CHECK(d >= 0ms);
            }
        }
    }
}

TEST_CASE("a zero initial backoff stays zero however many attempts", "[retry][backoff]") {
    auto p = exact(saga::retry_policy::unlimited);
    p.initial_backoff = 0ms;
    CHECK(p.backoff(1, 0) == 0ms);
    CHECK(p.backoff(30, 7) == 0ms);
    // 2^4999 overflows to infinity; 0 * infinity must not become a garbage delay
    CHECK(p.backoff(5000, 7) == 0ms);
    p.jitter = 0.3;
    CHECK(p.backoff(5000, 11) == 0ms);
}

TEST_CASE("jitter stays within plus or minus its fraction of the delay", "[retry][jitter]") {
    auto p = exact();
    p.jitter = 0.2;
    std::set<saga::duration::rep> seen;
    for (std::uint64_t seed = 0; seed < 1000; ++seed) {
        const auto d = p.backoff(3, seed);  // 400 ms +/- 20 %
        CHECK(d >= 320ms);
        CHECK(d <= 480ms);
        seen.insert(d.count());
    }
    // the spread is used, not just one value
    CHECK(seen.size() > 50);
    CHECK(*seen.begin() < 340);
    CHECK(*seen.rbegin() > 460);

    SECTION("full jitter spans zero to twice the delay") {
        p.jitter = 1.0;
        for (std::uint64_t seed = 0; seed < 500; ++seed) {
            const auto d = p.backoff(2, seed);  // 200 ms +/- 100 %
            CHECK(d >= 0ms);
            CHECK(d <= 400ms);
        }
    }
    SECTION("no jitter gives the exact delay for every seed") {
        p.jitter = 0.0;
        for (std::uint64_t seed = 0; seed < 100; ++seed) CHECK(p.backoff(3, seed) == 400ms);
    }
}

TEST_CASE("jittered backoff is deterministic for a seed and differs across seeds",
          "[retry][jitter]") {
    saga::retry_policy p;  // the defaults: 100 ms, x2, 30 s cap, 20 % jitter
    REQUIRE(p.jitter > 0);

    for (std::uint64_t seed : {0ULL, 1ULL, 42ULL, 0xdeadbeefULL}) {
        for (std::uint32_t a = 1; a <= 8; ++a) CHECK(p.backoff(a, seed) == p.backoff(a, seed));
    }

    std::set<saga::duration::rep> across_seeds;
    for (std::uint64_t seed = 1; seed <= 20; ++seed)
        across_seeds.insert(p.backoff(4, seed).count());
    CHECK(across_seeds.size() > 10);

    // and different attempts of one run are jittered independently
    std::set<double> ratios;
    for (std::uint32_t a = 1; a <= 6; ++a) {
        const double nominal = 100.0 * std::pow(2.0, a - 1);
        ratios.insert(static_cast<double>(p.backoff(a, 7).count()) / nominal);
    }
    CHECK(ratios.size() > 1);
}

TEST_CASE("allows_another counts attempts up to max_attempts", "[retry]") {
    SECTION("three attempts") {
        const auto p = saga::retry_policy::exponential(3, 100ms);
        CHECK(p.allows_another(1));
        CHECK(p.allows_another(2));
        CHECK_FALSE(p.allows_another(3));
        CHECK_FALSE(p.allows_another(4));
    }
    SECTION("none allows a single attempt") {
        const auto p = saga::retry_policy::none();
        CHECK(p.max_attempts == 1);
        CHECK_FALSE(p.allows_another(1));
    }
    SECTION("unlimited always allows another") {
        const auto p = saga::retry_policy::forever();
        CHECK(p.max_attempts == saga::retry_policy::unlimited);
        CHECK(p.allows_another(1));
        CHECK(p.allows_another(1'000'000));
        CHECK(p.allows_another(saga::retry_policy::unlimited - 1));
        CHECK(p.allows_another(saga::retry_policy::unlimited));
    }
}

TEST_CASE("the factories set what they say", "[retry]") {
    const auto e = saga::retry_policy::exponential(5, 250ms, 4s);
    CHECK(e.max_attempts == 5);
    CHECK(e.initial_backoff == 250ms);
    CHECK(e.max_backoff == 4s);
    CHECK(e.multiplier == 2.0);

    const auto f = saga::retry_policy::forever(1s, 2min);
    CHECK(f.initial_backoff == 1s);
    CHECK(f.max_backoff == 2min);

    for (const auto& p :
         {saga::retry_policy{}, saga::retry_policy::none(), e, f, saga::retry_policy::forever()})
        CHECK(p.validate());
}

TEST_CASE("validate rejects each bad field with invalid_definition naming it",
          "[retry][validate]") {
    auto check_invalid = [](saga::retry_policy p, const char* field) {
        auto r = p.validate();
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::invalid_definition);
        CHECK_THAT(r.error().message, Contains(field));
    };
    saga::retry_policy p;

    SECTION("zero attempts") {
        p.max_attempts = 0;
        check_invalid(p, "max_attempts");
    }
    SECTION("a negative initial backoff") {
        p.initial_backoff = -1ms;
        check_invalid(p, "initial_backoff");
    }
    SECTION("a cap below the initial backoff") {
        p.initial_backoff = 2s;
        p.max_backoff = 1s;
        check_invalid(p, "max_backoff");
    }
    SECTION("a multiplier below 1") {
        p.multiplier = 0.5;
        check_invalid(p, "multiplier");
    }
    SECTION("a multiplier that is not a number") {
        p.multiplier = std::numeric_limits<double>::quiet_NaN();
        check_invalid(p, "multiplier");
    }
    SECTION("a negative jitter") {
        p.jitter = -0.1;
        check_invalid(p, "jitter");
    }
    SECTION("a jitter above 1") {
        p.jitter = 1.5;
        check_invalid(p, "jitter");
    }
    SECTION("a jitter that is not a number") {
        p.jitter = std::numeric_limits<double>::quiet_NaN();
        check_invalid(p, "jitter");
    }
}

TEST_CASE("validate accepts the boundary values", "[retry][validate]") {
    saga::retry_policy p{.max_attempts = 1,
                         .initial_backoff = 0ms,
                         .multiplier = 1.0,
                         .max_backoff = 0ms,
                         .jitter = 0.0};
    CHECK(p.validate());
    p.jitter = 1.0;
    CHECK(p.validate());
    CHECK(p.backoff(3, 5) == 0ms);
}
