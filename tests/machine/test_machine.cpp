// The pure machine, decision by decision: what each input does, which effects it asks for, and
// the ids it derives. Every decision is checked to replay from the journal (machine_sim).

#include <catch2/catch.hpp>

#include <algorithm>

#include "machine/snapshot.hpp"
#include "machine_sim.hpp"

using namespace std::chrono_literals;
using saga::direction;
using saga::reply_status;
using saga::saga_status;
using saga::step_status;
namespace machine = saga::machine;

namespace {

struct order {
    int validated = 0;
    int undone = 0;
    std::string reservation;
    std::string approved_by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order, validated, undone, reservation, approved_by)

saga::definition<order> place_order() {
    return saga::definition_builder<order>("place_order", 1)
        .local("validate", [](order& o) { ++o.validated; })
        .compensate([](order& o) { ++o.undone; })
        .remote("reserve", "billing",
                [](const order&) {
                    return saga::command{"reserve", {{"amount", 5}}};
                })
        .on_reply(
            [](order& o, const nlohmann::json& r) { o.reservation = r.value("id", std::string()); })
        .compensate_remote("billing",
                           [](const order&) {
                               return saga::command{"release", {}};
                           })
        .retry(saga::retry_policy::exponential(3, 1s))
        .wait("approve", "approval")
        .deadline(1h)
        .on_signal(
            [](order& o, const nlohmann::json& p) { o.approved_by = p.value("by", std::string()); })
        .build()
        .value();
}

const saga::envelope& only_sent(saga::test::machine_sim& sim) {
    REQUIRE(sim.sent.size() == 1);
    return sim.sent.front();
}

}  // namespace

TEST_CASE("a saga runs to completion through local, remote and wait steps", "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    REQUIRE(sim.locals.size() == 1);
    CHECK(sim.locals[0].unit == "validate");
    CHECK(sim.sent.empty());  // the local step runs first, after the commit

    sim.feed(sim.run_local(sim.locals[0]));
    sim.locals.clear();
    const auto cmd = only_sent(sim);
    CHECK(cmd.message_id == "s-1/reserve/f0/1");
    CHECK(cmd.idempotency_key == "s-1/reserve");
    CHECK(cmd.reply_to == "orchestrator");
    CHECK(cmd.type == "reserve");
    CHECK(cmd.correlation_id == "key-1");
    sim.sent.clear();

    sim.feed(sim.reply_to(cmd, reply_status::success, {{"id", "r-9"}}));
    CHECK(sim.state().status == saga_status::waiting);
    CHECK(machine::wake_at(sim.state()) == sim.now() + 1h);

    sim.feed(machine::signal_input{"approval", {{"by", "ann"}}, "sig-1"});
    CHECK(sim.state().status == saga_status::completed);
    CHECK_FALSE(machine::wake_at(sim.state()));
    CHECK(sim.data()["reservation"] == "r-9");
    CHECK(sim.data()["approved_by"] == "ann");
    CHECK(sim.data()["validated"] == 1);
    CHECK(sim.replay_matches());
    const auto names = sim.event_names();
    CHECK(names.front() == "saga_started");
    CHECK(names.back() == "saga_completed");
}

TEST_CASE("a reply to an attempt that is not open changes nothing and is reported", "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    sim.feed(sim.run_local(sim.locals[0]));
    const auto cmd = only_sent(sim);
    sim.feed(sim.reply_to(cmd));
    const auto version = sim.journal().size();

    auto d = sim.feed(sim.reply_to(cmd));  // the same reply again
    CHECK(d.events.empty());
    REQUIRE(d.ignored.size() == 1);
    CHECK(d.ignored[0].reason == machine::ignore_reason::not_waiting);
    CHECK(sim.journal().size() == version);

    auto forged = sim.reply_to(cmd);
    std::get<machine::reply_input>(forged).unit = "no_such_step";
    d = sim.feed(forged);
    CHECK(d.events.empty());
    REQUIRE(d.ignored.size() == 1);
    CHECK(d.ignored[0].reason == machine::ignore_reason::unknown_step);
    CHECK(sim.replay_matches());
}

