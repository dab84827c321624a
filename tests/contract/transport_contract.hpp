#pragma once
/// @file transport_contract.hpp
/// The contract every `saga::transport` honours, as one Catch2 suite that each adapter
/// instantiates with a fixture of its own:
///
///     SAGA_TRANSPORT_CONTRACT("[memory]", memory_transport_env{});
///
/// The second argument is an expression yielding a fresh fixture for every test case. The
/// tests use the transport through the `saga::transport` interface only. A fixture has:
///
///     std::shared_ptr<saga::transport> transport;  // the transport under test
///     std::string name(std::string_view base);     // a fresh endpoint or topic name for this
///                                                  // test (real brokers keep queues around)
///     void advance(saga::duration d);              // lets at least `d` of transport time pass:
///                                                  // a virtual clock advances, a real one sleeps
///     saga::duration visibility_timeout;           // the short timeout the tests' consumers use
///                                                  // (whole seconds for SQS, e.g. 2 s)
///     std::chrono::milliseconds max_wait;          // wall-time bound of every wait for a
///                                                  // condition; reaching it fails the test
///     std::chrono::milliseconds quiet_period;      // how long the tests watch that nothing more
///                                                  // arrives; zero: until the io_context has no
///                                                  // ready work (virtual time); must be shorter
///                                                  // than `visibility_timeout`
///     bool may_duplicate;                          // true for a broker that documents rare
///                                                  // duplicate deliveries even to a consumer
///                                                  // that acks at once (SQS standard queues)
///
/// Deliveries are posted to an `asio::io_context` owned by each test, which the test drives
/// with `poll` from its own thread (so handlers run on the test thread); a network transport
/// posts into it from its own threads. No assertion depends on how long anything takes: a wait
/// either sees its condition or fails after `max_wait`.

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/transport.hpp>

namespace saga::contract {

/// Collects the deliveries of one consumer (thread-safe); acks each one at once if asked to.
class inbox {
public:
    explicit inbox(bool auto_ack = false) : auto_ack_(auto_ack) {}
    inbox(const inbox&) = delete;
    inbox& operator=(const inbox&) = delete;

