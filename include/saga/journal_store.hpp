#pragma once
/// @file journal_store.hpp
/// The lean store contract of core v2 (docs/internals.md, "The journal and the head row"): per
/// transition one journal record and, only when what it holds changes, a small head row. No
/// outbox, inbox or timer rows. Every implementation passes
/// tests/contract/journal_store_contract.hpp.
///
/// Until the engine runs on it (issue 11), `saga::state_store` is what the engine uses.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/events.hpp>
#include <saga/status.hpp>

namespace saga {

/// What recovery, listing and locking need to know of an instance without reading its journal.
struct instance_head {
    std::string id;
    std::string definition;
    std::uint32_t definition_version = 0;
    saga_status status = saga_status::running;
    std::string correlation_key;
    /// while true and the instance is not terminal, no other exclusive head may hold the same
    /// correlation key (`errc::lock_held`)
    bool exclusive = false;
    /// never later than the earliest due time of the instance (earlier is allowed: recovery
    /// then finds nothing due and looks again); nothing when nothing is due
    std::optional<time_point> wake_at;
    /// the version of the journal record that last wrote this head
    std::uint64_t version = 0;
    time_point created_at{};
    time_point updated_at{};

    friend bool operator==(const instance_head&, const instance_head&) = default;
};

/// A message a transition releases once it is durable.
struct outbound_message {
    /// an endpoint (queue), or a topic when `topic` is true
    std::string destination;
    bool topic = false;
    envelope message;

    friend bool operator==(const outbound_message&, const outbound_message&) = default;
};

/// One transition of one instance. Never changed once written.
struct journal_record {
    std::string saga_id;
    /// 1 for the first record, then +1 per transition; a record whose (saga_id, version) is
    /// taken is refused with `errc::version_conflict` (another writer got there first)
    std::uint64_t version = 0;
    time_point at{};
    std::vector<event> events;
    /// released after the commit; see `released_through`
    std::vector<outbound_message> output;
    /// the output of every record up to this version has been handed to the transport (the
    /// watermark rides on the next record); 0: none
    std::uint64_t released_through = 0;
    /// the user's data as JSON text, when this transition changed it
    std::optional<std::string> data;
    /// the engine's whole execution state as text (opaque to stores), when the engine wrote a
    /// snapshot: loading starts from the newest record that has one
    std::optional<std::string> snapshot;

    friend bool operator==(const journal_record&, const journal_record&) = default;
};

/// What one transition writes, atomically: the record, and the head when it changed (always
/// with the first record).
struct journal_write {
    journal_record record;
    std::optional<instance_head> head;
};

/// An instance as loaded: its head and its records from the newest snapshot on (or all), in
/// version order.
struct loaded_instance {
    instance_head head;
    std::vector<journal_record> records;
    /// the newest data among all records (not only those returned)
    std::optional<std::string> data;
};

/// Filter for `journal_store::list`. Empty fields match everything; ordered by id.
struct head_filter {
    std::vector<saga_status> statuses;
    std::string definition;
    std::string correlation_key;
    std::optional<time_point> updated_before;
    /// ids greater than this (paging)
    std::string after_id;
    std::size_t limit = 1000;
};

using journal_commit_handler = std::function<void(result<void>)>;

/// A journal store. Implementations are thread-safe.
class journal_store {
public:
    virtual ~journal_store() = default;

    /// Commits `w` atomically and calls `done` (on any thread, possibly before returning) with
    /// its own outcome: success; `errc::version_conflict` if the record's version is taken or
    /// does not follow the newest record; `errc::already_exists` for a first record of a taken
    /// id; `errc::not_found` for a later record of an unknown id; `errc::lock_held` when the
    /// head is exclusive and another non-terminal exclusive head holds its key;
    /// `errc::invalid_argument` for a write that contradicts itself (a first record without
    /// a head, a head of another id); a store error otherwise. A store may group the commits
    /// of many callers into one transaction; each caller learns its own outcome.
    virtual void async_commit(journal_write w, journal_commit_handler done) = 0;

    /// The instance `id`: head, records from its newest snapshot on, newest data; or
    /// `errc::not_found`.
    [[nodiscard]] virtual result<loaded_instance> load(std::string_view id) = 0;
    /// The head of `id`, or `errc::not_found`.
    [[nodiscard]] virtual result<instance_head> head(std::string_view id) = 0;
    /// Heads matching `filter`, ordered by id.
    [[nodiscard]] virtual result<std::vector<instance_head>> list(const head_filter& filter) = 0;
    /// Every record of `id` in version order (empty if the id is unknown).
    [[nodiscard]] virtual result<std::vector<journal_record>> journal(std::string_view id) = 0;

    /// Ids of non-terminal instances whose `wake_at` is at or before `before`, earliest first,
    /// at most `limit`.
    [[nodiscard]] virtual result<std::vector<std::string>> due(time_point before,
                                                               std::size_t limit) = 0;
    /// Ids of instances in `statuses` (recovery asks for running and compensating: they may
    /// have unreleased output), ids greater than `after_id`, at most `limit`.
    [[nodiscard]] virtual result<std::vector<std::string>> in_status(
        std::vector<saga_status> statuses, std::string_view after_id, std::size_t limit) = 0;

    /// Deletes up to `limit` terminal instances last updated before `older_than` (head and
    /// journal); how many went.
    [[nodiscard]] virtual result<std::size_t> purge(time_point older_than, std::size_t limit) = 0;

    /// Commits and waits for the outcome (convenience over `async_commit`).
    [[nodiscard]] result<void> commit(journal_write w);
};

/// Checks what a write says about itself before any store state is consulted (every store
/// calls it first): an id, a version >= 1, a head with the record's id and version when
/// present, and one when the version is 1; output messages with ids.
[[nodiscard]] result<void> check_journal_write(const journal_write& w);

}  // namespace saga
