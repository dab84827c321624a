// Scenarios: operator actions — pause and resume, retry after a failed compensation or a failed
// step, skipping a step, force-releasing a correlation-key lock — each recorded with who and why.
#include "trip_saga.hpp"

#include <future>
#include <thread>

using namespace saga;
using namespace saga::test;

namespace {

const operator_note ops{"ops@example.com", "incident 42"};

/// Fails permanently the first `n` calls, then succeeds.
behaviour fail_permanently_first(int n) {
    auto count = std::make_shared<std::atomic<int>>(0);
    return [count, n](const envelope&) {
        if (count->fetch_add(1) < n) return participant_reply::permanent("down for maintenance");
        return participant_reply::success();
    };
}

const history_entry* find_event(const std::vector<history_entry>& h, std::string_view event) {
    for (const auto& e : h)
        if (e.event == event) return &e;
    return nullptr;
}

void check_audited(world& w, const std::string& id, std::string_view event) {
    auto h = w.eng->history(id);
    REQUIRE(h);
    const auto* e = find_event(h.value(), event);
    INFO(event);
    REQUIRE(e);
    CHECK(e->detail.value("who", "") == ops.who);
    CHECK(e->detail.value("why", "") == ops.why);
}

/// An order: reserve stock (the pivot), then ship — shipping can only go forward.
definition<trip> order_definition() {
    definition_builder<trip> b("order", 1);
    b.remote("reserve", "billing",
             [](const trip& t) {
                 return command{"reserve", {{"n", t.amount}}};
             })
        .pivot()
        .remote("ship", "shipping",
                [](const trip& t) {
                    return command{"ship", {{"to", t.customer}}};
                })
        .retry(retry_policy::exponential(2, std::chrono::seconds{1}))
        .local("notify", [](trip& t) { t.notes.push_back("shipped"); });
    auto d = std::move(b).build();
    REQUIRE(d);
    return d.value();
}

}  // namespace

TEST_CASE("a paused saga starts no step until it is resumed, then finishes",
          "[engine][operations]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    REQUIRE(w.eng->pause(id.value(), ops));
    REQUIRE(w.eng->pause(id.value(), ops));  // pausing a paused saga changes nothing
    w.settle();

    CHECK(w.view(id.value()).status == saga_status::paused);
    // No step starts after the pause. What ran was started before it: nothing on today's core,
    // the first step on core v2, whose start records the first step in the same transition.
    const auto events = w.events_of(id.value());
    const auto paused_at = std::find(events.begin(), events.end(), "saga_paused");
    REQUIRE(paused_at != events.end());
    CHECK(std::count_if(paused_at, events.end(),
                        [](const std::string& e) { return e.starts_with("step_started:"); }) == 0);
    CHECK(w.log.all().size() == static_cast<std::size_t>(std::count_if(
                                    events.begin(), paused_at, [](const std::string& e) {
                                        return e.starts_with("step_started:");
                                    })));
    check_audited(w, id.value(), "saga_paused");

    REQUIRE(w.eng->resume(id.value(), ops));
    w.settle();
    CHECK(w.view(id.value()).status == saga_status::completed);
    check_audited(w, id.value(), "saga_resumed");
    CHECK(w.eng->resume(id.value(), ops).error() == errc::saga_finished);
}

TEST_CASE("a saga paused while a step waits for its retry starts it only after resume",
          "[engine][operations]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, {}, {}, fail_transiently(1));
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    // Without advancing time the hotel booking waits for its retry.
    w.eng->run_until_idle();
    REQUIRE(w.view(id.value()).step("book_hotel")->status == step_status::retrying);
    REQUIRE(w.eng->pause(id.value(), ops));
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::paused);
    CHECK(w.services["hotels"]->held_count() == 0);
    CHECK(w.services["payments"]->held_count() == 0);
    REQUIRE(w.eng->resume(id.value(), ops));
    w.settle();
    CHECK(w.view(id.value()).status == saga_status::completed);
    CHECK(w.services["hotels"]->held_count() == 1);
}

TEST_CASE("retry after a compensation failed for good compensates the rest",
          "[engine][operations][compensation]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    w.resource_service("billing", "reserve", "release", {}, fail_permanently_first(1));
    w.resource_service("flights", "book", "cancel", fail_permanently("no seats"));
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    REQUIRE(w.view(id.value()).status == saga_status::compensation_failed);
    CHECK(w.services["billing"]->held_count() == 1);

    CHECK(w.eng->retry(id.value(), {"", "no who"}).error() == errc::invalid_argument);
    REQUIRE(w.eng->retry(id.value(), ops));
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(w.services["billing"]->held_count() == 0);
    CHECK(w.services["hotels"]->held_count() == 0);
    check_audited(w, id.value(), "operator_retry");
    CHECK(w.eng->retry(id.value(), ops).error() == errc::saga_finished);
}

TEST_CASE("retry after a step past the pivot failed attempts it again and completes",
          "[engine][operations]") {
    world w;
    REQUIRE(w.eng->add(order_definition()));
    w.resource_service("billing", "reserve", "release");
    w.resource_service("shipping", "ship", "unship", fail_permanently_first(1));
    auto id = w.eng->start("order", trip{});
    REQUIRE(id);
    w.settle();
    REQUIRE(w.view(id.value()).status == saga_status::failed);
    CHECK(w.eng->resume(id.value(), ops).error() == errc::invalid_state);

    REQUIRE(w.eng->retry(id.value(), ops));
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(v.step("ship")->status == step_status::completed);
    CHECK(w.services["shipping"]->held_count() == 1);
}

