// telemetry::journal_telemetry: fed the machine's journal, it writes the log lines, records the
// metrics and exports the spans today's engine does for the same saga (legacy_twin.hpp runs
// both), plus the counter of ignored inputs.

#include <catch2/catch.hpp>

#include "telemetry/levels.hpp"
#include "twin_sagas.hpp"

using namespace saga;
using namespace saga::test;

namespace {

/// The sagas of the history comparison, each run to its end on both engines.
std::vector<std::pair<std::string, std::function<std::unique_ptr<twin>()>>> scenarios() {
    return {
        {"completed through a wait",
         [] {
             auto t = std::make_unique<twin>(approval_flow(), order{}, [] { return billing(); });
             t->idle();
             t->signal("approval", {{"by", "ann"}});
             t->settle();
             return t;
         }},
        {"trip compensated",
         [] {
             auto t = std::make_unique<twin>(steady_trip(), trip{}, [] {
                 return trip_participants(succeed({{"id", "c"}}), refuse("no seats"));
             });
             t->settle();
             return t;
         }},
        {"trip retried and timed out",
         [] {
             auto t = std::make_unique<twin>(steady_trip(), trip{}, [] {
                 auto s = trip_participants(succeed({{"id", "c"}}), succeed(), busy_first(1));
                 s.lose_reply = [](const std::string& type, std::uint32_t attempt) {
                     return type == "reserve" && attempt == 1;
                 };
                 return s;
             });
             t->settle();
             return t;
         }},
        {"wait deadline fails",
         [] {
             auto t = std::make_unique<twin>(approval_flow(), order{}, [] { return billing(); });
             t->settle();
             return t;
         }},
        {"for-each item refused",
         [] {
             auto t = std::make_unique<twin>(shipping(1, for_each_policy::fail_fast), order{},
                                             [] { return warehouse("b"); });
             t->settle();
             return t;
         }},
        {"cancelled by an operator, compensation retried",
         [] {
             auto t = std::make_unique<twin>(approval_flow(), order{}, [] {
                 return billing(succeed({{"id", "r-1"}}), busy_first(2));
             });
             t->idle();
             t->pause(ada);
             t->resume(ada);
             t->cancel(ada);
             t->settle();
             return t;
         }},
        {"failed past the pivot, then skipped",
         [] {
             auto t = std::make_unique<twin>(past_pivot(), order{}, [] {
                 services s;
                 s.on("payments", "charge", succeed()).on("warehouse", "ship", refuse("closed"));
                 return s;
             });
             t->settle();
             t->skip("ship", ada);
             t->settle();
             return t;
         }},
    };
}

struct fed {
    std::shared_ptr<captured_logs> logs = std::make_shared<captured_logs>();
    std::shared_ptr<captured_spans> spans = std::make_shared<captured_spans>();
    telemetry::journal_telemetry t;

    explicit fed(log_level level)
        : t(telemetry::telemetry_options{
              .log_sink = logs, .log_level = level, .span_exporter = spans}) {}
};

std::vector<std::string> at_least(const std::vector<std::string>& lines, log_level level) {
    std::vector<std::string> out;
    for (const auto& l : lines) {
        const auto j = nlohmann::json::parse(l);
        if (parse_log_level(j.value("level", "")) >= level) out.push_back(l);
    }
    return out;
}

std::vector<std::string> without(std::vector<std::string> lines,
                                 std::initializer_list<std::string_view> messages) {
    std::erase_if(lines, [&](const std::string& l) {
        const auto msg = nlohmann::json::parse(l).value("msg", "");
        for (auto m : messages)
            if (msg == m) return true;
        return false;
    });
    return lines;
}

}  // namespace

TEST_CASE("the journal's telemetry writes today's log lines, metrics and spans",
          "[telemetry][legacy]") {
    for (const auto& [name, run] : scenarios()) {
        SECTION(name) {
            auto t = run();
            fed v2(log_level::debug);
            t->v2.feed(v2.t, true);

            const auto today_logs = t->today.logs->saga_lines();
            CHECK(v2.logs->saga_lines() == today_logs);
            REQUIRE_FALSE(today_logs.empty());
            CHECK(v2.spans->lines() == t->today.spans->lines());
            CHECK(metric_lines(v2.t.metrics()) == metric_lines(*t->today.metrics));
        }
    }
}

TEST_CASE("fed records alone, the telemetry differs from today's only in debug lines",
          "[telemetry][legacy]") {
    for (const auto& [name, run] : scenarios()) {
        SECTION(name) {
            auto t = run();
            fed debug(log_level::debug);
            t->v2.feed(debug.t, false);
            const auto today_logs = t->today.logs->saga_lines();
            CHECK(without(debug.logs->saga_lines(), {"status_changed", "step_abandoned"}) ==
                  without(today_logs, {"status_changed", "step_abandoned"}));
            CHECK(debug.spans->lines() == t->today.spans->lines());
            CHECK(metric_lines(debug.t.metrics()) == metric_lines(*t->today.metrics));

            // At info and above (the default is warn), exactly today's lines.
            for (auto level : {log_level::info, log_level::warn, log_level::error}) {
                fed quiet(level);
                t->v2.feed(quiet.t, false);
                CHECK(quiet.logs->saga_lines() == at_least(today_logs, level));
            }
        }
    }
}

