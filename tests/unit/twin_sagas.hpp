#pragma once
// The sagas the comparison tests run on both engines (legacy_twin.hpp), with jitter-free retry
// policies so that both back off alike.

#include "legacy_twin.hpp"
#include "scenarios/trip_saga.hpp"

namespace saga::test {

struct order {
    int validated = 0;
    int undone = 0;
    std::string reservation;
    std::string approved_by;
    bool timed_out = false;
    std::vector<std::string> items{"a", "b", "c"};
    std::vector<std::string> shipped;
    std::size_t results = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order, validated, undone, reservation, approved_by,
                                                timed_out, items, shipped, results)

/// validate (local; undo: local) -> reserve (billing; undo: release) -> approve (a wait for
/// signal "approval", 1 h) -> finish (local).
/// The definition `b` builds (the test fails, saying why, if it does not).
template <class Data>
definition<Data> built(definition_builder<Data>& b) {
    auto d = b.build();
    if (!d) FAIL(d.error().what());
    return d.value();
}

inline definition<order> approval_flow(on_deadline what = on_deadline::fail) {
    definition_builder<order> b("approval_flow", 1);
    b.default_retry(steady(3))
        .default_compensation_retry(steady(4))
        .local("validate", [](order& o) { ++o.validated; })
        .compensate([](order& o) { ++o.undone; })
        .remote("reserve", "billing",
                [](const order&) {
                    return command{"reserve", {{"amount", 5}}};
                })
        .on_reply([](order& o, const json& r) { o.reservation = r.value("id", std::string()); })
        .compensate_remote("billing",
                           [](const order& o) {
                               return command{"release", {{"id", o.reservation}}};
                           })
        .timeout(10s)
        .wait("approve", "approval")
        .deadline(1h, what)
        .on_signal([](order& o, const json& p) { o.approved_by = p.value("by", std::string()); });
    if (what == on_deadline::proceed) b.on_timeout([](order& o) { o.timed_out = true; });
    b.local("finish", [](order&) {});
    return built(b);
}

inline services billing(command_handler reserve = succeed({{"id", "r-1"}}),
                        command_handler release = succeed()) {
    services s;
    s.on("billing", "reserve", std::move(reserve)).on("billing", "release", std::move(release));
    return s;
}

/// validate -> reserve -> ship (a for-each over the items, on "warehouse"; undo: unship).
inline definition<order> shipping(std::size_t concurrency, for_each_policy policy) {
    definition_builder<order> b("shipping", 1);
    b.default_retry(steady(3))
        .default_compensation_retry(steady(4))
        .local("validate", [](order& o) { ++o.validated; })
        .compensate([](order& o) { ++o.undone; })
        .remote("reserve", "billing",
                [](const order&) {
                    return command{"reserve", {{"amount", 5}}};
                })
        .compensate_remote("billing",
                           [](const order&) {
                               return command{"release", {}};
                           })
        .for_each(
            "ship", [](const order& o) { return o.items; },
            [&](for_each_builder<order, std::string>& f) {
                f.remote("warehouse",
                         [](const order&, const std::string& item) {
                             return command{"ship", {{"item", item}}};
                         })
                    .on_reply([](order& o, const std::string& item, const json&) {
                        o.shipped.push_back(item);
                    })
                    .compensate_remote("warehouse",
                                       [](const order&, const std::string& item) {
                                           return command{"unship", {{"item", item}}};
                                       })
                    .concurrency(concurrency)
                    .on_failure(policy)
                    .retry(steady(2))
                    .compensation_retry(steady(2))
                    .on_results(
                        [](order& o, std::span<const item_result> r) { o.results = r.size(); });
            });
    return built(b);
}

/// Ships every item but `refused` (which the warehouse refuses for good).
inline services warehouse(const std::string& refused = {}) {
    auto s = billing();
    s.on("warehouse", "ship", [refused](const envelope& e) {
         if (e.payload.value("item", std::string()) == refused)
             return participant_reply::permanent("out of stock");
         return participant_reply::success();
     }).on("warehouse", "unship", succeed());
    return s;
}

/// validate -> charge (payments; the pivot) -> ship (warehouse, after the pivot).
inline definition<order> past_pivot() {
    definition_builder<order> b("past_pivot", 1);
    b.default_retry(steady(3))
        .default_compensation_retry(steady(4))
        .local("validate", [](order& o) { ++o.validated; })
        .compensate([](order& o) { ++o.undone; })
        .remote("charge", "payments",
                [](const order&) {
                    return command{"charge", {{"amount", 5}}};
                })
        .pivot()
        .remote("ship", "warehouse", [](const order&) {
            return command{"ship", {}};
        });
    return built(b);
}

/// The trip saga of the scenario tests (a parallel group, a pivot), without jitter.
inline definition<trip> steady_trip() {
    static journal log;  // what its local steps did (not looked at here)
    return trip_definition(log, trip_options{.retry = steady(3), .compensation_retry = steady(5)});
}

inline services trip_participants(command_handler billing = succeed({{"id", "credit-1"}}),
                                  command_handler flights = succeed({{"id", "flight-1"}}),
                                  command_handler hotels = succeed({{"id", "hotel-1"}})) {
    services s;
    s.on("billing", "reserve", std::move(billing))
        .on("billing", "release", succeed())
        .on("flights", "book", std::move(flights))
        .on("flights", "cancel", succeed())
        .on("hotels", "book", std::move(hotels))
        .on("hotels", "cancel", succeed())
        .on("payments", "charge", succeed({{"id", "charge-1"}}));
    return s;
}

inline const operator_note ada{.who = "ada@ops", .why = "INC-812"};

}  // namespace saga::test
