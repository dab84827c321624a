#include <saga/sqs/claim_check.hpp>

#include <utility>

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

state_store_claim_check::state_store_claim_check(std::shared_ptr<saga::state_store> store)
    : store_(std::move(store)) {}

result<void> state_store_claim_check::put(const std::string& key, const std::string& body) {
    if (!store_) return error{errc::invalid_argument, "claim check: no state store"};
    transition t;
    t.record.id = std::string{record_prefix} + key;
    t.record.definition = "saga.sqs.claim_check";
    t.record.definition_version = 1;
    t.record.version = 1;
    t.record.status = saga_status::completed;
    t.record.data = body;
    t.record.state = nlohmann::json::object();
    t.expected_version = 0;
    return store_->commit(std::move(t));
}

result<std::string> state_store_claim_check::get(const std::string& key) {
    if (!store_) return error{errc::invalid_argument, "claim check: no state store"};
    SAGA_TRY(auto record, store_->load(std::string{record_prefix} + key));
    if (!record.data.is_string())
        return error{errc::bad_data, "claim check '" + key + "' does not hold a message body"};
    return record.data.get<std::string>();
}

result<void> state_store_claim_check::erase(const std::string&) {
    return success();
}

}  // namespace saga::sqs
