#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <saga/clock.hpp>
#include <saga/inmemory/memory_transport.hpp>

namespace {

using namespace std::chrono_literals;
using saga::inmemory::fault_plan;
using saga::inmemory::memory_transport;

saga::envelope numbered(int n) {
    saga::envelope e;
    e.message_id = "m-" + std::to_string(n);
    e.type = "numbered";
    e.payload = {{"n", n}};
    return e;
}

/// A memory transport on a virtual clock, with an io_context for its deliveries.
struct rig {
    explicit rig(fault_plan plan = {})
        : clock(std::make_shared<saga::virtual_clock>()),
          transport(std::make_shared<memory_transport>(clock, plan)) {}

    /// Sends and returns the result (completions of the memory transport are inline).
    saga::result<void> send(const std::string& endpoint, saga::envelope e) {
        std::optional<saga::result<void>> out;
        transport->async_send(endpoint, std::move(e),
                              [&](saga::result<void> r) { out.emplace(r); });
        REQUIRE(out.has_value());
        return *out;
    }

    /// Consumes `endpoint`, recording every delivery (and acking it when `ack`).
    void consume(const std::string& endpoint, bool ack, std::size_t max_in_flight = 64) {
        auto sub = transport->consume(endpoint, io.get_executor(),
                                      [this, ack](std::shared_ptr<saga::delivery> d) {
                                          deliveries.push_back(d);
                                          if (ack) d->ack();
                                      },
                                      {.visibility_timeout = 1s, .max_in_flight = max_in_flight});
        REQUIRE(sub);
        subs.push_back(std::move(sub).value());
    }

    /// Runs every ready handler.
    void drain() {
        do io.restart();
        while (io.poll() > 0);
    }

    /// The message ids delivered so far, in order.
    [[nodiscard]] std::vector<std::string> ids() const {
        std::vector<std::string> out;
        for (const auto& d : deliveries) out.push_back(d->message().message_id);
        return out;
    }

    std::shared_ptr<saga::virtual_clock> clock;
    std::shared_ptr<memory_transport> transport;
    boost::asio::io_context io;
    std::vector<std::shared_ptr<saga::delivery>> deliveries;
    std::vector<std::unique_ptr<saga::subscription>> subs;
};

}  // namespace

TEST_CASE("fail_nth_send fails exactly the Nth send or publish", "[fault][transport]") {
    rig r({.fail_nth_send = 3});
    CHECK(r.send("q", numbered(1)));
    CHECK(r.send("q", numbered(2)));
    const auto third = r.send("q", numbered(3));
    REQUIRE_FALSE(third);
    CHECK(third.error() == saga::errc::transport_failure);
    CHECK(third.error() == saga::condition::transient);
    CHECK(r.send("q", numbered(4)));
    CHECK(r.send("q", numbered(5)));
    CHECK(r.transport->pending("q") == 4);  // the failed one enqueued nothing
    auto s = r.transport->stats();
    CHECK(s.sends_failed == 1);
    CHECK(s.sent == 4);

    SECTION("publications count too") {
        r.transport->set_faults({.fail_nth_send = 2});
        REQUIRE(r.transport->subscribe("t", "q"));
        bool first = false;
        bool second = true;
        r.transport->async_publish("t", numbered(6),
                                   [&](saga::result<void> x) { first = x.has_value(); });
        r.transport->async_publish("t", numbered(7),
                                   [&](saga::result<void> x) { second = x.has_value(); });
        CHECK(first);
        CHECK_FALSE(second);
        CHECK(r.transport->pending("q") == 5);
        CHECK(r.transport->stats().sends_failed == 2);
    }
    SECTION("setting the plan again restarts the count") {
        r.transport->set_faults({.fail_nth_send = 1});
        CHECK_FALSE(r.send("q", numbered(6)));
        CHECK(r.send("q", numbered(7)));
        CHECK(r.send("q", numbered(8)));
        CHECK(r.transport->stats().sends_failed == 2);
    }
}

