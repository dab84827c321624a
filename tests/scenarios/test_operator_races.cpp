// Scenarios: operator actions racing the engine — what resume restores, timers that fall due
// while a saga is paused or while an operator's commit lands, cancelling a saga that already
// compensates, a compensation that fails for good while paused.
#include "booking_saga.hpp"

using namespace saga;
using namespace saga::test;

namespace {

const operator_note racing_ops{"ops@example.com", "incident 10"};

/// Position of the last `event` in `events` (or -1).
std::ptrdiff_t last_of(const std::vector<std::string>& events, std::string_view event) {
    for (auto i = static_cast<std::ptrdiff_t>(events.size()) - 1; i >= 0; --i)
        if (events[static_cast<std::size_t>(i)] == event) return i;
    return -1;
}

/// Whether `r` failed with `e` (without touching the error of a success).
bool refused_with(const result<void>& r, errc e) {
    return !r && r.error() == e;
}

/// Timers of the store due at or before the virtual now.
std::size_t overdue_timers(world& w) {
    return w.overdue_at(w.clock->now());
}

/// A booking waiting for approval (reserve done).
std::string waiting_booking(world& w) {
    auto id = w.eng->start("booking", booking{});
    REQUIRE(id);
    w.eng->run_until_idle();
    REQUIRE(w.view(id.value()).status == saga_status::waiting);
    return id.value();
}

/// A booking cancelled while waiting, whose compensation of `reserve` failed transiently once
/// and waits for its retry (no time has passed).
std::string compensation_waiting_for_retry(world& w) {
    auto id = waiting_booking(w);
    REQUIRE(w.eng->cancel(id, racing_ops));
    w.eng->run_until_idle();
    auto v = w.view(id);
    REQUIRE(v.status == saga_status::compensating);
    REQUIRE(v.step("reserve")->status == step_status::compensating);
    REQUIRE(v.step("reserve")->compensation_attempts == 1);
    REQUIRE(count_of(w.events_of(id), "compensation_retry_scheduled:reserve") == 1);
    return id;
}

}  // namespace

TEST_CASE("resume restores the status the pause interrupted", "[engine][operations][races]") {
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    SECTION("waiting") {
        booking_services(w);
        const auto id = waiting_booking(w);
        REQUIRE(w.eng->pause(id, racing_ops));
        CHECK(w.view(id).status == saga_status::paused);
        REQUIRE(w.eng->resume(id, racing_ops));
        CHECK(w.view(id).status == saga_status::waiting);
        w.eng->run_until_idle();
        CHECK(w.view(id).status == saga_status::waiting);
        REQUIRE(w.eng->signal(id, "approved", json{{"by", "grace"}}));
        w.settle();
        CHECK(w.view(id).status == saga_status::completed);
    }
    SECTION("compensating") {
        booking_services(w, fail_transiently(1));
        const auto id = compensation_waiting_for_retry(w);
        REQUIRE(w.eng->pause(id, racing_ops));
        w.eng->run_until_idle();
        CHECK(w.view(id).status == saga_status::paused);
        REQUIRE(w.eng->resume(id, racing_ops));
        CHECK(w.view(id).status == saga_status::compensating);
        w.eng->run_until_idle();
        CHECK(w.view(id).status == saga_status::compensating);
        w.settle();
        CHECK(w.view(id).status == saga_status::cancelled);
        CHECK(w.services["billing"]->held_count() == 0);
        CHECK(overdue_timers(w) == 0);
    }
}

TEST_CASE("a saga recorded as running while it compensates gets its real status when it moves",
          "[engine][operations][races]") {
    // What an engine before this fix could leave in a store: status running, compensation begun.
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    booking_services(w, fail_transiently(1));
    const auto id = compensation_waiting_for_retry(w);
    // Core v2 keeps no status apart from the journal: the status is the journal's (what an
    // engine before the fix of issue 10 could leave in a store cannot be written any more).
    CHECK(w.view(id).status == saga_status::compensating);
    w.settle();
    CHECK(w.view(id).status == saga_status::cancelled);
}

