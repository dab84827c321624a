#include <saga/sqs/sqs_transport.hpp>

#include <saga/json_limits.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "aws_responses.hpp"
#include "http_client.hpp"

// How it works
// - One I/O thread runs an io_context; every AWS call is a coroutine on it, so the HTTP pool,
//   the caches (queue URLs, ARNs), the batchers and the consumers' bookkeeping are only touched
//   from that thread and need no lock. Public calls post to it; blocking calls wait on a future.
// - Sends and publishes are queued per destination and drained by one coroutine per
//   destination, up to 10 at a time (SendMessageBatch/PublishBatch; a single message uses
//   SendMessage/Publish). One drainer per destination keeps FIFO order.
// - A consumer is one long-poll coroutine: it receives up to min(10, free slots) messages and
//   posts each to the consumer's executor. A slot is held until the delivery is acked, nacked,
//   or its visibility timeout passes. Acks are batched like sends (DeleteMessageBatch).
// - Every AWS call is retried with exponential backoff and jitter while the failure is
//   transient; QueueDoesNotExist on an owned queue drops the cached URL and creates the queue
//   again (a restarted emulator loses its state), and NotFound on an owned topic likewise
//   re-creates the topic and the subscriptions made through this transport.
// - Completion handlers run on a separate one-thread pool, never on the I/O thread.
// - A received message that can never decode (dead_letter_reason) is not left to come back
//   max_receive_count times: it is sent, raw, to the endpoint's dead-letter queue through a
//   batcher of its own (attributes saying why), and deleted once that send succeeded. Its
//   in-flight slot is held until then, so a flood of junk is drained at the pace of those
//   calls and never floods memory. If the send fails, the message is left where it was: it
//   comes back after its visibility timeout, and SQS's redrive policy is still the backstop.
// - Coroutines hold a raw pointer to the impl: the impl joins the I/O thread and destroys the
//   io_context (and with it every suspended coroutine) before anything else goes. Deliveries
//   and subscriptions, which the user holds, have a weak_ptr.

#include "environment.hpp"

namespace saga::sqs {

using detail::env;

namespace asio = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;
using detail::json_string;
using detail::xml_text;

// ---- errors ---------------------------------------------------------------------------------

namespace {
class aws_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "saga.sqs"; }
    std::string message(int c) const override {
        switch (static_cast<aws_errc>(c)) {
            case aws_errc::success: return "success";
            case aws_errc::client_error: return "aws refused the request";
            case aws_errc::access_denied: return "aws refused the credentials or signature";
            case aws_errc::not_found: return "queue or topic not found";
        }
        return "unknown aws error";
    }
};
}  // namespace

const std::error_category& aws_category() noexcept {
    static const aws_category_impl c;
    return c;
}

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view claim_prefix = "saga-claim-check:";
constexpr std::size_t max_batch_bytes = 256 * 1024;
constexpr std::size_t max_batch_entries = 10;
/// batch requests in flight per destination (standard queues, acks)
constexpr std::size_t max_parallel_batches = 4;
/// message attributes SQS takes on one message
constexpr std::size_t max_message_attributes = 10;
/// the attributes a dead-lettered message gets (a copy's own ones, if any, make room for them)
constexpr std::string_view reason_attribute = "saga.dead_letter.reason";
constexpr std::string_view detail_attribute = "saga.dead_letter.detail";
constexpr std::string_view source_attribute = "saga.dead_letter.source";
constexpr std::string_view message_id_attribute = "saga.dead_letter.sqs_message_id";

/// Where a batcher sends: an endpoint's queue, a topic, or the dead-letter queue of an endpoint.
enum class route { queue, topic, dead_letter };

std::string first_of(std::initializer_list<std::string> values) {
    for (const auto& v : values)
        if (!v.empty()) return v;
    return {};
}

/// Form encoding of the query protocol (RFC 3986 unreserved characters stay).
std::string form_encode(std::string_view s) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 0x0f]);
        }
    }
    return out;
}

/// A FIFO MessageGroupId / MessageDeduplicationId: at most 128 printable ASCII characters;
/// anything else is replaced by its SHA-256.
std::string fifo_id(const std::string& s) {
    const bool ok = !s.empty() && s.size() <= 128 &&
                    std::all_of(s.begin(), s.end(), [](char c) { return c > 32 && c < 127; });
    return ok ? s : sha256_hex(s);
}

/// `s` as printable ASCII (anything else becomes '?'), at most `limit` bytes: decoder messages
/// may quote bytes of the junk they refused, and SQS attribute values and log lines want text.
std::string printable(std::string_view s, std::size_t limit = 1024) {
    std::string out;
    out.reserve(std::min(s.size(), limit));
    for (char ch : s.substr(0, limit)) out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
    return out;
}

bool transient_code(std::string_view code) {
    static const std::set<std::string_view> codes{"Throttling",
                                                  "ThrottlingException",
                                                  "ThrottledException",
                                                  "RequestThrottled",
                                                  "RequestThrottledException",
                                                  "TooManyRequestsException",
                                                  "ServiceUnavailable",
                                                  "InternalError",
                                                  "InternalFailure",
                                                  "KMSThrottlingException",
                                                  "RequestLimitExceeded",
                                                  "RequestTimeout",
                                                  "RequestTimeoutException"};
    return codes.contains(code);
}

}  // namespace

// ---- impl -----------------------------------------------------------------------------------

struct sqs_transport::impl : std::enable_shared_from_this<impl> {
    /// One AWS call's outcome: success with the response body, or an error and whether it is
    /// worth retrying; `aws_code` is AWS's error code when it sent one.
    struct outcome {
        bool ok = false;
        bool transient = false;
        std::string aws_code;
        saga::error err;
        std::string body;
        json doc;

        static outcome failure(saga::error e, bool transient, std::string code = {}) {
            outcome o;
            o.err = std::move(e);
            o.transient = transient;
            o.aws_code = std::move(code);
            return o;
        }
    };

    /// A message waiting to be sent or published.
    struct outgoing {
        std::string id;  // the envelope's message id, for errors
        std::string body;
        std::string group_id;
        std::string dedup_id;
        send_handler done;
        /// MessageAttributes (dead letters only): name -> {DataType, StringValue|BinaryValue}
        json attributes = json::object();
        /// bytes of `attributes` as SQS counts them (names, types and values)
        std::size_t attribute_bytes = 0;
        /// the transport's own sends (dead letters): called on the I/O thread instead of `done`,
        /// never once the transport is closing
        std::function<void(result<void>)> on_io;
    };

    struct batcher {
        std::deque<outgoing> pending;
        std::size_t workers = 0;  // drain coroutines running
    };

    struct ack_batcher {
        std::deque<std::pair<std::string, std::string>> pending;  // receipt handle, claim key
        std::size_t workers = 0;
    };

    struct consumer : std::enable_shared_from_this<consumer> {
        consumer(std::string ep, asio::any_io_executor ex, delivery_handler h, consumer_options o)
            : endpoint(std::move(ep)), executor(std::move(ex)), handler(std::move(h)), options(o) {}

        const std::string endpoint;
        const asio::any_io_executor executor;
        const delivery_handler handler;
        const consumer_options options;

        // I/O thread only
        std::map<std::uint64_t, std::chrono::steady_clock::time_point> open;  // slot deadlines
        std::unique_ptr<asio::steady_timer> wake;
        detail::cancel_handle poll;

        // any thread, under call_mutex
        std::mutex call_mutex;
        std::condition_variable call_cv;
        bool stopped = false;
        std::vector<std::thread::id> running;
        std::atomic<bool> stop_flag{false};
    };

    class delivery_impl;
    class subscription_impl;

    // ---- configuration (immutable after create) ---------------------------------------------
    sqs_options opts;
    credentials creds;
    detail::url sqs_url;
    detail::url sns_url;

    // ---- threads ------------------------------------------------------------------------------
    std::unique_ptr<asio::io_context> io = std::make_unique<asio::io_context>(1);
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::thread io_thread;
    asio::thread_pool completions{1};
    std::atomic<bool> closing{false};
    std::atomic<std::uint64_t> next_key{0};