TEST_CASE("skipping a failed step lets a failed saga finish and the skip is audited",
          "[engine][operations]") {
    world w;
    REQUIRE(w.eng->add(order_definition()));
    w.resource_service("billing", "reserve", "release");
    w.resource_service("shipping", "ship", "unship", fail_permanently("address unknown"));
    auto id = w.eng->start("order", trip{});
    REQUIRE(id);
    w.settle();
    REQUIRE(w.view(id.value()).status == saga_status::failed);

    CHECK(w.eng->skip_step(id.value(), "nope", ops).error() == errc::not_found);
    CHECK(w.eng->skip_step(id.value(), "reserve", ops).error() == errc::invalid_state);
    REQUIRE(w.eng->skip_step(id.value(), "ship", ops));
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(v.step("ship")->status == step_status::skipped);
    CHECK(v.step("notify")->status == step_status::completed);
    check_audited(w, id.value(), "step_skipped_by_operator");
}

TEST_CASE("skipping a failed compensation goes on compensating the earlier steps",
          "[engine][operations][compensation]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    w.resource_service("billing", "reserve", "release", {}, fail_permanently("ledger closed"));
    w.resource_service("flights", "book", "cancel", fail_permanently("no seats"));
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    REQUIRE(w.view(id.value()).status == saga_status::compensation_failed);
    CHECK(count_of(w.log.all(), "local.unvalidate") == 0);
    CHECK(w.eng->skip_step(id.value(), "book", ops).error() == errc::invalid_argument);

    REQUIRE(w.eng->skip_step(id.value(), "reserve_credit", ops));
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("reserve_credit")->status == step_status::compensated);
    CHECK(v.step("validate")->status == step_status::compensated);
    check_audited(w, id.value(), "compensation_skipped");
}

TEST_CASE("release_lock lets a second exclusive action start on a stuck correlation key",
          "[engine][operations][lock]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    const start_options locked{.correlation_key = "customer-7", .exclusive = true};
    auto first = w.eng->start("trip", trip{}, locked);
    REQUIRE(first);
    REQUIRE(w.eng->pause(first.value(), ops));  // stuck
    CHECK(w.eng->start("trip", trip{}, locked).error() == errc::lock_held);

    CHECK(w.eng->release_lock("customer-7", {"ops", ""}).error() == errc::invalid_argument);
    auto released = w.eng->release_lock("customer-7", ops);
    REQUIRE(released);
    CHECK(released.value() == 1);
    CHECK(w.eng->release_lock("customer-7", ops).value() == 0);
    check_audited(w, first.value(), "lock_released");
    auto second = w.eng->start("trip", trip{}, locked);
    REQUIRE(second);
    w.settle();
    CHECK(w.view(second.value()).status == saga_status::completed);
    CHECK(w.view(first.value()).status == saga_status::paused);
}

TEST_CASE("list filters instances and history of an unknown id is not_found",
          "[engine][operations]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, {}, fail_permanently("no seats"));
    auto ok = w.eng->start("trip", trip{.customer = "bo"}, {.correlation_key = "a"});
    auto bad = w.eng->start("trip", trip{.amount = -1}, {.correlation_key = "b"});
    REQUIRE(ok);
    REQUIRE(bad);
    w.settle();
    auto all = w.eng->list({});
    REQUIRE(all);
    CHECK(all.value().size() == 2);
    auto by_key = w.eng->list({.correlation_key = "b"});
    REQUIRE(by_key);
    REQUIRE(by_key.value().size() == 1);
    CHECK(by_key.value()[0].id == bad.value());
    CHECK(w.eng->history("no-such-saga").error() == errc::not_found);
    auto h = w.eng->history(ok.value());
    REQUIRE(h);
    CHECK(h.value().front().event == "saga_started");
}

TEST_CASE("stop() called before run() has started is not lost", "[engine][lifecycle]") {
    auto store = std::make_shared<inmemory::memory_journal_store>();
    auto clock = std::make_shared<system_clock>();
    auto transport = std::make_shared<inmemory::memory_transport>(clock);
    SECTION("on the same thread") {
        engine eng(store, transport, {.clock = clock});
        eng.stop();
        CHECK(eng.run());  // returns at once
    }
    SECTION("from the thread that starts run()") {
        for (int i = 0; i < 20; ++i) {
            engine eng(store, transport, {.clock = clock});
            std::thread runner([&] { CHECK(eng.run()); });
            eng.stop();
            runner.join();  // would hang if the stop were lost
        }
    }
    SECTION("run() after a stop that ended an earlier run() runs again") {
        engine eng(store, transport, {.clock = clock});
        std::thread runner([&] { CHECK(eng.run()); });
        while (true) {
            auto done = std::make_shared<std::promise<void>>();
            boost::asio::post(eng.get_executor(), [done] { done->set_value(); });
            if (done->get_future().wait_for(std::chrono::milliseconds{50}) ==
                std::future_status::ready)
                break;
        }
        eng.stop();
        runner.join();
        std::atomic<bool> ran{false};
        std::thread again([&] { CHECK(eng.run()); });
        boost::asio::post(eng.get_executor(), [&] {
            ran = true;
            eng.stop();
        });
        again.join();
        CHECK(ran);
    }
}
