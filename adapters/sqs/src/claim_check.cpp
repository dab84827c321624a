#include <saga/sqs/claim_check.hpp>

#include <chrono>
#include <utility>

#include <nlohmann/json.hpp>

namespace saga::sqs {

result<void> memory_claim_check_store::put(const std::string& key, const std::string& body) {
    std::lock_guard lock(mutex_);
    bodies_[key] = body;
    return success();
}

result<std::string> memory_claim_check_store::get(const std::string& key) {
    std::lock_guard lock(mutex_);
    const auto it = bodies_.find(key);
    if (it == bodies_.end()) return error{errc::not_found, "claim check '" + key + "' not found"};
    return it->second;
}

result<void> memory_claim_check_store::erase(const std::string& key) {
    std::lock_guard lock(mutex_);
    bodies_.erase(key);
    return success();
}

std::size_t memory_claim_check_store::size() const {
    std::lock_guard lock(mutex_);
    return bodies_.size();
}

namespace {
constexpr std::string_view record_prefix = "sqs-claim-check/";
}

journal_store_claim_check::journal_store_claim_check(std::shared_ptr<saga::journal_store> store)
    : store_(std::move(store)) {}

result<void> journal_store_claim_check::put(const std::string& key, const std::string& body) {
    if (!store_) return error{errc::invalid_argument, "claim check: no journal store"};
    const time_point now = std::chrono::system_clock::now();
    journal_write w;
    w.record.saga_id = std::string{record_prefix} + key;
    w.record.version = 1;
    w.record.at = now;
    try {
        w.record.data = nlohmann::json(body).dump();
    } catch (const nlohmann::json::exception&) {
        return error{
            errc::invalid_argument,
            "claim check '" + key + "': the body is not valid UTF-8 (nor can SQS carry it)"};
    }
    instance_head h;
    h.id = w.record.saga_id;
    h.definition = "saga.sqs.claim_check";
    h.definition_version = 1;
    h.status = saga_status::completed;
    h.version = 1;
    h.created_at = now;
    h.updated_at = now;
    w.head = std::move(h);
    return store_->commit(std::move(w));
}

result<std::string> journal_store_claim_check::get(const std::string& key) {
    if (!store_) return error{errc::invalid_argument, "claim check: no journal store"};
    SAGA_TRY(auto loaded, store_->load(std::string{record_prefix} + key));
    if (!loaded.data)
        return error{errc::bad_data, "claim check '" + key + "' does not hold a message body"};
    // a JSON string (one level deep), so no depth limit is needed; not an exception either
    auto body = nlohmann::json::parse(*loaded.data, nullptr, false);
    if (!body.is_string())
        return error{errc::bad_data, "claim check '" + key + "' does not hold a message body"};
    return body.get<std::string>();
}

result<void> journal_store_claim_check::erase(const std::string&) {
    return success();
}

}  // namespace saga::sqs
