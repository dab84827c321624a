// legacy::to_history: the history the machine's journal shows is the history today's engine
// writes for the same saga (event names, steps, attempts, detail JSON, times), so that the
// engine can switch to the machine without the scenario tests, the admin API or the dashboard
// seeing a difference. Each test runs one script on both engines (legacy_twin.hpp).

#include <catch2/catch.hpp>

#include "twin_sagas.hpp"

using namespace saga;
using namespace saga::test;

namespace {

/// Today's history, and the machine's through legacy::to_history, line by line.
void check_same_history(twin& t) {
    const auto today = lines_of(t.today.history());
    const auto v2 = lines_of(t.v2.history());
    CHECK(today == v2);
    REQUIRE_FALSE(v2.empty());
}

/// Every record translated on its own, with the state after it, gives the translator's entries
/// but `step_abandoned` (it needs the state before the record) and `status_changed` (shown as
/// the machine records it, not as today's engine would have: that needs the records before).
void check_per_record(const machine_run& run) {
    const auto journal = run.journal();
    const auto states = run.states();
    std::vector<history_entry> alone;
    for (std::size_t i = 0; i < journal.size(); ++i)
        legacy::append_history(journal[i], states[i], alone);
    auto exact = run.history();
    const auto approximate = [](const history_entry& e) {
        return e.event == "step_abandoned" || e.event == "status_changed";
    };
    std::erase_if(exact, approximate);
    std::erase_if(alone, approximate);
    CHECK(lines_of(alone) == lines_of(exact));
}

std::size_t count_event(const std::vector<history_entry>& h, std::string_view event) {
    return static_cast<std::size_t>(std::count_if(
        h.begin(), h.end(), [&](const history_entry& e) { return e.event == event; }));
}

}  // namespace

TEST_CASE("a saga through local, remote and wait steps shows today's history", "[legacy]") {
    twin t(approval_flow(), order{}, [] { return billing(); });
    t.idle();
    t.signal("approval", {{"by", "ann"}});
    t.settle();
    t.check_status(saga_status::completed);
    check_same_history(t);
    check_per_record(t.v2);
}

TEST_CASE("a trip through a parallel group and its pivot shows today's history", "[legacy]") {
    twin t(steady_trip(), trip{}, [] { return trip_participants(); });
    t.settle();
    t.check_status(saga_status::completed);
    check_same_history(t);
    const auto h = t.v2.history();
    CHECK(count_event(h, "pivot_passed") == 1);
    CHECK(h.front().event == "saga_started");
}

TEST_CASE("a trip whose flight is refused compensates and shows today's history",
          "[legacy][compensation]") {
    twin t(steady_trip(), trip{}, [] {
        return trip_participants(succeed({{"id", "c"}}), refuse("no seats"));
    });
    t.settle();
    t.check_status(saga_status::compensated);
    check_same_history(t);
    check_per_record(t.v2);
}

TEST_CASE("a lost reply times out, a busy participant is retried, and both show today's history",
          "[legacy][retry][timeout]") {
    twin t(steady_trip(), trip{}, [] {
        auto s = trip_participants(succeed({{"id", "c"}}), succeed(), busy_first(1));
        s.lose_reply = [](const std::string& type, std::uint32_t attempt) {
            return type == "reserve" && attempt == 1;
        };
        return s;
    });
    t.settle();
    t.check_status(saga_status::completed);
    check_same_history(t);
    const auto h = t.v2.history();
    CHECK(count_event(h, "step_timed_out") == 1);
    CHECK(count_event(h, "retry_scheduled") == 2);
    check_per_record(t.v2);
}

TEST_CASE("retries exhausted compensate and show today's history", "[legacy][retry]") {
    twin t(steady_trip(), trip{}, [] {
        return trip_participants(succeed({{"id", "c"}}), succeed(), busy_first(99));
    });
    t.settle();
    t.check_status(saga_status::compensated);
    check_same_history(t);
    CHECK(count_event(t.v2.history(), "attempt_failed") == 3);
}

TEST_CASE("a compensation retried after transient failures shows today's history",
          "[legacy][retry][compensation]") {
    twin t(approval_flow(), order{}, [] {
        return billing(succeed({{"id", "r-1"}}), busy_first(2));
    });
    t.idle();
    t.cancel(ada);
    t.settle();
    t.check_status(saga_status::cancelled);
    check_same_history(t);
    CHECK(count_event(t.v2.history(), "compensation_retry_scheduled") == 2);
}