    // ---- I/O thread state ---------------------------------------------------------------------
    std::shared_ptr<asio::ssl::context> tls;
    std::unique_ptr<detail::http_client> http;
    std::mt19937_64 rng{std::random_device{}()};
    std::map<std::string, std::string> queue_urls;                // endpoint -> URL
    std::map<std::string, std::string> queue_arns;                // endpoint -> ARN
    std::map<std::string, std::string> topic_arns;                // topic -> ARN
    std::set<std::pair<std::string, std::string>> subscriptions;  // (topic, endpoint)
    std::map<std::string, std::set<std::string>> queue_sources;   // endpoint -> topic ARNs
    std::map<std::string, batcher> send_batchers;                 // by endpoint
    std::map<std::string, batcher> publish_batchers;              // by topic
    std::map<std::string, batcher> dead_letter_batchers;          // by source endpoint
    /// endpoints of queues the transport does not own -> the URL of the dead-letter queue their
    /// RedrivePolicy names (empty: they have none)
    std::map<std::string, std::string> foreign_dead_letters;
    std::map<std::string, ack_batcher> ack_batchers;  // by endpoint
    std::vector<std::weak_ptr<consumer>> consumers;

    // ---- any thread -----------------------------------------------------------------------
    mutable std::mutex metrics_mutex;
    std::shared_ptr<metrics_registry> metrics;

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    ~impl() {
        closing = true;
        if (io_thread.joinable()) {
            asio::post(*io, [this] {
                for (auto& w : consumers)
                    if (auto c = w.lock()) {
                        c->poll.cancel();
                        if (c->wake) c->wake->cancel();
                    }
            });
            work.reset();
            io->stop();
            io_thread.join();
        }
        // what never went out is failed, not dropped
        // (a dead letter not sent yet stays in its source queue and comes back from there)
        for (auto* m : {&send_batchers, &publish_batchers})
            for (auto& [name, b] : *m)
                for (auto& o : b.pending)
                    complete(o.done, saga::error{errc::shutting_down,
                                                 "sqs: transport destroyed before message '" +
                                                     o.id + "' to '" + name + "' was sent"});
        completions.join();
        // consumers may outlive the transport (their subscriptions are the user's): their
        // timers must go before the io_context does
        for (auto& w : consumers)
            if (auto c = w.lock()) {
                c->wake.reset();
                c->poll.abort = nullptr;
            }
        http.reset();
        io.reset();  // destroys the suspended coroutines while the state they name exists
    }

    // ---- helpers ------------------------------------------------------------------------------

    void log(log_level level, std::string_view text) const {
        if (level < opts.log_level) return;
        saga::log_record r;
        r.at = std::chrono::time_point_cast<duration>(std::chrono::system_clock::now());
        r.level = level;
        r.message = std::string(text);
        r.fields = {{"component", "saga.sqs"}};
        static const auto fallback = std::make_shared<saga::json_lines_sink>(stderr);
        try {
            (opts.log ? *opts.log : *fallback).write(r);
        } catch (...) {
        }
    }

    void complete(const send_handler& done, result<void> r) {
        if (!done) return;
        asio::post(completions, [done, r = std::move(r)]() mutable { done(std::move(r)); });
    }

    /// Completes one outgoing message: the user's handler on the completion pool, or the
    /// transport's own continuation here on the I/O thread.
    void finish(outgoing& m, result<void> r) {
        if (m.on_io) {
            if (!closing) m.on_io(std::move(r));
            return;
        }
        complete(m.done, std::move(r));
    }

    void count_dead_letter(const std::string& endpoint, dead_letter_reason reason) {
        std::shared_ptr<metrics_registry> m;
        {
            std::lock_guard lock(metrics_mutex);
            m = metrics;
        }
        if (m)
            m->add(dead_lettered_metric,
                   {{"endpoint", endpoint}, {"reason", std::string{to_string(reason)}}});
    }

    [[nodiscard]] bool on_io_thread() const { return io->get_executor().running_in_this_thread(); }

    /// Runs `make()` (a coroutine) on the I/O thread and waits for its result.
    template <class T, class Make>
    result<T> blocking(Make make) {
        if (closing) return saga::error{errc::shutting_down, "sqs: transport is shutting down"};
        if (on_io_thread())
            return saga::error{errc::invalid_state,
                               "sqs: a blocking call was made on the transport's own thread"};
        try {
            // the promise lives in the coroutine: if the transport goes first, get() throws
            auto p = std::make_shared<std::promise<result<T>>>();
            auto f = p->get_future();
            asio::co_spawn(
                *io,
                [p, make = std::move(make)]() mutable -> asio::awaitable<void> {
                    p->set_value(co_await make());
                },
                asio::detached);
            p.reset();
            return f.get();
        } catch (const std::exception& e) {
            return saga::error{errc::shutting_down,
                               std::string{"sqs: call abandoned: "} + e.what()};
        }
    }

    duration backoff(std::uint32_t attempt) {
        auto d = opts.initial_backoff;
        for (std::uint32_t i = 1; i < attempt && d < opts.max_backoff; ++i) d *= 2;
        d = std::min(d, opts.max_backoff);
        const auto half = std::max<duration::rep>(d.count() / 2, 1);
        return duration{std::uniform_int_distribution<duration::rep>{half, half * 2}(rng)};
    }

    asio::awaitable<void> sleep(duration d) {
        asio::steady_timer t(*io, d);
        co_await t.async_wait(nothrow);
    }

    // ---- one AWS call -------------------------------------------------------------------------

    /// Signs and sends one request; classifies the answer.
    asio::awaitable<outcome> call_once(const detail::url& u, std::string_view service,
                                       std::string_view what, std::string content_type,
                                       std::string target, std::string body, duration timeout,
                                       detail::cancel_handle* cancel) {
        detail::http_request req{http::verb::post, u.path, 11};
        const auto date = amz_date_now();
        signing_request s{
            .method = "POST", .path = u.path, .query = {}, .headers = {}, .body = body};
        s.headers = {{"host", u.host_header}, {"x-amz-date", date}, {"content-type", content_type}};
        if (!target.empty()) s.headers.emplace_back("x-amz-target", target);
        if (!creds.session_token.empty())
            s.headers.emplace_back("x-amz-security-token", creds.session_token);
        auto sig = sign_v4(s, creds, opts.region, service);
        if (!sig) co_return outcome::failure(sig.error(), false);
        for (const auto& [name, value] : s.headers) req.set(name, value);
        req.set(http::field::authorization, sig.value().authorization);
        req.keep_alive(true);
        req.body() = std::move(body);

        auto res = co_await http->request(u, std::move(req), timeout, cancel);
        if (!res) {
            auto e = std::move(res).error();
            const bool cancelled = e.code == errc::cancelled;
            e.message = fmt::format("sqs: {} failed: {}", what, e.message);
            co_return outcome::failure(std::move(e), !cancelled);
        }
        auto& r = res.value();
        if (r.status >= 200 && r.status < 300) {
            outcome o;
            o.ok = true;
            o.body = std::move(r.body);
            co_return o;
        }
        // AWS's error code and message: JSON (__type, message) or XML (Code, Message)
        auto [code, message] = detail::parse_error_response(r.body);
        if (code == "QueueDoesNotExist" ||
            r.query_error.starts_with("AWS.SimpleQueueService.NonExistentQueue"))
            code = "QueueDoesNotExist";
        const bool transient = r.status >= 500 || r.status == 429 || transient_code(code);
        const auto text = fmt::format("sqs: {} failed: http {} {}: {}", what, r.status,
                                      code.empty() ? "(no aws error code)" : code, message);
        if (transient) co_return outcome::failure({errc::transport_failure, text}, true, code);
        const bool denied = r.status == 403 || code == "InvalidClientTokenId" ||
                            code == "SignatureDoesNotMatch" || code == "AccessDenied" ||
                            code == "AccessDeniedException";
        co_return outcome::failure(
            {make_error_code(denied ? aws_errc::access_denied : aws_errc::client_error), text},
            false, code);
    }

    asio::awaitable<outcome> sqs_once(std::string_view op, const json& body,
                                      detail::cancel_handle* cancel = nullptr,
                                      duration extra = duration{0}) {
        auto o = co_await call_once(sqs_url, "sqs", op, "application/x-amz-json-1.0",
                                    "AmazonSQS." + std::string{op}, body.dump(),
                                    opts.request_timeout + extra, cancel);
        if (o.ok) o.doc = detail::parse_sqs_response(o.body);
        co_return o;
    }

