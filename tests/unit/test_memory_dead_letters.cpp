// The in-memory transport's dead-letter list: a raw body that can never be decoded leaves the
// queue on its first receive, with the reason, and is counted; one that decodes is delivered.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>
#include <vector>

#include <saga/clock.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/metrics.hpp>

namespace {

using namespace std::chrono_literals;
using saga::dead_letter_reason;
using saga::inmemory::memory_transport;

struct rig {
    std::shared_ptr<saga::virtual_clock> clock = std::make_shared<saga::virtual_clock>();
    std::shared_ptr<memory_transport> transport = std::make_shared<memory_transport>(clock);
    std::shared_ptr<saga::metrics_registry> metrics = std::make_shared<saga::metrics_registry>();
    boost::asio::io_context io;
    std::vector<std::shared_ptr<saga::delivery>> deliveries;
    std::unique_ptr<saga::subscription> sub;

    rig() {
        transport->set_metrics(metrics);
        auto s = transport->consume("q", io.get_executor(),
                                    [this](std::shared_ptr<saga::delivery> d) {
                                        deliveries.push_back(d);
                                        // fails the first time: the message comes back
                                        if (d->delivery_count() == 1)
                                            d->nack();
                                        else
                                            d->ack();
                                    },
                                    {.visibility_timeout = 1s, .max_in_flight = 4});
        REQUIRE(s);
        sub = std::move(s).value();
    }
    void drain() {
        do io.restart();
        while (io.poll() > 0);
    }
    double counted(dead_letter_reason r) const {
        return metrics->value("saga_messages_dead_lettered_total",
                              {{"endpoint", "q"}, {"reason", std::string{saga::to_string(r)}}});
    }
};

std::string nested(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

TEST_CASE("memory transport: an undecodable body is dead-lettered on its first receive",
          "[transport][memory][dlq]") {
    struct junk {
        std::string body;
        dead_letter_reason reason;
        std::string says;  // in the detail
    };
    const std::vector<junk> cases{
        {"{not json", dead_letter_reason::decode, "not valid JSON"},
        {R"({"kind":"reply","saga_id":"s-1"})", dead_letter_reason::decode, "message_id"},
        {R"({"message_id":42})", dead_letter_reason::decode, "string"},
        {R"({"message_id":"m","attempt":"one"})", dead_letter_reason::decode, "number"},
        {R"({"message_id":"m","kind":"bogus"})", dead_letter_reason::decode, "bogus"},
        {nested(100), dead_letter_reason::too_deep, "64 levels"},
        {R"({"message_id":"m","payload":)" + nested(65) + "}", dead_letter_reason::too_deep,
         "64 levels"},
        {std::string((16u << 20) + 1, ' '), dead_letter_reason::too_big, "bytes"},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION("reason " << saga::to_string(c.reason) << ", detail says " << c.says) {
            rig r;
            REQUIRE(r.transport->inject_raw("q", c.body));
            r.drain();
            CHECK(r.deliveries.empty());  // no handler saw it
            CHECK(r.transport->pending("q") == 0);
            const auto dead = r.transport->dead_letters("q");
            REQUIRE(dead.size() == 1);
            CHECK(dead[0].endpoint == "q");
            CHECK(dead[0].body == c.body);
            CHECK(dead[0].reason == c.reason);
            INFO(dead[0].detail);
            CHECK(dead[0].detail.find(c.says) != std::string::npos);
            CHECK(r.transport->stats().dead_lettered == 1);
            CHECK(r.transport->stats().delivered == 0);
            CHECK(r.counted(c.reason) == 1);
        }
    }
}

TEST_CASE("memory transport: an injected body that decodes is delivered like any message",
          "[transport][memory][dlq]") {
    rig r;
    REQUIRE(r.transport->inject_raw("q", R"({"message_id":"m-1","type":"t","payload":{"n":1}})"));
    r.drain();
    // nacked the first time, it came back (decoded once, delivered twice) and was acked
    REQUIRE(r.deliveries.size() == 2);
    for (const auto& d : r.deliveries) {
        CHECK(d->message().message_id == "m-1");
        CHECK(d->message().payload.at("n") == 1);
    }
    CHECK(r.deliveries[1]->delivery_count() == 2);
    CHECK(r.transport->pending("q") == 0);
    CHECK(r.transport->dead_letters("q").empty());
    CHECK(r.transport->stats().dead_lettered == 0);
    CHECK_FALSE(r.transport->inject_raw("", "{}"));
}
