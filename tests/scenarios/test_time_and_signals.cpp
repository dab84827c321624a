// Scenarios: timeouts, waits, deadlines, signals, cancellation, idempotent start.
#include "trip_saga.hpp"

using namespace saga;
using namespace saga::test;

TEST_CASE(
    "a remote step whose reply is lost times out and is re-sent with the same idempotency key and "
    "the participant answers with its recorded reply",
    "[engine][timeout]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    // The first reply billing sends is lost on the way back.
    auto first = std::make_shared<std::atomic<bool>>(true);
    auto lossy = std::make_shared<dropping_transport>(
        w.transport, [first](const std::string&, const envelope& e) {
            return e.kind == message_kind::reply && e.type == "reserve" && first->exchange(false);
        });
    w.resource_service("billing", "reserve", "release", {}, {}, lossy);
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(lossy->dropped == 1);
    CHECK(v.step("reserve_credit")->attempts == 2);
    CHECK(count_of(w.events_of(id.value()), "step_timed_out:reserve_credit") == 1);
    // Applied once, answered twice.
    CHECK(w.services["billing"]->max_effects() == 1);
    CHECK(w.participants[0]->stats().deduplicated == 1);
    CHECK(w.participants[0]->stats().handled == 1);
}

TEST_CASE(
    "a remote step that never answers fails after its attempts and is compensated because its "
    "outcome "
    "is unknown",
    "[engine][timeout][compensation]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    // Every reply from hotels is lost: the bookings happen but the engine never hears of them.
    auto lossy = std::make_shared<dropping_transport>(
        w.transport, [](const std::string&, const envelope& e) {
            return e.kind == message_kind::reply && e.type == "book";
        });
    w.resource_service("billing", "reserve", "release");
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel", {}, {}, lossy);
    w.resource_service("payments", "charge", "refund");
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::compensated);
    CHECK(v.step("book_hotel")->attempts == 3);
    // The hotel booking did happen on the hotel side, and was undone.
    CHECK(w.services["hotels"]->held_count() == 0);
    CHECK(w.services["flights"]->held_count() == 0);
    CHECK(w.services["billing"]->held_count() == 0);
    CHECK(w.services["hotels"]->max_effects() == 1);
}

namespace {
struct approval {
    std::string who;
    bool approved = false;
    std::string approver;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(approval, who, approved, approver)

definition<approval> approval_definition(journal& log, on_deadline what = on_deadline::fail) {
    definition_builder<approval> b("approval", 1);
    b.local("prepare", [&log](approval&) { log.add("local.validate"); })
        .compensate([&log](approval&) { log.add("local.unvalidate"); })
        .wait("await_approval", "approved")
        .deadline(std::chrono::hours{24}, what)
        .on_signal([](approval& a, const json& p) {
            a.approved = true;
            a.approver = p.value("by", std::string());
        });
    if (what == on_deadline::proceed)
        b.on_timeout([](approval& a) { a.approver = "nobody (timed out)"; });
    b.local("finish", [&log](approval&) { log.add("local.finish"); });
    auto d = std::move(b).build();
    REQUIRE(d);
    return d.value();
}
}  // namespace

TEST_CASE("a wait step completes when its signal arrives after the wait started",
          "[engine][signal]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    auto id = w.eng->start("approval", approval{"ada"});
    REQUIRE(id);
    w.eng->run_until_idle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::waiting);
    CHECK(v.current_steps == std::vector<std::string>{"await_approval"});
    REQUIRE(w.eng->signal(id.value(), "approved", json{{"by", "grace"}}));
    w.eng->run_until_idle();
    v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    auto a = v.data_as<approval>();
    REQUIRE(a);
    CHECK(a.value().approved);
    CHECK(a.value().approver == "grace");
}

TEST_CASE("a signal that arrives before its wait starts is kept and consumed when the wait opens",
          "[engine][signal]") {
    world w;
    definition_builder<approval> b("early", 1);
    b.wait("await_go", "go")
        .wait("await_approval", "approved")
        .on_signal([](approval& a, const json& p) { a.approver = p.value("by", std::string()); });
    auto d = std::move(b).build();
    REQUIRE(d);
    REQUIRE(w.eng->add(d.value()));
    auto id = w.eng->start("early", approval{});
    REQUIRE(id);
    w.eng->run_until_idle();
    // "approved" comes first, while the saga waits for "go".
    REQUIRE(w.eng->signal(id.value(), "approved", json{{"by", "early bird"}}));
    w.eng->run_until_idle();
    CHECK(w.view(id.value()).status == saga_status::waiting);
    REQUIRE(w.eng->signal(id.value(), "go"));
    w.eng->run_until_idle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(v.data_as<approval>().value().approver == "early bird");
}

