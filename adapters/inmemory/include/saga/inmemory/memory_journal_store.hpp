#pragma once
/// @file memory_journal_store.hpp
/// A `saga::journal_store` in memory: no durability, for tests and for services that do not
/// need one. Commits complete before `async_commit` returns.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <saga/journal_store.hpp>

namespace saga::inmemory {

class memory_journal_store final : public journal_store {
public:
    memory_journal_store() = default;

    void async_commit(journal_write w, journal_commit_handler done) override;
    [[nodiscard]] result<loaded_instance> load(std::string_view id) override;
    [[nodiscard]] result<instance_head> head(std::string_view id) override;
    [[nodiscard]] result<std::vector<instance_head>> list(const head_filter& filter) override;
    [[nodiscard]] result<std::vector<journal_record>> journal(std::string_view id) override;
    [[nodiscard]] result<std::vector<std::string>> due(time_point before,
                                                       std::size_t limit) override;
    [[nodiscard]] result<std::vector<std::string>> in_status(std::vector<saga_status> statuses,
                                                             std::string_view after_id,
                                                             std::size_t limit) override;
    [[nodiscard]] result<std::size_t> purge(time_point older_than, std::size_t limit) override;

    /// Fault injection: the next `n` commits fail with `e` and change nothing.
    void fail_next_commits(std::size_t n, error e);
    /// Commits that succeeded.
    [[nodiscard]] std::size_t commits() const;

private:
    struct instance_rows {
        instance_head head;
        std::vector<journal_record> records;
    };

    [[nodiscard]] result<void> commit_(journal_write& w);
    [[nodiscard]] result<void> check_lock_(const instance_head& h) const;

    mutable std::mutex mutex_;
    std::map<std::string, instance_rows, std::less<>> instances_;
    std::size_t fail_next_ = 0;
    error fail_with_;
    std::size_t commits_ = 0;
};

}  // namespace saga::inmemory
