// Scenarios: outbox and inbox, duplicated/late/reordered messages, for-each, endpoint policies,
// awaitable local steps, observers, real worker threads, and the 1,000-saga soak.
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <random>
#include <thread>

#include "trip_saga.hpp"

using namespace saga;
using namespace saga::test;

TEST_CASE("every transition is durable before the message it causes is released",
          "[engine][outbox]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    std::vector<std::string> problems;
    auto check = [&](const envelope& e) {
        // When a participant sees a command, the store already records the step as running at
        // that attempt.
        if (w.attempts_recorded(e.saga_id, e.step) < e.attempt)
            problems.push_back("attempt not recorded for " + e.step);
        return participant_reply::success();
    };
    trip_services(w, check, check, check, check);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    CHECK(w.view(id.value()).status == saga_status::completed);
    CHECK(problems.empty());
    CHECK(w.unreleased_messages() == 0);  // every released message was acknowledged
}

TEST_CASE("duplicated, late and reordered replies change nothing", "[engine][inbox]") {
    world w(inmemory::fault_plan{.seed = 7, .duplicate = 1.0, .reorder = 0.5});
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    const auto events = w.events_of(id.value());
    for (const auto& step : {"reserve_credit", "book_flight", "book_hotel", "charge"}) {
        INFO(step);
        CHECK(count_of(events, std::string("step_completed:") + step) == 1);
        CHECK(count_of(events, std::string("reply_received:") + step) == 1);
    }
    for (const auto& [name, s] : w.services) CHECK(s->max_effects() <= 1);

    // A late copy of an old reply, delivered by hand after the end, changes nothing either.
    const auto before = w.version_of(id.value());
    envelope late;
    late.message_id = "late-copy";
    late.kind = message_kind::reply;
    late.saga_id = id.value();
    late.step = "reserve_credit";
    late.attempt = 1;
    late.idempotency_key = id.value() + "/reserve_credit";
    late.status = reply_status::permanent_failure;
    late.error = "too late";
    bool sent = false;
    w.transport->async_send("saga.engine", late,
                            [&](result<void> r) { sent = static_cast<bool>(r); });
    w.settle();
    CHECK(sent);
    CHECK(w.version_of(id.value()) == before);
    CHECK(w.view(id.value()).status == saga_status::completed);
}