TEST_CASE("timers that fall due while a saga is paused fire after resume",
          "[engine][operations][races]") {
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    SECTION("a wait's deadline") {
        booking_services(w);
        const auto id = waiting_booking(w);
        REQUIRE(w.eng->pause(id, racing_ops));
        w.clock->advance(booking_deadline + std::chrono::minutes{1});
        w.eng->run_until_idle();
        auto v = w.view(id);
        CHECK(v.status == saga_status::paused);
        CHECK(v.step("approve")->status == step_status::waiting);
        CHECK(count_of(w.events_of(id), "wait_deadline_passed:approve") == 0);
        CHECK(count_of(w.events_of(id), "compensation_started") == 0);

        REQUIRE(w.eng->resume(id, racing_ops));
        w.eng->run_until_idle();
        const auto events = w.events_of(id);
        CHECK(last_of(events, "wait_deadline_passed:approve") > last_of(events, "saga_resumed"));
        w.settle();
        CHECK(w.view(id).status == saga_status::compensated);
        CHECK(w.services["billing"]->held_count() == 0);
        CHECK(overdue_timers(w) == 0);
    }
    SECTION("a wait's deadline, across a restart") {
        booking_services(w);
        const auto id = waiting_booking(w);
        REQUIRE(w.eng->pause(id, racing_ops));
        w.clock->advance(booking_deadline + std::chrono::minutes{1});
        w.eng->run_until_idle();
        // A new engine on the same store (its participants first, they run on its executor).
        w.participants.clear();
        w.restart();
        REQUIRE(w.eng->add(booking_definition()));
        booking_services(w);
        w.settle();
        CHECK(w.view(id).status == saga_status::paused);
        CHECK(w.view(id).step("approve")->status == step_status::waiting);

        REQUIRE(w.eng->resume(id, racing_ops));
        w.settle();
        CHECK(w.view(id).status == saga_status::compensated);
        const auto events = w.events_of(id);
        CHECK(last_of(events, "wait_deadline_passed:approve") > last_of(events, "saga_resumed"));
        CHECK(w.services["billing"]->held_count() == 0);
        CHECK(overdue_timers(w) == 0);
    }
    SECTION("a compensation's retry") {
        booking_services(w, fail_transiently(1));
        const auto id = compensation_waiting_for_retry(w);
        REQUIRE(w.eng->pause(id, racing_ops));
        w.settle();  // the retry falls due while paused
        auto v = w.view(id);
        CHECK(v.status == saga_status::paused);
        CHECK(v.step("reserve")->status == step_status::compensating);
        CHECK(v.step("reserve")->compensation_attempts == 1);

        REQUIRE(w.eng->resume(id, racing_ops));
        w.eng->run_until_idle();  // no time passes: the retry is overdue and runs now
        v = w.view(id);
        CHECK(v.status == saga_status::cancelled);
        CHECK(v.step("reserve")->compensation_attempts == 2);
        CHECK(w.services["billing"]->held_count() == 0);
        CHECK(overdue_timers(w) == 0);
    }
}

TEST_CASE("a timer that fires while an operator's commit lands is not lost",
          "[engine][operations][races]") {
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    booking_services(w, fail_transiently(1));
    const auto id = compensation_waiting_for_retry(w);
    // The retry fires and is queued for the instance; a signal commits before the instance
    // handles it, so the instance's first commit of the retry meets a newer version.
    REQUIRE(w.clock->advance_to_next());
    REQUIRE(w.eng->signal(id, "note", json{{"text", "racing"}}));
    w.eng->run_until_idle();
    auto v = w.view(id);
    CHECK(v.status == saga_status::cancelled);
    CHECK(v.step("reserve")->compensation_attempts == 2);
    CHECK(overdue_timers(w) == 0);
}

