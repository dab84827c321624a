#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <saga/clock.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/participant.hpp>

namespace {

using namespace std::chrono_literals;
using saga::envelope;
using saga::message_kind;
using saga::participant_reply;
using saga::reply_status;

constexpr auto replies_endpoint = "engine.replies";

/// A command of `type` with idempotency key `key`, sent as message `id`.
envelope command(std::string type, std::string key, std::string id, std::uint32_t attempt = 1) {
    envelope e;
    e.message_id = std::move(id);
    e.kind = message_kind::command;
    e.type = std::move(type);
    e.saga_id = "saga-1";
    e.step = "reserve_budget";
    e.attempt = attempt;
    e.idempotency_key = std::move(key);
    e.reply_to = replies_endpoint;
    e.correlation_id = "campaign-7";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.payload = {{"amount", 100}};
    return e;
}

/// A compensation of `type` undoing the command with key `forward_key`.
envelope compensation(std::string type, const std::string& forward_key, std::string id) {
    auto e = command(std::move(type), forward_key + "/compensate", std::move(id));
    e.kind = message_kind::compensation;
    e.headers["compensates"] = forward_key;
    return e;
}

/// Replies received by the "engine" (thread-safe).
class reply_box {
public:
    saga::delivery_handler handler() {
        return [this](std::shared_ptr<saga::delivery> d) {
            {
                std::lock_guard lock(mutex_);
                items_.push_back(d->message());
            }
            d->ack();
        };
    }
    [[nodiscard]] std::vector<envelope> all() const {
        std::lock_guard lock(mutex_);
        return items_;
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return items_.size();
    }

private:
    mutable std::mutex mutex_;
    std::vector<envelope> items_;
};

/// A participant "billing" on a memory transport with a virtual clock, driven by one io_context
/// on the test thread; the engine side is a consumer of "engine.replies".
struct world {
    world()
        : clock(std::make_shared<saga::virtual_clock>()),
          transport(std::make_shared<saga::inmemory::memory_transport>(clock)),
          billing(transport, "billing") {
        auto sub = transport->consume(replies_endpoint, io.get_executor(), replies.handler());
        REQUIRE(sub);
        replies_sub = std::move(sub).value();
    }

    void start() { REQUIRE(billing.start(io.get_executor())); }

    void send(envelope e) {
        bool sent = false;
        transport->async_send("billing", std::move(e),
                              [&](saga::result<void> r) { sent = r.has_value(); });
        REQUIRE(sent);
        drain();
    }

    void drain() {
        do io.restart();
        while (io.poll() > 0);
    }

    std::shared_ptr<saga::virtual_clock> clock;
    std::shared_ptr<saga::inmemory::memory_transport> transport;
    boost::asio::io_context io;
    reply_box replies;
    std::unique_ptr<saga::subscription> replies_sub;
    saga::participant billing;
};

bool is_hex_id(const std::string& s) {
    return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

TEST_CASE("participant: a repeated command runs the handler once and gets the same reply again",
          "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope& c) {
        ++calls;
        CHECK(c.payload.at("amount") == 100);
        return participant_reply::success({{"reservation", "r-" + std::to_string(calls)}});
    });
    w.start();
    w.send(command("reserve_budget", "saga-1/reserve_budget", "m-1", 1));
    w.send(command("reserve_budget", "saga-1/reserve_budget", "m-2", 2));

    CHECK(calls == 1);
    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 2);
    for (const auto& r : replies) {
        CHECK(r.kind == message_kind::reply);
        CHECK(r.type == "reserve_budget");
        CHECK(r.status == reply_status::success);
        CHECK(r.payload == nlohmann::json{{"reservation", "r-1"}});
        CHECK(r.error.empty());
        CHECK(r.saga_id == "saga-1");
        CHECK(r.step == "reserve_budget");
        CHECK(r.idempotency_key == "saga-1/reserve_budget");
        CHECK(r.correlation_id == "campaign-7");
        CHECK(r.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        CHECK(is_hex_id(r.message_id));
    }
    CHECK(replies[0].attempt == 1);
    CHECK(replies[1].attempt == 2);  // the reply answers the command it was sent for
    CHECK(replies[0].message_id != replies[1].message_id);
    const auto s = w.billing.stats();
    CHECK(s.handled == 1);
    CHECK(s.deduplicated == 1);
    CHECK(w.transport->pending("billing") == 0);  // both deliveries acked
}

