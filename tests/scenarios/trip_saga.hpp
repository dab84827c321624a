#pragma once
// The saga most scenarios run: book a trip.
//   validate (local; undo: local) -> reserve_credit (billing; undo: release)
//   -> book [flight (flights) | hotel (hotels)] (each undone by cancel)
//   -> charge (payments; the pivot) -> notify (local, after the pivot)

#include "harness.hpp"

namespace saga::test {

struct trip {
    std::string customer = "ada";
    int amount = 100;
    std::string credit;
    std::string flight;
    std::string hotel;
    std::string charge;
    std::vector<std::string> notes;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(trip, customer, amount, credit, flight, hotel,
                                                charge, notes)

struct trip_options {
    bool pivot = true;
    retry_policy retry = retry_policy::exponential(3, std::chrono::seconds{1});
    retry_policy compensation_retry = retry_policy::exponential(5, std::chrono::seconds{1});
    duration timeout = std::chrono::seconds{10};
};

inline definition<trip> trip_definition(journal& log, trip_options o = {}) {
    auto remote_id = [](const json& r) { return r.value("id", std::string()); };
    definition_builder<trip> b("trip", 1);
    b.local("validate",
            [&log](trip& t) -> result<void> {
                if (t.amount <= 0) return permanent_error("amount must be positive");
                log.add("local.validate");
                return success();
            })
        .compensate([&log](trip& t) {
            t.notes.push_back("unvalidated");
            log.add("local.unvalidate");
        })
        .remote("reserve_credit", "billing",
                [](const trip& t) {
                    return command{"reserve", {{"amount", t.amount}}};
                })
        .on_reply([remote_id](trip& t, const json& r) { t.credit = remote_id(r); })
        .compensate_remote("billing",
                           [](const trip& t) {
                               return command{"release", {{"id", t.credit}}};
                           })
        .retry(o.retry)
        .compensation_retry(o.compensation_retry)
        .timeout(o.timeout)
        .parallel(
            "book",
            [&](parallel_builder<trip>& p) {
                p.branch("flight")
                    .remote("book_flight", "flights",
                            [](const trip& t) {
                                return command{"book", {{"who", t.customer}}};
                            })
                    .on_reply([remote_id](trip& t, const json& r) { t.flight = remote_id(r); })
                    .compensate_remote("flights",
                                       [](const trip& t) {
                                           return command{"cancel", {{"id", t.flight}}};
                                       })
                    .retry(o.retry)
                    .compensation_retry(o.compensation_retry)
                    .timeout(o.timeout);
                p.branch("hotel")
                    .remote("book_hotel", "hotels",
                            [](const trip& t) {
                                return command{"book", {{"who", t.customer}}};
                            })
                    .on_reply([remote_id](trip& t, const json& r) { t.hotel = remote_id(r); })
                    .compensate_remote("hotels",
                                       [](const trip& t) {
                                           return command{"cancel", {{"id", t.hotel}}};
                                       })
                    .retry(o.retry)
                    .compensation_retry(o.compensation_retry)
                    .timeout(o.timeout);
            })
        .remote("charge", "payments",
                [](const trip& t) {
                    return command{"charge", {{"amount", t.amount}}};
                })
        .on_reply([remote_id](trip& t, const json& r) { t.charge = remote_id(r); })
        .retry(o.retry)
        .timeout(o.timeout);
    if (o.pivot) b.pivot();
    b.local("notify", [&log](trip& t) {
        t.notes.push_back("notified");
        log.add("local.notify");
    });
    auto d = std::move(b).build();
    REQUIRE(d);
    return d.value();
}

/// Starts the four services of the trip saga; returns nothing, they live in `w`.
inline void trip_services(world& w, behaviour billing = {}, behaviour flights = {},
                          behaviour hotels = {}, behaviour payments = {}) {
    w.resource_service("billing", "reserve", "release", std::move(billing));
    w.resource_service("flights", "book", "cancel", std::move(flights));
    w.resource_service("hotels", "book", "cancel", std::move(hotels));
    w.resource_service("payments", "charge", "refund", std::move(payments));
}

/// The compensations expected for `forward`: each acquire's undo, in reverse order.
inline std::vector<std::string> undo_of(const std::vector<std::string>& forward) {
    static const std::map<std::string, std::string> undo{{"local.validate", "local.unvalidate"},
                                                         {"billing.reserve", "billing.release"},
                                                         {"flights.book", "flights.cancel"},
                                                         {"hotels.book", "hotels.cancel"}};
    std::vector<std::string> out;
    for (auto it = forward.rbegin(); it != forward.rend(); ++it)
        if (auto u = undo.find(*it); u != undo.end()) out.push_back(u->second);
    return out;
}

}  // namespace saga::test