TEST_CASE("a wait whose deadline passes fails and compensates, or proceeds when told to",
          "[engine][deadline]") {
    SECTION("fail") {
        world w;
        REQUIRE(w.eng->add(approval_definition(w.log)));
        auto id = w.eng->start("approval", approval{});
        REQUIRE(id);
        const auto t0 = w.clock->now();
        w.settle();
        auto v = w.view(id.value());
        CHECK(v.status == saga_status::compensated);
        CHECK(w.clock->now() - t0 >= std::chrono::hours{24});
        CHECK(v.step("await_approval")->status == step_status::failed);
        CHECK(v.error.find("deadline") != std::string::npos);
        CHECK(w.log.all() == std::vector<std::string>{"local.validate", "local.unvalidate"});
    }
    SECTION("proceed") {
        world w;
        REQUIRE(w.eng->add(approval_definition(w.log, on_deadline::proceed)));
        auto id = w.eng->start("approval", approval{});
        REQUIRE(id);
        w.settle();
        auto v = w.view(id.value());
        CHECK(v.status == saga_status::completed);
        CHECK(v.data_as<approval>().value().approver == "nobody (timed out)");
        CHECK(w.log.all() == std::vector<std::string>{"local.validate", "local.finish"});
    }
}

TEST_CASE("signals to unknown or finished sagas are clear errors", "[engine][signal]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    auto r = w.eng->signal("no-such-saga", "approved");
    REQUIRE(!r);
    CHECK(r.error() == errc::not_found);
    auto id = w.eng->start("approval", approval{});
    REQUIRE(id);
    w.eng->run_until_idle();
    REQUIRE(w.eng->signal(id.value(), "approved"));
    w.eng->run_until_idle();
    auto again = w.eng->signal(id.value(), "approved");
    REQUIRE(!again);
    CHECK(again.error() == errc::saga_finished);
}

TEST_CASE(
    "cancelling a saga mid-flight lets the running step settle, then compensates what completed",
    "[engine][cancel]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    // Billing's replies are held back, so reserve_credit is still running when the cancel comes;
    // billing did reserve, though.
    auto lossy = std::make_shared<dropping_transport>(
        w.transport, [](const std::string&, const envelope& e) {
            return e.kind == message_kind::reply && e.type == "reserve";
        });
    w.resource_service("billing", "reserve", "release", {}, {}, lossy);
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.eng->run_until_idle();
    CHECK(w.view(id.value()).step("reserve_credit")->status == step_status::running);
    CHECK(w.services["billing"]->held_count() == 1);
    REQUIRE(w.eng->cancel(id.value(), "customer changed their mind"));
    w.settle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::cancelled);
    // No new attempt after the cancel; the unanswered one is undone since it may have happened.
    CHECK(v.step("reserve_credit")->attempts == 1);
    CHECK(v.step("reserve_credit")->status == step_status::compensated);
    CHECK(v.step("book_flight")->status == step_status::pending);
    CHECK(w.services["billing"]->held_count() == 0);
    CHECK(w.services["flights"]->held_count() == 0);
    CHECK(w.log.all() == std::vector<std::string>{"local.validate", "billing.reserve",
                                                  "billing.release", "local.unvalidate"});
    const auto events = w.events_of(id.value());
    CHECK(count_of(events, "cancel_requested") == 1);
    CHECK(events.back() == "saga_cancelled");
    auto again = w.eng->cancel(id.value());
    REQUIRE(!again);
    CHECK(again.error() == errc::saga_finished);
}

TEST_CASE("cancelling a waiting saga compensates at once", "[engine][cancel]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    auto id = w.eng->start("approval", approval{});
    REQUIRE(id);
    w.eng->run_until_idle();
    REQUIRE(w.eng->cancel(id.value(), "no longer needed"));
    w.eng->run_until_idle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::cancelled);
    CHECK(v.step("await_approval")->status == step_status::skipped);
    CHECK(w.log.all() == std::vector<std::string>{"local.validate", "local.unvalidate"});
}