TEST_CASE("a wait whose deadline passes fails or proceeds as today", "[legacy][wait]") {
    SECTION("fail: the saga compensates") {
        twin t(approval_flow(on_deadline::fail), order{}, [] { return billing(); });
        t.settle();
        t.check_status(saga_status::compensated);
        check_same_history(t);
        check_per_record(t.v2);
    }
    SECTION("proceed: the saga goes on") {
        twin t(approval_flow(on_deadline::proceed), order{}, [] { return billing(); });
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
        CHECK(count_event(t.v2.history(), "wait_deadline_passed") == 1);
    }
}

TEST_CASE("a for-each step shows today's history", "[legacy][for_each]") {
    SECTION("all items at once") {
        twin t(shipping(3, for_each_policy::fail_fast), order{}, [] { return warehouse(); });
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
    }
    SECTION("one at a time, an item refused, the others go on") {
        twin t(shipping(1, for_each_policy::continue_on_failure), order{},
               [] { return warehouse("b"); });
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
        check_per_record(t.v2);
    }
    SECTION("one at a time, an item refused, the saga compensates the items shipped") {
        twin t(shipping(1, for_each_policy::fail_fast), order{}, [] { return warehouse("b"); });
        t.settle();
        t.check_status(saga_status::compensated);
        check_same_history(t);
    }
}

TEST_CASE("operator actions show today's history with who and why", "[legacy][operations]") {
    SECTION("pause at a wait, a signal while paused, resume") {
        twin t(approval_flow(), order{}, [] { return billing(); });
        t.idle();
        t.pause(ada);
        t.signal("approval", {{"by", "bob"}});
        t.resume(ada);
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
    }
    SECTION("pause while a retry is due, resume after it fell due") {
        twin t(approval_flow(), order{}, [] { return billing(busy_first(1)); });
        t.idle();
        t.pause(ada);
        t.advance(5s);
        t.resume(ada);
        t.idle();
        t.signal("approval");
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
    }
    SECTION("cancel a waiting saga: the wait is abandoned") {
        twin t(approval_flow(), order{}, [] { return billing(); });
        t.idle();
        t.cancel(ada);
        t.settle();
        t.check_status(saga_status::cancelled);
        check_same_history(t);
        CHECK(count_event(t.v2.history(), "step_abandoned") == 1);
        check_per_record(t.v2);
    }
    SECTION("a compensation refused for good, then retried") {
        auto make = [] {
            auto refused_once = std::make_shared<bool>(false);
            return billing(succeed({{"id", "r-1"}}), [refused_once](const envelope&) {
                if (!std::exchange(*refused_once, true))
                    return participant_reply::permanent("locked");
                return participant_reply::success();
            });
        };
        twin t(approval_flow(), order{}, make);
        t.settle();  // the deadline passes: compensation, whose release is refused
        t.check_status(saga_status::compensation_failed);
        t.retry(ada);
        t.settle();
        t.check_status(saga_status::compensated);
        check_same_history(t);
    }
    SECTION("a step past the pivot refused for good, then skipped") {
        auto make = [] {
            services s;
            s.on("payments", "charge", succeed()).on("warehouse", "ship", refuse("closed"));
            return s;
        };
        twin t(past_pivot(), order{}, make);
        t.settle();
        t.check_status(saga_status::failed);
        t.skip("ship", ada);
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
    }
    SECTION("a step past the pivot refused for good, then retried") {
        auto make = [] {
            auto refused_once = std::make_shared<bool>(false);
            services s;
            s.on("payments", "charge", succeed())
                .on("warehouse", "ship", [refused_once](const envelope&) {
                    if (!std::exchange(*refused_once, true))
                        return participant_reply::permanent("closed");
                    return participant_reply::success();
                });
            return s;
        };
        twin t(past_pivot(), order{}, make);
        t.settle();
        t.retry(ada);
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
    }
    SECTION("release the lock of an exclusive saga, refusals answer alike") {
        twin t(approval_flow(), order{}, [] { return billing(); });
        t.idle();
        t.release_lock(ada);
        t.resume(ada);        // not paused: invalid_state on both
        t.skip("nope", ada);  // no such step: not_found on both
        t.signal("approval");
        t.settle();
        t.check_status(saga_status::completed);
        check_same_history(t);
    }
}
