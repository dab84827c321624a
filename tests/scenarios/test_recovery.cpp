// Scenarios: schedules (once per tick, across engines and restarts) and definition versions.
#include "trip_saga.hpp"

using namespace saga;
using namespace saga::test;

namespace {
struct tick_data {
    std::int64_t tick_ms = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(tick_data, tick_ms)

definition<tick_data> refresh_definition(std::uint32_t version = 1) {
    definition_builder<tick_data> b("refresh", version);
    b.local("refresh", [](tick_data&) {});
    return std::move(b).build().value();
}

schedule_options hourly() {
    return {.name = "refresh",
            .definition = "refresh",
            .interval = std::chrono::hours{1},
            .data = [](time_point tick) -> result<nlohmann::json> {
                return nlohmann::json(tick_data{
                    std::chrono::duration_cast<std::chrono::milliseconds>(tick.time_since_epoch())
                        .count()});
            }};
}

}  // namespace

TEST_CASE("a schedule starts its saga once per tick", "[engine][schedule]") {
    world w;
    REQUIRE(w.eng->add(refresh_definition()));
    REQUIRE(w.eng->schedule(hourly()));
    REQUIRE(w.eng->run_until_settled(std::chrono::hours{5} + std::chrono::minutes{1}));
    const auto ids = w.instance_ids();
    CHECK(ids.size() == 6);  // the tick running at the start, and five more
    for (const auto& id : ids) {
        CHECK(id.starts_with("refresh@"));
        CHECK(w.view(id).status == saga_status::completed);
    }
    auto again = w.eng->schedule(hourly());
    REQUIRE(!again);
    CHECK(again.error() == errc::already_exists);
    auto bad = w.eng->schedule({.name = "x", .definition = "refresh", .interval = duration{0}});
    REQUIRE(!bad);
    CHECK(bad.error() == errc::invalid_argument);
}

TEST_CASE("two engines and a restart on one store still start each tick once",
          "[engine][schedule][recovery]") {
    world w;
    w.eng.reset();
    {
        auto a = w.another_engine({.endpoint = "engine-a"});
        auto b = w.another_engine({.endpoint = "engine-b"});
        for (auto* e : {a.get(), b.get()}) {
            REQUIRE(e->add(refresh_definition()));
            REQUIRE(e->schedule(hourly()));
        }
        for (int hour = 0; hour < 3; ++hour) {
            a->run_until_idle();
            b->run_until_idle();
            w.clock->advance(std::chrono::hours{1});
        }
        a->run_until_idle();
        b->run_until_idle();
    }
    CHECK(w.instance_ids().size() == 4);
    // A restarted engine finds this tick's instance and starts nothing new for it.
    auto c = w.another_engine();
    REQUIRE(c->add(refresh_definition()));
    REQUIRE(c->schedule(hourly()));
    c->run_until_idle();
    CHECK(w.instance_ids().size() == 4);
    w.clock->advance(std::chrono::hours{1});
    c->run_until_idle();
    CHECK(w.instance_ids().size() == 5);
}

TEST_CASE(
    "an instance pinned to an unregistered version is left untouched, reported, and resumes once "
    "the version "
    "is registered",
    "[engine][versioning][recovery]") {
    world w;
    std::string id;
    {
        definition_builder<tick_data> b("approve", 1);
        b.local("prepare", [](tick_data&) {}).wait("await", "go");
        REQUIRE(w.eng->add(std::move(b).build().value()));
        id = w.eng->start("approve", tick_data{}).value();
        w.eng->run_until_idle();
    }
    const auto before = w.stored(id);

    w.restart();
    auto& second = *w.eng;
    definition_builder<tick_data> v2("approve", 2);
    v2.local("prepare_differently", [](tick_data&) {}).wait("await", "go");
    REQUIRE(second.add(std::move(v2).build().value()));
    REQUIRE(second.open());
    REQUIRE(second.signal(id, "go"));  // accepted and kept; the instance cannot move yet
    second.run_until_idle();
    auto blocked = second.blocked();
    REQUIRE(blocked.size() == 1);
    CHECK(blocked[0].id == id);
    CHECK(blocked[0].definition == "approve");
    CHECK(blocked[0].version == 1);
    CHECK(blocked[0].error.find("'approve' version 1") != std::string::npos);
    CHECK(blocked[0].error.find(id) != std::string::npos);
    auto during = w.stored(id);
    CHECK(during.status == before.status);
    CHECK(during.definition_version == 1);

    definition_builder<tick_data> v1("approve", 1);
    v1.local("prepare", [](tick_data&) {}).wait("await", "go");
    REQUIRE(second.add(std::move(v1).build().value()));
    second.run_until_idle();
    CHECK(second.blocked().empty());
    CHECK(second.query(id).value().status == saga_status::completed);
    // New instances get the highest version.
    auto fresh = second.start("approve", tick_data{});
    REQUIRE(fresh);
    CHECK(second.query(fresh.value()).value().definition_version == 2);
}
