#pragma once
/// @file memory_transport.hpp
/// A `transport` in memory, with fault injection: lost acks, duplicates, delays, reordering
/// and failed sends, all drawn from a seeded generator so a run can be replayed; raw bodies can
/// be injected as a foreign producer would send them, and those that do not decode go to the
/// endpoint's dead-letter list on their first receive.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

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
    /// injected raw bodies that did not decode, moved to their endpoint's dead-letter list
    std::uint64_t dead_lettered = 0;
};

/// A message the transport moved aside on its first receive because it can never be decoded.
struct dead_letter {
    /// the endpoint it was sent to
    std::string endpoint;
    /// its body, as it was injected
    std::string body;
    dead_letter_reason reason = dead_letter_reason::decode;
    /// the decoder's words (which field, which limit)
    std::string detail;
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

    /// Counts dead-lettered messages in `metrics` (`saga_messages_dead_lettered_total`).
    void set_metrics(std::shared_ptr<metrics_registry> metrics) override;

    /// Replaces the fault plan (and restarts the send count of `fail_nth_send`).
    void set_faults(fault_plan faults);
    /// Queues `body` on `endpoint` as it is, as a producer outside saga could put any text on a
    /// queue (no fault of the plan applies). It is decoded when it is first received: a body
    /// that decodes is delivered like any message; one that does not goes to the endpoint's
    /// dead-letter list at once, without reaching a consumer.
    /// `errc::invalid_argument` for an empty endpoint name.
    [[nodiscard]] result<void> inject_raw(const std::string& endpoint, std::string body);
    /// Messages in `endpoint` not yet acked (visible, in flight or delayed).
    [[nodiscard]] std::size_t pending(const std::string& endpoint) const;
    /// The dead-letter list of `endpoint`, oldest first.
    [[nodiscard]] std::vector<dead_letter> dead_letters(const std::string& endpoint) const;
    [[nodiscard]] transport_stats stats() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace saga::inmemory
