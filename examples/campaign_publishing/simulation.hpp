#pragma once
/// @file simulation.hpp
/// The knobs of the simulated world: failure rates, latencies, rate limits and the seed that
/// makes a run reproducible. Every random decision is a pure function of the seed and of what
/// it is about (service, idempotency key, attempt), so two runs with the same seed and inputs
/// fail in the same places whatever the thread timing.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace campaign {

/// How one simulated ad network behaves.
struct network_profile {
    std::string name;
    /// time to answer one call
    std::chrono::milliseconds latency{5};
    /// the network's own rate limit (calls per second, burst); above it, it answers 429
    double rate_per_second = 100;
    double burst = 20;
    /// this network's share of the global failure rate (1: the global rate)
    double failure_factor = 1.0;
    /// the prefix of the ad ids it assigns ("G-", "ig_", ...)
    std::string ad_prefix;
    /// creative words its ad review rejects (policy violations)
    std::vector<std::string> rejected_words;
    /// creative words that send an ad to a manual review that takes hours (past the deadline)
    std::vector<std::string> manual_review_words;
};

/// Settings of one run of the simulated world.
struct simulation {
    /// the seed of every random decision
    std::uint64_t seed = 42;
    /// probability that a service call fails transiently (a 503, a timeout) before doing anything
    double failure_rate = 0.1;
    /// how long an ad network takes to review an ad
    std::chrono::milliseconds review_latency{150};
    /// how long the publish saga waits for each review before it gives up and rolls back
    std::chrono::milliseconds review_deadline{2500};
    /// how long the publish saga waits for a human approval
    std::chrono::milliseconds approval_deadline{std::chrono::minutes{10}};
    /// the budget each merchant's billing account can hold in reservations, in cents
    std::int64_t credit_limit_cents = 5'000'000;
    /// the four networks
    std::vector<network_profile> networks = default_networks();

    /// Google, Instagram, TikTok and Snapchat with their own latency, limits, failure share and
    /// review policies.
    [[nodiscard]] static std::vector<network_profile> default_networks();
    /// The profile of `name`, or null.
    [[nodiscard]] const network_profile* network(std::string_view name) const;
};

/// A number in [0, 1) drawn from `seed` and `what`: the same inputs give the same number.
[[nodiscard]] double chance(std::uint64_t seed, std::string_view what);
/// A 64-bit hash of `seed` and `what` (FNV-1a then splitmix64).
[[nodiscard]] std::uint64_t mix(std::uint64_t seed, std::string_view what);

/// Where everything of one installation lives: the saga store and one SQLite file per service,
/// next to it (`campaigns.db` -> `campaigns.billing.db`, ...).
struct data_paths {
    std::filesystem::path store;

    /// The database file of service `service` ("campaigns", "billing", "adnet.google", ...).
    [[nodiscard]] std::filesystem::path service(std::string_view service) const;
};

}  // namespace campaign