    /// The handler to give to `consume`; the inbox must outlive the subscription.
    [[nodiscard]] saga::delivery_handler handler() {
        return [this](std::shared_ptr<saga::delivery> d) {
            {
                std::lock_guard lock(mutex_);
                items_.push_back(d);
            }
            if (auto_ack_) d->ack();
        };
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return items_.size();
    }
    [[nodiscard]] std::shared_ptr<saga::delivery> at(std::size_t i) const {
        std::lock_guard lock(mutex_);
        return items_.at(i);
    }
    [[nodiscard]] std::vector<std::string> message_ids() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> ids;
        for (const auto& d : items_) ids.push_back(d->message().message_id);
        return ids;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<saga::delivery>> items_;
    bool auto_ack_;
};

/// Drives `io` until `done()` holds or `env.max_wait` of wall time has passed; returns `done()`.
template <class Env, class Pred>
bool run_until(Env& env, boost::asio::io_context& io, Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + env.max_wait;
    for (;;) {
        if (done()) return true;
        io.restart();
        if (io.poll() == 0) {
            if (std::chrono::steady_clock::now() >= deadline) return done();
            std::this_thread::sleep_for(std::chrono::milliseconds{1});
        }
    }
}

/// Drives `io` until nothing more arrives: until it has no ready work (quiet_period zero) or for
/// `env.quiet_period`.
template <class Env>
void settle(Env& env, boost::asio::io_context& io) {
    if (env.quiet_period.count() == 0) {
        do io.restart();
        while (io.poll() > 0);
        return;
    }
    const auto until = std::chrono::steady_clock::now() + env.quiet_period;
    while (std::chrono::steady_clock::now() < until) {
        io.restart();
        if (io.poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
}

/// Starts a send or publish with `start(handler)` and waits for its completion (which may come
/// on any thread); a completion that never comes is a transport_failure.
template <class Env, class Start>
saga::result<void> complete(Env& env, boost::asio::io_context& io, Start start) {
    struct outcome {
        std::mutex mutex;
        std::optional<saga::result<void>> value;
    };
    auto out = std::make_shared<outcome>();
    start([out](saga::result<void> r) {
        std::lock_guard lock(out->mutex);
        out->value.emplace(std::move(r));
    });
    const bool finished = run_until(env, io, [&] {
        std::lock_guard lock(out->mutex);
        return out->value.has_value();
    });
    if (!finished) return saga::error{saga::errc::transport_failure, "completion never came"};
    std::lock_guard lock(out->mutex);
    return std::move(*out->value);
}

template <class Env>
saga::result<void> send(Env& env, boost::asio::io_context& io, const std::string& endpoint,
                        saga::envelope message) {
    return complete(env, io, [&](saga::send_handler h) {
        env.transport->async_send(endpoint, std::move(message), std::move(h));
    });
}

template <class Env>
saga::result<void> publish(Env& env, boost::asio::io_context& io, const std::string& topic,
                           saga::envelope message) {
    return complete(env, io, [&](saga::send_handler h) {
        env.transport->async_publish(topic, std::move(message), std::move(h));
    });
}

/// Consumes `endpoint` into `box` with the fixture's visibility timeout.
template <class Env>
std::unique_ptr<saga::subscription> consume(Env& env, boost::asio::io_context& io,
                                            const std::string& endpoint, inbox& box,
                                            std::size_t max_in_flight = 64) {
    auto sub = env.transport->consume(endpoint, io.get_executor(), box.handler(),
                                      saga::consumer_options{
                                          .visibility_timeout = env.visibility_timeout,
                                          .max_in_flight = max_in_flight,
                                      });
    REQUIRE(sub.has_value());
    return std::move(sub).value();
}

/// A message with every field set to something recognisable.
inline saga::envelope full_envelope(const std::string& id) {
    saga::envelope e;
    e.message_id = id;
    e.kind = saga::message_kind::compensation;
    e.type = "reserve_budget";
    e.saga_id = "saga-" + id;
    e.step = "reserve_budget[3]";
    e.attempt = 7;
    e.idempotency_key = "saga-" + id + "/reserve_budget[3]/compensate";
    e.reply_to = "engine.replies";
    e.correlation_id = "campaign-42";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.status = saga::reply_status::permanent_failure;
    e.error = "budget exhausted: 0 of 100 left";
    e.headers = {{"compensates", "saga-" + id + "/reserve_budget[3]"}, {"x-tenant", "acme"}};
    e.payload = {{"amount", 1250.5},
                 {"currency", "EUR"},
                 {"lines", nlohmann::json::array({1, 2, 3})},
                 {"nested", {{"ok", true}, {"none", nullptr}, {"text", "üñí \"quoted\""}}}};
    return e;
}

/// A small message numbered `n`.
inline saga::envelope numbered(int n) {
    saga::envelope e;
    e.message_id = "m-" + std::to_string(n);
    e.type = "numbered";
    e.payload = {{"n", n}};
    return e;
}

// ---- the contract ---------------------------------------------------------------------------

template <class Env>
void sent_message_arrives_intact(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("intact");
    const auto sent = full_envelope("a1");
    REQUIRE(send(env, io, q, sent));
    inbox box;
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() == 1; }));
    const auto d = box.at(0);
    CHECK(d->message() == sent);
    CHECK(d->message().payload == sent.payload);
    CHECK(d->message().headers == sent.headers);
    CHECK(d->delivery_count() == 1);
    d->ack();
}

template <class Env>
void endpoints_are_separate(Env& env) {
    boost::asio::io_context io;
    const auto q1 = env.name("left");
    const auto q2 = env.name("right");
    REQUIRE(send(env, io, q1, numbered(1)));
    REQUIRE(send(env, io, q2, numbered(2)));
    REQUIRE(send(env, io, q1, numbered(3)));
    inbox left(true);
    inbox right(true);
    auto s1 = consume(env, io, q1, left);
    auto s2 = consume(env, io, q2, right);
    REQUIRE(run_until(env, io, [&] { return left.size() == 2 && right.size() == 1; }));
    settle(env, io);
    auto ids = left.message_ids();
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::string>{"m-1", "m-3"});
    CHECK(right.message_ids() == std::vector<std::string>{"m-2"});
}

template <class Env>
void ack_removes_for_good(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("ack");
    REQUIRE(send(env, io, q, numbered(1)));
    inbox box;
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() == 1; }));
    box.at(0)->ack();
    env.advance(env.visibility_timeout * 2);
    settle(env, io);
    CHECK(box.size() == 1);
    // and a new consumer finds nothing either
    sub->stop();
    inbox late;
    auto again = consume(env, io, q, late);
    env.advance(env.visibility_timeout);
    settle(env, io);
    CHECK(late.size() == 0);
}