TEST_CASE("a timed-out attempt is retried with the same idempotency key and a late reply wins",
          "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    sim.feed(sim.run_local(sim.locals[0]));
    const auto first = only_sent(sim);
    sim.sent.clear();

    sim.advance(5s);  // the default remote timeout of the sim's config
    CHECK(sim.state().units.at("reserve").status == step_status::retrying);
    CHECK(sim.state().units.at("reserve").uncertain);
    CHECK(sim.sent.empty());
    sim.advance(2s);  // past the backoff (1 s +/- 20%)
    const auto second = only_sent(sim);
    CHECK(second.attempt == 2);
    CHECK(second.message_id == "s-1/reserve/f0/2");
    CHECK(second.idempotency_key == first.idempotency_key);

    sim.feed(sim.reply_to(first));  // attempt 1 answers after all
    CHECK(sim.state().units.at("reserve").status == step_status::completed);
    CHECK(sim.state().status == saga_status::waiting);
    CHECK(sim.replay_matches());
}

TEST_CASE("a permanent failure compensates what completed, newest first", "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    sim.feed(sim.run_local(sim.locals[0]));
    sim.locals.clear();
    const auto cmd = only_sent(sim);
    sim.sent.clear();
    sim.feed(sim.reply_to(cmd, reply_status::permanent_failure));
    CHECK(sim.state().status == saga_status::compensating);
    // reserve failed for sure: nothing to release; validate is undone locally
    CHECK(sim.sent.empty());
    REQUIRE(sim.locals.size() == 1);
    CHECK(sim.locals[0].unit == "validate");
    CHECK(sim.locals[0].dir == direction::compensation);
    sim.feed(sim.run_local(sim.locals[0]));
    CHECK(sim.state().status == saga_status::compensated);
    CHECK(sim.data()["undone"] == 1);
    CHECK(sim.replay_matches());
}

TEST_CASE("a redelivered signal is recognised by its message id", "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    sim.feed(machine::signal_input{"approval", {{"by", "bob"}}, "sig-7"});
    auto d = sim.feed(machine::signal_input{"approval", {{"by", "eve"}}, "sig-7"});
    CHECK(d.events.empty());
    REQUIRE(d.ignored.size() == 1);
    CHECK(sim.state().signals.at("approval").size() == 1);
    CHECK(sim.replay_matches());
}

TEST_CASE("what falls due while paused fires after resume", "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    sim.feed(sim.run_local(sim.locals[0]));
    sim.sent.clear();
    sim.feed(machine::operator_input{machine::operator_action::pause, "ops", "look", {}});
    CHECK(sim.state().status == saga_status::paused);
    sim.advance(10s);  // the attempt's deadline passes while paused
    CHECK(sim.state().units.at("reserve").status == step_status::running);
    auto d = sim.feed(machine::operator_input{machine::operator_action::resume, "ops", "ok", {}});
    REQUIRE(d.outcomes.size() == 1);
    CHECK(d.outcomes[0]);
    CHECK(sim.state().units.at("reserve").status == step_status::retrying);
    CHECK(sim.state().status == saga_status::running);
    CHECK(sim.replay_matches());
}

TEST_CASE("operator actions that do not apply are refused and write nothing", "[machine]") {
    saga::test::machine_sim sim(place_order(), order{});
    auto d = sim.feed(machine::operator_input{machine::operator_action::resume, "ops", "x", {}});
    REQUIRE(d.outcomes.size() == 1);
    CHECK(d.outcomes[0].error() == saga::errc::invalid_state);
    CHECK(d.events.empty());

    d = sim.feed(machine::operator_input{machine::operator_action::cancel, "ops", "x", "stop"});
    CHECK(d.outcomes[0]);
    d = sim.feed(machine::operator_input{machine::operator_action::cancel, "ops", "x", "again"});
    CHECK(d.outcomes[0].error() == saga::errc::invalid_state);  // the API answers 409
    CHECK(d.events.empty());

    d = sim.feed(machine::operator_input{machine::operator_action::skip, "ops", "x", "nope"});
    CHECK(d.outcomes[0].error() == saga::errc::not_found);
    CHECK(sim.replay_matches());
}