TEST_CASE("participant: a transient reply is not recorded, so a retry runs the handler again",
          "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        return ++calls == 1 ? participant_reply::transient("bank unavailable")
                            : participant_reply::success({{"ok", true}});
    });
    w.start();
    w.send(command("reserve_budget", "k", "m-1"));
    w.send(command("reserve_budget", "k", "m-2", 2));
    w.send(command("reserve_budget", "k", "m-3", 3));

    CHECK(calls == 2);  // the third is answered from the record of the second
    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 3);
    CHECK(replies[0].status == reply_status::transient_failure);
    CHECK(replies[0].error == "bank unavailable");
    CHECK(replies[1].status == reply_status::success);
    CHECK(replies[2].status == reply_status::success);
    CHECK(replies[2].payload == nlohmann::json{{"ok", true}});
    CHECK(w.billing.stats().handled == 2);
    CHECK(w.billing.stats().deduplicated == 1);
}

TEST_CASE("participant: a throwing handler is answered with a transient failure", "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) -> participant_reply {
        ++calls;
        throw std::runtime_error("connection reset by ledger");
    });
    w.start();
    w.send(command("reserve_budget", "k", "m-1"));
    w.send(command("reserve_budget", "k", "m-2"));

    CHECK(calls == 2);  // not recorded: retried
    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 2);
    CHECK(replies[0].status == reply_status::transient_failure);
    CHECK(replies[0].error == "connection reset by ledger");
    CHECK(w.transport->pending("billing") == 0);
}

TEST_CASE("participant: a command of unknown type is answered with a permanent failure",
          "[participant]") {
    world w;
    w.billing.on("reserve_budget", [](const envelope&) { return participant_reply::success(); });
    w.start();
    w.send(command("charge_card", "k", "m-1"));

    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].status == reply_status::permanent_failure);
    CHECK(replies[0].type == "charge_card");
    CHECK_THAT(replies[0].error, Catch::Contains("charge_card"));
    CHECK(w.billing.stats().unknown_type == 1);
    CHECK(w.billing.stats().handled == 0);
}

TEST_CASE("participant: a permanent reply is recorded like a success", "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++calls;
        return participant_reply::permanent("budget exhausted");
    });
    w.start();
    w.send(command("reserve_budget", "k", "m-1"));
    w.send(command("reserve_budget", "k", "m-2"));
    CHECK(calls == 1);
    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 2);
    CHECK(replies[1].status == reply_status::permanent_failure);
    CHECK(replies[1].error == "budget exhausted");
    CHECK(w.billing.stats().deduplicated == 1);
}

TEST_CASE("participant: a compensation that arrives first makes the late command be refused",
          "[participant][compensation]") {
    world w;
    int forward = 0;
    int undo = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++forward;
        return participant_reply::success();
    });
    w.billing.on("release_budget", [&](const envelope&) {
        ++undo;
        return participant_reply::success({{"released", 0}});
    });
    w.start();
    w.send(compensation("release_budget", "saga-1/reserve_budget", "c-1"));
    CHECK(undo == 1);
    CHECK(w.billing.stats().refused == 0);  // nothing refused yet

    w.send(command("reserve_budget", "saga-1/reserve_budget", "m-1"));
    w.send(command("reserve_budget", "saga-1/reserve_budget", "m-2", 2));
    CHECK(forward == 0);
    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 3);
    CHECK(replies[0].status == reply_status::success);
    CHECK(replies[0].idempotency_key == "saga-1/reserve_budget/compensate");
    for (int i : {1, 2}) {
        CHECK(replies[i].status == reply_status::permanent_failure);
        CHECK(replies[i].error == "compensated before it was applied");
        CHECK(replies[i].type == "reserve_budget");
    }
    CHECK(w.billing.stats().refused == 2);
    CHECK(w.billing.stats().handled == 1);
}

TEST_CASE("participant: a compensation after its command leaves the command's reply alone",
          "[participant][compensation]") {
    world w;
    int forward = 0;
    int undo = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++forward;
        return participant_reply::success({{"reservation", "r-1"}});
    });
    w.billing.on("release_budget", [&](const envelope&) {
        ++undo;
        return participant_reply::success();
    });
    w.start();
    w.send(command("reserve_budget", "saga-1/reserve_budget", "m-1"));
    w.send(compensation("release_budget", "saga-1/reserve_budget", "c-1"));
    w.send(compensation("release_budget", "saga-1/reserve_budget", "c-2"));  // repeated
    w.send(command("reserve_budget", "saga-1/reserve_budget", "m-2"));       // repeated

    CHECK(forward == 1);
    CHECK(undo == 1);
    const auto replies = w.replies.all();
    REQUIRE(replies.size() == 4);
    for (const auto& r : replies) CHECK(r.status == reply_status::success);
    CHECK(replies[3].payload == nlohmann::json{{"reservation", "r-1"}});
    CHECK(w.billing.stats().refused == 0);
    CHECK(w.billing.stats().deduplicated == 2);
}

