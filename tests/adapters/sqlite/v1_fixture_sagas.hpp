#pragma once
/// @file v1_fixture_sagas.hpp
/// The sagas of the schema version 1 fixture, fixtures/v1_in_flight.db: the definition, the
/// instances and what each was doing when make_v1_fixture.cpp stopped today's engine on
/// `sqlite_store`. Shared by that generator and by test_sqlite_v1_migration.cpp, which
/// migrates the file to schema version 2 and finishes every saga on the journal store.

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <string>
#include <string_view>

#include <saga/definition.hpp>
#include <saga/envelope.hpp>
#include <saga/retry.hpp>
#include <saga/status.hpp>

namespace saga::sqlite::test::v1_fixture {

using namespace std::chrono_literals;

struct order {
    int validated = 0;
    int undone = 0;
    std::string reservation;
    std::string approved_by;
    std::string tracking;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order, validated, undone, reservation, approved_by, tracking)

/// validate (local, undone by a local compensation) -> reserve (billing; released by a
/// compensation command; 5 attempts, 10 s backoff; 30 s per attempt) -> approve (a wait for
/// the signal "approval", failing after an hour) -> ship (shipping).
inline definition<order> order_saga() {
    return definition_builder<order>("order", 1)
        .local("validate", [](order& o) { ++o.validated; })
        .compensate([](order& o) { ++o.undone; })
        .remote("reserve", "billing",
                [](const order&) {
                    return command{"reserve", {{"amount", 5}}};
                })
        .on_reply(
            [](order& o, const nlohmann::json& r) { o.reservation = r.value("id", std::string()); })
        .compensate_remote("billing",
                           [](const order&) {
                               return command{"release", nlohmann::json::object()};
                           })
        .retry(retry_policy::exponential(5, 10s))
        .timeout(30s)
        .wait("approve", "approval")
        .deadline(1h)
        .on_signal(
            [](order& o, const nlohmann::json& p) { o.approved_by = p.value("by", std::string()); })
        .remote("ship", "shipping",
                [](const order&) {
                    return command{"ship", nlohmann::json::object()};
                })
        .on_reply([](order& o, const nlohmann::json& r) {
            o.tracking = r.value("tracking", std::string());
        })
        .build()
        .value();
}

/// The instances of the fixture, each left in one state by the generator.
struct instance {
    std::string_view id;
    /// the v1 status when the generator stopped
    saga_status status;
    /// what it was doing
    std::string_view doing;
};

inline constexpr std::array<instance, 8> instances{{
    {"done", saga_status::completed, "completed: approved and shipped"},
    {"waiting", saga_status::waiting, "waiting for the approval signal (deadline in 1 h)"},
    {"sent", saga_status::running, "reserve command sent (and lost), not answered"},
    {"retrying", saga_status::running, "reserve failed transiently, retry scheduled in 10 s"},
    {"compensating", saga_status::compensating,
     "ship failed for good; the release command is out (and lost)"},
    {"paused", saga_status::paused, "paused by an operator while waiting for approval"},
    {"locked", saga_status::waiting,
     "holds the exclusive correlation key 'customer-7', waiting for approval"},
    {"unsent", saga_status::running, "the reserve command could not be sent: still in the outbox"},
}};

/// The correlation key `locked` holds exclusively.
inline constexpr std::string_view locked_key = "customer-7";

/// The reservation id billing answers for a reserve command (by its idempotency key).
inline std::string reservation_for(const envelope& e) {
    return "billing:" + e.idempotency_key;
}

}  // namespace saga::sqlite::test::v1_fixture