TEST_CASE("step names that could break an id are refused", "[machine]") {
    for (std::string bad : {"a|b", "a/b", "x[1]", "", "a b", "r~1"}) {
        auto def = saga::definition_builder<order>("bad", 1).local(bad, [](order&) {}).build();
        if (!def) continue;  // build() refused it already
        auto c = machine::compile(def.value().model());
        INFO(bad);
        CHECK(c.error() == saga::errc::invalid_definition);
    }
    auto good = saga::definition_builder<order>("good", 1).local("a-b.c_1", [](order&) {}).build();
    CHECK(machine::compile(good.value().model()));
}

TEST_CASE("idempotency keys and message ids round-trip through the id codec", "[machine]") {
    using machine::idempotency_key;
    using machine::parse_idempotency_key;
    CHECK(idempotency_key("s", "u", direction::forward, 0, 0) == "s/u");
    CHECK(idempotency_key("s", "u", direction::forward, 2, 0) == "s/u~r2");
    CHECK(idempotency_key("s", "u[3]", direction::compensation, 1, 4) == "s/u[3]~r1/compensate~r4");
    for (auto [f, c] : {std::pair{0u, 0u}, {3u, 0u}, {0u, 5u}, {7u, 9u}}) {
        for (auto dir : {direction::forward, direction::compensation}) {
            const auto k = idempotency_key("saga-1", "step[12]", dir, f, c);
            auto p = parse_idempotency_key(k, "saga-1", "step[12]");
            REQUIRE(p);
            CHECK(p->dir == dir);
            CHECK(p->generation == (dir == direction::forward ? f : c));
        }
    }
    CHECK_FALSE(parse_idempotency_key("other/u", "s", "u"));
    CHECK_FALSE(parse_idempotency_key("s/u/compensatex", "s", "u"));
    CHECK_FALSE(parse_idempotency_key("s/u~r0", "s", "u"));
    CHECK(machine::item_index("n[42]") == std::size_t{42});
    CHECK_FALSE(machine::item_index("n[4x]"));
    CHECK(machine::base_name("n[42]") == "n");
    CHECK(machine::message_id("s", "u", direction::compensation, 1, 2) == "s/u/c1/2");
}

TEST_CASE("every event type has a name that parses back", "[machine][events]") {
    for (int i = 0; i <= static_cast<int>(saga::event_type::saga_cancelled); ++i) {
        const auto t = static_cast<saga::event_type>(i);
        CHECK(saga::parse_event_type(saga::to_string(t)) == t);
    }
    CHECK_FALSE(saga::parse_event_type("no_such_event"));
}

TEST_CASE("a snapshot that is not one is refused with an error that says so", "[machine]") {
    for (const char* bad :
         {"", "[]", R"({"v":2})", R"({"v":1,"id":"x","status":"nope","units":{}})",
          R"({"v":1,"id":"x","status":"running","units":{"a":{"s":1}}})",
          R"({"v":1,"id":"x","status":"running","units":{},"created":9223372036854775807})"}) {
        INFO(bad);
        auto r = machine::decode_snapshot(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::bad_data);
        CHECK(r.error().message.find("snapshot") != std::string::npos);
    }
}

TEST_CASE("a branch step that fails for good after the pivot ends the saga failed", "[machine]") {
    auto def = saga::definition_builder<order>("after_pivot_group", 1)
                   .local("commit", [](order& o) { ++o.validated; })
                   .pivot()
                   .parallel("notify",
                             [](saga::parallel_builder<order>& p) {
                                 p.branch("mail").remote("mail", "mailer", [](const order&) {
                                     return saga::command{"send", {}};
                                 });
                                 p.branch("sms").remote("sms", "sms", [](const order&) {
                                     return saga::command{"send", {}};
                                 });
                             })
                   .build()
                   .value();
    saga::test::machine_sim sim(def, order{});
    sim.feed(sim.run_local(sim.locals[0]));
    REQUIRE(sim.sent.size() == 2);
    const auto mail = sim.sent[0].step == "mail" ? sim.sent[0] : sim.sent[1];
    const auto sms = sim.sent[0].step == "mail" ? sim.sent[1] : sim.sent[0];
    sim.feed(sim.reply_to(mail, reply_status::permanent_failure));
    CHECK(sim.state().forward_failed);
    CHECK(sim.state().status == saga_status::running);  // sms still runs
    sim.feed(sim.reply_to(sms));
    CHECK(sim.state().status == saga_status::failed);
    CHECK(sim.state().units.at("notify").status == step_status::failed);
    CHECK(sim.replay_matches());
}