namespace {
struct catalog {
    std::vector<std::string> products;
    std::vector<std::string> published;
    std::size_t failed = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(catalog, products, published, failed)
}  // namespace

TEST_CASE(
    "a for-each step runs items in chunks with a concurrency limit and reports per-item results",
    "[engine][for_each]") {
    for (auto policy : {for_each_policy::continue_on_failure, for_each_policy::fail_fast}) {
        DYNAMIC_SECTION(
            "policy " << (policy == for_each_policy::fail_fast ? "fail_fast" : "continue")) {
            world w;
            std::atomic<int> in_flight{0};
            std::atomic<int> max_in_flight{0};
            auto p = std::make_unique<participant>(w.transport, "catalog");
            auto state = std::make_shared<service_state>();
            p->on("ensure", [&, state](const envelope& e) {
                const auto sku = e.payload.value("sku", std::string());
                if (sku == "bad-1" || sku == "bad-2")
                    return participant_reply::permanent("not compliant: " + sku);
                state->apply(e.idempotency_key);
                std::lock_guard lock(state->mutex);
                state->held[sku] = e.payload;
                return participant_reply::success(json{{"sku", sku}});
            });
            p->on("remove", [state](const envelope& e) {
                state->apply(e.idempotency_key);
                std::lock_guard lock(state->mutex);
                state->held.erase(e.payload.value("sku", std::string()));
                return participant_reply::success();
            });
            REQUIRE(p->start(w.eng->get_executor()));
            // Count concurrency at the engine: commands out minus replies in.
            struct counter final : observer {
                std::atomic<int>& in_flight;
                std::atomic<int>& max_in_flight;
                counter(std::atomic<int>& a, std::atomic<int>& b)
                    : in_flight(a), max_in_flight(b) {}
                void on_transition(const instance_record&,
                                   std::span<const history_entry> es) override {
                    for (const auto& e : es) {
                        if (e.event == "step_started" && e.step.starts_with("feed[")) ++in_flight;
                        if (e.event == "reply_received" && e.step.starts_with("feed[")) --in_flight;
                        int m = max_in_flight;
                        while (in_flight > m &&
                               !max_in_flight.compare_exchange_weak(m, in_flight)) {
                        }
                    }
                }
            };
            w.eng->add_observer(std::make_shared<counter>(in_flight, max_in_flight));

            definition_builder<catalog> b("feed", 1);
            b.for_each(
                 "feed", [](const catalog& c) { return c.products; },
                 [policy](for_each_builder<catalog, std::string>& e) {
                     e.remote("catalog",
                              [](const catalog&, const std::string& sku) {
                                  return command{"ensure", {{"sku", sku}}};
                              })
                         .on_reply([](catalog& c, const std::string& sku, const json&) {
                             c.published.push_back(sku);
                         })
                         .compensate_remote("catalog",
                                            [](const catalog&, const std::string& sku) {
                                                return command{"remove", {{"sku", sku}}};
                                            })
                         .chunk(4)
                         .concurrency(2)
                         .on_failure(policy)
                         .on_results([](catalog& c, std::span<const item_result> r) {
                             c.failed = static_cast<std::size_t>(
                                 std::count_if(r.begin(), r.end(), [](const item_result& i) {
                                     return i.status == step_status::failed;
                                 }));
                         });
                 })
                .local("done", [](catalog&) {});
            auto d = std::move(b).build();
            REQUIRE(d);
            REQUIRE(w.eng->add(d.value()));
            catalog c;
            for (int i = 0; i < 10; ++i) c.products.push_back("sku-" + std::to_string(i));
            c.products[5] = "bad-1";
            c.products[8] = "bad-2";
            auto id = w.eng->start("feed", c);
            REQUIRE(id);
            w.settle();
            auto v = w.view(id.value());
            const auto* feed = v.step("feed");
            REQUIRE(feed);
            CHECK(feed->items_total == 10);
            CHECK(max_in_flight <= 2);
            if (policy == for_each_policy::continue_on_failure) {
                CHECK(v.status == saga_status::completed);
                CHECK(feed->items_failed == 2);
                CHECK(feed->items_completed == 8);
                CHECK(v.data_as<catalog>().value().failed == 2);
                CHECK(v.data_as<catalog>().value().published.size() == 8);
                CHECK(state->held_count() == 8);
                CHECK(feed->items[5].status == step_status::failed);
                CHECK(feed->items[5].error.find("not compliant") != std::string::npos);
            } else {
                // Items 0..3 (chunk 1) and 4 completed, 5 failed; the chunk's other running item
                // settled; nothing after it started; all completed items were removed again.
                CHECK(v.status == saga_status::compensated);
                CHECK(feed->items[5].status == step_status::failed);
                CHECK(feed->items[9].status == step_status::pending);
                CHECK(state->held_count() == 0);
            }
            CHECK(state->max_effects() == 1);
        }
    }
}

TEST_CASE("an endpoint's rate limit spaces out commands and its open circuit fails fast",
          "[engine][endpoint]") {
    SECTION("rate limit") {
        world w;
        w.eng->set_endpoint_policy("billing", {.rate = {.per_second = 2, .burst = 1}});
        REQUIRE(w.eng->add(trip_definition(w.log)));
        trip_services(w);
        const auto t0 = w.clock->now();
        std::vector<std::string> ids;
        for (int i = 0; i < 5; ++i) ids.push_back(w.eng->start("trip", trip{}).value());
        w.settle();
        for (const auto& id : ids) CHECK(w.view(id).status == saga_status::completed);
        // Five reservations at 2 per second, the first free: at least 2 s of virtual time.
        CHECK(w.clock->now() - t0 >= std::chrono::seconds{2});
    }
    SECTION("circuit breaker") {
        world w;
        w.eng->set_endpoint_policy(
            "billing", {.breaker = {.failure_threshold = 2, .cool_down = std::chrono::minutes{5}}});
        REQUIRE(w.eng->add(trip_definition(
            w.log, {.retry = retry_policy::exponential(4, std::chrono::seconds{1})})));
        trip_services(w, fail_transiently(1000));
        auto id = w.eng->start("trip", trip{});
        REQUIRE(id);
        w.settle();
        auto v = w.view(id.value());
        CHECK(v.status == saga_status::compensated);
        CHECK(v.step("reserve_credit")->attempts == 4);
        // Two reservations reached billing; the breaker opened and refused the other attempts.
        // The step's outcome is uncertain (its last answer was "busy"), so it is undone: the
        // release goes through, as compensations are not held back by the breaker.
        CHECK(w.participants[0]->stats().handled == 3);
        CHECK(v.step("reserve_credit")->error.find("circuit") != std::string::npos);
        CHECK(v.step("reserve_credit")->status == step_status::compensated);
        CHECK(w.eng->endpoint_circuit("billing") == circuit_state::open);
    }
}

namespace {
struct counter_data {
    int value = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(counter_data, value)
}  // namespace

TEST_CASE("awaitable local steps run on the engine's strand", "[engine][async]") {
    world w;
    definition_builder<counter_data> b("async", 1);
    b.local("fast",
            [](counter_data& d) -> boost::asio::awaitable<result<void>> {
                d.value += 1;
                co_return success();
            })
        .compensate([](counter_data& d) -> boost::asio::awaitable<void> {
            d.value -= 1;
            co_return;
        })
        .local("fails", [](counter_data&) -> boost::asio::awaitable<result<void>> {
            co_return permanent_error("nope");
        });
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    auto id = w.eng->start("async", counter_data{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("fast")->status == step_status::compensated);
    CHECK(v.data_as<counter_data>().value().value == 0);
}

TEST_CASE("an awaitable local step that overruns its timeout is cancelled and retried",
          "[engine][async][threads]") {
    auto store = std::make_shared<inmemory::memory_journal_store>();
    auto clock = std::make_shared<system_clock>();
    auto transport = std::make_shared<inmemory::memory_transport>(clock);
    engine eng(store, transport, {.workers = 2, .clock = clock});
    definition_builder<counter_data> b("async_timeout", 1);
    b.local("slow",
            [](counter_data& d, step_context& ctx) -> boost::asio::awaitable<void> {
                if (ctx.attempt() == 1) {
                    // Hangs on the first attempt: only the timeout's cancellation ends it.
                    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                                std::chrono::hours{1});
                    co_await t.async_wait(boost::asio::use_awaitable);
                }
                d.value += 10;
            })
        .timeout(std::chrono::milliseconds{200})
        .retry(retry_policy::exponential(2, std::chrono::milliseconds{10}));
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(eng.add(d.value()));
    std::thread runner([&] { REQUIRE(eng.run()); });
    auto id = eng.start("async_timeout", counter_data{});
    REQUIRE(id);
    auto v = eng.wait(id.value());
    eng.stop();
    runner.join();
    REQUIRE(v);
    CHECK(v.value().status == saga_status::completed);
    CHECK(v.value().data_as<counter_data>().value().value == 10);
    CHECK(v.value().step("slow")->attempts == 2);
}

TEST_CASE("user steps that throw fail with step_threw and the saga compensates",
          "[engine][errors]") {
    world w;
    definition_builder<counter_data> b("throws", 1);
    b.local("one", [](counter_data& d) { d.value = 1; })
        .compensate([](counter_data& d) { d.value = -1; })
        .local("two", [](counter_data&) -> result<void> { throw std::runtime_error("boom"); });
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    auto id = w.eng->start("throws", counter_data{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("two")->error.find("boom") != std::string::npos);
    CHECK(v.data_as<counter_data>().value().value == -1);
}

TEST_CASE("observers see every committed transition and query reports progress",
          "[engine][observer][query]") {
    world w;
    struct recorder final : observer {
        std::mutex m;
        std::vector<std::string> events;
        void on_transition(const instance_record&, std::span<const history_entry> es) override {
            std::lock_guard lock(m);
            for (const auto& e : es)
                events.push_back(e.event + (e.step.empty() ? "" : ":" + e.step));
        }
    };
    auto rec = std::make_shared<recorder>();
    w.eng->add_observer(rec);
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    // start() returns with its first record durable: the plain local step `validate` ran in
    // it, the remote `reserve_credit` is under way
    auto v0 = w.view(id.value());
    CHECK(v0.step("validate")->status == step_status::completed);
    CHECK(v0.step("reserve_credit")->status == step_status::running);
    CHECK(v0.percent_complete > 0.0);
    CHECK(v0.percent_complete < 100.0);
    w.settle();
    CHECK(w.view(id.value()).percent_complete == 100.0);
    const auto history = w.events_of(id.value());
    CHECK(rec->events == history);  // the observers saw exactly the durable history
}

TEST_CASE("async_wait completes with the settled instance", "[engine][wait]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    std::optional<saga_status> seen;
    w.eng->async_wait(id.value(), [&](result<instance_view> r) {
        REQUIRE(r);
        seen = r.value().status;
    });
    CHECK(!seen);
    w.settle();
    REQUIRE(seen);
    CHECK(*seen == saga_status::completed);
}

TEST_CASE("the engine runs sagas on real worker threads with the system clock",
          "[engine][threads]") {
    auto store = std::make_shared<inmemory::memory_journal_store>();
    auto clock = std::make_shared<system_clock>();
    auto transport = std::make_shared<inmemory::memory_transport>(clock);
    engine eng(store, transport, {.workers = 4, .clock = clock});
    journal log;
    REQUIRE(eng.add(trip_definition(
        log, {.retry = retry_policy::exponential(5, std::chrono::milliseconds{5})})));
    std::vector<std::unique_ptr<participant>> ps;
    for (auto [ep, a, r] : {std::tuple{"billing", "reserve", "release"},
                            {"flights", "book", "cancel"},
                            {"hotels", "book", "cancel"},
                            {"payments", "charge", "refund"}}) {
        auto p = std::make_unique<participant>(transport, ep);
        p->on(a, [](const envelope& e) {
            return participant_reply::success(json{{"id", e.idempotency_key}});
        });
        p->on(r, [](const envelope&) { return participant_reply::success(); });
        REQUIRE(p->start(eng.get_executor()));
        ps.push_back(std::move(p));
    }
    std::thread runner([&] { REQUIRE(eng.run()); });
    std::vector<std::string> ids;
    for (int i = 0; i < 200; ++i) {
        auto id = eng.start("trip", trip{});
        REQUIRE(id);
        ids.push_back(id.value());
    }
    std::size_t completed = 0;
    for (const auto& id : ids) {
        auto v = eng.wait(id);
        REQUIRE(v);
        if (v.value().status == saga_status::completed) ++completed;
    }
    auto fut = eng.async_wait(ids.front(), boost::asio::use_future);
    CHECK(fut.get().value().status == saga_status::completed);
    for (auto& p : ps) p->stop();
    eng.stop();
    runner.join();
    CHECK(completed == ids.size());
}

TEST_CASE(
    "1,000 concurrent sagas over a faulty transport all end completed or compensated, and the "
    "services "
    "agree",
    "[engine][soak]") {
    world w(inmemory::fault_plan{.seed = 2026,
                                 .drop_ack = 0.05,
                                 .duplicate = 0.05,
                                 .delay = 0.1,
                                 .max_delay = std::chrono::seconds{2},
                                 .reorder = 0.1});
    REQUIRE(w.eng->add(trip_definition(w.log)));
    // Deterministic trouble: some bookings fail for good, some transiently.
    auto flaky = [](int every_permanent, int every_transient) {
        auto n = std::make_shared<std::atomic<int>>(0);
        return [n, every_permanent, every_transient](const envelope&) {
            const int k = n->fetch_add(1);
            if (k % every_permanent == 0) return participant_reply::permanent("declined");
            if (k % every_transient == 0) return participant_reply::transient("busy");
            return participant_reply::success();
        };
    };
    trip_services(w, flaky(13, 5), flaky(17, 7), flaky(19, 3), flaky(23, 11));
    std::vector<std::string> ids;
    for (int i = 0; i < 1000; ++i) {
        auto id = w.eng->start("trip", trip{});
        REQUIRE(id);
        ids.push_back(id.value());
    }
    w.settle();
    std::size_t completed = 0;
    std::size_t compensated = 0;
    for (const auto& id : ids) {
        auto v = w.view(id);
        const bool ok = v.status == saga_status::completed || v.status == saga_status::compensated;
        if (!ok) FAIL_CHECK("saga " << id << " ended " << to_string(v.status) << ": " << v.error);
        if (v.status == saga_status::completed) {
            ++completed;
            // Every resource of a completed trip is held, exactly once.
            CHECK(w.services["billing"]->holds("billing:" + id + "/reserve_credit"));
            CHECK(w.services["flights"]->holds("flights:" + id + "/book_flight"));
            CHECK(w.services["hotels"]->holds("hotels:" + id + "/book_hotel"));
        } else {
            ++compensated;
            if (w.services["flights"]->holds("flights:" + id + "/book_flight") ||
                w.services["hotels"]->holds("hotels:" + id + "/book_hotel")) {
                std::string all;
                auto hist = w.eng->history(id);
                for (const auto& e : hist.value())
                    all += e.event + ":" + e.step + "#" + std::to_string(e.attempt) + " " +
                           e.detail.dump() + "\n";
                std::fprintf(stderr, "---- %s\n%s", id.c_str(), all.c_str());
            }
            CHECK(!w.services["billing"]->holds("billing:" + id + "/reserve_credit"));
            CHECK(!w.services["flights"]->holds("flights:" + id + "/book_flight"));
            CHECK(!w.services["hotels"]->holds("hotels:" + id + "/book_hotel"));
        }
    }
    CHECK(completed > 0);
    CHECK(compensated > 0);
    // No orphan: the services hold exactly what the completed trips hold.
    CHECK(w.services["billing"]->held_count() == completed);
    CHECK(w.services["flights"]->held_count() == completed);
    CHECK(w.services["hotels"]->held_count() == completed);
    // No double effect for one idempotency key.
    for (const auto& [name, s] : w.services) {
        INFO(name);
        CHECK(s->max_effects() == 1);
    }
    CHECK(w.transport->stats().duplicated > 0);
    CHECK(w.transport->stats().acks_dropped > 0);
    CHECK(w.eng->active_instances() == 0);
}