TEST_CASE("participant: concurrent duplicate deliveries do not run the handler twice",
          "[participant][concurrency]") {
    auto clock = std::make_shared<saga::virtual_clock>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
    boost::asio::thread_pool pool(2);
    reply_box replies;
    auto replies_sub = transport->consume(replies_endpoint, pool.get_executor(), replies.handler());
    REQUIRE(replies_sub);

    std::promise<void> open_gate;
    std::shared_future<void> gate = open_gate.get_future().share();
    bool gate_opened = false;
    const auto open = [&] {
        if (!gate_opened) open_gate.set_value();
        gate_opened = true;
    };
    std::atomic<int> calls{0};
    std::atomic<bool> entered{false};
    {
        saga::participant billing(transport, "billing");
        billing.on("reserve_budget", [&](const envelope&) {
            ++calls;
            entered = true;
            gate.wait();  // hold the key while the duplicate arrives
            return participant_reply::success({{"ok", true}});
        });
        REQUIRE(billing.start(pool.get_executor()));

        const auto wait_for = [](auto condition) {
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while (!condition()) {
                if (std::chrono::steady_clock::now() > deadline) return false;
                std::this_thread::sleep_for(1ms);
            }
            return true;
        };

        transport->async_send("billing", command("reserve_budget", "k", "m-1"), {});
        transport->async_send("billing", command("reserve_budget", "k", "m-2"), {});
        // one delivery runs the handler, the other finds the key busy and is nacked
        const bool busy_seen =
            wait_for([&] { return entered.load() && transport->stats().nacked >= 1; });
        open();
        REQUIRE(busy_seen);
        REQUIRE(wait_for([&] { return replies.size() == 1; }));
        clock->advance(1s);  // the nacked duplicate comes back, and is answered from the record
        REQUIRE(wait_for([&] { return replies.size() == 2; }));

        CHECK(calls == 1);
        const auto all = replies.all();
        CHECK(all[0].payload == all[1].payload);
        CHECK(billing.stats().handled == 1);
        CHECK(billing.stats().deduplicated == 1);
        CHECK(wait_for([&] { return transport->pending("billing") == 0; }));
    }
    open();
    replies_sub.value()->stop();  // checked by REQUIRE above
    pool.join();
}

TEST_CASE("participant: a reply that fails to send is sent again from the record",
          "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++calls;
        return participant_reply::success({{"ok", true}});
    });
    w.start();
    // send 1 is the command itself, send 2 the participant's reply
    w.transport->set_faults({.fail_nth_send = 2});
    w.send(command("reserve_budget", "k", "m-1"));
    CHECK(w.replies.size() == 0);
    CHECK(w.transport->pending("billing") == 1);  // nacked, not acked
    w.clock->advance(1s);
    w.drain();
    CHECK(calls == 1);
    REQUIRE(w.replies.size() == 1);
    CHECK(w.replies.all()[0].payload == nlohmann::json{{"ok", true}});
    CHECK(w.billing.stats().deduplicated == 1);
    CHECK(w.transport->pending("billing") == 0);
}

TEST_CASE("participant: replies and events are acked and ignored", "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++calls;
        return participant_reply::success();
    });
    w.start();
    auto reply = command("reserve_budget", "k", "m-1");
    reply.kind = message_kind::reply;
    auto event = command("reserve_budget", "k", "m-2");
    event.kind = message_kind::event;
    w.send(reply);
    w.send(event);
    CHECK(calls == 0);
    CHECK(w.replies.size() == 0);
    CHECK(w.transport->pending("billing") == 0);
}

TEST_CASE("participant: the idempotency key falls back to the message id", "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++calls;
        return participant_reply::success();
    });
    w.start();
    w.send(command("reserve_budget", "", "m-1"));
    w.send(command("reserve_budget", "", "m-1"));  // the same message again
    w.send(command("reserve_budget", "", "m-2"));  // another message
    CHECK(calls == 2);
    CHECK(w.billing.stats().deduplicated == 1);
}

TEST_CASE("participant: start twice is refused, stop then start works", "[participant]") {
    world w;
    int calls = 0;
    w.billing.on("reserve_budget", [&](const envelope&) {
        ++calls;
        return participant_reply::success();
    });
    w.start();
    auto again = w.billing.start(w.io.get_executor());
    REQUIRE_FALSE(again);
    CHECK(again.error() == saga::errc::invalid_state);
    w.billing.stop();
    w.send(command("reserve_budget", "k", "m-1"));
    CHECK(calls == 0);
    w.start();
    w.drain();
    CHECK(calls == 1);
}

TEST_CASE("memory_reply_store keeps the last reply saved under a key", "[participant]") {
    saga::memory_reply_store store;
    CHECK_FALSE(store.find("k").has_value());
    store.save("k", participant_reply::success({{"n", 1}}));
    store.save("k", participant_reply::permanent("no"));
    const auto found = store.find("k");
    REQUIRE(found.has_value());
    CHECK(found->status == reply_status::permanent_failure);
    CHECK(found->error == "no");
    CHECK_FALSE(store.find("other").has_value());
}
