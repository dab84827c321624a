#pragma once
/// @file memory_store.hpp
/// A `state_store` in memory: the whole contract, nothing durable. For tests and demos.

#include <map>
#include <mutex>
#include <set>
#include <string>
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
    [[nodiscard]] result<std::vector<timer_record>> timers(std::optional<time_point> due_before) override;
    [[nodiscard]] result<std::vector<outbox_record>> pending_outbox(std::size_t limit) override;
    [[nodiscard]] result<void> ack_outbox(std::span<const std::string> message_ids) override;
    [[nodiscard]] result<bool> inbox_contains(std::string_view saga_id,
                                              std::string_view message_id) override;

    /// Test hook: the next `n` commits fail with `e` (and change nothing).
    void fail_next_commits(std::size_t n, error e);
    /// How many commits succeeded.
    [[nodiscard]] std::size_t commits() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, instance_record, std::less<>> records_;
    std::map<std::string, std::vector<history_entry>, std::less<>> history_;
    std::map<std::pair<std::string, std::string>, timer_record> timers_;
    std::uint64_t outbox_seq_ = 0;
    std::map<std::uint64_t, outbox_record> outbox_;          // by insertion order
    std::map<std::string, std::uint64_t, std::less<>> outbox_index_;  // message id -> seq
    std::set<std::pair<std::string, std::string>, std::less<>> inbox_;
    std::size_t fail_next_ = 0;
    error fail_with_;
    std::size_t commits_ = 0;
};

}  // namespace saga::inmemory