TEST_CASE("cancelling a saga that already compensates is invalid_state",
          "[engine][operations][races][cancel]") {
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    SECTION("cancelled, not yet moved") {
        booking_services(w);
        const auto id = waiting_booking(w);
        REQUIRE(w.eng->cancel(id, racing_ops));
        CHECK(refused_with(w.eng->cancel(id, racing_ops), errc::invalid_state));
        w.settle();
        CHECK(w.view(id).status == saga_status::cancelled);
        CHECK(count_of(w.events_of(id), "cancel_requested") == 1);
    }
    SECTION("cancelled, compensation retrying") {
        booking_services(w, fail_transiently(1));
        const auto id = compensation_waiting_for_retry(w);
        CHECK(refused_with(w.eng->cancel(id, "again"), errc::invalid_state));
        CHECK(refused_with(w.eng->cancel(id, racing_ops), errc::invalid_state));
    }
    SECTION("compensating after a deadline passed") {
        booking_services(w, fail_transiently(1));
        const auto id = waiting_booking(w);
        w.clock->advance(booking_deadline + std::chrono::minutes{1});
        w.eng->run_until_idle();
        REQUIRE(w.view(id).status == saga_status::compensating);
        CHECK(refused_with(w.eng->cancel(id, racing_ops), errc::invalid_state));
        w.settle();
        CHECK(w.view(id).status == saga_status::compensated);
    }
    SECTION("paused, then cancelled: the cancel ends the pause") {
        booking_services(w);
        const auto id = waiting_booking(w);
        REQUIRE(w.eng->pause(id, racing_ops));
        REQUIRE(w.eng->cancel(id, racing_ops));
        CHECK(w.view(id).status == saga_status::compensating);
        CHECK(refused_with(w.eng->cancel(id, racing_ops), errc::invalid_state));
        w.settle();
        CHECK(w.view(id).status == saga_status::cancelled);
    }
}

TEST_CASE("a compensation that fails for good while paused leaves the saga paused until resume",
          "[engine][operations][races][compensation]") {
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    std::string id;
    // Billing refuses the release for good, and an operator pauses the saga while billing
    // handles it: the refusal arrives at a paused saga.
    booking_services(w, [&](const envelope&) {
        REQUIRE(w.eng->pause(id, racing_ops));
        return participant_reply::permanent("ledger closed");
    });
    id = waiting_booking(w);
    REQUIRE(w.eng->cancel(id, racing_ops));
    w.settle();
    auto v = w.view(id);
    CHECK(v.status == saga_status::paused);
    CHECK(v.step("reserve")->status == step_status::compensation_failed);  // recorded
    CHECK(count_of(w.events_of(id), "saga_compensation_failed") == 0);

    SECTION("resumed, it ends compensation_failed") {
        REQUIRE(w.eng->resume(id, racing_ops));
        w.settle();
        v = w.view(id);
        CHECK(v.status == saga_status::compensation_failed);
        CHECK(v.error.find("ledger closed") != std::string::npos);
        const auto events = w.events_of(id);
        CHECK(last_of(events, "saga_compensation_failed") > last_of(events, "saga_resumed"));
    }
    SECTION("the failed compensation skipped, it stays paused, then ends cancelled") {
        REQUIRE(w.eng->skip_step(id, "reserve", racing_ops));
        w.settle();
        CHECK(w.view(id).status == saga_status::paused);
        REQUIRE(w.eng->resume(id, racing_ops));
        w.settle();
        CHECK(w.view(id).status == saga_status::cancelled);
    }
    CHECK(overdue_timers(w) == 0);
}

TEST_CASE("a cancel accepted while the pivot runs is carried out even if the pivot completes first",
          "[engine][operations][races][cancel]") {
    // The operator cancels, then pauses, while payments handles the charge (the pivot): its
    // reply lands before the saga began compensating. Without the pause the cancel would have
    // begun compensation first; the outcome must not depend on that order.
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    std::string id;
    w.resource_service("billing", "reserve", "release");
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund", [&](const envelope&) {
        REQUIRE(w.eng->cancel(id, racing_ops));
        REQUIRE(w.eng->pause(id, racing_ops));
        return participant_reply::success();
    });
    w.resource_service("shipping", "ship", "unship");
    id = waiting_booking(w);
    REQUIRE(w.eng->signal(id, "approved", json{{"by", "grace"}}));
    w.settle();
    auto v = w.view(id);
    REQUIRE(v.status == saga_status::paused);
    REQUIRE(v.step("charge")->status == step_status::completed);

    REQUIRE(w.eng->resume(id, racing_ops));
    CHECK(w.view(id).status == saga_status::compensating);
    w.settle();
    v = w.view(id);
    CHECK(v.status == saga_status::cancelled);
    CHECK(v.step("ship")->status == step_status::pending);
    CHECK(w.services["billing"]->held_count() == 0);
    CHECK(w.services["flights"]->held_count() == 0);
    CHECK(w.services["hotels"]->held_count() == 0);
    CHECK(overdue_timers(w) == 0);
}

