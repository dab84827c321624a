#pragma once
// The engine's execution state of one instance, stored as JSON in instance_record::state.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <saga/clock.hpp>
#include <saga/error.hpp>
#include <saga/status.hpp>

namespace saga::detail {

/// One step, or one item of a for-each step ("name[i]").
struct unit_state {
    step_status status = step_status::pending;
    std::uint32_t attempts = 0;
    std::uint32_t compensation_attempts = 0;
    /// completion order (0: not completed); compensation runs in decreasing order
    std::uint64_t seq = 0;
    /// was running when the saga began to compensate: no further attempts
    bool abandoned = false;
    /// its outcome is unknown (its last attempt timed out): compensate it to be safe
    bool uncertain = false;
    /// operator retries after a permanent failure: part of the idempotency keys ("~r<n>")
    std::uint32_t forward_generation = 0;
    std::uint32_t compensation_generation = 0;
    std::string error;
    std::optional<time_point> started_at;
    std::optional<time_point> finished_at;
    /// for-each steps: the collection, frozen when the step starts
    std::optional<std::vector<nlohmann::json>> items;
};

struct instance_state {
    std::map<std::string, unit_state> units;
    std::uint64_t seq = 0;
    bool compensating = false;
    bool cancel_requested = false;
    bool pivot_passed = false;
    /// a step after the pivot failed for good: the saga ends `failed` once nothing runs
    bool forward_failed = false;
    std::string error;
    /// W3C trace context the instance was started with
    std::string traceparent;
    /// signals that arrived before a wait for them opened, oldest first
    std::map<std::string, std::deque<nlohmann::json>> signals;
};

[[nodiscard]] nlohmann::json to_json(const instance_state& s);
[[nodiscard]] result<instance_state> instance_state_from_json(const nlohmann::json& j);

}  // namespace saga::detail
