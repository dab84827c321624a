#pragma once
/// @file participant.hpp
/// A helper for writing participant services: handlers per command type on an endpoint,
/// replies of success, transient or permanent failure, and deduplication by idempotency key
/// (a repeated command gets the recorded reply and the handler does not run again).

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/transport.hpp>

namespace saga {

/// A participant's answer to a command.
struct participant_reply {
    reply_status status = reply_status::success;
    nlohmann::json payload = nlohmann::json::object();
    std::string error;

    [[nodiscard]] static participant_reply success(
        nlohmann::json payload = nlohmann::json::object()) {
        return {reply_status::success, std::move(payload), {}};
    }
    /// The engine will retry (same idempotency key); the reply is not recorded.
    [[nodiscard]] static participant_reply transient(std::string why) {
        return {reply_status::transient_failure, nlohmann::json::object(), std::move(why)};
    }
    /// The step fails for good; the reply is recorded like a success.
    [[nodiscard]] static participant_reply permanent(std::string why) {
        return {reply_status::permanent_failure, nlohmann::json::object(), std::move(why)};
    }
};

/// Handles one command; may throw (the exception becomes a transient failure reply).
using command_handler = std::function<participant_reply(const envelope&)>;

/// Where recorded replies are kept, by idempotency key. The default keeps them in memory; a
/// durable participant stores them with its own state.
class reply_store {
public:
    virtual ~reply_store() = default;
    [[nodiscard]] virtual std::optional<participant_reply> find(const std::string& key) = 0;
    virtual void save(const std::string& key, const participant_reply& reply) = 0;
};

/// The in-memory `reply_store`.
class memory_reply_store final : public reply_store {
public:
    [[nodiscard]] std::optional<participant_reply> find(const std::string& key) override;
    void save(const std::string& key, const participant_reply& reply) override;

private:
    std::mutex mutex_;
    std::unordered_map<std::string, participant_reply> replies_;
};

/// Options of a participant.
struct participant_options {
    /// recorded replies; default: a new memory_reply_store
    std::shared_ptr<reply_store> replies;
    consumer_options consumer;
};

/// Counters, for tests and metrics.
struct participant_stats {
    std::size_t handled = 0;       ///< handler calls
    std::size_t deduplicated = 0;  ///< repeats answered from the reply store
    std::size_t refused = 0;       ///< commands refused because their compensation came first
    std::size_t unknown_type = 0;  ///< commands with no handler (answered permanent)
};

/// A participant service on one endpoint.
///
/// A compensation (`kind == compensation`) whose forward command was never handled records a
/// permanent "compensated before applied" reply for that command, so a late forward command is
/// refused instead of applied after its undo.
class participant {
public:
    participant(std::shared_ptr<transport> t, std::string endpoint,
                participant_options options = {});
    ~participant();
    participant(const participant&) = delete;
    participant& operator=(const participant&) = delete;

    /// Handles commands (and compensations) of `type` with `handler`.
    participant& on(std::string type, command_handler handler);
    /// Starts consuming the endpoint; handlers run on `executor`.
    [[nodiscard]] result<void> start(boost::asio::any_io_executor executor);
    /// Stops consuming.
    void stop();
    [[nodiscard]] participant_stats stats() const;
    [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

private:
    void handle(const std::shared_ptr<delivery>& d);
    void reply(const envelope& command, const participant_reply& r,
               const std::shared_ptr<delivery>& d);

    std::shared_ptr<transport> transport_;
    std::string endpoint_;
    participant_options options_;
    std::unordered_map<std::string, command_handler> handlers_;
    std::unique_ptr<subscription> subscription_;
    mutable std::mutex mutex_;
    std::set<std::string> in_progress_;
    participant_stats stats_;
};

}  // namespace saga
