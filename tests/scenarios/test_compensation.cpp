// Scenarios: the happy path, failures at each step, retries, compensation semantics, the pivot.
#include "trip_saga.hpp"

using namespace saga;
using namespace saga::test;

namespace {
std::vector<std::string> forward_part(const std::vector<std::string>& j) {
    std::vector<std::string> out;
    for (const auto& e : j)
        if (e.ends_with(".validate") || e.ends_with(".reserve") || e.ends_with(".book") ||
            e.ends_with(".charge"))
            out.push_back(e);
    return out;
}
std::vector<std::string> undo_part(const std::vector<std::string>& j) {
    std::vector<std::string> out;
    for (const auto& e : j)
        if (e.ends_with(".unvalidate") || e.ends_with(".release") || e.ends_with(".cancel"))
            out.push_back(e);
    return out;
}
}  // namespace

TEST_CASE("a saga whose steps all succeed completes and leaves every effect in place",
          "[engine][happy]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();

    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(v.percent_complete == 100.0);
    CHECK(v.current_steps.empty());
    auto t = v.data_as<trip>();
    REQUIRE(t);
    CHECK(t.value().credit == "billing:" + id.value() + "/reserve_credit");
    CHECK(t.value().flight == "flights:" + id.value() + "/book_flight");
    CHECK(t.value().hotel == "hotels:" + id.value() + "/book_hotel");
    CHECK(t.value().notes == std::vector<std::string>{"notified"});
    for (const auto& name :
         {"validate", "reserve_credit", "book", "book_flight", "book_hotel", "charge", "notify"}) {
        INFO(name);
        REQUIRE(v.step(name));
        CHECK(v.step(name)->status == step_status::completed);
        CHECK(v.step(name)->attempts <= 1);
    }
    CHECK(w.services["billing"]->held_count() == 1);
    CHECK(w.services["flights"]->held_count() == 1);
    CHECK(w.services["hotels"]->held_count() == 1);
    CHECK(undo_part(w.log.all()).empty());
    auto events = w.events_of(id.value());
    CHECK(events.front() == "saga_started");
    CHECK(events.back() == "saga_completed");
    CHECK(count_of(events, "pivot_passed:charge") == 1);
}

TEST_CASE("a failure at each step in turn compensates exactly the completed steps in reverse order",
          "[engine][compensation]") {
    struct failing_at {
        const char* name;
        int amount;
        bool billing, flights, hotels, payments;
        std::vector<std::string> completed;  // forward journal entries expected before the failure
    };
    const std::vector<failing_at> cases{
        {"validate", 0, false, false, false, false, {}},
        {"reserve_credit", 100, true, false, false, false, {"local.validate"}},
        {"book_flight",
         100,
         false,
         true,
         false,
         false,
         {"local.validate", "billing.reserve", "hotels.book"}},
        {"book_hotel",
         100,
         false,
         false,
         true,
         false,
         {"local.validate", "billing.reserve", "flights.book"}},
        {"charge",
         100,
         false,
         false,
         false,
         true,
         {"local.validate", "billing.reserve", "flights.book", "hotels.book"}},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION("failing at " << c.name) {
            world w;
            REQUIRE(w.eng->add(trip_definition(w.log)));
            auto fail = [](bool f) { return f ? fail_permanently("no") : behaviour{}; };
            trip_services(w, fail(c.billing), fail(c.flights), fail(c.hotels), fail(c.payments));
            trip data;
            data.amount = c.amount;
            auto id = w.eng->start("trip", data);
            REQUIRE(id);
            w.settle();

            auto v = w.view(id.value());
            CHECK(v.status == saga_status::compensated);
            CHECK(v.error.find(c.name) != std::string::npos);
            REQUIRE(v.step(c.name));
            CHECK(v.step(c.name)->status == step_status::failed);
            const auto journal = w.log.all();
            auto forward = forward_part(journal);
            std::sort(forward.begin(), forward.end());
            auto expected = c.completed;
            std::sort(expected.begin(), expected.end());
            CHECK(forward == expected);
            // Compensations undo exactly the completed steps, in reverse order of completion.
            CHECK(undo_part(journal) == undo_of(forward_part(journal)));
            CHECK(w.services["billing"]->held_count() == 0);
            CHECK(w.services["flights"]->held_count() == 0);
            CHECK(w.services["hotels"]->held_count() == 0);
            CHECK(w.services["payments"]->held_count() == 0);
            CHECK(w.events_of(id.value()).back() == "saga_compensated");
        }
    }
}

