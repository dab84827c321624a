#pragma once
/// @file state_store.hpp
/// The state store interface: versioned instance records, history, durable timers, the outbox
/// and the inbox. Every store implementation passes tests/contract/state_store_contract.hpp.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/metrics.hpp>
#include <saga/status.hpp>

namespace saga {

/// The persistent state of one saga instance.
struct instance_record {
    /// the saga id, unique in the store
    std::string id;
    /// the definition's name and the version the instance is pinned to
    std::string definition;
    std::uint32_t definition_version = 0;
    /// optimistic-concurrency version: 1 after create, +1 on every commit
    std::uint64_t version = 0;
    saga_status status = saga_status::running;
    /// the business key (e.g. a campaign id); may be empty
    std::string correlation_key;
    /// when true and the instance is not terminal, no other exclusive instance may hold the
    /// same correlation key (`errc::lock_held`)
    bool exclusive = false;
    /// the user's data, as JSON
    nlohmann::json data;
    /// the engine's execution state (per-step status, attempts, ...); opaque to stores
    nlohmann::json state;
    time_point created_at{};
    time_point updated_at{};

    friend bool operator==(const instance_record&, const instance_record&) = default;
};

/// One entry of an instance's history: what happened, when, in which transition.
struct history_entry {
    std::string saga_id;
    /// the record version the transition produced
    std::uint64_t version = 0;
    time_point at{};
    /// e.g. "saga_started", "step_completed", "compensation_failed"
    std::string event;
    std::string step;
    std::uint32_t attempt = 0;
    nlohmann::json detail;

    friend bool operator==(const history_entry&, const history_entry&) = default;
};

/// A durable timer: fires at `due` even across restarts. Unique per (saga_id, id).
struct timer_record {
    std::string saga_id;
    std::string id;
    time_point due{};
    nlohmann::json payload;

    friend bool operator==(const timer_record&, const timer_record&) = default;
};

/// A message waiting to be released to the transport (transactional outbox).
struct outbox_record {
    std::string saga_id;
    /// an endpoint (queue) name, or a topic name when `topic` is true
    std::string destination;
    bool topic = false;
    /// the message; `message.message_id` is the outbox key
    envelope message;

    friend bool operator==(const outbox_record&, const outbox_record&) = default;
};

/// Everything one transition writes, atomically: all of it or none of it.
struct transition {
    /// the new record; `record.version` must be `expected_version + 1`
    instance_record record;
    /// the version the change was computed from; 0 creates the record
    /// (`errc::already_exists` if the id is taken)
    std::uint64_t expected_version = 0;
    std::vector<history_entry> history;
    std::vector<outbox_record> outbox;
    /// set (or replace) these timers of `record.id`
    std::vector<timer_record> timers_set;
    /// remove these timer ids of `record.id` (unknown ids are ignored)
    std::vector<std::string> timers_cleared;
    /// message ids this transition consumes; any already in the inbox of `record.id` fails
    /// the whole transition with `errc::duplicate_message`
    std::vector<std::string> inbox;
};

/// Checks what a transition says about itself, before any store state is consulted: a record
/// id, `record.version == expected_version + 1`, timers of this saga only, outbox messages with
/// ids. `errc::invalid_argument` naming the saga, or success. Every store calls it first.
[[nodiscard]] result<void> check_transition(const transition& t);

/// Filter for `state_store::list`. Empty fields match everything.
struct list_filter {
    std::vector<saga_status> statuses;
    std::string definition;
    std::string correlation_key;
    std::optional<time_point> updated_after;
    std::optional<time_point> updated_before;
    /// ids greater than this (for paging; results are ordered by id)
    std::string after_id;
    std::size_t limit = 1000;
};

/// Gets the outcome of one commit.
using commit_handler = std::function<void(result<void>)>;

/// A state store. Implementations are thread-safe.
class state_store {
public:
    virtual ~state_store() = default;

    /// Commits `t` atomically and calls `done` (on any thread, possibly before returning) with
    /// its own outcome: success; `errc::version_conflict` if the stored version is not
    /// `t.expected_version`; `errc::already_exists` on a create of a taken id;
    /// `errc::duplicate_message` if an inbox id was seen; `errc::lock_held` if the record is
    /// exclusive and another non-terminal exclusive record holds its correlation key; a store
    /// error otherwise. A store may group the commits of many callers into one transaction.
    virtual void async_commit(transition t, commit_handler done) = 0;

    /// The record with `id`, or `errc::not_found`.
    [[nodiscard]] virtual result<instance_record> load(std::string_view id) = 0;
    /// Records matching `filter`, ordered by id.
    [[nodiscard]] virtual result<std::vector<instance_record>> list(const list_filter& filter) = 0;
    /// The history of `id` in commit order (empty if the id is unknown).
    [[nodiscard]] virtual result<std::vector<history_entry>> history(std::string_view id) = 0;
    /// Timers due at or before `due_before`, or all timers; ordered by due time.
    [[nodiscard]] virtual result<std::vector<timer_record>> timers(
        std::optional<time_point> due_before = std::nullopt) = 0;
    /// Outbox messages not yet acknowledged, oldest first, at most `limit`.
    [[nodiscard]] virtual result<std::vector<outbox_record>> pending_outbox(std::size_t limit) = 0;
    /// Removes released messages from the outbox (unknown ids are ignored).
    [[nodiscard]] virtual result<void> ack_outbox(std::span<const std::string> message_ids) = 0;
    /// Whether `message_id` was consumed by a transition of `saga_id`.
    [[nodiscard]] virtual result<bool> inbox_contains(std::string_view saga_id,
                                                      std::string_view message_id) = 0;

    /// Gives the store a registry for its own metrics (commit latency, batch size). Called by
    /// the engine when it opens; the default records nothing.
    virtual void set_metrics(std::shared_ptr<metrics_registry> metrics) { (void)metrics; }

    /// Commits and waits for the outcome (convenience over `async_commit`).
    [[nodiscard]] result<void> commit(transition t);
};

}  // namespace saga
