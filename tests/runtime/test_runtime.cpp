// The core v2 runtime over the in-memory journal store and transport, on the virtual clock and
// one thread: the machine's decisions committed one record each, effects only after the
// commit, recovery from the journal alone.

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <saga/definition.hpp>
#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/participant.hpp>

#include "runtime/runtime.hpp"

using namespace std::chrono_literals;
using saga::saga_status;

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
        .wait("approve", "approval")
        .deadline(1h)
        .on_signal(
            [](order& o, const nlohmann::json& p) { o.approved_by = p.value("by", std::string()); })
        .build()
        .value();
}

struct world {
    boost::asio::io_context io;
    std::shared_ptr<saga::virtual_clock> clock = std::make_shared<saga::virtual_clock>();
    std::shared_ptr<saga::inmemory::memory_journal_store> store =
        std::make_shared<saga::inmemory::memory_journal_store>();
    std::shared_ptr<saga::inmemory::memory_transport> transport =
        std::make_shared<saga::inmemory::memory_transport>(clock);
    std::shared_ptr<saga::runtime::runtime> rt;
    std::unique_ptr<saga::participant> billing;
    int reserves = 0;
    int releases = 0;

    world() { boot(); }

    void boot() {
        rt = saga::runtime::runtime::create({.endpoint = "orchestrator",
                                             .store = store,
                                             .transport = transport,
                                             .clock = clock.get(),
                                             .io = &io})
                 .value();
        REQUIRE(rt->add(place_order().model()));
        REQUIRE(rt->open());
    }

    void start_billing(saga::reply_status reserve_status = saga::reply_status::success) {
        billing = std::make_unique<saga::participant>(transport, "billing");
        billing->on("reserve", [this, reserve_status](const saga::envelope&) {
            ++reserves;
            if (reserve_status == saga::reply_status::permanent_failure)
                return saga::participant_reply::permanent("no credit");
            return saga::participant_reply::success({{"id", "r-1"}});
        });
        billing->on("release", [this](const saga::envelope&) {
            ++releases;
            return saga::participant_reply::success();
        });
        REQUIRE(billing->start(io.get_executor()));
    }

    /// Runs everything that is ready now, without moving the virtual clock.
    void settle(int max_steps = 1000) {
        for (int i = 0; i < max_steps; ++i) {
            io.restart();
            const auto ran = io.poll();
            const auto due = clock->pending();
            clock->advance(0ms);  // what is due now (deliveries, timers) runs
            if (ran == 0 && due == clock->pending()) return;
        }
    }

    saga_status status(const std::string& id) { return store->head(id).value().status; }
};

}  // namespace

TEST_CASE("the runtime runs a saga through the machine, one journal record per decision",
          "[runtime]") {
    world w;
    w.start_billing();
    auto id = w.rt->start({.definition = "place_order", .data = order{}, .id = "o-1"});
    REQUIRE(id);
    w.settle();
    CHECK(w.status("o-1") == saga_status::waiting);
    REQUIRE(w.rt->call("o-1", saga::machine::signal_input{"approval", {{"by", "ann"}}, "s-1"}));
    w.settle();
    CHECK(w.status("o-1") == saga_status::completed);
    CHECK(w.reserves == 1);
    const auto journal = w.store->journal("o-1").value();
    // start with the plain local step validate run inside it and reserve sent, reply, signal
    REQUIRE(journal.size() == 3);
    for (std::size_t i = 0; i < journal.size(); ++i) CHECK(journal[i].version == i + 1);
    // the command left with the record that decided it
    REQUIRE(journal[0].output.size() == 1);
    CHECK(journal[0].output[0].message.message_id == "o-1/reserve/f0/1");
    const auto loaded = w.store->load("o-1").value();
    REQUIRE(loaded.data);
    CHECK(nlohmann::json::parse(*loaded.data)["approved_by"] == "ann");
    CHECK(nlohmann::json::parse(*loaded.data)["reservation"] == "r-1");
}

TEST_CASE("a refused operator action writes nothing and says why", "[runtime]") {
    world w;
    w.start_billing();
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "o-2"}));
    w.settle();
    const auto before = w.store->journal("o-2").value().size();
    auto r = w.rt->call("o-2", saga::machine::operator_input{
                                   saga::machine::operator_action::resume, "ops", "why", {}});
    REQUIRE_FALSE(r);
    CHECK(r.error() == saga::errc::invalid_state);
    CHECK(w.store->journal("o-2").value().size() == before);
    REQUIRE(w.rt->call("o-2", saga::machine::operator_input{saga::machine::operator_action::cancel,
                                                            "ops", "why", "changed my mind"}));
    w.settle();
    CHECK(w.status("o-2") == saga_status::cancelled);
    CHECK(w.releases == 1);
}

