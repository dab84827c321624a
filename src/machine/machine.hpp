#pragma once
// The pure state machine of core v2 (docs/internals.md, "The machine"): given the compiled
// definition, the instance's state and data, the inputs and `now`, it returns the typed events
// of one transition and the effects the runtime applies once that transition is durable.
// No Asio, store, transport, clock or randomness here.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <saga/definition.hpp>
#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/events.hpp>

#include "instance.hpp"

namespace saga::machine {

/// A definition ready for the machine: its nodes indexed by name.
struct compiled {
    std::shared_ptr<const detail::model> model;
    std::map<std::string, const detail::node*, std::less<>> nodes;
    /// nodes after the pivot: retried forever by default
    std::set<const detail::node*> after_pivot;
};

/// Indexes `m`; `errc::invalid_definition` naming a step whose name breaks `valid_step_name`.
[[nodiscard]] result<std::shared_ptr<const compiled>> compile(
    std::shared_ptr<const detail::model> m);

/// What the machine needs to know of the engine it runs in.
struct config {
    /// the endpoint replies go to
    std::string reply_to;
    duration default_remote_timeout = std::chrono::seconds{30};
    /// seeds the deterministic jitter of retries
    std::uint64_t seed = 0;
};

// ---- inputs -----------------------------------------------------------------------------

/// A participant's reply (or a refusal to send, from the runtime's circuit breaker).
struct reply_input {
    std::string unit;
    direction dir = direction::forward;
    std::uint32_t generation = 0;
    std::uint32_t attempt = 0;
    reply_status status = reply_status::success;
    /// for a failure: its message; `code` says which error (participant_transient by default)
    std::string error;
    std::optional<errc> code;
    nlohmann::json payload;
    std::string message_id;
};

/// A signal, or a transport event addressed to the instance.
struct signal_input {
    std::string name;
    nlohmann::json payload;
    /// empty for a signal without one (it is then never recognised as a duplicate)
    std::string message_id;
};

/// The time has come: whatever is due at `now` fires.
struct tick_input {};

/// A local step's attempt finished; the data it changed is already in the data box.
struct local_done_input {
    std::string unit;
    direction dir = direction::forward;
    std::uint32_t attempt = 0;
    std::optional<saga::error> outcome;
};

enum class operator_action : std::uint8_t {
    pause,
    resume,
    cancel,
    retry,
    skip,
    release_lock,
};

struct operator_input {
    operator_action action = operator_action::pause;
    std::string who;
    std::string why;
    /// skip: the step; cancel: the reason
    std::string step;
};

using input = std::variant<reply_input, signal_input, tick_input, local_done_input, operator_input>;

// ---- effects ----------------------------------------------------------------------------

/// Send `message` to `endpoint` once the transition is durable.
struct send_effect {
    std::string endpoint;
    envelope message;
};

/// Run the local step `unit`'s attempt once the transition is durable.
struct run_local_effect {
    std::string unit;
    direction dir = direction::forward;
    std::uint32_t attempt = 0;
};

/// Stop the local step `unit`'s attempt if it still runs (its deadline passed).
struct cancel_local_effect {
    std::string unit;
    direction dir = direction::forward;
    std::uint32_t attempt = 0;
};

using effect = std::variant<send_effect, run_local_effect, cancel_local_effect>;

/// Why an input changed nothing: the `reason` label of `saga_replies_ignored_total` and of
/// the debug line `reply_ignored` (docs/operations.md).
enum class ignore_reason : std::uint8_t {
    unknown_saga,     ///< no instance has the saga id
    finished,         ///< the saga is terminal
    unknown_step,     ///< no step of that name takes replies
    unknown_attempt,  ///< an attempt that never started, or an id that names none
    not_waiting,      ///< the attempt is no longer open: a late copy, an earlier generation
    duplicate,        ///< a signal or event delivered before
};

/// The label value of `r` (`"not_waiting"`).
[[nodiscard]] constexpr std::string_view to_string(ignore_reason r) noexcept {
    switch (r) {
        case ignore_reason::unknown_saga: return "unknown_saga";
        case ignore_reason::finished: return "finished";
        case ignore_reason::unknown_step: return "unknown_step";
        case ignore_reason::unknown_attempt: return "unknown_attempt";
        case ignore_reason::not_waiting: return "not_waiting";
        case ignore_reason::duplicate: return "duplicate";
    }
    return "unknown";
}

/// A reply, signal or local result that changed nothing, with the reason (for metrics and
/// debug logs).
struct ignored_input {
    std::string unit;
    std::string message_id;
    ignore_reason reason = ignore_reason::not_waiting;
};

/// The result of one decision: apply `events` (already applied to the state passed in),
/// commit them, then carry out `effects`.
struct decision {
    std::vector<event> events;
    std::vector<effect> effects;
    /// one outcome per input, in order: success, or why an operator action was refused
    std::vector<result<void>> outcomes;
    std::vector<ignored_input> ignored;
    /// the user's data changed (hooks ran, or a local step ran): the record carries the data,
    /// and is written even when it has no events
    bool data_changed = false;
};

/// Creates the state of a new instance and its first decision (saga_started, then as far as
/// it can go). `data` is the user's data, type-erased.
[[nodiscard]] decision start(const compiled& def, const config& cfg, instance& state,
                             detail::data_box& data, time_point now);

/// Decides what `inputs` do to `state` (changed in place through `apply`) and `data` (through
/// the definition's hooks), at `now`.
[[nodiscard]] decision decide(const compiled& def, const config& cfg, instance& state,
                              detail::data_box& data, std::span<const input> inputs,
                              time_point now);

/// The only code that changes an instance's state: what `e` means, at `at`.
void apply(const compiled& def, instance& state, const event& e, time_point at);

}  // namespace saga::machine
