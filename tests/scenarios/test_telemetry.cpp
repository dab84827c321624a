// Scenarios: what the engine's logs, metrics and spans say about a saga, and how its trace
// context reaches participants.
#include "trip_saga.hpp"

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
};

struct captured_spans final : span_exporter {
    std::mutex mutex;
    std::vector<span> spans;
    void export_span(const span& s) override {
        std::lock_guard lock(mutex);
        spans.push_back(s);
    }
    const span* named(std::string_view name) {
        for (const auto& s : spans)
            if (s.name == name) return &s;
        return nullptr;
    }
};

/// A transport decorator that remembers the traceparent of every command sent to services.
class recording_transport final : public transport {
public:
    explicit recording_transport(std::shared_ptr<transport> inner) : inner_(std::move(inner)) {}
    void async_send(const std::string& endpoint, envelope m, send_handler done) override {
        if (m.kind == message_kind::command || m.kind == message_kind::compensation) {
            std::lock_guard lock(mutex);
            sent[m.step + (m.kind == message_kind::compensation ? "/compensate" : "")] =
                m.traceparent;
        }
        inner_->async_send(endpoint, std::move(m), std::move(done));
    }
    void async_publish(const std::string& topic, envelope m, send_handler done) override {
        inner_->async_publish(topic, std::move(m), std::move(done));
    }
    result<void> subscribe(const std::string& topic, const std::string& endpoint) override {
        return inner_->subscribe(topic, endpoint);
    }
    result<std::unique_ptr<subscription>> consume(const std::string& endpoint,
                                                  boost::asio::any_io_executor ex,
                                                  delivery_handler h, consumer_options o) override {
        return inner_->consume(endpoint, std::move(ex), std::move(h), o);
    }
    std::mutex mutex;
    std::map<std::string, std::string> sent;

private:
    std::shared_ptr<transport> inner_;
};

}  // namespace

TEST_CASE("every history event at the log level becomes a structured log line",
          "[telemetry][log]") {
    auto logs = std::make_shared<captured_logs>();
    world w({}, engine_options{.log_sink = logs, .log_level = log_level::info});
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, {}, fail_permanently("no seats"));
    auto id = w.eng->start("trip", trip{}, {.correlation_key = "customer-1"});
    REQUIRE(id);
    w.settle();

    std::lock_guard lock(logs->mutex);
    REQUIRE_FALSE(logs->records.empty());
    bool saw_failure = false;
    for (const auto& r : logs->records) {
        CHECK(r.level >= log_level::info);
        CHECK(r.saga_id == id.value());
        CHECK(r.definition == "trip");
        CHECK(r.definition_version == 1);
        CHECK(r.correlation_id == "customer-1");
        CHECK(r.trace_id.size() == 32);
        if (r.message == "step_failed" && r.step == "book_flight") {
            saw_failure = true;
            CHECK(r.level == log_level::warn);
            CHECK(r.attempt == 1);
            CHECK(r.fields.value("error", "").find("no seats") != std::string::npos);
        }
    }
    CHECK(saw_failure);
    CHECK(logs->records.back().message == "saga_compensated");
}

TEST_CASE("the engine's metrics count sagas, steps, retries and compensations",
          "[telemetry][metrics]") {
    world w;
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, fail_transiently(1), fail_permanently("no seats"));
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    REQUIRE(w.view(id.value()).status == saga_status::compensated);

    auto& m = w.eng->metrics();
    CHECK(m.value("saga_instances_started_total", {{"definition", "trip"}}) == 1);
    CHECK(m.value("saga_instances_ended_total",
                  {{"definition", "trip"}, {"status", "compensated"}}) == 1);
    CHECK(m.value("saga_step_retries_total",
                  {{"definition", "trip"}, {"step", "reserve_credit"}}) == 1);
    CHECK(m.value("saga_step_duration_seconds",
                  {{"definition", "trip"}, {"step", "reserve_credit"}, {"outcome", "completed"}}) ==
          1);
    CHECK(m.value("saga_compensations_total", {{"definition", "trip"},
                                               {"step", "reserve_credit"},
                                               {"outcome", "compensated"}}) == 1);
    CHECK(m.value("saga_transition_commit_seconds") > 0);
    CHECK(m.value("saga_outbox_lag_seconds") > 0);
    const auto text = m.prometheus_text();
    CHECK_THAT(text, Catch::Contains("# TYPE saga_step_duration_seconds histogram"));
    CHECK_THAT(text, Catch::Contains("saga_instances_in_flight "));
    CHECK_THAT(text, Catch::Contains("saga_circuit_state{endpoint=\"billing\"} 0"));
}

TEST_CASE("a saga continues the caller's trace and each step's command carries its own span",
          "[telemetry][tracing]") {
    auto spans = std::make_shared<captured_spans>();
    auto clock = std::make_shared<virtual_clock>();
    auto store = std::make_shared<inmemory::memory_journal_store>();
    auto memory = std::make_shared<inmemory::memory_transport>(clock);
    auto recorder = std::make_shared<recording_transport>(memory);
    world w;
    w.clock = clock;
    w.store = store;
    w.transport = memory;
    w.eng = std::make_unique<engine>(store, recorder,
                                     engine_options{.clock = clock, .span_exporter = spans});
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w, {}, fail_permanently("no seats"));
    const std::string caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto id = w.eng->start("trip", trip{}, {.traceparent = caller});
    REQUIRE(id);
    w.settle();

    std::lock_guard lock(spans->mutex);
    const auto* saga_span = spans->named("saga trip");
    REQUIRE(saga_span);
    CHECK(saga_span->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(saga_span->parent_span_id == "00f067aa0ba902b7");
    CHECK_FALSE(saga_span->ok);
    const auto* credit = spans->named("step reserve_credit");
    REQUIRE(credit);
    CHECK(credit->parent_span_id == saga_span->span_id);
    CHECK(credit->ok);
    const auto* flight = spans->named("step book_flight");
    REQUIRE(flight);
    CHECK_FALSE(flight->ok);
    const auto* undo = spans->named("compensate reserve_credit");
    REQUIRE(undo);
    CHECK(undo->kind == "compensation");
    CHECK(undo->parent_span_id == saga_span->span_id);
    CHECK(undo->start <= undo->end);

    // The participant got the step's span as its parent.
    std::lock_guard lock2(recorder->mutex);
    auto sent = trace_context::parse(recorder->sent["reserve_credit"]);
    REQUIRE(sent);
    CHECK(sent->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(sent->span_id == credit->span_id);
    auto undo_sent = trace_context::parse(recorder->sent["reserve_credit/compensate"]);
    REQUIRE(undo_sent);
    CHECK(undo_sent->span_id == undo->span_id);
}

TEST_CASE("a saga started without a trace context starts its own trace", "[telemetry][tracing]") {
    auto spans = std::make_shared<captured_spans>();
    world w({}, engine_options{.span_exporter = spans});
    REQUIRE(w.eng->add(trip_definition(w.log)));
    trip_services(w);
    auto id = w.eng->start("trip", trip{});
    REQUIRE(id);
    w.settle();
    std::lock_guard lock(spans->mutex);
    const auto* saga_span = spans->named("saga trip");
    REQUIRE(saga_span);
    CHECK(saga_span->ok);
    CHECK(saga_span->parent_span_id.empty());
    CHECK(saga_span->trace_id.size() == 32);
}