    asio::awaitable<outcome> sns_once(std::string_view action,
                                      const std::vector<std::pair<std::string, std::string>>& p) {
        std::string body = "Action=" + std::string{action} + "&Version=2010-03-31";
        for (const auto& [k, v] : p) body += '&' + form_encode(k) + '=' + form_encode(v);
        co_return co_await call_once(sns_url, "sns", action,
                                     "application/x-www-form-urlencoded; charset=utf-8", {},
                                     std::move(body), opts.request_timeout, nullptr);
    }

    /// Retries `attempt()` while it fails transiently, up to `max_attempts`.
    template <class Attempt>
    asio::awaitable<outcome> with_retries(std::string_view what, Attempt attempt) {
        outcome o;
        for (std::uint32_t n = 1;; ++n) {
            o = co_await attempt();
            if (o.ok || !o.transient || n >= opts.max_attempts || closing) break;
            const auto wait = backoff(n);
            log(log_level::warn, fmt::format("{} (attempt {} of {}); retrying in {} ms",
                                             o.err.message, n, opts.max_attempts, wait.count()));
            co_await sleep(wait);
        }
        if (!o.ok && o.transient && o.err.code != errc::transport_failure)
            o.err = saga::error{errc::transport_failure, o.err.message};
        (void)what;
        co_return o;
    }

    // ---- queues and topics --------------------------------------------------------------------

    [[nodiscard]] bool owns_queue(const std::string& endpoint) const {
        return opts.create_resources && !opts.queue_urls.contains(endpoint);
    }
    [[nodiscard]] bool owns_topic(const std::string& topic) const {
        return opts.create_resources && !opts.topic_arns.contains(topic);
    }
    [[nodiscard]] bool is_dead_letter(const std::string& endpoint) const {
        std::string_view base = endpoint;
        if (base.ends_with(".fifo")) base.remove_suffix(5);
        return !opts.dead_letter_suffix.empty() && base.ends_with(opts.dead_letter_suffix);
    }

    /// The queue URL of `endpoint` (in `body`), created when owned. One attempt.
    asio::awaitable<outcome> ensure_queue(const std::string& endpoint) {
        outcome o;
        if (auto it = opts.queue_urls.find(endpoint); it != opts.queue_urls.end()) {
            o.ok = true;
            o.body = it->second;
            co_return o;
        }
        if (auto it = queue_urls.find(endpoint); it != queue_urls.end()) {
            o.ok = true;
            o.body = it->second;
            co_return o;
        }
        auto name = queue_name(opts, endpoint);
        if (!name) co_return outcome::failure(name.error(), false);
        if (!opts.create_resources) {
            const json request_1 = {{"QueueName", name.value()}};
            o = co_await sqs_once("GetQueueUrl", request_1);
            if (!o.ok) {
                if (o.aws_code == "QueueDoesNotExist")
                    o.err =
                        saga::error{aws_errc::not_found,
                                    "sqs: queue '" + name.value() + "' of endpoint '" + endpoint +
                                        "' does not exist (create_resources is off)"};
                co_return o;
            }
        } else {
            json attributes = json::object();
            if (opts.fifo) attributes["FifoQueue"] = "true";
            if (opts.dead_letter_queues && !is_dead_letter(endpoint)) {
                const auto dlq = dead_letter_endpoint(opts, endpoint);
                auto d = co_await ensure_queue(dlq);
                if (!d.ok) co_return d;
                auto arn = co_await ensure_queue_arn(dlq);
                if (!arn.ok) co_return arn;
                attributes["RedrivePolicy"] =
                    json{{"deadLetterTargetArn", arn.body},
                         {"maxReceiveCount", std::to_string(opts.max_receive_count)}}
                        .dump();
            }
            json req{{"QueueName", name.value()}};
            if (!attributes.empty()) req["Attributes"] = attributes;
            o = co_await sqs_once("CreateQueue", req);
            const json request_2 = {{"QueueName", name.value()}};
            if (!o.ok && (o.aws_code == "QueueAlreadyExists" || o.aws_code == "QueueNameExists"))
                o = co_await sqs_once("GetQueueUrl", request_2);
            if (!o.ok) co_return o;
            log(log_level::info,
                fmt::format("sqs: queue '{}' ready for endpoint '{}'", name.value(), endpoint));
        }
        o.body = json_string(o.doc, "QueueUrl");
        if (o.body.empty())
            co_return outcome::failure(
                {errc::transport_failure, "sqs: no QueueUrl in the answer for '" + endpoint + "'"},
                true);
        queue_urls[endpoint] = o.body;
        co_return o;
    }

    asio::awaitable<outcome> ensure_queue_arn(const std::string& endpoint) {
        if (auto it = queue_arns.find(endpoint); it != queue_arns.end()) {
            outcome o;
            o.ok = true;
            o.body = it->second;
            co_return o;
        }
        auto u = co_await ensure_queue(endpoint);
        if (!u.ok) co_return u;
        const json request_3 = {{"QueueUrl", u.body}, {"AttributeNames", {"QueueArn"}}};
        auto o = co_await sqs_once("GetQueueAttributes", request_3);
        if (!o.ok) {
            if (o.aws_code == "QueueDoesNotExist") forget_queue(endpoint);
            co_return o;
        }
        o.body = o.doc.is_object() && o.doc.contains("Attributes")
                     ? json_string(o.doc["Attributes"], "QueueArn")
                     : std::string{};
        if (o.body.empty())
            co_return outcome::failure(
                {errc::transport_failure, "sqs: no QueueArn for endpoint '" + endpoint + "'"},
                true);
        queue_arns[endpoint] = o.body;
        co_return o;
    }

    void forget_queue(const std::string& endpoint) {
        queue_urls.erase(endpoint);
        queue_arns.erase(endpoint);
        if (opts.dead_letter_queues) {
            const auto dlq = dead_letter_endpoint(opts, endpoint);
            queue_urls.erase(dlq);
            queue_arns.erase(dlq);
        }
        // the subscriptions into it are gone with it
        for (auto it = subscriptions.begin(); it != subscriptions.end();)
            it = it->second == endpoint ? subscriptions.erase(it) : std::next(it);
    }

    /// True when `endpoint` surely has no dead-letter queue (known from the options alone, so
    /// any thread may ask); `why` then says why.
    [[nodiscard]] bool surely_no_dead_letter(const std::string& endpoint, std::string& why) const {
        if (is_dead_letter(endpoint)) {
            why = "it is a dead-letter queue itself";
            return true;
        }
        if (owns_queue(endpoint) && !opts.dead_letter_queues) {
            why = "dead_letter_queues is off";
            return true;
        }
        return false;
    }

    /// The URL of the dead-letter queue of `endpoint` (in `body`): for a queue the transport
    /// owns, the queue of `dead_letter_endpoint` (created when missing); for another, the queue
    /// its RedrivePolicy names. `errc::not_found` (permanent) saying why when there is none.
    /// One attempt.
    asio::awaitable<outcome> dead_letter_queue(const std::string& endpoint) {
        std::string why;
        if (surely_no_dead_letter(endpoint, why))
            co_return outcome::failure({errc::not_found, why}, false);
        if (owns_queue(endpoint))
            co_return co_await ensure_queue(dead_letter_endpoint(opts, endpoint));
        const std::string none = "its queue has no RedrivePolicy naming a dead-letter queue";
        if (auto it = foreign_dead_letters.find(endpoint); it != foreign_dead_letters.end()) {
            if (it->second.empty()) co_return outcome::failure({errc::not_found, none}, false);
            outcome o;
            o.ok = true;
            o.body = it->second;
            co_return o;
        }
        auto q = co_await ensure_queue(endpoint);
        if (!q.ok) co_return q;
        const json request_11 = {{"QueueUrl", q.body}, {"AttributeNames", {"RedrivePolicy"}}};
        auto a = co_await sqs_once("GetQueueAttributes", request_11);
        if (!a.ok) co_return a;
        std::string arn;
        if (const auto attributes = a.doc.find("Attributes"); attributes != a.doc.end())
            if (const auto text = json_string(*attributes, "RedrivePolicy"); !text.empty())
                if (auto policy = parse_json(text, "RedrivePolicy"); policy)
                    arn = json_string(policy.value(), "deadLetterTargetArn");
        // arn:aws:sqs:<region>:<account>:<queue name>
        std::vector<std::string> parts;
        for (std::size_t from = 0;;) {
            const auto colon = arn.find(':', from);
            parts.push_back(arn.substr(from, colon - from));
            if (colon == std::string::npos) break;
            from = colon + 1;
        }
        if (arn.empty() || parts.size() != 6 || parts[5].empty()) {
            foreign_dead_letters[endpoint] = {};
            co_return outcome::failure({errc::not_found, none}, false);
        }
        json lookup = {{"QueueName", parts[5]}};
        if (!parts[4].empty()) lookup["QueueOwnerAWSAccountId"] = parts[4];
        auto u = co_await sqs_once("GetQueueUrl", lookup);
        if (!u.ok) co_return u;
        u.body = json_string(u.doc, "QueueUrl");
        if (u.body.empty())
            co_return outcome::failure(
                {errc::transport_failure,
                 "sqs: no QueueUrl in the answer for dead-letter queue '" + arn + "'"},
                true);
        foreign_dead_letters[endpoint] = u.body;
        co_return u;
    }

