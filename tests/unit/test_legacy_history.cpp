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

TEST_CASE("forward retries back off with today's jitter", "[legacy][retry]") {
    // The trip's own policies: exponential, 20 % jitter, seeded alike by both engines.
    static journal log;
    const auto def = trip_definition(log, trip_options{.retry = retry_policy::exponential(4, 1s),
                                                       .compensation_retry = steady(5)});
    twin t(def, trip{}, [] { return trip_participants(busy_first(2), succeed(), succeed()); });
    t.settle();
    t.check_status(saga_status::completed);
    check_same_history(t);
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

// ---- single rules, and the differences that remain (docs/internals.md, "History compatibility")

namespace {

/// validate -> ship: a for-each whose `items` throws when the order has no items and whose
/// `on_results` refuses an empty result; or, with `locals`, a parallel group of two local steps.
definition<order> edge(bool locals = false) {
    definition_builder<order> b("edge", 1);
    b.default_retry(steady(3)).default_compensation_retry(steady(4));
    b.local("validate", [](order& o) { ++o.validated; }).compensate([](order& o) { ++o.undone; });
    if (locals) {
        b.parallel("prep", [](parallel_builder<order>& p) {
            p.branch("x").local("pack", [](order&) {});
            p.branch("y").local("label", [](order&) {});
        });
    } else {
        b.for_each(
            "ship",
            [](const order& o) {
                if (o.items.size() == 1) throw std::runtime_error("no list");
                return o.items;
            },
            [](for_each_builder<order, std::string>& f) {
                f.local([](order&, const std::string&) {
                 }).on_results([](order&, std::span<const item_result> r) -> result<void> {
                    if (r.empty()) return permanent_error("nothing to ship");
                    return success();
                });
            });
    }
    return built(b);
}

std::vector<std::string> names_of(const std::vector<history_entry>& h) {
    std::vector<std::string> out;
    for (const auto& e : h) out.push_back(e.event + ":" + e.step);
    return out;
}

}  // namespace

TEST_CASE("a for-each whose items cannot be listed fails as today, with no step_started",
          "[legacy][for_each]") {
    order o;
    o.items = {"only"};  // edge()'s items hook throws for a single item
    twin t(edge(), o, [] { return services{}; });
    t.settle();
    t.check_status(saga_status::compensated);
    check_same_history(t);
    const auto h = t.v2.history();
    const auto failed = std::find_if(h.begin(), h.end(), [](const history_entry& e) {
        return e.event == "step_failed" && e.step == "ship";
    });
    REQUIRE(failed != h.end());
    CHECK(failed->attempt == 1);
    CHECK(std::none_of(h.begin(), h.end(), [](const history_entry& e) {
        return e.event == "step_started" && e.step == "ship";
    }));
}

TEST_CASE("known difference: on_results refusing an empty for-each loses its step_started",
          "[legacy][for_each][difference]") {
    order o;
    o.items.clear();
    twin t(edge(), o, [] { return services{}; });
    t.settle();
    t.check_status(saga_status::compensated);
    auto today = names_of(t.today.history());
    const auto v2 = names_of(t.v2.history());
    // The machine records both failures alike (group_started with no items, step_failed).
    const auto it = std::find(today.begin(), today.end(), "step_started:ship");
    REQUIRE(it != today.end());
    today.erase(it);
    CHECK(v2 == today);
}

TEST_CASE("known difference: local steps of parallel branches start before either ends",
          "[legacy][parallel][difference]") {
    twin t(edge(true), order{}, [] { return services{}; });
    t.settle();
    t.check_status(saga_status::completed);
    auto today = names_of(t.today.history());
    auto v2 = names_of(t.v2.history());
    // Today's engine runs one local step per transition, the machine starts both at once.
    CHECK(today != v2);
    std::sort(today.begin(), today.end());
    std::sort(v2.begin(), v2.end());
    CHECK(v2 == today);
}

TEST_CASE("a step retrying when the saga is cancelled is abandoned as today", "[legacy][cancel]") {
    twin t(steady_trip(), trip{}, [] {
        return trip_participants(succeed({{"id", "c"}}), succeed(), busy_first(1));
    });
    t.idle();  // book_hotel waits for its retry
    t.cancel(ada);
    t.settle();
    t.check_status(saga_status::cancelled);
    check_same_history(t);
    const auto h = t.v2.history();
    CHECK(std::any_of(h.begin(), h.end(), [](const history_entry& e) {
        return e.event == "step_abandoned" && e.step == "book_hotel" && e.attempt == 1;
    }));
}

TEST_CASE("inputs decided together show the history of inputs decided one by one",
          "[legacy][batch]") {
    const auto run = [](bool together) {
        machine_sim sim(steady_trip(), trip{});
        for (int i = 0; i < 100 && (!sim.locals.empty() || !sim.sent.empty()); ++i) {
            if (!sim.locals.empty()) {
                const auto l = sim.locals.front();
                sim.locals.erase(sim.locals.begin());
                sim.feed(sim.run_local(l));
                continue;
            }
            std::vector<machine::input> replies;
            for (const auto& m : sim.sent) replies.push_back(machine_sim::reply_to(m));
            sim.sent.clear();
            if (together) {
                sim.feed(replies);
            } else {
                for (auto& r : replies) sim.feed(std::move(r));
            }
        }
        REQUIRE(sim.state().status == saga_status::completed);
        std::vector<saga::journal_record> journal;
        for (const auto& r : sim.journal()) {
            saga::journal_record rec;
            rec.saga_id = "s-1";
            rec.version = journal.size() + 1;
            rec.at = r.at;
            rec.events = r.events;
            journal.push_back(std::move(rec));
        }
        return lines_of(
            legacy::to_history(machine::compile(steady_trip().model()).value(), journal));
    };
    CHECK(run(true) == run(false));
}

TEST_CASE("history entries by rule", "[legacy][rules]") {
    const auto one = [](event e) {
        saga::journal_record rec;
        rec.saga_id = "s-9";
        rec.version = 4;
        rec.at = twin_start();
        rec.events.push_back(std::move(e));
        machine::instance after;
        return legacy::to_history(rec, after);
    };
    SECTION("a refusal of the runtime's own (no message id) is no reply") {
        event e;
        e.type = event_type::reply_received;
        e.unit = "reserve";
        e.attempt = 1;
        e.reply = reply_status::transient_failure;
        CHECK(one(e).empty());
        e.message_id = "m-1";
        const auto h = one(e);
        REQUIRE(h.size() == 1);
        CHECK(h[0].event == "reply_received");
        CHECK(h[0].saga_id == "s-9");
        CHECK(h[0].version == 4);
        CHECK(h[0].detail == nlohmann::json{{"status", "transient_failure"}});
    }
    SECTION("compensation attempts keep their names of today") {
        event e;
        e.dir = direction::compensation;
        e.unit = "reserve";
        e.attempt = 2;
        e.type = event_type::retry_scheduled;
        e.due = twin_start() + 1500ms;
        auto h = one(e);
        REQUIRE(h.size() == 1);
        CHECK(h[0].event == "compensation_retry_scheduled");
        CHECK(h[0].detail == nlohmann::json{{"delay_ms", 1500}});
        e.type = event_type::attempt_started;
        e.name = "billing";
        h = one(e);
        REQUIRE(h.size() == 1);
        CHECK(h[0].event == "compensation_step_started");
        CHECK(h[0].detail == nlohmann::json::object());  // no endpoint today
        e.type = event_type::attempt_timed_out;
        CHECK(one(e).at(0).event == "compensation_timed_out");
        e.type = event_type::retry_due;
        CHECK(one(e).empty());
    }
    SECTION("a cancel without an operator has no who") {
        event e;
        e.type = event_type::cancel_requested;
        e.error = "customer left";
        CHECK(one(e).at(0).detail == nlohmann::json{{"reason", "customer left"}});
        e.who = "ada";
        e.why = "customer left";
        CHECK(one(e).at(0).detail == nlohmann::json{{"reason", "customer left"},
                                                    {"who", "ada"},
                                                    {"why", "customer left"}});
    }
    SECTION("a change to compensating shows only on its own") {
        event e;
        e.type = event_type::status_changed;
        e.status = saga_status::compensating;
        CHECK(one(e).size() == 1);
        saga::journal_record rec;
        rec.saga_id = "s-9";
        rec.events = {event{.type = event_type::compensation_started, .error = "x"}, e};
        const auto h = legacy::to_history(rec, machine::instance{});
        REQUIRE(h.size() == 1);
        CHECK(h[0].event == "compensation_started");
    }
    SECTION("every event type has today's name or none") {
        for (std::size_t i = 0; i <= static_cast<std::size_t>(event_type::saga_cancelled); ++i) {
            event e;
            e.type = static_cast<event_type>(i);
            const auto name = legacy::name_of(e);
            if (e.type == event_type::retry_due) {
                CHECK(name.empty());
            } else {
                CHECK_FALSE(name.empty());
            }
        }
        event e;
        e.type = event_type::attempt_failed;
        CHECK(legacy::name_of(e) == "attempt_failed");
        e.dir = direction::compensation;
        CHECK(legacy::name_of(e) == "compensation_attempt_failed");
        e.type = event_type::group_started;
        CHECK(legacy::name_of(e) == "step_started");
    }
}
