// Scenarios: retention deletes finished instances once they are old enough, and nothing else.
#include "trip_saga.hpp"

using namespace saga;
using namespace saga::test;
using namespace std::chrono_literals;

namespace {

struct ticket {
    std::string who;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ticket, who)

/// Waits for `go` (without a deadline: it stays waiting for as long as the test likes).
definition<ticket> waiting_definition() {
    definition_builder<ticket> b("ticket", 1);
    b.wait("await_go", "go");
    auto d = std::move(b).build();
    REQUIRE(d);
    return d.value();
}

engine_options retention(duration older_than, duration interval, std::size_t batch = 1000) {
    engine_options o;
    o.retention.older_than = older_than;
    o.retention.interval = interval;
    o.retention.batch = batch;
    return o;
}

}  // namespace

TEST_CASE("retention deletes finished instances older than its age, and only those",
          "[engine][retention]") {
    world w({}, retention(1h, 10min, 2));
    REQUIRE(w.eng->add(trip_definition(w.log)));
    REQUIRE(w.eng->add(waiting_definition()));
    trip_services(w);
    std::vector<std::string> done;
    for (int i = 0; i < 5; ++i) {
        auto id = w.eng->start("trip", trip{});
        REQUIRE(id);
        done.push_back(id.value());
    }
    auto waiting = w.eng->start("ticket", ticket{"ada"});
    REQUIRE(waiting);
    w.settle();
    for (const auto& id : done) REQUIRE(w.view(id).status == saga_status::completed);

    // Younger than the age: kept, through several purges.
    w.clock->advance(50min);
    w.eng->run_until_idle();
    for (const auto& id : done) CHECK(w.store->head(id));

    // Older: gone (head and journal), in batches of 2; the waiting instance stays.
    w.clock->advance(30min);
    w.eng->run_until_idle();
    for (const auto& id : done) {
        CHECK(w.store->head(id).error() == errc::not_found);
        CHECK(w.store->journal(id).value().empty());
        CHECK(w.eng->query(id).error() == errc::not_found);
    }
    CHECK(w.eng->metrics().value("saga_instances_purged_total", {}) == 5);
    CHECK(w.eng->query(waiting.value()).value().status == saga_status::waiting);

    // Even long after, an unfinished instance is never purged; once finished, it ages too.
    w.clock->advance(48h);
    w.eng->run_until_idle();
    REQUIRE(w.eng->query(waiting.value()));
    REQUIRE(w.eng->signal(waiting.value(), "go"));
    w.settle();
    CHECK(w.eng->query(waiting.value()).value().status == saga_status::completed);
    w.clock->advance(2h);
    w.eng->run_until_idle();
    CHECK(w.store->head(waiting.value()).error() == errc::not_found);
    CHECK(w.eng->metrics().value("saga_instances_purged_total", {}) == 6);
}

TEST_CASE("without retention finished instances stay, and settling a run is not held up",
          "[engine][retention]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    w.clock->advance(24h * 365);
    w.eng->run_until_idle();
    CHECK(w.view(id.value()).status == saga_status::completed);
    CHECK(w.eng->metrics().value("saga_instances_purged_total", {}) == 0);
}

TEST_CASE("run_until_settled stops when only the engine's periodic wake-ups are left",
          "[engine][retention]") {
    engine_options o = retention(1h, 1min);
    o.sweep_interval = 5min;
    world w({}, o);
    REQUIRE(w.eng->add(waiting_definition()));
    auto id = w.eng->start("ticket", ticket{"ada"});
    REQUIRE(id);
    const auto before = w.clock->now();
    w.settle();  // the due poll, the sweep and retention keep the clock busy: it stops anyway
    CHECK(w.clock->now() == before);
    CHECK(w.view(id.value()).status == saga_status::waiting);
}