TEST_CASE("a timer that outlives its step, skipped by an operator, is cleared when it falls due",
          "[engine][operations][races]") {
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    booking_services(w);
    const auto id = waiting_booking(w);
    REQUIRE(w.eng->skip_step(id, "approve", racing_ops));  // its deadline timer stays behind
    w.eng->run_until_idle();
    REQUIRE(w.view(id).status == saga_status::completed);
    // A due time exists only as long as the state that needs it: none is left behind.
    CHECK(w.overdue_at(w.clock->now() + booking_deadline) == 0);
    w.settle();  // past the deadline
    CHECK(w.clock->now() - w.view(id).created_at >= booking_deadline);
    CHECK(overdue_timers(w) == 0);
    CHECK(w.view(id).status == saga_status::completed);
}

TEST_CASE("a timer armed by an instance since evicted is cleared when it falls due",
          "[engine][operations][races]") {
    // The wait's deadline outlives the skipped wait; the saga fails (and leaves the engine's
    // cache), is retried and paused: the deadline falls due at an instance that never armed it.
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    auto first_ship = std::make_shared<std::atomic<bool>>(true);
    w.resource_service("billing", "reserve", "release");
    w.resource_service("flights", "book", "cancel");
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    w.resource_service("shipping", "ship", "unship", [first_ship](const envelope&) {
        if (first_ship->exchange(false)) return participant_reply::permanent("no courier");
        return participant_reply::success();
    });
    const auto id = waiting_booking(w);
    REQUIRE(w.eng->skip_step(id, "approve", racing_ops));
    w.eng->run_until_idle();
    REQUIRE(w.view(id).status == saga_status::failed);
    REQUIRE(w.eng->retry(id, racing_ops));
    REQUIRE(w.eng->pause(id, racing_ops));
    w.eng->run_until_idle();
    w.clock->advance(booking_deadline + std::chrono::minutes{1});
    w.eng->run_until_idle();
    CHECK(overdue_timers(w) == 0);
    REQUIRE(w.eng->resume(id, racing_ops));
    w.settle();
    CHECK(w.view(id).status == saga_status::completed);
    CHECK(overdue_timers(w) == 0);
}

TEST_CASE("a step whose retry falls due as a cancel lands is compensated if it may have happened",
          "[engine][operations][races][cancel]") {
    // flight's first reply is lost (flights did book): the attempt times out and a retry is
    // scheduled. The retry falls due, and a cancel commits before the saga handles it.
    world w;
    REQUIRE(w.eng->add(booking_definition()));
    auto first = std::make_shared<std::atomic<bool>>(true);
    auto lossy = std::make_shared<dropping_transport>(
        w.transport, [first](const std::string&, const envelope& e) {
            return e.kind == message_kind::reply && e.step == "flight" && first->exchange(false);
        });
    w.resource_service("billing", "reserve", "release");
    w.resource_service("flights", "book", "cancel", {}, {}, lossy);
    w.resource_service("hotels", "book", "cancel");
    w.resource_service("payments", "charge", "refund");
    w.resource_service("shipping", "ship", "unship");
    const auto id = waiting_booking(w);
    REQUIRE(w.eng->signal(id, "approved", json{{"by", "grace"}}));
    w.eng->run_until_idle();
    REQUIRE(w.services["flights"]->held_count() == 1);
    w.clock->advance(std::chrono::seconds{10});  // the attempt's timeout
    w.eng->run_until_idle();
    REQUIRE(w.view(id).step("flight")->status == step_status::retrying);
    w.clock->advance(std::chrono::seconds{5});  // the retry falls due (queued, not handled)
    REQUIRE(w.eng->cancel(id, racing_ops));
    w.settle();
    auto v = w.view(id);
    CHECK(v.status == saga_status::cancelled);
    CHECK(v.step("flight")->status == step_status::compensated);
    CHECK(w.services["flights"]->held_count() == 0);
    CHECK(w.services["hotels"]->held_count() == 0);
    CHECK(w.services["billing"]->held_count() == 0);
}
