// Unit tests of the telemetry building blocks: the metrics registry's Prometheus text, log lines,
// W3C trace context and OTLP/JSON spans.
#include <catch2/catch.hpp>

#include <saga/log.hpp>
#include <saga/metrics.hpp>
#include <saga/tracing.hpp>

#include <filesystem>
#include <fstream>

using namespace saga;

TEST_CASE("the metrics registry renders counters, gauges and histograms as Prometheus text",
          "[metrics]") {
    metrics_registry m;
    m.describe("jobs_total", metric_type::counter, "Jobs done");
    m.add("jobs_total", {{"kind", "a\"b"}});
    m.add("jobs_total", {{"kind", "a\"b"}}, 2);
    m.set("queue_depth", {}, 7);
    m.describe("latency_seconds", metric_type::histogram, "Latency", {0.1, 1});
    m.observe("latency_seconds", {{"op", "x"}}, 0.05);
    m.observe("latency_seconds", {{"op", "x"}}, 0.5);
    m.observe("latency_seconds", {{"op", "x"}}, 5);
    m.gauge_callback("live", "Computed", [] {
        return std::vector<std::pair<metric_labels, double>>{{{{"shard", "1"}}, 3}};
    });

    const auto text = m.prometheus_text();
    CHECK_THAT(text, Catch::Contains("# HELP jobs_total Jobs done\n# TYPE jobs_total counter\n"
                                     "jobs_total{kind=\"a\\\"b\"} 3\n"));
    CHECK_THAT(text, Catch::Contains("# TYPE queue_depth gauge\nqueue_depth 7\n"));
    CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{op=\"x\",le=\"0.1\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{op=\"x\",le=\"1\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 3\n"));
    CHECK_THAT(text, Catch::Contains("latency_seconds_sum{op=\"x\"} 5.55\n"));
    CHECK_THAT(text, Catch::Contains("latency_seconds_count{op=\"x\"} 3\n"));
    CHECK_THAT(text, Catch::Contains("live{shard=\"1\"} 3\n"));
    CHECK(m.value("jobs_total", {{"kind", "a\"b"}}) == 3);
    CHECK(m.value("latency_seconds", {{"op", "x"}}) == 3);
    CHECK(m.value("absent") == 0);
}

TEST_CASE("a log record is one JSON line with its coordinates and fields", "[log]") {
    log_record r;
    r.at = time_point{std::chrono::milliseconds{1'700'000'000'123}};
    r.level = log_level::warn;
    r.message = "step_failed";
    r.saga_id = "s1";
    r.definition = "publish";
    r.definition_version = 2;
    r.step = "reserve_budget";
    r.attempt = 3;
    r.correlation_id = "campaign-9";
    r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    r.fields = {{"error", "no funds"}};
    const auto line = to_json_line(r);
    CHECK(line.find('\n') == std::string::npos);
    const auto j = nlohmann::json::parse(line);
    CHECK(j["ts"] == "2023-11-14T22:13:20.123Z");
    CHECK(j["level"] == "warn");
    CHECK(j["msg"] == "step_failed");
    CHECK(j["saga_id"] == "s1");
    CHECK(j["definition"] == "publish");
    CHECK(j["version"] == 2);
    CHECK(j["step"] == "reserve_budget");
    CHECK(j["attempt"] == 3);
    CHECK(j["correlation_id"] == "campaign-9");
    CHECK(j["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(j["error"] == "no funds");
    CHECK(parse_log_level("info") == log_level::info);
    CHECK_FALSE(parse_log_level("loud"));
}

TEST_CASE("traceparent values are parsed as the W3C spec says", "[tracing]") {
    auto tc = trace_context::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    REQUIRE(tc);
    CHECK(tc->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(tc->span_id == "00f067aa0ba902b7");
    CHECK(tc->flags == 1);
    CHECK(tc->traceparent() == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    CHECK_FALSE(trace_context::parse(""));
    CHECK_FALSE(trace_context::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    CHECK_FALSE(trace_context::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    CHECK_FALSE(trace_context::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    CHECK_FALSE(trace_context::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    auto r = trace_context::random();
    CHECK(trace_context::parse(r.traceparent()));
    CHECK(derive_span_id(r.trace_id, "a") == derive_span_id(r.trace_id, "a"));
    CHECK(derive_span_id(r.trace_id, "a") != derive_span_id(r.trace_id, "b"));
    CHECK(derive_span_id(r.trace_id, "a").size() == 16);
}

TEST_CASE("the OTLP file exporter appends one OTLP/JSON request per span", "[tracing]") {
    const auto path = std::filesystem::temp_directory_path() /
                      ("saga-spans-" + std::to_string(::getpid()) + ".jsonl");
    std::filesystem::remove(path);
    {
        auto ex = otlp_file_exporter::open(path, "billing");
        REQUIRE(ex);
        span s;
        s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        s.span_id = "00f067aa0ba902b7";
        s.parent_span_id = "1111111111111111";
        s.name = "step reserve";
        s.kind = "step";
        s.start = time_point{std::chrono::seconds{10}};
        s.end = time_point{std::chrono::seconds{11}};
        s.ok = false;
        s.status_message = "refused";
        s.attributes = {{"saga.id", "s1"}, {"saga.attempts", 2}};
        ex.value()->export_span(s);
        ex.value()->export_span(s);
    }
    std::ifstream in(path);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
        ++lines;
        const auto j = nlohmann::json::parse(line);
        const auto& rs = j["resourceSpans"][0];
        CHECK(rs["resource"]["attributes"][0]["value"]["stringValue"] == "billing");
        const auto& sp = rs["scopeSpans"][0]["spans"][0];
        CHECK(sp["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(sp["parentSpanId"] == "1111111111111111");
        CHECK(sp["startTimeUnixNano"] == "10000000000");
        CHECK(sp["endTimeUnixNano"] == "11000000000");
        CHECK(sp["status"]["code"] == 2);
        CHECK(sp["status"]["message"] == "refused");
    }
    CHECK(lines == 2);
    std::filesystem::remove(path);
    CHECK(otlp_file_exporter::open("/nonexistent-dir/x.jsonl").error() == errc::invalid_argument);
}