template <class Env>
void nack_redelivers(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("nack");
    REQUIRE(send(env, io, q, numbered(1)));
    inbox box;
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() == 1; }));
    CHECK(box.at(0)->delivery_count() == 1);
    box.at(0)->nack();
    REQUIRE(run_until(env, io, [&] { return box.size() == 2; }));
    CHECK(box.at(1)->message() == box.at(0)->message());
    CHECK(box.at(1)->delivery_count() == 2);
    box.at(1)->ack();
}

template <class Env>
void nack_with_delay_redelivers_later(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("nack-delay");
    REQUIRE(send(env, io, q, numbered(1)));
    inbox box;
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() == 1; }));
    box.at(0)->nack(env.visibility_timeout * 2);
    settle(env, io);
    CHECK(box.size() == 1);
    env.advance(env.visibility_timeout * 2);
    REQUIRE(run_until(env, io, [&] { return box.size() == 2; }));
    CHECK(box.at(1)->message().message_id == "m-1");
    CHECK(box.at(1)->delivery_count() == 2);
    box.at(1)->ack();
}

template <class Env>
void unacked_delivery_comes_back_after_visibility_timeout(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("timeout");
    REQUIRE(send(env, io, q, numbered(1)));
    inbox box;
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() == 1; }));
    settle(env, io);
    CHECK(box.size() == 1);  // invisible while in flight
    env.advance(env.visibility_timeout);
    REQUIRE(run_until(env, io, [&] { return box.size() == 2; }));
    CHECK(box.at(1)->message() == box.at(0)->message());
    CHECK(box.at(1)->delivery_count() == 2);
    box.at(1)->ack();
    env.advance(env.visibility_timeout * 2);
    settle(env, io);
    CHECK(box.size() == 2);
}

template <class Env>
void extend_postpones_redelivery(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("extend");
    REQUIRE(send(env, io, q, numbered(1)));
    inbox box;
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() == 1; }));
    box.at(0)->extend(env.visibility_timeout * 4);
    env.advance(env.visibility_timeout * 2);  // past the original timeout
    settle(env, io);
    CHECK(box.size() == 1);
    env.advance(env.visibility_timeout * 2);  // past the extended one
    REQUIRE(run_until(env, io, [&] { return box.size() == 2; }));
    CHECK(box.at(1)->delivery_count() == 2);
    box.at(1)->ack();
}

template <class Env>
void publish_reaches_every_subscribed_endpoint(Env& env) {
    boost::asio::io_context io;
    const auto topic = env.name("campaign-published");
    const auto q1 = env.name("billing");
    const auto q2 = env.name("reporting");
    const auto q3 = env.name("unrelated");
    REQUIRE(env.transport->subscribe(topic, q1));
    REQUIRE(env.transport->subscribe(topic, q2));
    REQUIRE(env.transport->subscribe(topic, q2));  // twice is not an error, nor a second copy
    auto event = full_envelope("e1");
    event.kind = saga::message_kind::event;
    REQUIRE(publish(env, io, topic, event));
    inbox b1(true);
    inbox b2(true);
    inbox b3(true);
    auto s1 = consume(env, io, q1, b1);
    auto s2 = consume(env, io, q2, b2);
    auto s3 = consume(env, io, q3, b3);
    REQUIRE(run_until(env, io, [&] { return b1.size() == 1 && b2.size() == 1; }));
    settle(env, io);
    CHECK(b1.size() == 1);
    CHECK(b2.size() == 1);
    CHECK(b3.size() == 0);
    CHECK(b1.at(0)->message() == event);
    CHECK(b2.at(0)->message() == event);
}

template <class Env>
void publish_without_subscribers_succeeds(Env& env) {
    boost::asio::io_context io;
    const auto topic = env.name("nobody-listens");
    const auto r = publish(env, io, topic, numbered(1));
    CHECK(r.has_value());
}

template <class Env>
void competing_consumers_get_each_message_once(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("competing");
    constexpr int count = 40;
    for (int i = 0; i < count; ++i) REQUIRE(send(env, io, q, numbered(i)));
    inbox a(true);
    inbox b(true);
    auto sa = consume(env, io, q, a);
    auto sb = consume(env, io, q, b);
    REQUIRE(run_until(env, io, [&] { return a.size() + b.size() >= count; }));
    settle(env, io);
    auto ids = a.message_ids();
    const auto more = b.message_ids();
    ids.insert(ids.end(), more.begin(), more.end());
    // Every message reaches one of them; an at-least-once broker may hand out a rare extra copy
    // (SQS standard queues do, and moto did under load: 41 deliveries of 40 messages).
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == count);
    if (!env.may_duplicate) CHECK(ids.size() == count);
}