    /// The topic ARN of `topic` (in `body`), created when owned. One attempt.
    asio::awaitable<outcome> ensure_topic(const std::string& topic) {
        outcome o;
        if (auto it = opts.topic_arns.find(topic); it != opts.topic_arns.end()) {
            o.ok = true;
            o.body = it->second;
            co_return o;
        }
        if (auto it = topic_arns.find(topic); it != topic_arns.end()) {
            o.ok = true;
            o.body = it->second;
            co_return o;
        }
        auto name = topic_name(opts, topic);
        if (!name) co_return outcome::failure(name.error(), false);
        if (!opts.create_resources)
            co_return outcome::failure(
                {aws_errc::not_found,
                 "sqs: topic '" + topic + "' has no ARN in topic_arns and create_resources is off"},
                false);
        std::vector<std::pair<std::string, std::string>> p{{"Name", name.value()}};
        if (opts.fifo) {
            p.emplace_back("Attributes.entry.1.key", "FifoTopic");
            p.emplace_back("Attributes.entry.1.value", "true");
        }
        o = co_await sns_once("CreateTopic", p);
        if (!o.ok) co_return o;
        o.body = xml_text(o.body, "TopicArn");
        if (o.body.empty())
            co_return outcome::failure(
                {errc::transport_failure, "sqs: no TopicArn for topic '" + topic + "'"}, true);
        topic_arns[topic] = o.body;
        log(log_level::info, fmt::format("sqs: topic '{}' ready for '{}'", o.body, topic));
        co_return o;
    }

    /// Subscribes the queue of `endpoint` to `topic` (raw delivery) and sets the queue policy.
    asio::awaitable<outcome> subscribe_once(const std::string& topic, const std::string& endpoint) {
        outcome done;
        done.ok = true;
        if (subscriptions.contains({topic, endpoint})) co_return done;
        auto t = co_await ensure_topic(topic);
        if (!t.ok) co_return t;
        auto q = co_await ensure_queue_arn(endpoint);
        if (!q.ok) co_return q;
        if (owns_queue(endpoint)) {
            // let SNS topics of ours (and any given by ARN) send to the queue
            auto& sources = queue_sources[endpoint];
            sources.insert(t.body);
            json arns = json::array();
            // arn:aws:sns:region:account:name -> arn:aws:sns:region:account:<prefix>*
            const auto colon = t.body.rfind(':');
            if (colon != std::string::npos)
                arns.push_back(t.body.substr(0, colon + 1) + opts.topic_prefix + "*");
            for (const auto& s : sources) arns.push_back(s);
            const json policy{
                {"Version", "2012-10-17"},
                {"Statement",
                 json::array({{{"Sid", "saga-sns-to-sqs"},
                               {"Effect", "Allow"},
                               {"Principal", {{"Service", "sns.amazonaws.com"}}},
                               {"Action", "sqs:SendMessage"},
                               {"Resource", q.body},
                               {"Condition", {{"ArnLike", {{"aws:SourceArn", arns}}}}}}})}};
            const json request_4 = {{"QueueUrl", queue_urls[endpoint]},
                                    {"Attributes", {{"Policy", policy.dump()}}}};
            auto p = co_await sqs_once("SetQueueAttributes", request_4);
            if (!p.ok) {
                if (p.aws_code == "QueueDoesNotExist") forget_queue(endpoint);
                co_return p;
            }
        }
        const std::vector<std::pair<std::string, std::string>> request_5 = {
            {"TopicArn", t.body},
            {"Protocol", "sqs"},
            {"Endpoint", q.body},
            {"Attributes.entry.1.key", "RawMessageDelivery"},
            {"Attributes.entry.1.value", "true"},
            {"ReturnSubscriptionArn", "true"}};
        auto s = co_await sns_once("Subscribe", request_5);
        if (!s.ok) {
            if (s.aws_code == "NotFound") topic_arns.erase(topic);
            co_return s;
        }
        subscriptions.insert({topic, endpoint});
        log(log_level::info,
            fmt::format("sqs: endpoint '{}' subscribed to topic '{}'", endpoint, topic));
        co_return done;
    }

    // ---- sending --------------------------------------------------------------------------

    /// Builds what goes on the wire; a message over the size limit goes through the claim store.
    result<outgoing> prepare(const envelope& message) {
        outgoing o;
        o.id = message.message_id;
        o.body = encode(message);
        if (o.body.size() > opts.max_message_size) {
            if (!opts.claim_checks)
                return saga::error{
                    errc::invalid_argument,
                    fmt::format("sqs: message '{}' is {} bytes, over the limit of {} bytes, and "
                                "no claim_checks store is configured",
                                message.message_id, o.body.size(), opts.max_message_size)};
            const auto key = fmt::format(
                "{}-{}-{}", sha256_hex(message.message_id).substr(0, 16),
                std::chrono::steady_clock::now().time_since_epoch().count(), ++next_key);
            if (auto r = opts.claim_checks->put(key, o.body); !r)
                return saga::error{r.error().code,
                                   fmt::format("sqs: cannot store the claim check of message "
                                               "'{}': {}",
                                               message.message_id, r.error().message)};
            o.body = std::string{claim_prefix} + key;
        }
        if (opts.fifo) {
            o.group_id = fifo_id(first_of({message.saga_id, message.correlation_id,
                                           message.message_id, std::string{"saga"}}));
            o.dedup_id =
                fifo_id(message.message_id.empty() ? sha256_hex(o.body) : message.message_id);
        }
        return o;
    }

    std::map<std::string, batcher>& batchers(route r) {
        switch (r) {
            case route::topic: return publish_batchers;
            case route::dead_letter: return dead_letter_batchers;
            case route::queue: break;
        }
        return send_batchers;
    }

    /// Queues `o` for `name` (an endpoint, a topic, or the endpoint whose dead-letter queue
    /// takes it). Call on the I/O thread.
    void enqueue_here(route r, const std::string& name, outgoing o) {
        auto& b = batchers(r)[name];
        b.pending.push_back(std::move(o));
        // one request in flight per FIFO destination keeps the order; more otherwise
        const std::size_t limit = opts.fifo ? 1 : max_parallel_batches;
        if (b.workers >= limit || b.workers * max_batch_entries >= b.pending.size()) return;
        ++b.workers;
        asio::co_spawn(*io, drain(r, name), asio::detached);
    }

    void enqueue(route r, const std::string& name, outgoing o) {
        asio::post(*io, [this, r, name, o = std::move(o)]() mutable {
            enqueue_here(r, name, std::move(o));
        });
    }

    asio::awaitable<void> drain(route r, std::string name) {
        auto& b = batchers(r)[name];
        while (!b.pending.empty()) {
            std::vector<outgoing> batch;
            std::size_t bytes = 0;
            const auto size = [](const outgoing& m) { return m.body.size() + m.attribute_bytes; };
            while (!b.pending.empty() && batch.size() < max_batch_entries &&
                   (batch.empty() || bytes + size(b.pending.front()) <= max_batch_bytes)) {
                bytes += size(b.pending.front());
                batch.push_back(std::move(b.pending.front()));
                b.pending.pop_front();
            }
            co_await send_batch(r, name, std::move(batch));
        }
        --b.workers;
    }

