#pragma once
/// @file sqs_transport.hpp
/// A `saga::transport` on Amazon SQS (endpoints are queues) and SNS (topics, fanned out to
/// queues with raw message delivery). Every message is the whole envelope as JSON
/// (`saga::encode`) in the SQS/SNS message body. See docs/sqs.md.
///
///     auto t = saga::sqs::sqs_transport::create({.region = "eu-west-1", .queue_prefix = "prod-"});
///     if (!t) return t.error();
///     engine_options{.transport = t.value(), ...};

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <saga/error.hpp>
#include <saga/log.hpp>
#include <saga/sqs/claim_check.hpp>
#include <saga/sqs/sigv4.hpp>
#include <saga/transport.hpp>

namespace saga::sqs {

/// Errors that AWS reported (category "saga.sqs"). Transient AWS failures (throttling, 5xx,
/// connection failures) are reported as `saga::errc::transport_failure` instead.
enum class aws_errc {
    /// not an error
    success = 0,
    /// AWS refused the request (HTTP 4xx); the message names AWS's error code and message
    client_error,
    /// the signature or the credentials were refused (HTTP 403)
    access_denied,
    /// the queue or topic does not exist and the transport does not own it
    not_found,
};

/// The category of `aws_errc`; every code of it is `saga::condition::permanent`.
[[nodiscard]] const std::error_category& aws_category() noexcept;
/// Makes an error code of `aws_category()`.
[[nodiscard]] inline std::error_code make_error_code(aws_errc e) noexcept {
    return {static_cast<int>(e), aws_category()};
}

/// Options of the SQS/SNS transport (designated initialisers; every field has a default).
struct sqs_options {
    // ---- where and who -----------------------------------------------------------------
    /// the AWS region; empty: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else an error
    std::string region;
    /// the SQS endpoint URL (http:// for a local emulator); empty: `AWS_ENDPOINT_URL_SQS`,
    /// else `AWS_ENDPOINT_URL`, else `https://sqs.<region>.amazonaws.com`
    std::string sqs_endpoint;
    /// the SNS endpoint URL; empty: `AWS_ENDPOINT_URL_SNS`, else `AWS_ENDPOINT_URL`, else
    /// `https://sns.<region>.amazonaws.com`
    std::string sns_endpoint;
    /// the credentials; empty: `load_credentials(credentials_source)`
    std::optional<credentials> creds;
    /// where `load_credentials` looks when `creds` is empty
    credentials_options credentials_source;
    /// a CA bundle (PEM) for TLS; empty: the system's default paths
    std::string ca_file;

    // ---- naming ------------------------------------------------------------------------
    /// prepended to every queue name (e.g. "prod-orders-"); the result is sanitised
    std::string queue_prefix;
    /// prepended to every topic name
    std::string topic_prefix;
    /// FIFO queues and topics (names end in `.fifo`): ordered per saga, deduplicated
    bool fifo = false;
    /// existing queues by endpoint name (endpoint -> queue URL): used as they are, never created
    std::map<std::string, std::string> queue_urls;
    /// existing topics by topic name (topic -> topic ARN): used as they are, never created
    std::map<std::string, std::string> topic_arns;
    /// create the queues, dead-letter queues, topics, subscriptions and queue policies the
    /// transport needs (and create them again when they vanish); false: they must exist
    bool create_resources = true;

    // ---- dead letters --------------------------------------------------------------------
    /// give every created queue a dead-letter queue, named endpoint + `dead_letter_suffix`
    bool dead_letter_queues = true;
    /// receives of one message before SQS moves it to the dead-letter queue
    std::uint32_t max_receive_count = 5;
    /// suffix of dead-letter queue endpoints; an endpoint ending in it gets no DLQ of its own
    std::string dead_letter_suffix = "-dlq";

    // ---- messages ----------------------------------------------------------------------
    /// largest body sent inline (SQS's limit is 256 KiB; moto allows 1 MiB); a larger one
    /// goes through `claim_checks`, or is refused (`errc::invalid_argument`, permanent)
    std::size_t max_message_size = 256 * 1024;
    /// where bodies over `max_message_size` are kept; null: such messages are refused
    std::shared_ptr<claim_check_store> claim_checks;

    // ---- consumers -----------------------------------------------------------------------
    /// long-poll wait of ReceiveMessage (0 to 20 s); 0 polls short, 100 ms apart when empty
    std::chrono::seconds wait_time{20};

