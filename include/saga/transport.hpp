#pragma once
/// @file transport.hpp
/// The transport interface: point-to-point endpoints (queues) and topics with subscriptions,
/// consumed with ack/nack and redelivered after a visibility timeout (at-least-once).

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <saga/clock.hpp>
#include <saga/envelope.hpp>
#include <saga/error.hpp>

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

/// A transport. Implementations are thread-safe; send and publish may complete on any thread.
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
};

}  // namespace saga
