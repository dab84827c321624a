#pragma once
/// @file memory_transport.hpp
/// A `transport` in memory, with fault injection: lost acks, duplicates, delays, reordering
/// and failed sends, all drawn from a seeded generator so a run can be replayed.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>

#include <saga/clock.hpp>
#include <saga/transport.hpp>

namespace saga::inmemory {

/// Which faults to inject, and how often (probabilities from 0 to 1).
struct fault_plan {
    /// seed of the generator that draws the faults
    std::uint64_t seed = 1;
    /// an ack is lost: the message is delivered again after its visibility timeout
    double drop_ack = 0;
    /// a sent message is queued twice
    double duplicate = 0;
    /// a sent message becomes visible only after a random delay up to `max_delay`
    double delay = 0;
    duration max_delay = std::chrono::milliseconds{500};
    /// a sent message is queued ahead of messages sent before it
    double reorder = 0;
    /// the Nth send or publish (1-based, counted from when the plan is set) fails with
    /// `errc::transport_failure`; 0: never
    std::uint64_t fail_nth_send = 0;
};

/// Counters of what the transport did.
struct transport_stats {
    std::uint64_t sent = 0;
    std::uint64_t published = 0;
    std::uint64_t delivered = 0;
    std::uint64_t redelivered = 0;
    std::uint64_t acked = 0;
    std::uint64_t nacked = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t delayed = 0;
    std::uint64_t reordered = 0;
    std::uint64_t acks_dropped = 0;
    std::uint64_t sends_failed = 0;
};

/// The in-memory transport. Thread-safe. Deliveries are posted to each consumer's executor;
/// visibility timeouts and delays run on `clock` (so a `virtual_clock` drives them in tests).
class memory_transport final : public transport {
public:
    explicit memory_transport(std::shared_ptr<saga::clock> clock, fault_plan faults = {});
    ~memory_transport() override;

    void async_send(const std::string& endpoint, envelope message, send_handler done) override;
    void async_publish(const std::string& topic, envelope message, send_handler done) override;
    [[nodiscard]] result<void> subscribe(const std::string& topic,
                                         const std::string& endpoint) override;
    [[nodiscard]] result<std::unique_ptr<subscription>> consume(
        const std::string& endpoint, boost::asio::any_io_executor executor,
        delivery_handler handler, consumer_options options = {}) override;

    /// Replaces the fault plan (and restarts the send count of `fail_nth_send`).
    void set_faults(fault_plan faults);
    /// Messages in `endpoint` not yet acked (visible, in flight or delayed).
    [[nodiscard]] std::size_t pending(const std::string& endpoint) const;
    [[nodiscard]] transport_stats stats() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace saga::inmemory
