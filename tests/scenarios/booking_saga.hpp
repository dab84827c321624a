#pragma once
// The saga the operator-race scenarios run: a booking that waits for approval.
//   reserve (billing; undo: release) -> approve (wait for "approved", deadline 10 min)
//   -> book [flight (flights) | hotel (hotels)] (each undone by cancel)
//   -> charge (payments; the pivot) -> ship (shipping, after the pivot, 2 attempts)
// Every remote step retries transient failures; every compensation too.

#include "harness.hpp"

namespace saga::test {

struct booking {
    std::string customer = "ada";
    std::string approver;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(booking, customer, approver)

/// How long `approve` waits for its signal before it fails (and the saga compensates).
inline constexpr duration booking_deadline = std::chrono::minutes{10};

inline definition<booking> booking_definition() {
    const auto retry = retry_policy::exponential(3, std::chrono::seconds{1});
    const auto compensation_retry = retry_policy::exponential(4, std::chrono::seconds{1});
    const auto timeout = std::chrono::seconds{10};
    auto call = [](std::string type) {
        return [type](const booking& b) { return command{type, {{"who", b.customer}}}; };
    };
    definition_builder<booking> b("booking", 1);
    b.remote("reserve", "billing", call("reserve"))
        .compensate_remote("billing", call("release"))
        .retry(retry)
        .compensation_retry(compensation_retry)
        .timeout(timeout)
        .wait("approve", "approved")
        .deadline(booking_deadline)
        .on_signal([](booking& d, const json& p) { d.approver = p.value("by", std::string()); })
        .parallel("book",
                  [&](parallel_builder<booking>& p) {
                      p.branch("flight")
                          .remote("flight", "flights", call("book"))
                          .compensate_remote("flights", call("cancel"))
                          .retry(retry)
                          .compensation_retry(compensation_retry)
                          .timeout(timeout);
                      p.branch("hotel")
                          .remote("hotel", "hotels", call("book"))
                          .compensate_remote("hotels", call("cancel"))
                          .retry(retry)
                          .compensation_retry(compensation_retry)
                          .timeout(timeout);
                  })
        .remote("charge", "payments", call("charge"))
        .retry(retry)
        .timeout(timeout)
        .pivot()
        .remote("ship", "shipping", call("ship"))
        .retry(retry_policy::exponential(2, std::chrono::seconds{1}))
        .timeout(timeout);
    auto d = std::move(b).build();
    REQUIRE(d);
    return d.value();
}

/// Starts the five services of the booking saga; `billing_release` decides how billing's
/// `release` (the compensation of `reserve`) answers.
inline void booking_services(world& w, behaviour billing_release = {}) {
    w.resource_service("billing", "reserve", "release", {}, std::move(billing_release));
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    w.resource_service("shipping", "ship", "unship");
}

}  // namespace saga::test