TEST_CASE(
    "a failing parallel branch compensates the completed branch and the steps before the group",
    "[engine][parallel][compensation]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, {}, {}, fail_permanently("no rooms"));
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("book")->status == step_status::failed);
    CHECK(v.step("book_hotel")->status == step_status::failed);
    CHECK(v.step("book_flight")->status == step_status::compensated);
    CHECK(v.step("reserve_credit")->status == step_status::compensated);
    CHECK(v.step("validate")->status == step_status::compensated);
    CHECK(v.step("charge")->status == step_status::pending);
    CHECK(undo_part(w.log.all()) ==
          std::vector<std::string>{"flights.cancel", "billing.release", "local.unvalidate"});
    CHECK(w.services["flights"]->held_count() == 0);
}

TEST_CASE("transient failures are retried with backoff until the step succeeds",
          "[engine][retry]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, fail_transiently(2));
    const auto t0 = w.clock->now();
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(v.step("reserve_credit")->attempts == 3);
    auto events = w.events_of(id.value());
    CHECK(count_of(events, "retry_scheduled:reserve_credit") == 2);
    CHECK(count_of(events, "attempt_failed:reserve_credit") == 2);
    // Backoff of about 1 s then 2 s (with 20% jitter) passed on the virtual clock.
    CHECK(w.clock->now() - t0 >= std::chrono::milliseconds{2400});
    CHECK(w.services["billing"]->max_effects() == 1);
}

TEST_CASE("when retries are exhausted the saga compensates", "[engine][retry][compensation]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, {}, fail_transiently(100));
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("book_flight")->attempts == 3);
    // Its last answer was "busy": a duplicate of the command could still have booked, so the step
    // counts as uncertain and is undone too.
    CHECK(v.step("book_flight")->status == step_status::compensated);
    CHECK(v.step("book_flight")->error.find("busy") != std::string::npos);
    CHECK(w.services["hotels"]->held_count() == 0);
    CHECK(w.services["billing"]->held_count() == 0);
}

TEST_CASE("a permanent error fails the step at once without retrying", "[engine][retry]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, fail_permanently("credit limit reached"));
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("reserve_credit")->attempts == 1);
    CHECK(v.error.find("credit limit reached") != std::string::npos);
    CHECK(count_of(w.events_of(id.value()), "retry_scheduled:reserve_credit") == 0);
}

TEST_CASE("a compensation that fails transiently is retried until it succeeds",
          "[engine][compensation][retry]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    w.resource_service("billing", "reserve", "release", {}, fail_transiently(3));
    w.resource_service("flights", "book", "cancel", fail_permanently("sold out"));
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("reserve_credit")->status == step_status::compensated);
    CHECK(v.step("reserve_credit")->compensation_attempts == 4);
    CHECK(w.services["billing"]->held_count() == 0);
    CHECK(count_of(w.events_of(id.value()), "compensation_retry_scheduled:reserve_credit") == 3);
}

TEST_CASE(
    "a compensation that can never succeed leaves the saga compensation_failed and undoes nothing "
    "twice",
    "[engine][compensation]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    w.resource_service("billing", "reserve", "release", {}, fail_permanently("ledger closed"));
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund", fail_permanently("card declined"));
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensation_failed);
    CHECK(v.error.find("reserve_credit") != std::string::npos);
    CHECK(v.error.find("ledger closed") != std::string::npos);
    CHECK(v.step("reserve_credit")->status == step_status::compensation_failed);
    CHECK(v.step("book_flight")->status == step_status::compensated);
    CHECK(v.step("book_hotel")->status == step_status::compensated);
    // The step before the failed compensation is not undone: the operator decides.
    CHECK(v.step("validate")->status == step_status::completed);
    const auto undo = undo_part(w.log.all());
    CHECK(count_of(undo, "flights.cancel") == 1);
    CHECK(count_of(undo, "hotels.cancel") == 1);
    CHECK(count_of(undo, "local.unvalidate") == 0);
    CHECK(w.events_of(id.value()).back() == "saga_compensation_failed");
    // It is settled: a wait returns at once.
    auto waited = w.eng->wait(id.value());
    REQUIRE(waited);
    CHECK(waited.value().status == saga_status::compensation_failed);
}