template <class Env>
void stopped_consumer_leaves_unacked_message_to_another(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("stop");
    REQUIRE(send(env, io, q, numbered(1)));
    inbox first;
    auto s1 = consume(env, io, q, first);
    REQUIRE(run_until(env, io, [&] { return first.size() == 1; }));
    s1->stop();
    inbox second(true);
    auto s2 = consume(env, io, q, second);
    settle(env, io);
    CHECK(second.size() == 0);  // still in flight at the stopped consumer
    env.advance(env.visibility_timeout);
    REQUIRE(run_until(env, io, [&] { return second.size() == 1; }));
    CHECK(second.at(0)->message().message_id == "m-1");
    CHECK(second.at(0)->delivery_count() == 2);
    settle(env, io);
    CHECK(first.size() == 1);
}

template <class Env>
void many_messages_are_all_delivered_once(Env& env) {
    boost::asio::io_context io;
    const auto q = env.name("many");
    constexpr int count = 500;
    auto completed = std::make_shared<std::atomic<int>>(0);
    auto failed = std::make_shared<std::atomic<int>>(0);
    for (int i = 0; i < count; ++i)
        env.transport->async_send(q, numbered(i), [completed, failed](saga::result<void> r) {
            if (!r) ++*failed;
            ++*completed;
        });
    REQUIRE(run_until(env, io, [&] { return completed->load() == count; }));
    REQUIRE(failed->load() == 0);
    inbox box(true);
    auto sub = consume(env, io, q, box);
    REQUIRE(run_until(env, io, [&] { return box.size() >= count; }));
    settle(env, io);
    const auto ids = box.message_ids();
    CHECK(ids.size() == count);  // each delivered (and so acked) once
    std::set<std::string> distinct(ids.begin(), ids.end());
    std::set<std::string> expected;
    for (int i = 0; i < count; ++i) expected.insert("m-" + std::to_string(i));
    CHECK(distinct == expected);
}

}  // namespace saga::contract

/// Instantiates the transport contract for one implementation: `tag` (e.g. "[memory]") is added
/// to the test names and tags; the rest is an expression yielding a fresh fixture.
#define SAGA_TRANSPORT_CONTRACT(tag, ...)                                                          \
    TEST_CASE(tag " a sent message arrives with every field intact",                               \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::sent_message_arrives_intact(env);                                        \
    }                                                                                              \
    TEST_CASE(tag " messages to different endpoints stay separate", "[contract][transport]" tag) { \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::endpoints_are_separate(env);                                             \
    }                                                                                              \
    TEST_CASE(tag " an acked message is never delivered again", "[contract][transport]" tag) {     \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::ack_removes_for_good(env);                                               \
    }                                                                                              \
    TEST_CASE(tag " a nacked message is delivered again with delivery_count 2",                    \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::nack_redelivers(env);                                                    \
    }                                                                                              \
    TEST_CASE(tag " a message nacked with a delay comes back only after the delay",                \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::nack_with_delay_redelivers_later(env);                                   \
    }                                                                                              \
    TEST_CASE(tag " a message not acked within the visibility timeout is delivered again",         \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::unacked_delivery_comes_back_after_visibility_timeout(env);               \
    }                                                                                              \
    TEST_CASE(tag " extend postpones the redelivery", "[contract][transport]" tag) {               \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::extend_postpones_redelivery(env);                                        \
    }                                                                                              \
    TEST_CASE(tag " a publication reaches every subscribed endpoint once",                         \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::publish_reaches_every_subscribed_endpoint(env);                          \
    }                                                                                              \
    TEST_CASE(tag " publishing to a topic with no subscription succeeds",                          \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::publish_without_subscribers_succeeds(env);                               \
    }                                                                                              \
    TEST_CASE(tag " competing consumers together get each message once",                           \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::competing_consumers_get_each_message_once(env);                          \
    }                                                                                              \
    TEST_CASE(tag " a stopped consumer's unacked message goes to another after the timeout",       \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::stopped_consumer_leaves_unacked_message_to_another(env);                 \
    }                                                                                              \
    TEST_CASE(tag " 500 messages are all delivered, none lost, none twice",                        \
              "[contract][transport]" tag) {                                                       \
        auto env = __VA_ARGS__;                                                                    \
        ::saga::contract::many_messages_are_all_delivered_once(env);                               \
    }
