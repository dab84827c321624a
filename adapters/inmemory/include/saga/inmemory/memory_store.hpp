#pragma once
/// @file memory_store.hpp
/// A `state_store` in memory: the whole contract, nothing durable. For tests and demos.

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <saga/state_store.hpp>

namespace saga::inmemory {

/// The in-memory state store. Thread-safe; commits complete inline (before `async_commit`
/// returns).
class memory_store final : public state_store {
public:
    memory_store() = default;

    void async_commit(transition t, commit_handler done) override;
    [[nodiscard]] result<instance_record> load(std::string_view id) override;
    [[nodiscard]] result<std::vector<instance_record>> list(const list_filter& filter) override;
    [[nodiscard]] result<std::vector<history_entry>> history(std::string_view id) override;
    [[nodiscard]] result<std::vector<timer_record>> timers(
        std::optional<time_point> due_before = std::nullopt) override;
    [[nodiscard]] result<std::vector<outbox_record>> pending_outbox(std::size_t limit) override;
    [[nodiscard]] result<void> ack_outbox(std::span<const std::string> message_ids) override;
    [[nodiscard]] result<bool> inbox_contains(std::string_view saga_id,
                                              std::string_view message_id) override;

    /// Test hook: the next `n` commits fail with `e` (and change nothing).
    void fail_next_commits(std::size_t n, error e);
    /// How many commits succeeded.
    [[nodiscard]] std::size_t commits() const;

private:
    using record_map = std::map<std::string, instance_record, std::less<>>;
    using history_map = std::map<std::string, std::vector<history_entry>, std::less<>>;
    /// (saga id, timer id)
    using timer_key = std::pair<std::string, std::string>;
    using timer_map = std::map<timer_key, timer_record>;
    /// insertion sequence -> message, so iteration is oldest first
    using outbox_map = std::map<std::uint64_t, outbox_record>;
    /// message id -> insertion sequence
    using outbox_index = std::map<std::string, std::uint64_t, std::less<>>;
    /// (saga id, message id)
    using inbox_set = std::set<std::pair<std::string, std::string>>;
    /// correlation key -> id of the exclusive, non-terminal record that holds it
    using lock_map = std::map<std::string, std::string, std::less<>>;

    /// Everything a commit will insert, prepared (and allocated) before the store changes.
    struct staged_commit;

    /// Runs the checks and the commit of `t`; locks `mutex_`. Never throws.
    [[nodiscard]] result<void> commit_(transition& t);
    /// The first reason `t` cannot be committed, if any. Caller holds `mutex_`.
    [[nodiscard]] result<void> check_(const transition& t) const;
    /// Prepares `t` for `apply_`: may throw (allocation); changes nothing observable.
    [[nodiscard]] staged_commit stage_(transition& t);
    /// Applies a staged commit; allocates nothing, so it cannot fail half way.
    void apply_(staged_commit& s) noexcept;

    mutable std::mutex mutex_;
    record_map records_;
    history_map history_;
    timer_map timers_;
    std::uint64_t outbox_seq_ = 0;
    outbox_map outbox_;
    outbox_index outbox_index_;
    inbox_set inbox_;
    lock_map locks_;
    std::size_t fail_next_ = 0;
    error fail_with_;
    std::size_t commits_ = 0;
};

}  // namespace saga::inmemory