TEST_CASE("after the pivot a failing step is retried forward and never compensated",
          "[engine][pivot]") {
    world w;
    auto failures = std::make_shared<int>(0);
    definition_builder<trip> b("after_pivot", 1);
    b.local("reserve", [&](trip&) { w.log.add("local.validate"); })
        .compensate([&](trip&) { w.log.add("local.unvalidate"); })
        .local("commit", [](trip&) {})
        .pivot()
        .local("flaky",
               [failures](trip&) -> result<void> {
                   if (++*failures < 6) return transient_error("downstream busy");
                   return success();
               })
        .local("always_fails", [](trip&) -> result<void> { return permanent_error("bad config"); });
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    auto id = w.eng->start("after_pivot", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    // The flaky step after the pivot retried past the default 3 attempts.
    CHECK(v.step("flaky")->attempts == 6);
    CHECK(v.step("flaky")->status == step_status::completed);
    // A permanent failure after the pivot leaves the saga failed, nothing compensated.
    CHECK(v.status == saga_status::failed);
    CHECK(v.error.find("bad config") != std::string::npos);
    CHECK(v.step("reserve")->status == step_status::completed);
    CHECK(undo_part(w.log.all()).empty());
    // And it can no longer be cancelled.
    auto c = w.eng->cancel(id.value());
    CHECK(!c);
}

TEST_CASE("a branch step that fails for good after the pivot leaves the saga failed, not running",
          "[engine][pivot][parallel]") {
    world w;
    w.resource_service("mailer", "send", "unsend", fail_permanently("no such address"));
    w.resource_service("sms", "send", "unsend");
    definition_builder<trip> b("pivot_then_group", 1);
    b.local("commit", [](trip&) {}).pivot().parallel("notify", [](parallel_builder<trip>& p) {
        p.branch("mail").remote("mail", "mailer", [](const trip&) { return command{"send", {}}; });
        p.branch("sms").remote("sms", "sms", [](const trip&) { return command{"send", {}}; });
    });
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    auto id = w.eng->start("pivot_then_group", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::failed);
    CHECK(v.step("notify")->status == step_status::failed);
    CHECK(v.step("sms")->status == step_status::completed);
    CHECK(v.error.find("no such address") != std::string::npos);
}

TEST_CASE("cancelling a saga past its pivot is refused", "[engine][pivot][cancel]") {
    world w;
    definition_builder<trip> b("pivot_then_wait", 1);
    b.local("commit", [](trip&) {}).pivot().wait("confirm", "confirmed");
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    auto id = w.eng->start("pivot_then_wait", trip{});
    REQUIRE(id);
    w.settle();
    CHECK(w.view(id.value()).status == saga_status::waiting);
    auto c = w.eng->cancel(id.value(), "changed my mind");
    REQUIRE(!c);
    CHECK(c.error() == errc::past_pivot);
}

TEST_CASE(
    "a success reply that the saga's on_reply rejects is undone, since the participant did apply "
    "it",
    "[engine][compensation]") {
    world w;
    definition_builder<trip> b("picky", 1);
    b.remote("reserve_credit", "billing",
             [](const trip& t) {
                 return command{"reserve", {{"amount", t.amount}}};
             })
        .on_reply([](trip&, const json&) -> result<void> {
            return permanent_error("unexpected reservation format");
        })
        .compensate_remote("billing", [](const trip&) {
            return command{"release", {}};
        });
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    w.resource_service("billing", "reserve", "release");
    auto id = w.eng->start("picky", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("reserve_credit")->status == step_status::compensated);
    CHECK(v.step("reserve_credit")->error.find("unexpected reservation format") !=
          std::string::npos);
    CHECK(w.services["billing"]->held_count() == 0);
}
