// Scenarios: replies the engine cannot use (forged, or stale: a late copy, a saga that is gone,
// a step that no longer waits) are counted by reason and logged at debug with their message id;
// junk on the engine's endpoint goes to the transport's dead-letter list and its counter.
#include "harness.hpp"

using namespace saga;
using namespace saga::test;

namespace {

struct captured_logs final : log_sink {
    std::mutex mutex;
    std::vector<log_record> records;
    void write(const log_record& r) override {
        std::lock_guard lock(mutex);
        records.push_back(r);
    }
    /// The reasons of the `reply_ignored` lines, by message id.
    std::map<std::string, std::string> ignored() {
        std::lock_guard lock(mutex);
        std::map<std::string, std::string> out;
        for (const auto& r : records)
            if (r.message == "reply_ignored" && r.level == log_level::debug)
                out[r.fields.value("message_id", std::string())] =
                    r.fields.value("reason", std::string());
        return out;
    }
};

struct order {
    std::string first;
    std::string second;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order, first, second)

/// "first" goes to a participant that answers; "second" to an endpoint nobody serves, so the
/// saga waits there until the test replies by hand.
definition<order> two_steps() {
    return definition_builder<order>("two_steps", 1)
        .remote("first", "fast",
                [](const order&) {
                    return command{"do", json::object()};
                })
        .on_reply([](order& o, const json& r) { o.first = r.value("by", std::string()); })
        .timeout(std::chrono::hours{1})
        .remote("second", "silent",
                [](const order&) {
                    return command{"do", json::object()};
                })
        .on_reply([](order& o, const json& r) { o.second = r.value("by", std::string()); })
        .timeout(std::chrono::hours{1})
        .build()
        .value();
}

envelope reply(std::string id, std::string saga_id, std::string step, std::uint32_t attempt) {
    envelope e;
    e.message_id = std::move(id);
    e.kind = message_kind::reply;
    e.type = "do";
    e.saga_id = std::move(saga_id);
    e.idempotency_key = e.saga_id + "/" + step;
    e.step = std::move(step);
    e.attempt = attempt;
    e.payload = {{"by", "hand"}};
    return e;
}

double ignored(world& w, std::string_view reason) {
    return w.eng->metrics().value("saga_replies_ignored_total", {{"reason", std::string{reason}}});
}

}  // namespace

TEST_CASE("forged and stale replies are counted by reason and logged at debug with their id",
          "[engine][inbox][telemetry]") {
    auto logs = std::make_shared<captured_logs>();
    world w({}, engine_options{.log_sink = logs, .log_level = log_level::debug});
    REQUIRE(w.eng->add(two_steps()));
    auto fast = std::make_unique<participant>(w.transport, "fast");
    fast->on("do", [](const envelope&) { return participant_reply::success({{"by", "fast"}}); });
    REQUIRE(fast->start(w.eng->get_executor()));
    auto id = w.eng->start("two_steps", order{});
    REQUIRE(id);
    const auto saga_id = id.value();
    (void)w.eng->run_until_idle();
    REQUIRE(w.view(saga_id).steps.size() == 2);
    REQUIRE(w.view(saga_id).steps[1].status == step_status::running);  // waits for "second"
    const auto before = w.version_of(saga_id);

    const auto send = [&](const envelope& e) {
        bool sent = false;
        w.transport->async_send("saga.engine", e,
                                [&](result<void> r) { sent = static_cast<bool>(r); });
        REQUIRE(sent);
        (void)w.eng->run_until_idle();
    };
    send(reply("forged-nobody", "no-such-saga", "first", 1));
    send(reply("forged-no-saga-id", "", "first", 1));
    send(reply("forged-step", saga_id, "no_such_step", 1));
    send(reply("forged-attempt", saga_id, "second", 7));
    send(reply("stale-first", saga_id, "first", 1));  // completed already
    auto compensation = reply("stale-compensation", saga_id, "first", 1);
    compensation.idempotency_key += "/compensate";  // nothing is compensating
    send(compensation);

    // none of them changed the saga
    CHECK(w.version_of(saga_id) == before);
    CHECK(w.view(saga_id).status == saga_status::running);

    // the real reply finishes it; a copy of it after the end finds the saga finished
    send(reply("real-second", saga_id, "second", 1));
    CHECK(w.view(saga_id).status == saga_status::completed);
    CHECK(w.view(saga_id).data.value("second", std::string()) == "hand");
    send(reply("late-second", saga_id, "second", 1));

    CHECK(ignored(w, "unknown_saga") == 2);
    CHECK(ignored(w, "unknown_step") == 1);
    CHECK(ignored(w, "unknown_attempt") == 1);
    CHECK(ignored(w, "not_waiting") == 2);
    CHECK(ignored(w, "finished") == 1);
    CHECK(w.eng->metrics().prometheus_text().find("# TYPE saga_replies_ignored_total counter") !=
          std::string::npos);
    const std::map<std::string, std::string> expected{
        {"forged-nobody", "unknown_saga"}, {"forged-no-saga-id", "unknown_saga"},
        {"forged-step", "unknown_step"},   {"forged-attempt", "unknown_attempt"},
        {"stale-first", "not_waiting"},    {"stale-compensation", "not_waiting"},
        {"late-second", "finished"}};
    CHECK(logs->ignored() == expected);
    fast->stop();
}

