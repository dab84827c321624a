#pragma once
/// @file transport.hpp
/// The transport interface: point-to-point endpoints (queues) and topics with subscriptions,
/// consumed with ack/nack and redelivered after a visibility timeout (at-least-once). A message
/// that can never be decoded is not redelivered: it goes to a dead-letter queue on its first
/// receive (`dead_letter_reason`, docs/adapters.md).

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/json_limits.hpp>
#include <saga/metrics.hpp>

namespace saga {

/// One delivery of a message to a consumer. Exactly one of `ack` or `nack` should be called;
/// if neither is called within the visibility timeout, the message is delivered again.
class delivery {
public:
    virtual ~delivery() = default;
    /// The message.
    [[nodiscard]] virtual const envelope& message() const = 0;
    /// How many times this message has been delivered, 1 on the first delivery.
    [[nodiscard]] virtual std::uint32_t delivery_count() const = 0;
    /// Done with the message: it is removed and never delivered again.
    virtual void ack() = 0;
    /// Give the message back: it is delivered again after `delay` (0: as soon as possible).
    virtual void nack(duration delay = duration{0}) = 0;
    /// Extends the visibility timeout of this delivery to `timeout` from now, while a slow
    /// handler runs.
    virtual void extend(duration timeout) = 0;
};

/// Called for every delivery; runs on the executor given to `consume`.
using delivery_handler = std::function<void(std::shared_ptr<delivery>)>;
/// Called once a send or publish is done (or failed).
using send_handler = std::function<void(result<void>)>;

/// Options of a consumer.
struct consumer_options {
    /// how long a delivered, unacknowledged message stays invisible before redelivery
    duration visibility_timeout = std::chrono::seconds{30};
    /// at most this many deliveries handed out and not yet acked or nacked
    std::size_t max_in_flight = 64;
};

/// A running consumer; destroying it or calling `stop` stops deliveries.
class subscription {
public:
    virtual ~subscription() = default;
    /// Stops deliveries and waits until no handler of this consumer is running (except one on
    /// the calling thread), so that what the handler uses may be destroyed afterwards. Messages
    /// handed out and not acked are delivered again later.
    virtual void stop() = 0;
};

/// Why a transport moved a message to a dead-letter queue on its first receive, without handing
/// it to a consumer: it can never be decoded, so receiving it again would only block its queue
/// (and, on a FIFO queue, its message group). The `reason` label of the counter
/// `saga_messages_dead_lettered_total{endpoint,reason}`.
enum class dead_letter_reason {
    /// not JSON, or not an envelope: a required field missing (`message_id`), a field of the
    /// wrong type, an unknown `kind` or `status`
    decode,
    /// JSON nested deeper than `json_limits::max_depth`
    too_deep,
    /// a body longer than `json_limits::max_bytes` (only a claim check can carry one)
    too_big,
    /// a claim check whose body cannot be fetched and never will be (no such key, no claim
    /// store configured); a store that fails transiently leaves the message to be redelivered
    claim_check,
};

/// The label of a reason: "decode", "too_deep", "too_big" or "claim_check".
[[nodiscard]] constexpr std::string_view to_string(dead_letter_reason r) noexcept {
    switch (r) {
        case dead_letter_reason::decode: return "decode";
        case dead_letter_reason::too_deep: return "too_deep";
        case dead_letter_reason::too_big: return "too_big";
        case dead_letter_reason::claim_check: return "claim_check";
    }
    return "decode";
}

/// The reason for a failed `saga::decode` of a body of `body_bytes` bytes: `too_big` or
/// `too_deep` for `errc::limit_exceeded` (by the body's size against the default
/// `json_limits`), `decode` for anything else.
[[nodiscard]] inline dead_letter_reason dead_letter_reason_of(const error& decode_error,
                                                              std::size_t body_bytes) noexcept {
    if (decode_error != errc::limit_exceeded) return dead_letter_reason::decode;
    return body_bytes > json_limits{}.max_bytes ? dead_letter_reason::too_big
                                                : dead_letter_reason::too_deep;
}

/// The counter of messages a transport dead-lettered on their first receive.
inline constexpr std::string_view dead_lettered_metric = "saga_messages_dead_lettered_total";

/// Declares `saga_messages_dead_lettered_total` in `m` (transports call it from `set_metrics`).
inline void describe_transport_metrics(metrics_registry& m) {
    m.describe(dead_lettered_metric, metric_type::counter,
               "Messages that could never be decoded, moved to the dead-letter queue on their "
               "first receive, by endpoint and reason (decode, too_deep, too_big, claim_check)");
}

/// A transport. Implementations are thread-safe; send and publish may complete on any thread.
///
/// A consumer's handler sees only messages that decode. A message that cannot (see
/// `dead_letter_reason`) goes to the endpoint's dead-letter queue on its first receive, with
/// its raw body and the reason, and is counted in `saga_messages_dead_lettered_total`.
class transport {
public:
    virtual ~transport() = default;

    /// Sends `message` to the queue `endpoint` (created on first use where the transport can).
    /// `done` gets `errc::transport_failure` (transient) or a permanent error.
    virtual void async_send(const std::string& endpoint, envelope message, send_handler done) = 0;

    /// Publishes `message` to `topic`: every endpoint subscribed to the topic gets a copy.
    virtual void async_publish(const std::string& topic, envelope message, send_handler done) = 0;

    /// Subscribes the queue `endpoint` to `topic`, so publications reach its consumers.
    /// Subscribing twice is not an error.
    [[nodiscard]] virtual result<void> subscribe(const std::string& topic,
                                                 const std::string& endpoint) = 0;

    /// Starts consuming `endpoint`: `handler` is called on `executor` for each delivery.
    /// One consumer per endpoint per process is the usual shape; several compete for messages.
    [[nodiscard]] virtual result<std::unique_ptr<subscription>> consume(
        const std::string& endpoint, boost::asio::any_io_executor executor,
        delivery_handler handler, consumer_options options = {}) = 0;

    /// Gives the transport a registry for its own metrics (`saga_messages_dead_lettered_total`).
    /// The engine calls it with its registry when it is constructed (like
    /// `state_store::set_metrics`); a process that only runs participants calls it itself.
    /// The default records nothing.
    virtual void set_metrics(std::shared_ptr<metrics_registry> metrics) { (void)metrics; }
};

}  // namespace saga
