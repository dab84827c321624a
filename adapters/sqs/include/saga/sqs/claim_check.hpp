#pragma once
/// @file claim_check.hpp
/// Claim checks: a message over the transport's size limit is stored aside and sent as a small
/// reference. `saga::journal_store` has no blob API, so the adapter defines the little it needs.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <saga/error.hpp>
#include <saga/journal_store.hpp>

namespace saga::sqs {

/// Where large message bodies wait for their consumer. Implementations are thread-safe.
class claim_check_store {
public:
    virtual ~claim_check_store() = default;
    /// Stores `body` under `key` (a fresh, unique key per message). A store error otherwise.
    [[nodiscard]] virtual result<void> put(const std::string& key, const std::string& body) = 0;
    /// The body stored under `key`; `errc::not_found` when there is none.
    [[nodiscard]] virtual result<std::string> get(const std::string& key) = 0;
    /// Removes `key` once its message is acked; unknown keys are not an error.
    [[nodiscard]] virtual result<void> erase(const std::string& key) = 0;
};

/// Claim checks in memory: for tests, and for producers and consumers in one process.
class memory_claim_check_store final : public claim_check_store {
public:
    [[nodiscard]] result<void> put(const std::string& key, const std::string& body) override;
    [[nodiscard]] result<std::string> get(const std::string& key) override;
    [[nodiscard]] result<void> erase(const std::string& key) override;
    /// How many bodies are stored.
    [[nodiscard]] std::size_t size() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::string, std::less<>> bodies_;
};

/// Claim checks kept in a `saga::journal_store` (e.g. SQLite or PostgreSQL, shared by producer
/// and consumer): each body is a completed instance with id `sqs-claim-check/<key>` and
/// definition `saga.sqs.claim_check`, the body as its data (one head and one journal record).
/// `erase` leaves it: the store's retention (`journal_store::purge` of terminal instances by
/// age) removes it with the instances of the same age.
class journal_store_claim_check final : public claim_check_store {
public:
    explicit journal_store_claim_check(std::shared_ptr<saga::journal_store> store);
    [[nodiscard]] result<void> put(const std::string& key, const std::string& body) override;
    [[nodiscard]] result<std::string> get(const std::string& key) override;
    [[nodiscard]] result<void> erase(const std::string& key) override;

private:
    std::shared_ptr<saga::journal_store> store_;
};

}  // namespace saga::sqs