    /// Sends (or publishes) `batch`, retrying the entries that failed transiently.
    asio::awaitable<void> send_batch(route r, const std::string& name,
                                     std::vector<outgoing> batch) {
        const char* what = r == route::topic         ? "publish to topic"
                           : r == route::dead_letter ? "dead-letter send from endpoint"
                                                     : "send to endpoint";
        saga::error last;
        for (std::uint32_t n = 1; !batch.empty(); ++n) {
            // Not `topic ? co_await a : co_await b`: g++ 12 destroys the result of a co_await
            // inside a conditional expression twice.
            outcome o;
            if (r == route::topic) {
                o = co_await publish_attempt(name, batch);
            } else {
                o = co_await send_attempt(name, batch, r == route::dead_letter);
            }
            // `o.ok`: the call went through; `batch` now holds only what failed transiently
            if (!o.ok) {
                if (!o.transient) {
                    for (auto& m : batch) finish(m, o.err);
                    co_return;
                }
                last = o.err;
            } else {
                last = saga::error{errc::transport_failure,
                                   fmt::format("sqs: {} '{}' failed for some entries", what, name)};
            }
            if (batch.empty()) co_return;
            if (n >= opts.max_attempts || closing) break;
            const auto wait = backoff(n);
            log(log_level::warn,
                fmt::format("{} (attempt {} of {}); retrying {} message(s) in "
                            "{} ms",
                            last.message, n, opts.max_attempts, batch.size(), wait.count()));
            co_await sleep(wait);
        }
        for (auto& m : batch)
            finish(m, saga::error{
                          errc::transport_failure,
                          fmt::format("{} (after {} attempts)", last.message, opts.max_attempts)});
    }

    /// Handles the per-entry answer of a batch call: completes the successful and the
    /// permanently failed entries, leaves the transiently failed ones in `batch`.
    void settle_entries(std::vector<outgoing>& batch, const std::set<std::string>& failed_ids,
                        const std::map<std::string, saga::error>& permanent) {
        std::vector<outgoing> retry;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto id = std::to_string(i);
            if (auto p = permanent.find(id); p != permanent.end()) {
                finish(batch[i], p->second);
            } else if (failed_ids.contains(id)) {
                retry.push_back(std::move(batch[i]));
            } else {
                finish(batch[i], success());
            }
        }
        batch = std::move(retry);
    }

    /// Sends `batch` to the queue of `endpoint`, or (`dead_letter`) to its dead-letter queue.
    asio::awaitable<outcome> send_attempt(const std::string& endpoint, std::vector<outgoing>& batch,
                                          bool dead_letter = false) {
        outcome q;
        if (dead_letter) {
            q = co_await dead_letter_queue(endpoint);
        } else {
            q = co_await ensure_queue(endpoint);
        }
        if (!q.ok) co_return q;
        // a dead-letter queue is FIFO exactly when its source is (SQS's rule): its URL says so
        const bool fifo = !dead_letter || q.body.ends_with(".fifo");
        const auto entry = [&](outgoing& m, json e) {
            if (fifo && !m.group_id.empty()) e["MessageGroupId"] = m.group_id;
            if (fifo && !m.dedup_id.empty()) e["MessageDeduplicationId"] = m.dedup_id;
            if (!m.attributes.empty()) e["MessageAttributes"] = m.attributes;
            return e;
        };
        outcome o;
        if (batch.size() == 1) {
            const json req =
                entry(batch[0], {{"QueueUrl", q.body}, {"MessageBody", batch[0].body}});
            o = co_await sqs_once("SendMessage", req);
            if (o.ok) settle_entries(batch, {}, {});
        } else {
            json entries = json::array();
            for (std::size_t i = 0; i < batch.size(); ++i)
                entries.push_back(
                    entry(batch[i], {{"Id", std::to_string(i)}, {"MessageBody", batch[i].body}}));
            const json request_6 = {{"QueueUrl", q.body}, {"Entries", entries}};
            o = co_await sqs_once("SendMessageBatch", request_6);
            if (o.ok) {
                std::set<std::string> failed;
                std::map<std::string, saga::error> permanent;
                for (const auto& f : detail::sqs_batch_failures(o.doc)) {
                    failed.insert(f.id);
                    if (f.sender_fault && !transient_code(f.code))
                        permanent.emplace(
                            f.id, saga::error{aws_errc::client_error,
                                              fmt::format("sqs: send to endpoint '{}' refused "
                                                          "by aws: {}: {}",
                                                          endpoint, f.code, f.message)});
                }
                settle_entries(batch, failed, permanent);
            }
        }
        if (!o.ok && o.aws_code == "QueueDoesNotExist" && dead_letter) {
            // look it up (and, if it is ours, create it) again on the next attempt
            if (owns_queue(endpoint)) {
                const auto dlq = dead_letter_endpoint(opts, endpoint);
                log(log_level::warn, fmt::format("sqs: dead-letter queue '{}' does not exist any "
                                                 "more; creating it again",
                                                 dlq));
                queue_urls.erase(dlq);
                queue_arns.erase(dlq);
                o.transient = true;
            } else if (foreign_dead_letters.erase(endpoint) > 0) {
                o.transient = true;
            }
        } else if (!o.ok && o.aws_code == "QueueDoesNotExist" && owns_queue(endpoint)) {
            log(log_level::warn,
                fmt::format("sqs: queue of endpoint '{}' does not exist any more; creating it "
                            "again",
                            endpoint));
            forget_queue(endpoint);
            o.transient = true;
        }
        co_return o;
    }

    asio::awaitable<outcome> publish_attempt(const std::string& topic,
                                             std::vector<outgoing>& batch) {
        auto t = co_await ensure_topic(topic);
        if (!t.ok) co_return t;
        outcome o;
        std::vector<std::pair<std::string, std::string>> p{{"TopicArn", t.body}};
        if (batch.size() == 1) {
            p.emplace_back("Message", batch[0].body);
            if (!batch[0].group_id.empty()) p.emplace_back("MessageGroupId", batch[0].group_id);
            if (!batch[0].dedup_id.empty())
                p.emplace_back("MessageDeduplicationId", batch[0].dedup_id);
            o = co_await sns_once("Publish", p);
            if (o.ok) settle_entries(batch, {}, {});
        } else {
            for (std::size_t i = 0; i < batch.size(); ++i) {
                const auto m = fmt::format("PublishBatchRequestEntries.member.{}.", i + 1);
                p.emplace_back(m + "Id", std::to_string(i));
                p.emplace_back(m + "Message", batch[i].body);
                if (!batch[i].group_id.empty())
                    p.emplace_back(m + "MessageGroupId", batch[i].group_id);
                if (!batch[i].dedup_id.empty())
                    p.emplace_back(m + "MessageDeduplicationId", batch[i].dedup_id);
            }
            o = co_await sns_once("PublishBatch", p);
            if (o.ok) {
                std::set<std::string> failed;
                std::map<std::string, saga::error> permanent;
                for (const auto& f : detail::sns_batch_failures(o.body)) {
                    failed.insert(f.id);
                    if (f.sender_fault && !transient_code(f.code))
                        permanent.emplace(
                            f.id, saga::error{aws_errc::client_error,
                                              fmt::format("sqs: publish to topic '{}' refused by "
                                                          "aws: {}: {}",
                                                          topic, f.code, f.message)});
                }
                settle_entries(batch, failed, permanent);
            }
        }
        if (!o.ok && o.aws_code == "NotFound" && owns_topic(topic)) {
            log(log_level::warn,
                fmt::format("sqs: topic '{}' does not exist any more; creating it again", topic));
            topic_arns.erase(topic);
            // its subscriptions went with it: make them again before the retry
            std::vector<std::string> endpoints;
            for (auto it = subscriptions.begin(); it != subscriptions.end();) {
                if (it->first == topic) {
                    endpoints.push_back(it->second);
                    it = subscriptions.erase(it);
                } else {
                    ++it;
                }
            }
            for (const auto& ep : endpoints) {
                forget_queue(ep);
                auto s = co_await subscribe_once(topic, ep);
                if (!s.ok) {
                    // remember it, so the next retry tries again
                    subscriptions.erase({topic, ep});
                    pending_resubscribe.insert({topic, ep});
                }
            }
            o.transient = true;
        }
        // subscriptions that could not be made again last time
        for (auto it = pending_resubscribe.begin(); it != pending_resubscribe.end();) {
            if (it->first != topic) {
                ++it;
                continue;
            }
            auto s = co_await subscribe_once(it->first, it->second);
            it = s.ok ? pending_resubscribe.erase(it) : std::next(it);
        }
        co_return o;
    }
    std::set<std::pair<std::string, std::string>> pending_resubscribe;

    // ---- consuming ----------------------------------------------------------------------------

    asio::awaitable<void> poll_loop(std::shared_ptr<consumer> c);
    void settle(const std::shared_ptr<consumer>& c, std::uint64_t slot);
    void change_visibility(const std::string& endpoint, std::string receipt, duration d,
                           std::string why);
    void ack(const std::string& endpoint, std::string receipt, std::string claim_key);
    asio::awaitable<void> drain_acks(std::string endpoint);
    void dead_letter(const std::shared_ptr<consumer>& c, std::uint64_t slot, std::string receipt,
                     outgoing copy, std::string what, dead_letter_reason reason);
};