TEST_CASE("a new runtime on the same journal releases what was not acknowledged and finishes",
          "[runtime]") {
    world w;
    // no participant yet: the command waits in the queue
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "o-3"}));
    w.settle(20);
    w.rt->close();
    w.rt.reset();  // the process dies
    w.boot();      // and starts again, from the journal alone
    w.start_billing();
    w.settle();
    CHECK(w.status("o-3") == saga_status::waiting);
    CHECK(w.reserves == 1);  // the participant deduplicated the copy sent again
    REQUIRE(w.rt->call("o-3", saga::machine::signal_input{"approval", {{"by", "bob"}}, "s-9"}));
    w.settle();
    CHECK(w.status("o-3") == saga_status::completed);
}

TEST_CASE("a paused instance whose command never left sends it after a restart, still paused",
          "[runtime][recovery]") {
    world w;
    w.start_billing();
    w.transport->set_faults({.fail_nth_send = 1});  // the reserve command cannot be sent
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "o-7"}));
    w.settle(20);
    CHECK(w.reserves == 0);
    REQUIRE(w.rt->call("o-7", saga::machine::operator_input{
                                  saga::machine::operator_action::pause, "ops", "look", {}}));
    CHECK(w.status("o-7") == saga_status::paused);
    // Recovery does not list paused instances: the head is due now instead.
    const auto head = w.store->head("o-7").value();
    REQUIRE(head.wake_at);
    CHECK(*head.wake_at <= w.clock->now());
    w.rt->close();
    w.rt.reset();  // the process dies with the command unsent
    w.boot();
    w.settle();
    CHECK(w.reserves == 1);  // sent on the restart, not held until a resume
    CHECK(w.status("o-7") == saga_status::paused);
    REQUIRE(w.rt->call("o-7", saga::machine::operator_input{
                                  saga::machine::operator_action::resume, "ops", "ok", {}}));
    w.settle();
    CHECK(w.status("o-7") == saga_status::waiting);
    CHECK(w.reserves == 1);
}

TEST_CASE("a permanent refusal compensates through the runtime", "[runtime]") {
    world w;
    w.start_billing(saga::reply_status::permanent_failure);
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "o-4"}));
    w.settle();
    CHECK(w.status("o-4") == saga_status::compensated);
    const auto data = nlohmann::json::parse(*w.store->load("o-4").value().data);
    CHECK(data["undone"] == 1);
    CHECK(w.releases == 0);  // refused for sure: nothing to release
}

TEST_CASE("an idle waiting instance leaves memory and comes back for its signal or its deadline",
          "[runtime]") {
    world w;
    w.start_billing();
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "idle-1"}));
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "idle-2"}));
    w.settle();
    CHECK(w.status("idle-1") == saga_status::waiting);
    CHECK(w.rt->cached() == 0);
    CHECK(w.rt->stats().evicted >= 2);

    REQUIRE(w.rt->call("idle-1", saga::machine::signal_input{"approval", {{"by", "ann"}}, "s"}));
    w.settle();
    CHECK(w.status("idle-1") == saga_status::completed);

    w.clock->advance(2h);  // idle-2's wait passes its deadline while it is not in memory
    w.settle();
    CHECK(w.status("idle-2") == saga_status::compensated);
    CHECK(w.releases == 1);
    CHECK(w.rt->cached() == 0);
}

namespace {

struct slow {
    int runs = 0;
    bool finished = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(slow, runs, finished)

}  // namespace

TEST_CASE("an awaitable local step is cancelled when its deadline passes, then retried",
          "[runtime]") {
    world w;
    auto def = saga::definition_builder<slow>("slow", 1)
                   .local("work",
                          [clock = w.clock](slow& s) -> boost::asio::awaitable<saga::result<void>> {
                              ++s.runs;
                              if (s.runs == 1) {
                                  // never finishes by itself: waits for cancellation
                                  auto ex = co_await boost::asio::this_coro::executor;
                                  boost::asio::steady_timer t(ex, std::chrono::hours{24});
                                  auto [ec] = co_await t.async_wait(
                                      boost::asio::as_tuple(boost::asio::use_awaitable));
                                  if (ec) co_return saga::error{saga::errc::cancelled, "cancelled"};
                              }
                              s.finished = true;
                              co_return saga::success();
                          })
                   .timeout(10s)
                   .retry(saga::retry_policy::exponential(2, 1s))
                   .build()
                   .value();
    REQUIRE(w.rt->add(def.model()));
    REQUIRE(w.rt->start({.definition = "slow", .data = slow{}, .id = "slow-1"}));
    w.settle();
    CHECK(w.status("slow-1") == saga_status::running);
    w.clock->advance(11s);  // the deadline: the first attempt is cancelled
    w.settle();
    w.clock->advance(2s);  // the retry's backoff
    w.settle();
    CHECK(w.status("slow-1") == saga_status::completed);
    const auto data = nlohmann::json::parse(*w.store->load("slow-1").value().data);
    CHECK(data["runs"] == 2);
    CHECK(data["finished"] == true);
}

TEST_CASE("rate limits and circuit breakers apply when a command leaves", "[runtime]") {
    world w;
    SECTION("a rate limit spaces the commands, not the decisions") {
        w.start_billing();
        w.rt->set_endpoint_policy("billing", {.rate = {.per_second = 1, .burst = 1}});
        for (int i = 0; i < 3; ++i)
            REQUIRE(w.rt->start(
                {.definition = "place_order", .data = order{}, .id = "rl-" + std::to_string(i)}));
        w.settle();
        CHECK(w.reserves == 1);  // every instance decided to send; one token was there
        w.clock->advance(1s);
        w.settle();
        CHECK(w.reserves == 2);
        w.clock->advance(1s);
        w.settle();
        CHECK(w.reserves == 3);
        for (int i = 0; i < 3; ++i)
            CHECK(w.status("rl-" + std::to_string(i)) == saga_status::waiting);
    }
    SECTION("an open circuit refuses a command at release, as a transient failure") {
        w.rt->set_endpoint_policy("billing",
                                  {.breaker = {.failure_threshold = 1, .cool_down = 60s}});
        w.billing = std::make_unique<saga::participant>(w.transport, "billing");
        int calls = 0;
        w.billing->on("reserve", [&calls](const saga::envelope&) {
            return ++calls == 1 ? saga::participant_reply::transient("busy")
                                : saga::participant_reply::success({{"id", "r-2"}});
        });
        REQUIRE(w.billing->start(w.io.get_executor()));
        REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "cb-1"}));
        w.settle();
        CHECK(calls == 1);
        CHECK(w.rt->endpoint_circuit("billing") == saga::circuit_state::open);
        w.clock->advance(3s);  // the retry is refused by the open circuit, not sent
        w.settle();
        CHECK(calls == 1);
        CHECK(w.rt->stats().refused_by_circuit >= 1);
        w.clock->advance(120s);  // cool-down over: a probe goes through
        for (int i = 0; i < 10 && w.status("cb-1") != saga_status::waiting; ++i) {
            w.clock->advance(5s);
            w.settle();
        }
        CHECK(calls == 2);
        CHECK(w.status("cb-1") == saga_status::waiting);
    }
}