TEST_CASE("duplicate queues a sent message twice", "[fault][transport]") {
    rig r({.duplicate = 1.0});
    CHECK(r.send("q", numbered(1)));
    CHECK(r.transport->pending("q") == 2);
    CHECK(r.transport->stats().duplicated == 1);
    r.consume("q", true);
    r.drain();
    CHECK(r.ids() == std::vector<std::string>{"m-1", "m-1"});
    CHECK(r.deliveries[0]->delivery_count() == 1);
    CHECK(r.deliveries[1]->delivery_count() == 1);  // two messages, not a redelivery
    CHECK(r.transport->pending("q") == 0);
}

TEST_CASE("delay makes a sent message visible only after a random delay", "[fault][transport]") {
    rig r({.delay = 1.0, .max_delay = 500ms});
    r.consume("q", true);
    CHECK(r.send("q", numbered(1)));
    r.drain();
    CHECK(r.deliveries.empty());
    CHECK(r.transport->pending("q") == 1);
    CHECK(r.transport->stats().delayed == 1);
    REQUIRE(r.clock->next_due().has_value());
    const auto wait = *r.clock->next_due() - r.clock->now();
    CHECK(wait > 0ms);
    CHECK(wait <= 500ms);
    r.clock->advance(500ms);
    r.drain();
    CHECK(r.ids() == std::vector<std::string>{"m-1"});
    CHECK(r.transport->pending("q") == 0);
}

TEST_CASE("reorder queues a message ahead of earlier ones", "[fault][transport]") {
    rig r({.reorder = 1.0});
    // each message goes somewhere before the last one queued: the first sent ends up last
    for (int i = 1; i <= 3; ++i) CHECK(r.send("q", numbered(i)));
    CHECK(r.transport->stats().reordered == 2);  // the first had nothing to overtake
    r.consume("q", true);
    r.drain();
    const auto ids = r.ids();
    REQUIRE(ids.size() == 3);
    CHECK(ids.back() == "m-1");
    CHECK(ids != std::vector<std::string>{"m-1", "m-2", "m-3"});
}

TEST_CASE("drop_ack loses acks so the message comes back", "[fault][transport]") {
    rig r({.drop_ack = 1.0});
    r.consume("q", false);
    CHECK(r.send("q", numbered(1)));
    r.drain();
    REQUIRE(r.deliveries.size() == 1);
    r.deliveries[0]->ack();
    CHECK(r.transport->stats().acks_dropped == 1);
    CHECK(r.transport->stats().acked == 0);
    CHECK(r.transport->pending("q") == 1);
    r.clock->advance(1s);
    r.drain();
    REQUIRE(r.deliveries.size() == 2);
    CHECK(r.deliveries[1]->delivery_count() == 2);
    CHECK(r.transport->stats().redelivered == 1);

    r.transport->set_faults({});
    r.deliveries[1]->ack();
    CHECK(r.transport->pending("q") == 0);
    CHECK(r.transport->stats().acked == 1);
}

TEST_CASE("the same seed draws the same faults", "[fault][transport]") {
    const auto run = [](std::uint64_t seed) {
        rig r({.seed = seed,
               .drop_ack = 0.2,
               .duplicate = 0.2,
               .delay = 0.2,
               .max_delay = 300ms,
               .reorder = 0.3});
        for (int i = 0; i < 100; ++i) CHECK(r.send("q", numbered(i)));
        r.consume("q", true, 1);
        for (int round = 0; round < 20; ++round) {
            r.drain();
            r.clock->advance(500ms);
        }
        r.drain();
        CHECK(r.transport->pending("q") == 0);  // every message got through in the end
        return std::pair{r.ids(), r.transport->stats()};
    };
    const auto [ids_a, stats_a] = run(42);
    const auto [ids_b, stats_b] = run(42);
    CHECK(ids_a == ids_b);
    CHECK(stats_a.duplicated == stats_b.duplicated);
    CHECK(stats_a.delayed == stats_b.delayed);
    CHECK(stats_a.reordered == stats_b.reordered);
    CHECK(stats_a.acks_dropped == stats_b.acks_dropped);
    CHECK(stats_a.redelivered == stats_b.redelivered);
    // with these probabilities every kind of fault happens in 100 messages
    CHECK(stats_a.duplicated > 0);
    CHECK(stats_a.delayed > 0);
    CHECK(stats_a.reordered > 0);
    CHECK(stats_a.acks_dropped > 0);

    const auto [ids_c, stats_c] = run(43);
    CHECK(ids_c != ids_a);  // a different seed, a different run
}