// ---- deliveries -----------------------------------------------------------------------------

class sqs_transport::impl::delivery_impl final : public delivery {
public:
    delivery_impl(std::weak_ptr<impl> owner, std::shared_ptr<consumer> c, std::uint64_t slot,
                  detail::received_message m)
        : owner_(std::move(owner)),
          consumer_(std::move(c)),
          slot_(slot),
          sqs_id_(std::move(m.id)),
          receipt_(std::move(m.receipt)),
          body_(std::move(m.body)),
          count_(m.receive_count),
          group_id_(std::move(m.group_id)),
          attributes_(std::move(m.attributes)) {}

    [[nodiscard]] const envelope& message() const override { return env_; }
    [[nodiscard]] std::uint32_t delivery_count() const override { return count_; }

    void ack() override {
        if (settled_.exchange(true)) return;
        if (auto s = owner_.lock()) {
            auto* raw = s.get();
            asio::post(*s->io,
                       [raw, c = consumer_, slot = slot_, receipt = receipt_, key = claim_key_] {
                           raw->settle(c, slot);
                           raw->ack(c->endpoint, receipt, key);
                       });
        }
    }
    void nack(duration delay) override { give_back(delay, "nacked", true); }
    void extend(duration timeout) override {
        if (settled_) return;
        if (auto s = owner_.lock()) {
            auto* raw = s.get();
            asio::post(*s->io, [raw, c = consumer_, slot = slot_, receipt = receipt_, timeout] {
                if (auto it = c->open.find(slot); it != c->open.end())
                    it->second = std::chrono::steady_clock::now() + timeout;
                raw->change_visibility(c->endpoint, receipt, timeout, "extend");
            });
        }
    }

    /// Gives the message back after `delay`: nack, or a delivery that never reached a handler.
    void give_back(duration delay, std::string why, bool seen) {
        if (settled_.exchange(true)) return;
        if (auto s = owner_.lock()) {
            if (seen && s->opts.dead_letter_queues && count_ >= s->opts.max_receive_count)
                s->log(log_level::warn,
                       fmt::format("sqs: message '{}' (sqs id {}) on endpoint '{}' was {} on "
                                   "receive {} of {}: it goes to the dead-letter queue",
                                   env_.message_id, sqs_id_, consumer_->endpoint, why, count_,
                                   s->opts.max_receive_count));
            auto* raw = s.get();
            asio::post(*s->io, [raw, c = consumer_, slot = slot_, receipt = receipt_, delay,
                                why = std::move(why)] {
                raw->settle(c, slot);
                raw->change_visibility(c->endpoint, receipt, delay, why);
            });
        }
    }

    /// Decodes the body (fetching a claim check). False on a poison message, which no handler
    /// sees: see `poison`.
    bool prepare(impl& s) {
        std::string text = body_;
        if (std::string_view{text}.starts_with(claim_prefix)) {
            claim_key_ = text.substr(claim_prefix.size());
            if (!s.opts.claim_checks)
                return poison(s, dead_letter_reason::claim_check,
                              "it is a claim check and no claim_checks store is configured", true);
            auto r = s.opts.claim_checks->get(claim_key_);
            if (!r)
                return poison(s, dead_letter_reason::claim_check,
                              "claim check '" + claim_key_ + "': " + r.error().message,
                              !r.error().transient());
            text = std::move(r).value();
        }
        auto e = decode(text);
        if (!e)
            return poison(s, dead_letter_reason_of(e.error(), text.size()), e.error().message,
                          true);
        env_ = std::move(e).value();
        return true;
    }

    /// A message that did not decode. Never (`permanent`): it goes to the endpoint's
    /// dead-letter queue now, and is deleted once it is there. Not now (a claim store failing
    /// transiently), or with no dead-letter queue to go to: it is left to come back after its
    /// visibility timeout (and SQS's redrive policy, if any, moves it after max_receive_count
    /// receives). Logged at warn either way, with the SQS message id, endpoint and reason.
    bool poison(impl& s, dead_letter_reason reason, std::string_view detail, bool permanent) {
        if (settled_.exchange(true)) return false;
        const auto why = printable(detail);
        auto what = fmt::format(
            "sqs: poison message (sqs id {}) on endpoint '{}', receive {}: {}: {}",
            printable(sqs_id_), printable(consumer_->endpoint), count_, to_string(reason), why);
        auto* raw = &s;
        std::string no_dead_letter;
        if (!permanent || s.surely_no_dead_letter(consumer_->endpoint, no_dead_letter)) {
            s.log(log_level::warn,
                  permanent ? fmt::format("{}; it cannot go to a dead-letter queue ({}), so it "
                                          "stays in the queue and comes back after its "
                                          "visibility timeout",
                                          what, no_dead_letter)
                            : fmt::format("{}; the claim store may answer later, so it comes back "
                                          "after its visibility timeout",
                                          what));
            asio::post(*s.io, [raw, c = consumer_, slot = slot_] { raw->settle(c, slot); });
            return false;
        }
        asio::post(*s.io, [raw, c = consumer_, slot = slot_, receipt = receipt_,
                           copy = dead_letter_copy(reason, why), what = std::move(what),
                           reason]() mutable {
            raw->dead_letter(c, slot, std::move(receipt), std::move(copy), std::move(what), reason);
        });
        return false;
    }

    /// What goes to the dead-letter queue: the raw body (a claim check stays a reference), the
    /// message group, the message's own attributes as far as they leave room, and ours.
    [[nodiscard]] outgoing dead_letter_copy(dead_letter_reason reason,
                                            const std::string& why) const {
        outgoing o;
        o.id = sqs_id_;
        o.body = body_;
        o.group_id = fifo_id(group_id_.empty() ? std::string{"saga-dead-letter"} : group_id_);
        o.dedup_id = fifo_id(sqs_id_.empty() ? sha256_hex(body_) : sqs_id_);
        const auto text = [](std::string_view v) {
            return json{{"DataType", "String"}, {"StringValue", std::string{v}}};
        };
        json ours = json::object();
        ours[std::string{reason_attribute}] = text(to_string(reason));
        ours[std::string{detail_attribute}] = text(why.empty() ? std::string{"-"} : why);
        ours[std::string{source_attribute}] = text(printable(consumer_->endpoint, 256));
        if (!sqs_id_.empty()) ours[std::string{message_id_attribute}] = text(printable(sqs_id_));
        for (const auto& [name, v] : attributes_.items()) {
            if (o.attributes.size() + ours.size() >= max_message_attributes) break;
            if (!ours.contains(name)) o.attributes[name] = v;
        }
        o.attributes.update(ours);
        for (const auto& [name, v] : o.attributes.items()) {
            o.attribute_bytes += name.size();
            for (const auto& [field, value] : v.items())
                if (value.is_string())
                    o.attribute_bytes += value.get_ref<const std::string&>().size();
        }
        return o;
    }

    [[nodiscard]] bool orphaned() const { return owner_.expired(); }
    [[nodiscard]] std::shared_ptr<impl> owner() const { return owner_.lock(); }

private:
    std::weak_ptr<impl> owner_;
    std::shared_ptr<consumer> consumer_;
    std::uint64_t slot_;
    std::string sqs_id_;
    std::string receipt_;
    std::string body_;
    std::uint32_t count_;
    std::string group_id_;
    json attributes_;
    std::string claim_key_;
    envelope env_;
    std::atomic<bool> settled_{false};
};

class sqs_transport::impl::subscription_impl final : public subscription {
public:
    subscription_impl(std::weak_ptr<impl> owner, std::shared_ptr<consumer> c)
        : owner_(std::move(owner)), consumer_(std::move(c)) {}
    ~subscription_impl() override { stop(); }

