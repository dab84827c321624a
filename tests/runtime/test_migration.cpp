// Schema v1 -> journal: instances that today's engine left in flight (a command out, a retry
// scheduled, a wait with a deadline) are carried over with legacy::migrate_v1 and finished by
// the core v2 runtime from the journal alone.

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <deque>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <saga/engine.hpp>
#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/participant.hpp>

#include "legacy/migrate_v1.hpp"
#include "machine/snapshot.hpp"
#include "runtime/runtime.hpp"

using namespace std::chrono_literals;
using saga::saga_status;

namespace {

struct v1_order {
    int validated = 0;
    int undone = 0;
    std::string reservation;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(v1_order, validated, undone, reservation)

saga::definition<v1_order> place_v1_order() {
    return saga::definition_builder<v1_order>("place_order", 1)
        .local("validate", [](v1_order& o) { ++o.validated; })
        .compensate([](v1_order& o) { ++o.undone; })
        .remote("reserve", "billing",
                [](const v1_order&) {
                    return saga::command{"reserve", {{"amount", 5}}};
                })
        .on_reply([](v1_order& o, const nlohmann::json& r) {
            o.reservation = r.value("id", std::string());
        })
        .compensate_remote("billing",
                           [](const v1_order&) {
                               return saga::command{"release", {}};
                           })
        .retry(saga::retry_policy::exponential(5, 10s))
        .wait("approve", "approval")
        .deadline(1h)
        .build()
        .value();
}

struct both_engines {
    std::shared_ptr<saga::virtual_clock> clock = std::make_shared<saga::virtual_clock>();
    std::shared_ptr<saga::inmemory::memory_transport> transport =
        std::make_shared<saga::inmemory::memory_transport>(clock);
    std::shared_ptr<saga::inmemory::memory_store> v1 =
        std::make_shared<saga::inmemory::memory_store>();
    std::shared_ptr<saga::inmemory::memory_journal_store> v2 =
        std::make_shared<saga::inmemory::memory_journal_store>();
    std::unique_ptr<saga::engine> old_engine;
    boost::asio::io_context io;
    std::shared_ptr<saga::runtime::runtime> rt;
    std::unique_ptr<saga::participant> billing;
    int reserves = 0;
    int releases = 0;
    int transient_reserves = 0;

    both_engines() {
        old_engine =
            std::make_unique<saga::engine>(v1, transport, saga::engine_options{.clock = clock});
        REQUIRE(old_engine->add(place_v1_order()));
    }

    void start_billing(boost::asio::any_io_executor ex) {
        billing = std::make_unique<saga::participant>(transport, "billing");
        billing->on("reserve", [this](const saga::envelope&) {
            if (transient_reserves > 0) {
                --transient_reserves;
                return saga::participant_reply::transient("busy");
            }
            ++reserves;
            return saga::participant_reply::success({{"id", "r-1"}});
        });
        billing->on("release", [this](const saga::envelope&) {
            ++releases;
            return saga::participant_reply::success();
        });
        REQUIRE(billing->start(ex));
    }

    /// Stops today's engine and carries every instance over to the journal store, with the
    /// message ids v1's inbox holds for each (`consumed`, by saga).
    void migrate(const std::map<std::string, std::vector<std::string>>& consumed = {}) {
        old_engine->stop();
        old_engine.reset();
        billing.reset();
        auto records = v1->list({}).value();
        auto timers = v1->timers(std::nullopt).value();
        auto pending = v1->pending_outbox(1000).value();
        for (const auto& rec : records) {
            const auto ids = consumed.find(rec.id);
            auto w = saga::legacy::migrate_v1(rec, timers, pending,
                                              ids == consumed.end()
                                                  ? std::span<const std::string>{}
                                                  : std::span<const std::string>{ids->second});
            REQUIRE(w);
            REQUIRE(v2->commit(std::move(w).value()));
        }
        rt = saga::runtime::runtime::create({.endpoint = "saga.engine",
                                             .store = v2,
                                             .transport = transport,
                                             .clock = clock.get(),
                                             .io = &io})
                 .value();
        REQUIRE(rt->add(place_v1_order().model()));
        REQUIRE(rt->open());
    }

    void settle() {
        for (int i = 0; i < 1000; ++i) {
            io.restart();
            const auto ran = io.poll();
            const auto due = clock->pending();
            clock->advance(0ms);
            if (ran == 0 && due == clock->pending()) return;
        }
    }

