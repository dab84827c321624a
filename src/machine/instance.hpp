#pragma once
// The machine's typed state of one instance. Changed only by machine::apply (apply.cpp).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <saga/clock.hpp>
#include <saga/events.hpp>
#include <saga/status.hpp>

namespace saga::machine {

/// One step, branch step or for-each item ("name[i]").
struct unit {
    step_status status = step_status::pending;
    std::uint32_t attempts = 0;
    std::uint32_t compensation_attempts = 0;
    /// completion order (0: not completed); compensation runs in decreasing order
    std::uint64_t seq = 0;
    /// was running when the saga began to compensate: no further attempts
    bool abandoned = false;
    /// its outcome is unknown (a timeout, a transient failure): compensate it to be safe
    bool uncertain = false;
    /// operator retries after a permanent failure: part of the idempotency keys ("~r<n>")
    std::uint32_t forward_generation = 0;
    std::uint32_t compensation_generation = 0;
    std::string error;
    std::optional<time_point> started_at;
    std::optional<time_point> finished_at;
    /// the open attempt's or wait's deadline
    std::optional<time_point> deadline;
    /// when the scheduled retry is due
    std::optional<time_point> retry_at;
    /// for-each steps: the collection, frozen when the step starts
    std::optional<std::vector<nlohmann::json>> items;

    friend bool operator==(const unit&, const unit&) = default;
};

/// Consumed signal message ids kept per instance, to recognise a redelivered signal.
inline constexpr std::size_t consumed_ids_kept = 64;

struct instance {
    std::string id;
    saga_status status = saga_status::running;
    std::string correlation_key;
    bool exclusive = false;
    /// W3C trace context the instance was started with
    std::string traceparent;
    std::map<std::string, unit, std::less<>> units;
    std::uint64_t seq = 0;
    bool compensating = false;
    bool cancel_requested = false;
    bool pivot_passed = false;
    bool forward_failed = false;
    std::string error;
    /// signals that arrived before a wait for them opened, oldest first
    std::map<std::string, std::deque<nlohmann::json>, std::less<>> signals;
    /// the last `consumed_ids_kept` signal message ids, oldest first
    std::deque<std::string> consumed_ids;
    time_point created_at{};
    time_point updated_at{};

    friend bool operator==(const instance&, const instance&) = default;
};

/// The earliest time anything of `s` falls due (a deadline, a retry), or nothing (none, or the
/// saga is paused or terminal: nothing fires then).
[[nodiscard]] std::optional<time_point> wake_at(const instance& s);

}  // namespace saga::machine