TEST_CASE("after a restart, an instance waiting for a later deadline is woken by the due poll",
          "[runtime]") {
    world w;
    w.start_billing();
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "later-1"}));
    w.settle();
    CHECK(w.status("later-1") == saga_status::waiting);
    w.rt->close();
    w.rt.reset();
    w.boot();  // nothing is due yet: nothing is loaded
    w.settle();
    CHECK(w.rt->cached() == 0);
    for (int i = 0; i < 200 && w.status("later-1") == saga_status::waiting; ++i) {
        w.clock->advance(30s);
        w.settle();
    }
    CHECK(w.status("later-1") == saga_status::compensated);  // its 1 h deadline passed
}

TEST_CASE(
    "an instance pinned to an unregistered version keeps its signals and moves on once the "
    "version is added",
    "[runtime][versioning]") {
    world w;
    w.start_billing();
    REQUIRE(w.rt->start({.definition = "place_order", .data = order{}, .id = "pinned-1"}));
    w.settle();
    REQUIRE(w.status("pinned-1") == saga_status::waiting);
    const auto before = w.store->journal("pinned-1").value().size();
    w.rt->close();
    w.rt.reset();
    // The process comes back with version 2 only.
    w.rt = saga::runtime::runtime::create({.endpoint = "orchestrator",
                                           .store = w.store,
                                           .transport = w.transport,
                                           .clock = w.clock.get(),
                                           .io = &w.io})
               .value();
    auto v2 = saga::definition_builder<order>("place_order", 2)
                  .wait("approve", "approval")
                  .build()
                  .value();
    REQUIRE(w.rt->add(v2.model()));
    REQUIRE(w.rt->open());
    // A signal is kept (once, though sent twice); an operator action is refused with why.
    REQUIRE(w.rt->call("pinned-1", saga::machine::signal_input{"approval", {{"by", "cy"}}, "s-7"}));
    REQUIRE(w.rt->call("pinned-1", saga::machine::signal_input{"approval", {{"by", "cy"}}, "s-7"}));
    auto refused = w.rt->call(
        "pinned-1",
        saga::machine::operator_input{saga::machine::operator_action::pause, "ops", "why", {}});
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == saga::errc::definition_not_registered);
    w.settle();
    const auto blocked = w.rt->blocked();
    REQUIRE(blocked.size() == 1);
    CHECK(blocked[0].id == "pinned-1");
    CHECK(blocked[0].definition == "place_order");
    CHECK(blocked[0].version == 1);
    CHECK(blocked[0].error.find("'place_order' version 1") != std::string::npos);
    CHECK(w.status("pinned-1") == saga_status::waiting);
    const auto held = w.store->journal("pinned-1").value();
    REQUIRE(held.size() == before + 1);
    REQUIRE(held.back().events.size() == 1);
    CHECK(held.back().events[0].type == saga::event_type::signal_received);

    REQUIRE(w.rt->add(place_order().model()));
    w.settle();
    CHECK(w.rt->blocked().empty());
    CHECK(w.status("pinned-1") == saga_status::completed);
    const auto data = nlohmann::json::parse(*w.store->load("pinned-1").value().data);
    CHECK(data["approved_by"] == "cy");
}