TEST_CASE("every metric family has today's type and help text", "[telemetry][metrics]") {
    auto t = scenarios().front().second();
    telemetry::journal_telemetry v2({.log_level = log_level::off});
    v2.set_gauges({.in_flight = [] { return 3.0; },
                   .outbox_unreleased = [] { return 2.0; },
                   .circuits =
                       [] {
                           return std::vector<std::pair<std::string, double>>{{"billing", 0}};
                       }});
    const auto header = [](const metrics_registry& m) {
        std::vector<std::string> out;
        const auto text = m.prometheus_text();
        std::size_t pos = 0;
        while (pos < text.size()) {
            const auto end = text.find('\n', pos);
            const auto line = text.substr(pos, end - pos);
            pos = end == std::string::npos ? text.size() : end + 1;
            if (line.starts_with("# ") && line.find("saga_replies_ignored_total") == line.npos &&
                line.find("saga_store_") == line.npos &&
                line.find("saga_messages_") == line.npos)  // the transport's own
                out.push_back(line);
        }
        std::sort(out.begin(), out.end());
        return out;
    };
    CHECK(header(v2.metrics()) == header(*t->today.metrics));
    const auto text = v2.metrics().prometheus_text();
    CHECK_THAT(text, Catch::Contains("saga_instances_in_flight 3"));
    CHECK_THAT(text, Catch::Contains("saga_outbox_unreleased 2"));
    CHECK_THAT(text, Catch::Contains("saga_circuit_state{endpoint=\"billing\"} 0"));
    CHECK_THAT(text, Catch::Contains("# TYPE saga_replies_ignored_total counter"));

    v2.commit_took(0.002);
    v2.release_took(0.004);
    CHECK(v2.metrics().value("saga_transition_commit_seconds") == 1);
    CHECK(v2.metrics().value("saga_outbox_lag_seconds") == 1);
}

TEST_CASE("inputs a decision ignored are counted by reason and logged at debug",
          "[telemetry][ignored]") {
    machine_run run(approval_flow(), order{}, billing());
    auto& sim = run.sim();
    sim.feed(sim.run_local(sim.locals.front()));
    sim.locals.clear();
    const auto cmd = sim.sent.front();
    sim.sent.clear();
    sim.feed(machine_sim::reply_to(cmd));
    auto again = sim.feed(machine_sim::reply_to(cmd));  // a duplicate
    auto forged = machine_sim::reply_to(cmd);
    std::get<machine::reply_input>(forged).unit = "no_such_step";
    auto unknown = sim.feed(forged);
    REQUIRE(again.ignored.size() == 1);
    REQUIRE(unknown.ignored.size() == 1);

    fed v2(log_level::debug);
    const auto states = run.states();
    const auto head = run.head(states.back(), states.size());
    v2.t.on_ignored(head, sim.state(), again.ignored, sim.now());
    v2.t.on_ignored(head, sim.state(), unknown.ignored, sim.now());
    envelope unrouted;
    unrouted.message_id = "m-unrouted";
    unrouted.saga_id = "no-such-saga";
    v2.t.on_unrouted(unrouted, machine::ignore_reason::unknown_saga, sim.now());

    const auto& m = v2.t.metrics();
    CHECK(m.value("saga_replies_ignored_total", {{"reason", "not_waiting"}}) == 1);
    CHECK(m.value("saga_replies_ignored_total", {{"reason", "unknown_step"}}) == 1);
    CHECK(m.value("saga_replies_ignored_total", {{"reason", "unknown_saga"}}) == 1);
    const auto lines = v2.logs->saga_lines();
    REQUIRE(lines.size() == 3);
    const auto first = nlohmann::json::parse(lines[0]);
    CHECK(first["msg"] == "reply_ignored");
    CHECK(first["level"] == "debug");
    CHECK(first["step"] == "reserve");
    CHECK(first["reason"] == "not_waiting");
    CHECK(first["message_id"] == "reply-of-" + cmd.message_id);
    CHECK(first["trace_id"] == "0af7651916cd43dd8448eb211c80319c");
    const auto third = nlohmann::json::parse(lines[2]);
    CHECK(third["reason"] == "unknown_saga");
    CHECK(third["saga_id"] == "no-such-saga");
    CHECK(third["message_id"] == "m-unrouted");

    fed quiet(log_level::info);
    quiet.t.on_ignored(head, sim.state(), again.ignored, sim.now());
    CHECK(quiet.logs->saga_lines().empty());
    CHECK(quiet.t.metrics().value("saga_replies_ignored_total", {{"reason", "not_waiting"}}) == 1);
}

TEST_CASE("the level and ending tables are today's", "[telemetry][levels]") {
    using telemetry::ending_of;
    using telemetry::level_of;
    CHECK(level_of("saga_compensation_failed") == log_level::error);
    CHECK(level_of("compensation_attempt_failed") == log_level::warn);
    CHECK(level_of("attempt_failed") == log_level::debug);
    CHECK(level_of("retry_scheduled") == log_level::info);
    CHECK(level_of("compensation_retry_scheduled") == log_level::debug);
    CHECK(level_of("step_started") == log_level::debug);
    CHECK(level_of("no_such_event") == log_level::debug);
    CHECK(ending_of(event_type::saga_failed) == saga_status::failed);
    CHECK(ending_of("saga_cancelled") == saga_status::cancelled);
    CHECK_FALSE(ending_of(event_type::compensation_failed));
    CHECK_FALSE(ending_of("step_completed"));
}

TEST_CASE("a warning of the runtime's own is a warn line, dropped above warn", "[telemetry][log]") {
    fed warn(log_level::warn);
    warn.t.warn("saga 's-1': commit failed, will retry: disk full", twin_start());
    fed quiet(log_level::error);
    quiet.t.warn("not written", twin_start());
    std::lock_guard lock(warn.logs->mutex);
    REQUIRE(warn.logs->records.size() == 1);
    CHECK(warn.logs->records[0].level == log_level::warn);
    CHECK(warn.logs->records[0].message == "saga 's-1': commit failed, will retry: disk full");
    std::lock_guard lock2(quiet.logs->mutex);
    CHECK(quiet.logs->records.empty());
}