TEST_CASE("starting with an existing id is idempotent and returns the existing instance",
          "[engine][start]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    auto a =
        w.eng->start("approval", approval{"ada"}, {.id = "order-42", .correlation_key = "c-1"});
    REQUIRE(a);
    CHECK(a.value() == "order-42");
    auto b = w.eng->start("approval", approval{"someone else"}, {.id = "order-42"});
    REQUIRE(b);
    CHECK(b.value() == "order-42");
    w.eng->run_until_idle();
    auto v = w.view("order-42");
    CHECK(v.data_as<approval>().value().who == "ada");
    CHECK(v.correlation_key == "c-1");
    CHECK(count_of(w.events_of("order-42"), "saga_started") == 1);
    CHECK(w.log.all() == std::vector<std::string>{"local.validate"});
}

TEST_CASE("bad starts are clear errors and store nothing", "[engine][start]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    auto unknown = w.eng->start("nope", approval{});
    REQUIRE(!unknown);
    CHECK(unknown.error() == errc::definition_not_registered);
    auto bad_version = w.eng->start("approval", approval{}, {.version = 7});
    REQUIRE(!bad_version);
    CHECK(bad_version.error().message.find("version 7") != std::string::npos);
    auto bad_data = w.eng->start_json("approval", json{{"who", 42}});
    REQUIRE(!bad_data);
    CHECK(bad_data.error() == errc::bad_data);
    auto bad_id = w.eng->start("approval", approval{}, {.id = "a/b"});
    REQUIRE(!bad_id);
    CHECK(bad_id.error() == errc::invalid_argument);
    auto twice = w.eng->add(approval_definition(w.log));
    REQUIRE(!twice);
    CHECK(twice.error() == errc::already_exists);
    CHECK(w.instance_ids().empty());
}

TEST_CASE("an exclusive start holds the correlation key until the instance is terminal",
          "[engine][start][lock]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    auto first =
        w.eng->start("approval", approval{}, {.correlation_key = "campaign-7", .exclusive = true});
    REQUIRE(first);
    auto second =
        w.eng->start("approval", approval{}, {.correlation_key = "campaign-7", .exclusive = true});
    REQUIRE(!second);
    CHECK(second.error() == errc::lock_held);
    w.eng->run_until_idle();
    REQUIRE(w.eng->signal(first.value(), "approved"));
    w.eng->run_until_idle();
    CHECK(w.view(first.value()).status == saga_status::completed);
    auto third =
        w.eng->start("approval", approval{}, {.correlation_key = "campaign-7", .exclusive = true});
    CHECK(third);
}

TEST_CASE("events on the transport reach waiting sagas by saga id or by correlation key",
          "[engine][signal][event]") {
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));
    REQUIRE(w.transport->subscribe("reviews", "saga.engine"));
    auto by_id = w.eng->start("approval", approval{"ada"});
    auto by_key1 = w.eng->start("approval", approval{"bob"}, {.correlation_key = "campaign-9"});
    auto by_key2 = w.eng->start("approval", approval{"cy"}, {.correlation_key = "campaign-9"});
    REQUIRE((by_id && by_key1 && by_key2));
    w.eng->run_until_idle();

    auto publish = [&](envelope e) {
        e.kind = message_kind::event;
        e.type = "approved";
        bool ok = false;
        w.transport->async_publish("reviews", std::move(e),
                                   [&](result<void> r) { ok = static_cast<bool>(r); });
        REQUIRE(ok);
    };
    envelope to_one;
    to_one.message_id = "event-1";
    to_one.saga_id = by_id.value();
    to_one.payload = {{"by", "reviewer"}};
    publish(to_one);
    envelope to_key;
    to_key.message_id = "event-2";
    to_key.correlation_id = "campaign-9";
    to_key.payload = {{"by", "bulk"}};
    publish(to_key);
    publish(to_key);  // the same event twice: the inbox keeps it from counting twice
    w.eng->run_until_idle();

    CHECK(w.view(by_id.value()).data_as<approval>().value().approver == "reviewer");
    for (const auto& id : {by_key1.value(), by_key2.value()}) {
        auto v = w.view(id);
        CHECK(v.status == saga_status::completed);
        CHECK(v.data_as<approval>().value().approver == "bulk");
        CHECK(count_of(w.events_of(id), "signal_received") == 1);
    }
}