    void stop() override {
        auto& c = *consumer_;
        {
            std::lock_guard lock(c.call_mutex);
            if (c.stopped) return;
            c.stopped = true;
            c.stop_flag = true;
        }
        if (auto s = owner_.lock())
            asio::post(*s->io, [c = consumer_] {
                c->poll.cancel();
                if (c->wake) c->wake->cancel();
            });
        const auto self = std::this_thread::get_id();
        std::unique_lock lock(c.call_mutex);
        c.call_cv.wait(lock, [&] {
            return c.running.empty() || (c.running.size() == 1 && c.running.front() == self);
        });
    }

private:
    std::weak_ptr<impl> owner_;
    std::shared_ptr<consumer> consumer_;
};

namespace {

void invoke(const std::shared_ptr<sqs_transport::impl::consumer>& c,
            const std::shared_ptr<sqs_transport::impl::delivery_impl>& d) {
    auto owner = d->owner();
    if (!owner) return;
    const auto self = std::this_thread::get_id();
    bool started = false;
    {
        std::lock_guard lock(c->call_mutex);
        started = !c->stopped;
        if (started) c->running.push_back(self);
    }
    if (!started) {
        d->give_back(duration{0}, "returned by a stopped consumer", false);
        return;
    }
    if (d->prepare(*owner)) {
        owner.reset();  // the handler may destroy the transport
        try {
            c->handler(d);
        } catch (...) {
            // neither acked nor nacked: the visibility timeout brings it back
        }
    }
    {
        std::lock_guard lock(c->call_mutex);
        c->running.erase(std::find(c->running.begin(), c->running.end(), self));
    }
    c->call_cv.notify_all();
}

}  // namespace

void sqs_transport::impl::settle(const std::shared_ptr<consumer>& c, std::uint64_t slot) {
    if (c->open.erase(slot) && c->wake) c->wake->cancel();
}

void sqs_transport::impl::change_visibility(const std::string& endpoint, std::string receipt,
                                            duration d, std::string why) {
    const auto seconds = std::clamp<std::int64_t>((d.count() + 999) / 1000, 0, 43200);
    asio::co_spawn(
        *io,
        [this, endpoint, receipt = std::move(receipt), seconds,
         why = std::move(why)]() -> asio::awaitable<void> {
            auto o = co_await with_retries("ChangeMessageVisibility", [&]() {
                return [](impl* self, const std::string& ep, const std::string& r,
                          std::int64_t secs) -> asio::awaitable<outcome> {
                    auto q = co_await self->ensure_queue(ep);
                    if (!q.ok) co_return q;
                    const json request_7 = {
                        {"QueueUrl", q.body}, {"ReceiptHandle", r}, {"VisibilityTimeout", secs}};
                    co_return co_await self->sqs_once("ChangeMessageVisibility", request_7);
                }(this, endpoint, receipt, seconds);
            });
            if (!o.ok)
                log(log_level::error, fmt::format("sqs: {} of a message on endpoint '{}' failed "
                                                  "(it comes back after its visibility timeout): "
                                                  "{}",
                                                  why, endpoint, o.err.message));
        },
        asio::detached);
}

void sqs_transport::impl::dead_letter(const std::shared_ptr<consumer>& c, std::uint64_t slot,
                                      std::string receipt, outgoing copy, std::string what,
                                      dead_letter_reason reason) {
    copy.on_io = [this, c, slot, receipt = std::move(receipt), what = std::move(what),
                  reason](result<void> r) {
        settle(c, slot);
        if (r) {
            // deleted only now that the copy is safe; a claim check's body stays in its store,
            // as the copy refers to it
            ack(c->endpoint, receipt, {});
            count_dead_letter(c->endpoint, reason);
            log(log_level::warn, what + "; moved to the dead-letter queue");
        } else if (r.error() == errc::not_found) {
            log(log_level::warn,
                fmt::format("{}; the endpoint has no dead-letter queue ({}), so it stays in the "
                            "queue and comes back after its visibility timeout",
                            what, r.error().message));
        } else {
            log(log_level::error,
                fmt::format("{}; sending it to the dead-letter queue failed, so it stays in the "
                            "queue and comes back after its visibility timeout: {}",
                            what, r.error().message));
        }
    };
    enqueue_here(route::dead_letter, c->endpoint, std::move(copy));
}

void sqs_transport::impl::ack(const std::string& endpoint, std::string receipt,
                              std::string claim_key) {
    auto& b = ack_batchers[endpoint];
    b.pending.emplace_back(std::move(receipt), std::move(claim_key));
    if (b.workers >= max_parallel_batches || b.workers * max_batch_entries >= b.pending.size())
        return;
    ++b.workers;
    asio::co_spawn(*io, drain_acks(endpoint), asio::detached);
}

asio::awaitable<void> sqs_transport::impl::drain_acks(std::string endpoint) {
    auto& b = ack_batchers[endpoint];
    while (!b.pending.empty()) {
        std::vector<std::pair<std::string, std::string>> batch;
        while (!b.pending.empty() && batch.size() < max_batch_entries) {
            batch.push_back(std::move(b.pending.front()));
            b.pending.pop_front();
        }
        auto o = co_await with_retries("DeleteMessage", [&]() -> asio::awaitable<outcome> {
            auto q = co_await ensure_queue(endpoint);
            if (!q.ok) co_return q;
            const json request_8 = {{"QueueUrl", q.body}, {"ReceiptHandle", batch[0].first}};
            if (batch.size() == 1) co_return co_await sqs_once("DeleteMessage", request_8);
            json entries = json::array();
            for (std::size_t i = 0; i < batch.size(); ++i)
                entries.push_back({{"Id", std::to_string(i)}, {"ReceiptHandle", batch[i].first}});
            const json request_9 = {{"QueueUrl", q.body}, {"Entries", entries}};
            auto r = co_await sqs_once("DeleteMessageBatch", request_9);
            if (r.ok && r.doc.contains("Failed") && r.doc["Failed"].is_array() &&
                !r.doc["Failed"].empty())
                log(log_level::error,
                    fmt::format("sqs: {} ack(s) on endpoint '{}' refused: {}",
                                r.doc["Failed"].size(), endpoint, r.doc["Failed"].dump()));
            co_return r;
        });
        if (!o.ok) {
            log(log_level::error,
                fmt::format("sqs: {} ack(s) on endpoint '{}' failed; the messages come back after "
                            "their visibility timeout: {}",
                            batch.size(), endpoint, o.err.message));
            continue;
        }
        if (opts.claim_checks)
            for (const auto& [receipt, key] : batch)
                if (!key.empty())
                    asio::post(completions,
                               [store = opts.claim_checks, key = key] { (void)store->erase(key); });
    }
    --b.workers;
}

