#pragma once
// What the crash driver and the crash test agree on: the simulated services, their tables in
// services.db, and the deterministic failure plan (from the seed and the saga id).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace saga::crash {

/// One simulated participant service: its endpoint, forward and compensation command types,
/// and the saga step that calls it. Each keeps its state in `<endpoint>_effects` and
/// `<endpoint>_held` of services.db.
struct service {
    std::string_view endpoint;
    std::string_view forward;
    std::string_view compensation;  // empty: the step has no compensation (the pivot)
    std::string_view step;
};

inline constexpr std::array<service, 4> services{{
    {"billing", "reserve", "release", "reserve_credit"},
    {"flights", "book", "cancel", "book_flight"},
    {"hotels", "book", "cancel", "book_hotel"},
    {"payments", "charge", "", "charge"},
}};

inline std::string saga_id(std::uint64_t seed, std::size_t i) {
    return "crash-" + std::to_string(seed) + "-" + std::to_string(i);
}

/// FNV-1a over the seed and a text: the source of every "random" decision of the services.
inline std::uint64_t mix(std::uint64_t seed, std::string_view text) {
    std::uint64_t h = 1469598103934665603ull ^ (seed * 0x9e3779b97f4a7c15ull);
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/// The step at which saga `id` gets a permanent failure (about 20% of sagas), or none.
inline std::optional<std::string_view> permanent_failure_step(std::uint64_t seed,
                                                              std::string_view id) {
    const auto h = mix(seed, id);
    if (h % 100 >= 20) return std::nullopt;
    return services[(h / 100) % services.size()].step;
}

/// Whether attempt `attempt` of the command (or compensation) with idempotency key `key` gets a
/// transient failure: about a quarter of keys fail their first attempt, a few their second too.
inline bool transient_failure(std::uint64_t seed, std::string_view key, std::uint32_t attempt) {
    const auto h = mix(seed ^ 0x5bd1e995u, key) % 100;
    return (attempt == 1 && h < 25) || (attempt == 2 && h < 8);
}

/// The error of the reply recorded for a forward command whose compensation came first.
inline constexpr std::string_view compensated_first = "compensated before it was applied";

/// The journal of first applications, over all services (its rowid is the `seq` of an effect).
inline constexpr std::string_view journal_schema =
    "CREATE TABLE IF NOT EXISTS journal ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, key TEXT NOT NULL,"
    " kind TEXT NOT NULL);";

/// The schema of one service (idempotent).
inline std::string schema(std::string_view endpoint) {
    const std::string e(endpoint);
    return
        // kind: 'forward' (applied), 'refused' (permanent failure recorded), 'tombstone' (the
        // compensation came first), 'compensation' (applied undo). status/payload/error: the
        // recorded reply. seq: order of first application, over all services.
        "CREATE TABLE IF NOT EXISTS " + e +
        "_effects ("
        " key TEXT PRIMARY KEY, saga_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " applications INTEGER NOT NULL, repeats INTEGER NOT NULL DEFAULT 0,"
        " status TEXT NOT NULL, payload TEXT NOT NULL, error TEXT NOT NULL, seq INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS " +
        e +
        "_held ("
        " resource TEXT PRIMARY KEY, saga_id TEXT NOT NULL, key TEXT NOT NULL);";
}

}  // namespace saga::crash
