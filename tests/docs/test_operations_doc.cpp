// The examples of docs/operations.md (library part), compiled and run. Each snippet between
// "// [doc:NAME]" and "// [/doc:NAME]" must appear verbatim in the doc.
#include <catch2/catch.hpp>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

#include <filesystem>
#include <fstream>

using namespace std::chrono_literals;

namespace {

struct order {
    std::string sku;
    bool shipped = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order, sku, shipped)

saga::definition<order> order_saga() {
    saga::definition_builder<order> b("order", 1);
    b.wait("approval", "approved").deadline(1h).local("ship", [](order& o) { o.shipped = true; });
    return std::move(b).build().value();
}

}  // namespace

TEST_CASE("operations doc: telemetry wiring and operator actions work as shown", "[docs]") {
    const auto spans_path = std::filesystem::temp_directory_path() /
                            ("saga-doc-spans-" + std::to_string(::getpid()) + ".jsonl");
    std::filesystem::remove(spans_path);
    auto clock = std::make_shared<saga::virtual_clock>();
    auto store = std::make_shared<saga::inmemory::memory_journal_store>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);

    // [doc:telemetry]
    auto spans = saga::otlp_file_exporter::open(spans_path);  // OTLP/JSON, one span per line
    if (!spans) return;  // spans.error().message names the file and the reason
    saga::engine eng(store, transport,
                     {.clock = clock,
                      .log_sink = std::make_shared<saga::json_lines_sink>(stderr),
                      .log_level = saga::log_level::warn,
                      .span_exporter = spans.value()});
    // Serve this on your own HTTP endpoint (text/plain; version=0.0.4):
    std::string prometheus = eng.metrics().prometheus_text();
    // [/doc:telemetry]
    REQUIRE(spans);
    REQUIRE(eng.add(order_saga()));
    auto started = eng.start("order", order{.sku = "A-1"}, {.correlation_key = "A-1"});
    REQUIRE(started);
    const std::string id = started.value();
    eng.run_until_idle();

    // [doc:operator]
    const saga::operator_note note{.who = "ada@ops", .why = "supplier outage, INC-812"};
    if (auto r = eng.pause(id, note); !r) std::fprintf(stderr, "%s\n", r.error().what().c_str());
    // ... later
    if (auto r = eng.resume(id, note); !r) std::fprintf(stderr, "%s\n", r.error().what().c_str());
    // the timeline, with who did what and why
    if (auto timeline = eng.history(id))
        for (const auto& e : timeline.value())
            std::printf("%s %s %s\n", e.event.c_str(), e.step.c_str(), e.detail.dump().c_str());
    // [/doc:operator]

    REQUIRE(eng.signal(id, "approved"));
    REQUIRE(eng.run_until_settled());
    auto v = eng.query(id);
    REQUIRE(v);
    CHECK(v.value().status == saga::saga_status::completed);
    auto h = eng.history(id).value();
    CHECK(std::any_of(h.begin(), h.end(), [](const saga::history_entry& e) {
        return e.event == "saga_paused" && e.detail.value("who", "") == "ada@ops";
    }));
    CHECK_THAT(prometheus, Catch::Contains("saga_instances_in_flight"));
    CHECK(eng.metrics().value("saga_instances_ended_total",
                              {{"definition", "order"}, {"status", "completed"}}) == 1);
    std::ifstream in(spans_path);
    std::string line;
    REQUIRE(std::getline(in, line));
    CHECK(nlohmann::json::parse(line).contains("resourceSpans"));
    std::filesystem::remove(spans_path);
}

TEST_CASE("operations doc: retention as shown deletes what finished long enough ago",
          "[docs][retention]") {
    auto clock = std::make_shared<saga::virtual_clock>();
    auto store = std::make_shared<saga::inmemory::memory_journal_store>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
    // [doc:retention]
    saga::engine_options options;
    options.retention.older_than = std::chrono::hours{24 * 30};  // finished more than 30 days ago
    options.retention.interval = std::chrono::minutes{10};       // how often to look (the default)
    options.retention.batch = 1000;                              // instances per store transaction
    // [/doc:retention]
    options.clock = clock;
    saga::engine eng(store, transport, options);
    REQUIRE(eng.add(order_saga()));
    auto finished = eng.start("order", order{.sku = "A-1"});
    auto open = eng.start("order", order{.sku = "B-2"});
    REQUIRE(finished);
    REQUIRE(open);
    eng.run_until_idle();
    REQUIRE(eng.signal(finished.value(), "approved"));
    eng.run_until_idle();
    REQUIRE(eng.pause(open.value(), {.who = "ada@ops", .why = "hold it"}));
    clock->advance(std::chrono::hours{24 * 31});
    eng.run_until_idle();
    CHECK(eng.query(finished.value()).error() == saga::errc::not_found);
    CHECK(eng.query(open.value()).value().status == saga::saga_status::paused);
    CHECK(eng.metrics().value("saga_instances_purged_total") == 1);
}