asio::awaitable<void> sqs_transport::impl::poll_loop(std::shared_ptr<consumer> c) {
    using clock = std::chrono::steady_clock;
    c->wake = std::make_unique<asio::steady_timer>(*io);
    const auto vt = std::chrono::duration_cast<std::chrono::seconds>(c->options.visibility_timeout +
                                                                     std::chrono::milliseconds{999})
                        .count();
    const auto wait = std::clamp<std::int64_t>(opts.wait_time.count(), 0, 20);
    std::uint32_t failures = 0;
    while (!c->stop_flag && !closing) {
        // slots whose visibility timeout passed are free again: the message is back in SQS
        const auto now = clock::now();
        for (auto it = c->open.begin(); it != c->open.end();)
            it = it->second <= now ? c->open.erase(it) : std::next(it);
        if (c->open.size() >= c->options.max_in_flight) {
            auto next = clock::time_point::max();
            for (const auto& [slot, deadline] : c->open) next = std::min(next, deadline);
            c->wake->expires_at(next);
            co_await c->wake->async_wait(nothrow);
            continue;
        }
        const auto room =
            std::min<std::size_t>(max_batch_entries, c->options.max_in_flight - c->open.size());
        auto q = co_await ensure_queue(c->endpoint);
        outcome o = q;
        const json request_10 = {
            {"QueueUrl", q.body},
            {"MaxNumberOfMessages", room},
            {"WaitTimeSeconds", wait},
            {"VisibilityTimeout", vt},
            {"AttributeNames", {"ApproximateReceiveCount", "MessageGroupId"}},
            {"MessageSystemAttributeNames", {"ApproximateReceiveCount", "MessageGroupId"}},
            {"MessageAttributeNames", {"All"}}};
        if (q.ok)
            o = co_await sqs_once("ReceiveMessage", request_10, &c->poll,
                                  std::chrono::seconds{wait});
        if (!o.ok) {
            if (c->stop_flag || closing) break;
            if (o.aws_code == "QueueDoesNotExist" && owns_queue(c->endpoint)) {
                log(log_level::warn,
                    fmt::format("sqs: queue of endpoint '{}' does not exist any more; creating "
                                "it again",
                                c->endpoint));
                forget_queue(c->endpoint);
            } else {
                log(o.transient ? log_level::warn : log_level::error,
                    fmt::format("sqs: receive on endpoint '{}' failed: {}", c->endpoint,
                                o.err.message));
            }
            co_await sleep(backoff(++failures));
            continue;
        }
        failures = 0;
        auto messages = detail::received_messages(o.doc);
        if (messages.empty()) {
            // Short polling (wait_time 0): pause between empty receives instead of spinning.
            if (wait == 0) co_await sleep(std::chrono::milliseconds{100});
            continue;
        }
        for (auto& m : messages) {
            const auto slot = ++next_key;
            c->open.emplace(slot, clock::now() + c->options.visibility_timeout);
            auto d = std::make_shared<delivery_impl>(weak_from_this(), c, slot, std::move(m));
            if (c->stop_flag) {
                d->give_back(duration{0}, "returned by a stopped consumer", false);
                continue;
            }
            asio::post(c->executor, [c, d] { invoke(c, d); });
        }
    }
}

// ---- sqs_transport --------------------------------------------------------------------------

sqs_transport::sqs_transport(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

sqs_transport::~sqs_transport() = default;

const sqs_options& sqs_transport::options() const noexcept {
    return impl_->opts;
}

void sqs_transport::set_metrics(std::shared_ptr<metrics_registry> metrics) {
    if (metrics) describe_transport_metrics(*metrics);
    std::lock_guard lock(impl_->metrics_mutex);
    impl_->metrics = std::move(metrics);
}

result<std::shared_ptr<sqs_transport>> sqs_transport::create(sqs_options options) {
    auto i = std::make_shared<impl>();
    if (options.region.empty())
        options.region = first_of({env("AWS_REGION"), env("AWS_DEFAULT_REGION")});
    if (options.region.empty())
        return saga::error{errc::invalid_argument,
                           "sqs: no region: set sqs_options::region, AWS_REGION or "
                           "AWS_DEFAULT_REGION"};
    if (options.sqs_endpoint.empty())
        options.sqs_endpoint = first_of({env("AWS_ENDPOINT_URL_SQS"), env("AWS_ENDPOINT_URL"),
                                         "https://sqs." + options.region + ".amazonaws.com"});
    if (options.sns_endpoint.empty())
        options.sns_endpoint = first_of({env("AWS_ENDPOINT_URL_SNS"), env("AWS_ENDPOINT_URL"),
                                         "https://sns." + options.region + ".amazonaws.com"});
    if (options.max_attempts == 0) options.max_attempts = 1;
    if (options.max_receive_count == 0)
        return saga::error{errc::invalid_argument, "sqs: max_receive_count must be positive"};
    SAGA_TRY(i->sqs_url, detail::parse_url(options.sqs_endpoint));
    SAGA_TRY(i->sns_url, detail::parse_url(options.sns_endpoint));
    if (options.creds) {
        i->creds = std::move(*options.creds);
        options.creds.reset();
    } else {
        SAGA_TRY(i->creds, load_credentials(options.credentials_source));
    }
    if (i->creds.access_key_id.empty() || i->creds.secret_access_key.empty())
        return saga::error{errc::invalid_argument, "sqs: the credentials lack a key id or secret"};
    i->opts = std::move(options);

    if (i->sqs_url.tls || i->sns_url.tls) {
        try {
            auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
            ctx->set_options(asio::ssl::context::default_workarounds |
                             asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                             asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
            if (i->opts.ca_file.empty())
                ctx->set_default_verify_paths();
            else
                ctx->load_verify_file(i->opts.ca_file);
            ctx->set_verify_mode(asio::ssl::verify_peer);
            i->tls = std::move(ctx);
        } catch (const std::exception& e) {
            return saga::error{errc::invalid_argument,
                               std::string{"sqs: cannot set up tls: "} + e.what()};
        }
    }
    i->http = std::make_unique<detail::http_client>(*i->io, i->tls, i->opts.max_idle_connections);
    i->work.emplace(i->io->get_executor());
    i->io_thread = std::thread([raw = i.get()] { raw->io->run(); });
    return std::shared_ptr<sqs_transport>(new sqs_transport(std::move(i)));
}

namespace {
template <class Impl>
void send_or_publish(Impl& s, bool topic, const std::string& name, const envelope& message,
                     send_handler done) {
    if (s.closing) {
        s.complete(done, saga::error{errc::shutting_down, "sqs: transport is shutting down"});
        return;
    }
    auto valid = topic ? topic_name(s.opts, name) : queue_name(s.opts, name);
    if (!valid) {
        s.complete(done, valid.error());
        return;
    }
    auto o = s.prepare(message);
    if (!o) {
        s.complete(done, o.error());
        return;
    }
    o.value().done = std::move(done);
    s.enqueue(topic ? route::topic : route::queue, name, std::move(o).value());
}
}  // namespace

void sqs_transport::async_send(const std::string& endpoint, envelope message, send_handler done) {
    send_or_publish(*impl_, false, endpoint, message, std::move(done));
}

void sqs_transport::async_publish(const std::string& topic, envelope message, send_handler done) {
    send_or_publish(*impl_, true, topic, message, std::move(done));
}

result<void> sqs_transport::subscribe(const std::string& topic, const std::string& endpoint) {
    if (topic.empty() || endpoint.empty())
        return saga::error{errc::invalid_argument, "sqs: empty topic or endpoint name"};
    auto* s = impl_.get();
    return s->blocking<void>([s, topic, endpoint]() -> asio::awaitable<result<void>> {
        auto o = co_await s->with_retries("Subscribe",
                                          [&]() { return s->subscribe_once(topic, endpoint); });
        if (!o.ok) co_return o.err;
        co_return success();
    });
}

result<std::string> sqs_transport::queue_url(const std::string& endpoint) {
    auto* s = impl_.get();
    return s->blocking<std::string>([s, endpoint]() -> asio::awaitable<result<std::string>> {
        auto o =
            co_await s->with_retries("CreateQueue", [&]() { return s->ensure_queue(endpoint); });
        if (!o.ok) co_return o.err;
        co_return o.body;
    });
}

result<std::string> sqs_transport::topic_arn(const std::string& topic) {
    auto* s = impl_.get();
    return s->blocking<std::string>([s, topic]() -> asio::awaitable<result<std::string>> {
        auto o = co_await s->with_retries("CreateTopic", [&]() { return s->ensure_topic(topic); });
        if (!o.ok) co_return o.err;
        co_return o.body;
    });
}

result<std::unique_ptr<subscription>> sqs_transport::consume(const std::string& endpoint,
                                                             asio::any_io_executor executor,
                                                             delivery_handler handler,
                                                             consumer_options options) {
    if (!executor || !handler)
        return saga::error{errc::invalid_argument, "sqs: consume needs an executor and a handler"};
    if (options.max_in_flight == 0 || options.visibility_timeout.count() <= 0)
        return saga::error{errc::invalid_argument,
                           "sqs: max_in_flight and visibility_timeout must be positive"};
    if (options.visibility_timeout > std::chrono::hours{12})
        return saga::error{errc::invalid_argument,
                           "sqs: visibility_timeout is over sqs's limit of 12 hours"};
    SAGA_TRY(auto url, queue_url(endpoint));
    (void)url;
    auto c = std::make_shared<impl::consumer>(endpoint, std::move(executor), std::move(handler),
                                              options);
    auto* s = impl_.get();
    asio::post(*s->io, [s, c] {
        s->consumers.push_back(c);
        asio::co_spawn(*s->io, s->poll_loop(c), asio::detached);
    });
    return std::unique_ptr<subscription>{
        std::make_unique<impl::subscription_impl>(impl_, std::move(c))};
}

}  // namespace saga::sqs