    // ---- failures ------------------------------------------------------------------------
    /// attempts of one request before a transient failure is reported (1: no retry)
    std::uint32_t max_attempts = 6;
    /// backoff before the first retry; doubled every retry, with jitter, up to `max_backoff`
    duration initial_backoff = std::chrono::milliseconds{100};
    duration max_backoff = std::chrono::seconds{5};
    /// timeout of one HTTP request (on top of the long-poll wait for ReceiveMessage)
    duration request_timeout = std::chrono::seconds{10};
    /// idle keep-alive connections kept per host
    std::size_t max_idle_connections = 16;

    /// where the transport's log lines go (the core's sink interface, so an engine and its
    /// transport can share one; never a secret); null: JSON lines on stderr
    std::shared_ptr<saga::log_sink> log;
    /// the least important level written: info also logs queues, topics and subscriptions made
    saga::log_level log_level = saga::log_level::warn;
};

/// Name of the SQS queue for `endpoint` under `options` (prefix, sanitising, `.fifo`):
/// characters other than letters, digits, '-' and '_' become '-'. `errc::invalid_argument`
/// when the name is empty or longer than SQS's 80 characters.
[[nodiscard]] result<std::string> queue_name(const sqs_options& options, std::string_view endpoint);
/// Name of the SNS topic for `topic` under `options`; at most 256 characters.
[[nodiscard]] result<std::string> topic_name(const sqs_options& options, std::string_view topic);
/// The endpoint name of the dead-letter queue of `endpoint` (consume it like any endpoint).
[[nodiscard]] std::string dead_letter_endpoint(const sqs_options& options,
                                               std::string_view endpoint);

/// The SQS/SNS transport. Thread-safe. It owns one I/O thread (HTTP with keep-alive, long
/// polls, batching, retries) and one thread that calls send/publish completion handlers;
/// deliveries are posted to each consumer's executor. User code never runs on the I/O thread,
/// so the blocking calls (`subscribe`, `consume`, `queue_url`, `topic_arn`) may be made from
/// handlers and completions.
class sqs_transport final : public transport {
public:
    /// Creates the transport: resolves region, endpoints and credentials (nothing is sent yet).
    /// `errc::invalid_argument` naming what is missing or malformed.
    [[nodiscard]] static result<std::shared_ptr<sqs_transport>> create(sqs_options options);
    ~sqs_transport() override;
    sqs_transport(const sqs_transport&) = delete;
    sqs_transport& operator=(const sqs_transport&) = delete;

    /// Sends to the queue of `endpoint` (SendMessage, batched with concurrent sends). `done`
    /// gets `errc::transport_failure` after every retry failed transiently, an `aws_errc` on a
    /// 4xx, `errc::invalid_argument` on a bad name or an oversized message without claim store.
    void async_send(const std::string& endpoint, envelope message, send_handler done) override;
    /// Publishes to the SNS topic of `topic` (Publish/PublishBatch); errors as `async_send`.
    void async_publish(const std::string& topic, envelope message, send_handler done) override;
    /// Subscribes the queue of `endpoint` to the topic (raw delivery) and lets the topic send
    /// to the queue (queue policy). Blocks until done.
    [[nodiscard]] result<void> subscribe(const std::string& topic,
                                         const std::string& endpoint) override;
    /// Starts a long-poll loop on the queue of `endpoint` (created if owned). Blocks until the
    /// queue is resolved; `errc::invalid_argument` on bad options.
    [[nodiscard]] result<std::unique_ptr<subscription>> consume(
        const std::string& endpoint, boost::asio::any_io_executor executor,
        delivery_handler handler, consumer_options options = {}) override;

    /// The URL of the queue of `endpoint` (created if owned). Blocks.
    [[nodiscard]] result<std::string> queue_url(const std::string& endpoint);
    /// The ARN of the topic of `topic` (created if owned). Blocks.
    [[nodiscard]] result<std::string> topic_arn(const std::string& topic);
    /// The options in effect (region and endpoints resolved; credentials removed).
    [[nodiscard]] const sqs_options& options() const noexcept;
    /// Counts messages dead-lettered on their first receive in `metrics`
    /// (`saga_messages_dead_lettered_total{endpoint,reason}`); the engine calls it with its
    /// registry, a process with participants only calls it itself.
    void set_metrics(std::shared_ptr<metrics_registry> metrics) override;

    struct impl;

private:
    explicit sqs_transport(std::shared_ptr<impl> impl);
    std::shared_ptr<impl> impl_;
};

}  // namespace saga::sqs

template <>
struct std::is_error_code_enum<saga::sqs::aws_errc> : std::true_type {};
