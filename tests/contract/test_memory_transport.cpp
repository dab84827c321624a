#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <saga/clock.hpp>
#include <saga/inmemory/memory_transport.hpp>

#include "contract/transport_contract.hpp"

namespace {

using namespace std::chrono_literals;
using saga::inmemory::memory_transport;

/// The contract fixture of the in-memory transport: virtual time, so timeouts take no wall time.
struct memory_transport_env {
    std::shared_ptr<saga::virtual_clock> clock = std::make_shared<saga::virtual_clock>();
    std::shared_ptr<memory_transport> memory = std::make_shared<memory_transport>(clock);
    std::shared_ptr<saga::transport> transport = memory;
    saga::duration visibility_timeout = 1s;
    std::chrono::milliseconds max_wait = 10s;
    bool may_duplicate = false;
    std::chrono::milliseconds quiet_period = 0ms;

    [[nodiscard]] std::string name(std::string_view base) const { return std::string{base}; }
    void advance(saga::duration d) { clock->advance(d); }
};

}  // namespace

SAGA_TRANSPORT_CONTRACT("[memory]", memory_transport_env{})

// ---- what the memory transport promises beyond the contract ---------------------------------

namespace {

using saga::contract::inbox;
using saga::contract::numbered;
using saga::contract::run_until;
using saga::contract::settle;

}  // namespace

TEST_CASE("memory transport: competing consumers take turns", "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    inbox a(true);
    inbox b(true);
    auto sa = saga::contract::consume(env, io, "q", a);
    auto sb = saga::contract::consume(env, io, "q", b);
    for (int i = 0; i < 40; ++i) REQUIRE(saga::contract::send(env, io, "q", numbered(i)));
    settle(env, io);
    CHECK(a.size() == 20);
    CHECK(b.size() == 20);
    CHECK(env.memory->pending("q") == 0);
}

TEST_CASE("memory transport: max_in_flight bounds the unacked deliveries of a consumer",
          "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    for (int i = 0; i < 5; ++i) REQUIRE(saga::contract::send(env, io, "q", numbered(i)));
    inbox box;
    auto sub = saga::contract::consume(env, io, "q", box, 2);
    settle(env, io);
    REQUIRE(box.size() == 2);
    box.at(0)->ack();
    settle(env, io);
    REQUIRE(box.size() == 3);
    box.at(1)->nack();
    settle(env, io);
    REQUIRE(box.size() == 4);
    // in order: what was sent first comes first, a nacked message goes to the back
    CHECK(box.message_ids() == std::vector<std::string>{"m-0", "m-1", "m-2", "m-3"});
    CHECK(env.memory->pending("q") == 4);
}

TEST_CASE("memory transport: pending counts visible, in-flight and delayed messages",
          "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    CHECK(env.memory->pending("nowhere") == 0);
    REQUIRE(saga::contract::send(env, io, "q", numbered(1)));
    REQUIRE(saga::contract::send(env, io, "q", numbered(2)));
    CHECK(env.memory->pending("q") == 2);
    inbox box;
    auto sub = saga::contract::consume(env, io, "q", box);
    settle(env, io);
    REQUIRE(box.size() == 2);
    box.at(0)->nack(5s);
    CHECK(env.memory->pending("q") == 2);
    box.at(1)->ack();
    CHECK(env.memory->pending("q") == 1);
    const auto s = env.memory->stats();
    CHECK(s.sent == 2);
    CHECK(s.delivered == 2);
    CHECK(s.acked == 1);
    CHECK(s.nacked == 1);
}

TEST_CASE("memory transport: a late ack of a redelivered message is ignored",
          "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    REQUIRE(saga::contract::send(env, io, "q", numbered(1)));
    inbox box;
    auto sub = saga::contract::consume(env, io, "q", box);
    settle(env, io);
    REQUIRE(box.size() == 1);
    env.advance(env.visibility_timeout);
    settle(env, io);
    REQUIRE(box.size() == 2);
    CHECK(env.memory->stats().redelivered == 1);

    box.at(0)->ack();  // the first delivery's receipt is stale
    box.at(0)->nack();
    box.at(0)->extend(1h);
    CHECK(env.memory->pending("q") == 1);
    CHECK(env.memory->stats().acked == 0);
    settle(env, io);
    CHECK(box.size() == 2);

    box.at(1)->ack();
    box.at(1)->ack();  // a second ack of the same delivery changes nothing
    CHECK(env.memory->pending("q") == 0);
    CHECK(env.memory->stats().acked == 1);
}

TEST_CASE("memory transport: handlers are posted, never called inline", "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    inbox box;
    auto sub = saga::contract::consume(env, io, "q", box);
    bool done = false;
    env.transport->async_send("q", numbered(1), [&](saga::result<void> r) {
        CHECK(r.has_value());
        done = true;
    });
    CHECK(done);  // completions are inline
    CHECK(box.size() == 0);
    CHECK(io.poll() == 1);
    CHECK(box.size() == 1);
}