    saga_status status(const std::string& id) { return v2->head(id).value().status; }
};

}  // namespace

TEST_CASE("an instance whose command is out when v1 stops finishes on the journal",
          "[runtime][migration]") {
    both_engines w;
    REQUIRE(w.old_engine->start("place_order", v1_order{}, {.id = "m-1"}));
    w.old_engine->run_until_idle();  // validate ran, the command is in the queue
    CHECK(w.v1->load("m-1").value().status == saga_status::running);
    w.migrate();
    w.start_billing(w.io.get_executor());
    w.settle();
    CHECK(w.status("m-1") == saga_status::waiting);
    CHECK(w.reserves == 1);
    REQUIRE(w.rt->call("m-1",
                       saga::machine::signal_input{"approval", nlohmann::json::object(), "s-1"}));
    w.settle();
    CHECK(w.status("m-1") == saga_status::completed);
    const auto data = nlohmann::json::parse(*w.v2->load("m-1").value().data);
    CHECK(data["validated"] == 1);  // the local step did not run again
    CHECK(data["reservation"] == "r-1");
}

TEST_CASE("a wait's deadline set by v1 still passes on the journal, and compensates",
          "[runtime][migration]") {
    both_engines w;
    w.start_billing(w.old_engine->get_executor());
    REQUIRE(w.old_engine->start("place_order", v1_order{}, {.id = "m-2"}));
    w.old_engine->run_until_idle();
    REQUIRE(w.v1->load("m-2").value().status == saga_status::waiting);
    w.migrate();
    w.start_billing(w.io.get_executor());
    w.settle();
    CHECK(w.status("m-2") == saga_status::waiting);
    w.clock->advance(2h);
    w.settle();
    CHECK(w.status("m-2") == saga_status::compensated);
    CHECK(w.releases == 1);
    const auto data = nlohmann::json::parse(*w.v2->load("m-2").value().data);
    CHECK(data["undone"] == 1);
}

TEST_CASE("a retry scheduled by v1 happens on the journal", "[runtime][migration]") {
    both_engines w;
    w.transient_reserves = 1;
    w.start_billing(w.old_engine->get_executor());
    REQUIRE(w.old_engine->start("place_order", v1_order{}, {.id = "m-3"}));
    w.old_engine->run_until_idle();
    auto state = w.v1->load("m-3").value().state;
    REQUIRE(state["units"]["reserve"]["s"] == "retrying");
    w.migrate();
    w.start_billing(w.io.get_executor());
    w.settle();
    CHECK(w.reserves == 0);  // not yet: the backoff of 10 s +/- 20% has not passed
    w.clock->advance(15s);
    w.settle();
    CHECK(w.reserves == 1);
    CHECK(w.status("m-3") == saga_status::waiting);
}

TEST_CASE("a signal v1 consumed is not taken again on the journal", "[runtime][migration]") {
    both_engines w;
    REQUIRE(w.old_engine->start("place_order", v1_order{}, {.id = "m-4"}));
    w.old_engine->run_until_idle();  // the command is out, nobody answers yet
    saga::envelope approval;
    approval.message_id = "s-1";
    approval.kind = saga::message_kind::event;
    approval.type = "approval";
    approval.saga_id = "m-4";
    w.transport->async_send("saga.engine", approval, [](saga::result<void> r) { REQUIRE(r); });
    w.old_engine->run_until_idle();
    REQUIRE(w.v1->inbox_contains("m-4", "s-1").value());
    auto rec = w.v1->load("m-4").value();
    REQUIRE(rec.state["signals"]["approval"].size() == 1);  // kept until the wait opens

    const std::vector<std::string> consumed{"s-1"};
    auto write = saga::legacy::migrate_v1(rec, {}, {}, consumed);
    REQUIRE(write);
    auto st = saga::machine::decode_snapshot(*write.value().record.snapshot);
    REQUIRE(st);
    CHECK(st.value().consumed_ids == std::deque<std::string>{"s-1"});

    // on the journal, the same message again is a repeat
    w.migrate({{"m-4", consumed}});
    REQUIRE(w.rt->call("m-4", saga::machine::signal_input{"approval", {}, "s-1"}));
    w.settle();
    CHECK(w.rt->inspect("m-4").value().state.signals["approval"].size() == 1);
    w.start_billing(w.io.get_executor());
    w.settle();
    CHECK(w.status("m-4") == saga_status::completed);
    CHECK(w.rt->inspect("m-4").value().state.signals["approval"].empty());
}

TEST_CASE("a waiting or paused v1 instance with a message still in the outbox is due at once",
          "[runtime][migration]") {
    both_engines w;
    w.start_billing(w.old_engine->get_executor());
    REQUIRE(w.old_engine->start("place_order", v1_order{}, {.id = "m-5"}));
    w.old_engine->run_until_idle();
    auto rec = w.v1->load("m-5").value();
    REQUIRE(rec.status == saga_status::waiting);
    const auto deadline =
        saga::legacy::migrate_v1(rec, w.v1->timers(std::nullopt).value(), {}).value().head->wake_at;
    REQUIRE(deadline);
    CHECK(*deadline > rec.updated_at);  // the wait's deadline

    saga::outbox_record unsent;
    unsent.saga_id = "m-5";
    unsent.destination = "billing";
    unsent.message.saga_id = "m-5";
    unsent.message.type = "notify";
    const std::vector<saga::outbox_record> pending{unsent};
    for (const auto status : {saga_status::waiting, saga_status::paused}) {
        rec.status = status;
        auto write = saga::legacy::migrate_v1(rec, w.v1->timers(std::nullopt).value(), pending);
        REQUIRE(write);
        CHECK(write.value().head->wake_at == rec.updated_at);
        CHECK(write.value().record.output.size() == 1);
    }
}
