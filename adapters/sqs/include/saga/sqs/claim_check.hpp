#pragma once
/// @file claim_check.hpp
/// Claim checks: a message over the transport's size limit is stored aside and sent as a small
/// reference. `saga::state_store` has no blob API, so the adapter defines the little it needs.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <saga/error.hpp>
#include <saga/state_store.hpp>

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

/// Claim checks kept in a `saga::state_store` (e.g. SQLite or PostgreSQL, shared by producer
/// and consumer): each body is an instance record with id `sqs-claim-check/<key>`, definition
/// `saga.sqs.claim_check` and status `completed`, the body as its JSON data. The store
/// interface cannot delete records, so `erase` is a no-op: prune them by definition name.
class state_store_claim_check final : public claim_check_store {
public:
    /// Uses `store`, which must outlive nothing: it is shared.
    explicit state_store_claim_check(std::shared_ptr<saga::state_store> store);
    [[nodiscard]] result<void> put(const std::string& key, const std::string& body) override;
    [[nodiscard]] result<std::string> get(const std::string& key) override;
    [[nodiscard]] result<void> erase(const std::string& key) override;

private:
    std::shared_ptr<saga::state_store> store_;
};

}  // namespace saga::sqs