TEST_CASE("memory transport: a stopped consumer gets no posted delivery and gives it back",
          "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    inbox first;
    auto s1 = saga::contract::consume(env, io, "q", first);
    env.transport->async_send("q", numbered(1), {});  // posted to `first`, not yet run
    s1->stop();
    inbox second(true);
    auto s2 = saga::contract::consume(env, io, "q", second);
    settle(env, io);  // no time passes: the unseen delivery came back at once
    CHECK(first.size() == 0);
    REQUIRE(second.size() == 1);
    CHECK(second.at(0)->delivery_count() == 1);
    CHECK(env.memory->pending("q") == 0);
}

TEST_CASE("memory transport: a handler may stop its own subscription", "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    std::unique_ptr<saga::subscription> sub;
    int calls = 0;
    auto r = env.transport->consume("q", io.get_executor(), [&](std::shared_ptr<saga::delivery> d) {
        ++calls;
        d->ack();
        sub->stop();
    });
    REQUIRE(r);
    sub = std::move(r).value();
    for (int i = 0; i < 3; ++i) env.transport->async_send("q", numbered(i), {});
    settle(env, io);
    CHECK(calls == 1);
    CHECK(env.memory->pending("q") == 2);
}

TEST_CASE("memory transport: destroying it with timers pending is safe", "[memory][transport]") {
    auto clock = std::make_shared<saga::virtual_clock>();
    boost::asio::io_context io;
    inbox box;
    std::unique_ptr<saga::subscription> sub;
    {
        auto t = std::make_shared<memory_transport>(clock);
        auto r = t->consume("q", io.get_executor(), box.handler());
        REQUIRE(r);
        sub = std::move(r).value();
        t->async_send("q", numbered(1), {});
        t->async_send("q", numbered(2), {});
        io.poll();
        REQUIRE(box.size() == 2);
        box.at(0)->nack(1s);
        t->async_send("q", numbered(3), {});  // posted, not run: the transport goes first
    }
    CHECK(clock->pending() == 0);  // its timers were cancelled
    clock->advance(1h);
    io.restart();
    io.poll();
    CHECK(box.size() == 2);
    box.at(1)->ack();  // harmless
    box.at(1)->extend(1s);
    sub->stop();
}

TEST_CASE("memory transport: malformed calls are refused", "[memory][transport]") {
    memory_transport_env env;
    boost::asio::io_context io;
    auto sent = saga::contract::send(env, io, "", numbered(1));
    REQUIRE_FALSE(sent);
    CHECK(sent.error() == saga::errc::invalid_argument);
    auto published = saga::contract::publish(env, io, "", numbered(1));
    REQUIRE_FALSE(published);
    CHECK(published.error() == saga::errc::invalid_argument);
    CHECK(env.transport->subscribe("", "q").error() == saga::errc::invalid_argument);
    inbox box;
    auto none = env.transport->consume("q", io.get_executor(), box.handler(), {.max_in_flight = 0});
    REQUIRE_FALSE(none);
    CHECK(none.error() == saga::errc::invalid_argument);
}

TEST_CASE("memory transport: concurrent senders, consumers, stops and clock lose nothing",
          "[memory][transport][concurrency]") {
    auto clock = std::make_shared<saga::virtual_clock>();
    auto transport = std::make_shared<memory_transport>(clock);
    boost::asio::thread_pool pool(4);
    constexpr int senders = 3;
    constexpr int per_sender = 300;
    constexpr int total = senders * per_sender;

    std::mutex mutex;
    std::map<std::string, int> seen;  // deliveries per message id
    auto handler = [&](std::shared_ptr<saga::delivery> d) {
        const auto n = d->message().payload.at("n").get<int>();
        {
            std::lock_guard lock(mutex);
            ++seen[d->message().message_id];
        }
        if (d->delivery_count() > 1 || n % 7 == 1) {
            d->ack();
        } else if (n % 3 == 0) {
            d->nack();
        } else if (n % 5 == 0) {
            d->extend(2s);  // then forgotten: comes back after the extended timeout
        } else if (n % 7 == 0) {
            d->nack(300ms);
        } else {
            d->ack();
        }
    };
    const saga::consumer_options options{.visibility_timeout = 1s, .max_in_flight = 8};
    auto a = transport->consume("q", pool.get_executor(), handler, options);
    auto b = transport->consume("q", pool.get_executor(), handler, options);
    REQUIRE(a);
    REQUIRE(b);

    std::atomic<bool> stop_clock{false};
    std::thread ticker([&] {
        while (!stop_clock) {
            clock->advance(100ms);
            std::this_thread::sleep_for(1ms);
        }
    });
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < senders; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < per_sender; ++i)
                transport->async_send("q", numbered(t * per_sender + i), [&](saga::result<void> r) {
                    if (!r) ++failed;
                });
        });
    b.value()->stop();  // checked above; stops while messages flow, its in-flight ones come back
    for (auto& t : threads) t.join();

    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (transport->pending("q") != 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    stop_clock = true;
    ticker.join();
    a.value()->stop();
    pool.join();

    CHECK(failed == 0);
    CHECK(transport->pending("q") == 0);
    const auto s = transport->stats();
    CHECK(s.sent == total);
    CHECK(s.acked == total);  // each message removed exactly once
    std::lock_guard lock(mutex);
    CHECK(seen.size() == total);
}