TEST_CASE("a new engine on the same store resumes what the previous one left unfinished",
          "[engine][recovery]") {
    auto clock = std::make_shared<virtual_clock>();
    auto store = std::make_shared<inmemory::memory_journal_store>();
    auto transport = std::make_shared<inmemory::memory_transport>(clock);
    journal log;
    std::string waiting;
    std::string retrying;
    {
        engine first(store, transport, {.clock = clock});
        REQUIRE(first.add(approval_definition(log)));
        definition_builder<approval> b("flaky", 1);
        auto calls = std::make_shared<int>(0);
        b.local("try", [calls](approval&) -> result<void> {
             if (++*calls < 3) return transient_error("not yet");
             return success();
         }).retry(retry_policy::exponential(5, std::chrono::minutes{1}, std::chrono::minutes{10}));
        REQUIRE(first.add(std::move(b).build().value()));
        waiting = first.start("approval", approval{"ada"}).value();
        retrying = first.start("flaky", approval{}).value();
        first.run_until_idle();
        CHECK(first.query(waiting).value().status == saga_status::waiting);
        CHECK(first.query(retrying).value().step("try")->status == step_status::retrying);
    }  // the first engine goes away with a retry timer pending and a saga waiting

    engine second(store, transport, {.clock = clock});
    REQUIRE(second.add(approval_definition(log)));
    definition_builder<approval> b("flaky", 1);
    b.local("try", [](approval&) -> result<void> {
         return success();
     }).retry(retry_policy::exponential(5, std::chrono::minutes{1}, std::chrono::minutes{10}));
    REQUIRE(second.add(std::move(b).build().value()));
    REQUIRE(second.open());
    REQUIRE(second.signal(waiting, "approved", {{"by", "grace"}}));
    REQUIRE(second.run_until_settled());
    CHECK(second.query(waiting).value().status == saga_status::completed);
    // The durable retry timer was re-armed by the second engine and fired.
    auto v = second.query(retrying).value();
    CHECK(v.status == saga_status::completed);
    CHECK(v.step("try")->attempts == 2);
}

TEST_CASE("signal payloads and start data nested too deep are refused and change nothing",
          "[engine][signal][start][hostile]") {
    // built in memory by a caller (the admin API, a message handler): 100,000 nested arrays under
    // `name` (moved in, never copied: a copy would recurse 100,000 deep)
    const auto deep = [](const char* name) {
        json inner = json::array();
        for (int i = 0; i < 100'000; ++i) {
            json outer = json::array();
            outer.push_back(std::move(inner));
            inner = std::move(outer);
        }
        json j = json::object();
        j[name] = std::move(inner);
        return j;
    };
    world w;
    REQUIRE(w.eng->add(approval_definition(w.log)));

    auto data = deep("approver");
    data["who"] = "ada";
    auto refused_start = w.eng->start_json("approval", std::move(data));
    REQUIRE_FALSE(refused_start);
    CHECK(refused_start.error() == errc::limit_exceeded);
    CHECK(refused_start.error().message.find("the saga data nests deeper than the limit of 64") !=
          std::string::npos);
    CHECK(w.instance_ids().empty());

    auto id = w.eng->start("approval", approval{"ada"});
    REQUIRE(id);
    w.eng->run_until_idle();
    auto refused = w.eng->signal(id.value(), "approved", deep("by"));
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == errc::limit_exceeded);
    CHECK(refused.error().message.find("signal 'approved'") != std::string::npos);
    w.eng->run_until_idle();
    CHECK(w.view(id.value()).status == saga_status::waiting);
    // 64 levels in all is still fine
    json ok = json::object();
    for (int i = 0; i < 63; ++i) ok = json{{"n", std::move(ok)}};
    ok["by"] = "grace";
    REQUIRE(w.eng->signal(id.value(), "approved", std::move(ok)));
    w.eng->run_until_idle();
    auto v = w.view(id.value());
    CHECK(v.status == saga_status::completed);
    CHECK(v.data_as<approval>().value().approver == "grace");
}