TEST_CASE("a stale reply is counted once though the engine reads the saga again to be sure",
          "[engine][inbox][telemetry]") {
    // A reply that a cached copy cannot use makes the engine reload the instance and handle
    // the reply again (another engine may have moved it on): it is still one ignored reply.
    auto logs = std::make_shared<captured_logs>();
    world w({}, engine_options{.log_sink = logs, .log_level = log_level::debug});
    REQUIRE(w.eng->add(two_steps()));
    auto fast = std::make_unique<participant>(w.transport, "fast");
    fast->on("do", [](const envelope&) { return participant_reply::success({{"by", "fast"}}); });
    REQUIRE(fast->start(w.eng->get_executor()));
    auto id = w.eng->start("two_steps", order{});
    REQUIRE(id);
    (void)w.eng->run_until_idle();
    bool sent = false;
    w.transport->async_send("saga.engine", reply("stale-again", id.value(), "first", 1),
                            [&](result<void> r) { sent = static_cast<bool>(r); });
    (void)w.eng->run_until_idle();
    CHECK(sent);
    CHECK(ignored(w, "not_waiting") == 1);
    CHECK(logs->ignored().size() == 1);
    fast->stop();
}

TEST_CASE("junk on the engine's endpoint goes to the dead-letter list and its counter at once",
          "[engine][transport][dlq]") {
    world w;
    REQUIRE(w.eng->add(two_steps()));
    auto fast = std::make_unique<participant>(w.transport, "fast");
    fast->on("do", [](const envelope&) { return participant_reply::success({{"by", "fast"}}); });
    REQUIRE(fast->start(w.eng->get_executor()));
    REQUIRE(w.eng->open());
    REQUIRE(w.transport->inject_raw("saga.engine", "{not json"));
    REQUIRE(w.transport->inject_raw("saga.engine", R"({"kind":"reply","saga_id":"x"})"));
    REQUIRE(w.transport->inject_raw("saga.engine", std::string(100, '[') + std::string(100, ']')));
    auto id = w.eng->start("two_steps", order{});
    REQUIRE(id);
    (void)w.eng->run_until_idle();
    bool sent = false;
    w.transport->async_send("saga.engine", reply("real-second", id.value(), "second", 1),
                            [&](result<void> r) { sent = static_cast<bool>(r); });
    (void)w.eng->run_until_idle();
    CHECK(sent);
    CHECK(w.view(id.value()).status == saga_status::completed);
    const auto dead = w.transport->dead_letters("saga.engine");
    REQUIRE(dead.size() == 3);
    CHECK(dead[0].reason == dead_letter_reason::decode);
    CHECK(dead[1].reason == dead_letter_reason::decode);
    CHECK(dead[1].detail.find("message_id") != std::string::npos);
    CHECK(dead[2].reason == dead_letter_reason::too_deep);
    CHECK(w.transport->pending("saga.engine") == 0);
    // the engine gave the transport its registry
    auto& m = w.eng->metrics();
    CHECK(m.value("saga_messages_dead_lettered_total",
                  {{"endpoint", "saga.engine"}, {"reason", "decode"}}) == 2);
    CHECK(m.value("saga_messages_dead_lettered_total",
                  {{"endpoint", "saga.engine"}, {"reason", "too_deep"}}) == 1);
    fast->stop();
}
