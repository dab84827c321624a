#pragma once
/// @file durable_service.hpp
/// The base of every simulated participant service: its own SQLite file, one transaction per
/// command that checks the recorded reply, applies the effect and records the reply together,
/// injected transient failures and latency, and replies over the transport.

#include <SQLiteCpp/SQLiteCpp.h>
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <saga/participant.hpp>
#include <saga/transport.hpp>

namespace campaign {

/// How a service is simulated.
struct service_options {
    /// the endpoint it consumes commands from
    std::string endpoint;
    /// its own database file
    std::filesystem::path database;
    /// seed of its random decisions
    std::uint64_t seed = 0;
    /// probability that a command fails transiently before it is looked at (503)
    double failure_rate = 0;
    /// time taken by every command
    std::chrono::milliseconds latency{0};
};

/// A participant service with durable, exactly-once effects.
///
/// A command is handled in one `BEGIN IMMEDIATE` transaction: if its idempotency key has a
/// recorded reply, that reply is sent again and nothing is applied; otherwise `apply` runs and
/// its reply is recorded with its effects (a transient reply rolls everything back, so the
/// retry starts clean). A compensation whose forward command was never applied records a
/// tombstone for that command ("compensated before it was applied"), so a late copy of the
/// command is refused instead of applied after its undo. Effects therefore survive a SIGKILL at
/// any moment, and a redelivered command changes nothing.
class durable_service {
public:
    explicit durable_service(service_options options);
    virtual ~durable_service();
    durable_service(const durable_service&) = delete;
    durable_service& operator=(const durable_service&) = delete;

    /// Starts consuming the endpoint; handlers run on `executor`.
    [[nodiscard]] saga::result<void> start(std::shared_ptr<saga::transport> transport,
                                           boost::asio::any_io_executor executor);
    /// Stops consuming (waits for running handlers).
    virtual void stop();

    [[nodiscard]] const std::string& endpoint() const noexcept { return options_.endpoint; }
    [[nodiscard]] const std::filesystem::path& database() const noexcept {
        return options_.database;
    }

    /// The message id of an event caused by the command with idempotency key `key`: stable, so
    /// that a re-sent event is deduplicated by its consumer.
    [[nodiscard]] static std::string event_id(std::string_view kind, std::string_view key);
    /// Milliseconds since the Unix epoch, now.
    [[nodiscard]] static std::int64_t now_ms();

protected:
    /// Applies command (or compensation) `e`, inside the open transaction. Return
    /// `participant_reply::transient` to roll back and let the engine retry.
    virtual saga::participant_reply apply(const saga::envelope& e) = 0;
    /// Called after `start` succeeded (e.g. to re-send what a crash interrupted).
    virtual void started() {}

    /// Runs `fn` once the transaction of the command being handled has committed (events).
    void after_commit(std::function<void()> fn);
    /// Sends event `e` to `endpoint`, retrying every 100 ms until the transport takes it.
    void send_event(const std::string& endpoint, saga::envelope e);
    /// Publishes event `e` on `topic`, retrying likewise.
    void publish_event(const std::string& topic, saga::envelope e);

    /// The service's database; use it under `mutex()` only.
    SQLite::Database& db() noexcept { return db_; }
    std::mutex& mutex() noexcept { return mutex_; }
    [[nodiscard]] const service_options& options() const noexcept { return options_; }
    [[nodiscard]] const std::shared_ptr<saga::transport>& transport() const noexcept {
        return transport_;
    }
    [[nodiscard]] boost::asio::any_io_executor executor() const { return executor_; }

private:
    void handle(const std::shared_ptr<saga::delivery>& d);
    std::optional<saga::participant_reply> recorded(const std::string& key);
    void record(const std::string& key, const saga::participant_reply& r);

    service_options options_;
    std::mutex mutex_;
    SQLite::Database db_;
    std::shared_ptr<saga::transport> transport_;
    boost::asio::any_io_executor executor_;
    std::unique_ptr<saga::subscription> subscription_;
    std::vector<std::function<void()>> after_commit_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// Opens (creating) a service database in WAL mode with a busy timeout, for services; or, with
/// `read_only`, an existing one without writing anything, for the consistency check and the
/// listings (in a directory that cannot be written, as immutable). Throws on failure.
[[nodiscard]] SQLite::Database open_database(const std::filesystem::path& path,
                                             bool read_only = false);

}  // namespace campaign
