// The admin server over a real engine, through a Beast client: authentication, errors, every
// endpoint, operator actions recorded with who and why, metrics, the dashboard's files.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <saga/admin/server.hpp>

#include "approval_world.hpp"
#include "http_client.hpp"

namespace {

using namespace saga::test::admin;
using saga::admin::server;
using saga::admin::server_options;
using json = nlohmann::json;
using verb = http::verb;

const std::string token = "s3cret-token";

/// A seeded engine and an admin server on a free port.
struct fixture {
    world w;
    std::unique_ptr<server> admin;
    std::uint16_t port = 0;

    explicit fixture(server_options o = {.port = 0, .token = token}) {
        REQUIRE(w.open());
        w.seed();
        admin = std::make_unique<server>(w.eng(), std::move(o));
    }
    void start() {
        auto p = admin->start();
        REQUIRE(p);
        port = p.value();
        REQUIRE(port != 0);
        REQUIRE(admin->port() == port);
    }
    client connect(std::string t = token) const { return client(port, std::move(t)); }

    std::set<std::string> ids(const reply& r) {
        REQUIRE(r.status == 200);
        std::set<std::string> out;
        for (const auto& i : r.json.at("items")) out.insert(i.at("id").get<std::string>());
        return out;
    }
    /// History entries of `id` done by `who` for `why`.
    std::vector<json> audited(const std::string& id, const std::string& who,
                              const std::string& why) {
        auto r = connect().get("/api/v1/sagas/" + id + "/history");
        REQUIRE(r.status == 200);
        std::vector<json> out;
        for (const auto& e : r.json.at("items")) {
            const auto& d = e.at("detail");
            if (d.value("who", "") == who && d.value("why", "") == why) out.push_back(e);
        }
        return out;
    }
};

}  // namespace

TEST_CASE("the health check answers without a token", "[admin][auth]") {
    fixture f;
    f.start();
    auto r = f.connect("").get("/healthz");
    CHECK(r.status == 200);
    CHECK(r.json == json{{"status", "ok"}});
}

TEST_CASE("every API endpoint needs the bearer token", "[admin][auth]") {
    fixture f;
    REQUIRE(f.admin->add_route("GET", "/api/v1/extra", [](const saga::admin::request&) {
        return saga::result<saga::admin::response>(saga::admin::response{});
    }));
    f.start();
    const std::vector<std::pair<verb, std::string>> endpoints = {
        {verb::get, "/api/v1/sagas"},
        {verb::get, "/api/v1/summary"},
        {verb::get, "/api/v1/sagas/order-1001"},
        {verb::get, "/api/v1/sagas/order-1001/history"},
        {verb::post, "/api/v1/sagas/order-1002/cancel"},
        {verb::post, "/api/v1/sagas/order-1002/pause"},
        {verb::post, "/api/v1/sagas/order-1002/resume"},
        {verb::post, "/api/v1/sagas/order-1002/retry"},
        {verb::post, "/api/v1/sagas/order-1002/steps/approve/skip"},
        {verb::post, "/api/v1/sagas/order-1002/signals/approval"},
        {verb::post, "/api/v1/locks/campaign-8/release"},
        {verb::get, "/api/v1/openapi.json"},
        {verb::get, "/metrics"},
        {verb::get, "/api/v1/extra"},
        {verb::get, "/api/v1/no-such-thing"},
    };
    SECTION("missing") {
        auto c = f.connect("");
        for (const auto& [m, target] : endpoints) {
            INFO(target);
            auto r = c.send(m, target, R"({"why":"x"})");
            CHECK(r.status == 401);
            CHECK(r.header("WWW-Authenticate").starts_with("Bearer"));
            CHECK(r.error_type() == "UNAUTHORIZED");
        }
    }
    SECTION("wrong") {
        auto c = f.connect("s3cret-tokeN");
        for (const auto& [m, target] : endpoints) {
            INFO(target);
            auto r = c.send(m, target, R"({"why":"x"})");
            CHECK(r.status == 401);
            CHECK(r.header("WWW-Authenticate").starts_with("Bearer"));
        }
        CHECK(c.get("/api/v1/sagas").status == 401);
        CHECK(f.connect("s3cret-token-and-more").get("/api/v1/sagas").status == 401);
        CHECK(f.connect("s3cret").get("/api/v1/sagas").status == 401);
    }
    SECTION("right, with any case of the scheme") {
        auto c = f.connect();
        CHECK(c.get("/api/v1/sagas").status == 200);
        CHECK(c.get("/api/v1/extra").status == 200);
        auto r = c.send(verb::get, "/api/v1/sagas", {}, {{"Authorization", "bearer " + token}}, "");
        CHECK(r.status == 200);
    }
}

TEST_CASE("the server refuses to start without a token unless told to", "[admin][auth]") {
    world w;
    REQUIRE(w.open());
    SECTION("no token") {
        server s(w.eng(), {.port = 0, .token = std::string{}});
        auto r = s.start();
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::invalid_argument);
        CHECK(r.error().message.find("SAGA_ADMIN_TOKEN") != std::string::npos);
    }
    SECTION("no token, explicitly allowed") {
        server s(w.eng(), {.port = 0, .token = std::string{}, .allow_no_auth = true});
        auto r = s.start();
        REQUIRE(r);
        CHECK(client(r.value()).get("/api/v1/sagas").status == 200);
    }
    SECTION("token from the environment") {
        REQUIRE(::setenv("SAGA_ADMIN_TOKEN", "from-env", 1) == 0);
        server s(w.eng(), {.port = 0});
        REQUIRE(::unsetenv("SAGA_ADMIN_TOKEN") == 0);
        auto r = s.start();
        REQUIRE(r);
        CHECK(client(r.value(), "from-env").get("/api/v1/sagas").status == 200);
        CHECK(client(r.value(), token).get("/api/v1/sagas").status == 401);
    }
    SECTION("a bad address") {
        server s(w.eng(), {.address = "not-an-address", .port = 0, .token = token});
        auto r = s.start();
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::invalid_argument);
    }
    SECTION("a port in use") {
        server a(w.eng(), {.port = 0, .token = token});
        auto p = a.start();
        REQUIRE(p);
        server b(w.eng(), {.port = p.value(), .token = token});
        auto r = b.start();
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("bind") != std::string::npos);
    }
    SECTION("twice") {
        server s(w.eng(), {.port = 0, .token = token});
        REQUIRE(s.start());
        auto r = s.start();
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::invalid_state);
    }
}

TEST_CASE("bad requests get JSON errors", "[admin][errors]") {
    fixture f;
    f.start();
    auto c = f.connect();
    SECTION("malformed JSON is 400") {
        auto r = c.send(verb::post, "/api/v1/sagas/order-1002/pause", R"({"why": )");
        CHECK(r.status == 400);
        CHECK(r.error_type() == "INVALID_ARGUMENT");
        CHECK(r.json["error"]["message"].get<std::string>().find(
                  "the request body is not valid JSON") != std::string::npos);
        CHECK(r.content_type == "application/json");
    }
    SECTION("a body that is not an object is 400") {
        CHECK(c.post("/api/v1/sagas/order-1002/pause", json::array()).status == 400);
    }
    SECTION("an operator action without why is 400") {
        auto r = c.post("/api/v1/sagas/order-1002/pause", json::object());
        CHECK(r.status == 400);
        CHECK(r.json["error"]["message"].get<std::string>().find("why") != std::string::npos);
        CHECK(c.post("/api/v1/sagas/order-1002/pause", {{"why", ""}}).status == 400);
        CHECK(c.post("/api/v1/locks/campaign-8/release", json::object()).status == 400);
        CHECK(f.w.eng().query("order-1002").value().status == saga::saga_status::waiting);
    }
    SECTION("a body over the limit is 413") {
        auto r = c.raw(
            "POST /api/v1/sagas/order-1002/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
            token + "\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n" +
            std::string(1000, ' '));
        CHECK(r.status == 413);
        CHECK(r.error_type() == "LIMIT_EXCEEDED");
    }
    SECTION("an unknown route is 404") {
        auto r = c.get("/api/v1/nothing/here");
        CHECK(r.status == 404);
        CHECK(r.error_type() == "NOT_FOUND");
        CHECK(c.get("/no-such-file.txt").status == 404);
    }
    SECTION("a wrong method is 405 with Allow") {
        auto r = c.send(verb::delete_, "/api/v1/sagas/order-1001");
        CHECK(r.status == 405);
        CHECK(r.header("Allow") == "GET");
        CHECK(r.error_type() == "METHOD_NOT_ALLOWED");
        auto p = c.get("/api/v1/sagas/order-1001/cancel");
        CHECK(p.status == 405);
        CHECK(p.header("Allow") == "POST");
        CHECK(c.send(verb::post, "/metrics").status == 405);
        CHECK(c.send(verb::post, "/healthz").status == 405);
    }
    SECTION("an unknown instance is 404") {
        auto r = c.get("/api/v1/sagas/order-9999");
        CHECK(r.status == 404);
        CHECK(r.error_type() == "NOT_FOUND");
        CHECK(c.get("/api/v1/sagas/order-9999/history").status == 404);
        CHECK(c.post("/api/v1/sagas/order-9999/pause", {{"why", "x"}}).status == 404);
    }
    SECTION("saga errors that are about state are 409") {
        auto done = c.post("/api/v1/sagas/order-1001/cancel", {{"why", "too late"}});
        CHECK(done.status == 409);
        CHECK(done.error_type() == "SAGA_FINISHED");
        auto r = c.post("/api/v1/sagas/order-1003/resume", {{"why", "not paused"}});
        CHECK(r.status == 409);
        CHECK(r.error_type() == "INVALID_STATE");
        auto past = c.post("/api/v1/sagas/order-1006/cancel", {{"why", "after the pivot"}});
        CHECK(past.status == 409);
    }
    SECTION("bad filters are 400") {
        CHECK(c.get("/api/v1/sagas?status=sleeping").status == 400);
        CHECK(c.get("/api/v1/sagas?updated_after=yesterday").status == 400);
        CHECK(c.get("/api/v1/sagas?limit=0").status == 400);
        CHECK(c.get("/api/v1/sagas?limit=abc").status == 400);
    }
    SECTION("a request Beast cannot parse is 400") {
        auto r = c.raw("GARBAGE\r\n\r\n");
        CHECK(r.status == 400);
    }
}

TEST_CASE("error bodies have a type, a message and the request's correlation id",
          "[admin][errors]") {
    fixture f;
    using saga::admin::request;
    using saga::admin::response;
    REQUIRE(f.admin->add_route("GET", "/api/v1/own", [](const request&) {
        return saga::result<response>(
            saga::admin::error_response(418, "TEAPOT", "short and stout"));
    }));
    f.start();
    auto c = f.connect();
    const auto is_uuid = [](const std::string& s) {
        return s.size() == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-';
    };
    SECTION("the client's X-Correlation-Id is echoed in the body and the header") {
        auto r =
            c.send(verb::get, "/api/v1/sagas/order-9999", {}, {{"X-Correlation-Id", "req-42"}});
        REQUIRE(r.status == 404);
        REQUIRE(r.json.is_object());
        CHECK(r.json.size() == 1);
        const auto& e = r.json["error"];
        CHECK(e.size() == 3);
        CHECK(e["type"] == "NOT_FOUND");
        CHECK(e["message"].get<std::string>().find("order-9999") != std::string::npos);
        CHECK(e["correlation"] == "req-42");
        CHECK(r.header("X-Correlation-Id") == "req-42");
    }
    SECTION("without one (or with one unfit to echo) the server makes one up") {
        for (const std::map<std::string, std::string>& headers :
             {std::map<std::string, std::string>{},
              {{"X-Correlation-Id", std::string(129, 'a')}},
              {{"X-Correlation-Id", "has spaces"}}}) {
            auto r = c.send(verb::post, "/api/v1/sagas/order-1002/pause", "{}", headers);
            REQUIRE(r.status == 400);
            CHECK(is_uuid(r.error_correlation()));
            CHECK(r.header("X-Correlation-Id") == r.error_correlation());
        }
        auto a = c.get("/api/v1/nothing");
        auto b = c.get("/api/v1/nothing");
        CHECK(a.error_correlation() != b.error_correlation());
    }
    SECTION("successes carry the header, and refusals before routing have it too") {
        auto ok = c.send(verb::get, "/api/v1/summary", {}, {{"X-Correlation-Id", "s-1"}});
        CHECK(ok.status == 200);
        CHECK(ok.header("X-Correlation-Id") == "s-1");
        auto unauthorized =
            f.connect("").send(verb::get, "/api/v1/sagas", {}, {{"X-Correlation-Id", "s-2"}});
        CHECK(unauthorized.status == 401);
        CHECK(unauthorized.error_correlation() == "s-2");
        auto big = c.raw(
            "POST /api/v1/sagas/order-1002/pause HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: s-3\r\n"
            "Content-Length: 2097152\r\n\r\n" +
            std::string(100, ' '));
        CHECK(big.status == 413);
        CHECK(big.error_type() == "LIMIT_EXCEEDED");
        CHECK(big.error_correlation() == "s-3");
        CHECK(big.header("X-Correlation-Id") == "s-3");
        CHECK(f.connect().raw("GARBAGE\r\n\r\n").error_type() == "BAD_REQUEST");
    }
    SECTION("an error body an added route makes itself gets the correlation id") {
        auto r = c.send(verb::get, "/api/v1/own", {}, {{"X-Correlation-Id", "own-1"}});
        CHECK(r.status == 418);
        CHECK(r.error_type() == "TEAPOT");
        CHECK(r.error_correlation() == "own-1");
    }
}

TEST_CASE("every saga error has an upper-case type and keeps its HTTP status", "[admin][errors]") {
    using saga::errc;
    std::set<std::string> types;
    for (int c = static_cast<int>(errc::invalid_definition);
         c <= static_cast<int>(errc::limit_exceeded); ++c) {
        const saga::error e{static_cast<errc>(c)};
        const std::string type(saga::admin::error_type(e));
        INFO(e.code.message());
        CHECK(type != "INTERNAL");
        CHECK(std::ranges::all_of(type,
                                  [](char ch) { return (ch >= 'A' && ch <= 'Z') || ch == '_'; }));
        types.insert(type);
    }
    CHECK(types.size() == static_cast<std::size_t>(errc::limit_exceeded));
    CHECK(saga::admin::error_type(saga::error{errc::version_conflict}) == "VERSION_CONFLICT");
    CHECK(saga::admin::error_type(saga::error{std::make_error_code(std::errc::io_error)}) ==
          "INTERNAL");
    CHECK(saga::admin::http_status_of(saga::error{errc::version_conflict}) == 409);
    CHECK(saga::admin::http_status_of(saga::error{errc::lock_held}) == 409);
    CHECK(saga::admin::http_status_of(saga::error{errc::limit_exceeded}) == 413);
    CHECK(saga::admin::http_status_of(saga::error{errc::not_found}) == 404);
    CHECK(saga::admin::http_status_of(saga::error{errc::invalid_argument}) == 400);
    CHECK(saga::admin::http_status_of(saga::error{errc::store_busy}) == 503);
    CHECK(saga::admin::http_status_of(saga::error{errc::step_threw}) == 500);
}

TEST_CASE("the access log has a line per request with its correlation id", "[admin][log]") {
    struct capture final : saga::log_sink {
        std::mutex mutex;
        std::vector<saga::log_record> lines;
        void write(const saga::log_record& r) override {
            std::lock_guard lock(mutex);
            lines.push_back(r);
        }
    };
    auto log = std::make_shared<capture>();
    fixture f({.port = 0, .token = token, .access_log = log});
    f.start();
    auto c = f.connect();
    CHECK(c.send(verb::get, "/api/v1/sagas/order-1001", {}, {{"X-Correlation-Id", "look-1"}})
              .status == 200);
    auto missing = c.send(verb::get, "/api/v1/sagas/order-9999", {},
                          {{"X-Correlation-Id", "look-2"}, {"X-Saga-Operator", "ada"}});
    CHECK(missing.status == 404);
    CHECK(c.get("/healthz").status == 200);
    std::lock_guard lock(log->mutex);
    REQUIRE(log->lines.size() == 3);
    const auto& ok = log->lines[0];
    CHECK(ok.message == "GET /api/v1/sagas/order-1001 200");
    CHECK(ok.correlation_id == "look-1");
    CHECK(ok.level == saga::log_level::info);
    CHECK(ok.fields["status"] == 200);
    CHECK(ok.fields["method"] == "GET");
    CHECK(ok.fields["path"] == "/api/v1/sagas/order-1001");
    CHECK(ok.fields["duration_ms"].get<double>() >= 0);
    CHECK_FALSE(ok.fields.contains("error"));
    const auto& bad = log->lines[1];
    CHECK(bad.correlation_id == "look-2");
    CHECK(bad.fields["error"] == "NOT_FOUND");
    CHECK(bad.fields["operator"] == "ada");
    CHECK(log->lines[2].message == "GET /healthz 200");
    CHECK(log->lines[2].correlation_id.size() == 36);
    // the line as written: JSON with the correlation id among the coordinates
    const auto line = json::parse(saga::to_json_line(bad));
    CHECK(line["correlation_id"] == "look-2");
    CHECK(line["error"] == "NOT_FOUND");
    // the token never shows
    for (const auto& l : log->lines) CHECK(saga::to_json_line(l).find(token) == std::string::npos);
}

TEST_CASE("a body nested 100,000 deep is refused with 413 and the server goes on serving",
          "[admin][errors][hostile]") {
    fixture f;
    f.start();
    auto c = f.connect();
    const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    SECTION("as a signal payload") {
        auto r = c.send(verb::post, "/api/v1/sagas/order-1002/signals/approval",
                        R"({"payload":)" + deep + "}");
        CHECK(r.status == 413);
        CHECK(r.error_type() == "LIMIT_EXCEEDED");
        CHECK(r.json["error"]["message"] ==
              "the request body nests deeper than the limit of 64 levels");
    }
    SECTION("as an operator action's body") {
        auto r = c.send(verb::post, "/api/v1/sagas/order-1002/pause", deep);
        CHECK(r.status == 413);
        CHECK(r.error_type() == "LIMIT_EXCEEDED");
    }
    CHECK(f.connect("").get("/healthz").status == 200);
    CHECK(f.w.eng().query("order-1002").value().status == saga::saga_status::waiting);
    auto signal = c.post("/api/v1/sagas/order-1002/signals/approval",
                         {{"payload", {{"by", "alice"}, {"why", "after the flood"}}}});
    CHECK(signal.status == 200);
}

TEST_CASE("the list filters by status, definition, key, time and text, and pages",
          "[admin][list]") {
    fixture f;
    f.start();
    auto c = f.connect();
    SECTION("everything") {
        auto r = c.get("/api/v1/sagas");
        auto ids = f.ids(r);
        CHECK(ids.size() == 9);
        CHECK(r.json["next_after"].is_null());
        for (const auto& i : r.json["items"]) {
            CHECK(i.contains("percent_complete"));
            CHECK(i.contains("current_steps"));
        }
    }
    SECTION("by status") {
        CHECK(f.ids(c.get("/api/v1/sagas?status=waiting")) ==
              std::set<std::string>{"order-1002", "order-1003"});
        CHECK(f.ids(c.get("/api/v1/sagas?status=completed,compensated")) ==
              std::set<std::string>{"order-1001", "order-1004"});
        CHECK(f.ids(c.get("/api/v1/sagas?status=compensation_failed")) ==
              std::set<std::string>{"order-stuck-1005"});
        CHECK(f.ids(c.get("/api/v1/sagas?status=paused")) == std::set<std::string>{"order-1008"});
    }
    SECTION("by definition and correlation key") {
        CHECK(f.ids(c.get("/api/v1/sagas?definition=slow")) == std::set<std::string>{"slow-1"});
        CHECK(f.ids(c.get("/api/v1/sagas?correlation_key=campaign-7")) ==
              std::set<std::string>{"order-1001", "order-1004"});
        CHECK(f.ids(c.get("/api/v1/sagas?definition=order&status=failed")) ==
              std::set<std::string>{"order-1006"});
    }
    SECTION("by text") {
        CHECK(f.ids(c.get("/api/v1/sagas?q=STUCK")) == std::set<std::string>{"order-stuck-1005"});
        CHECK(f.ids(c.get("/api/v1/sagas?q=campaign-1")).size() == 4);  // 10, 11, 12, 13
    }
    SECTION("by time") {
        CHECK(f.ids(c.get("/api/v1/sagas?updated_after=2200-01-01T00:00:00Z")).empty());
        CHECK(c.get("/api/v1/sagas?updated_after=2999-01-01T00:00:00Z").status == 400);
        CHECK(f.ids(c.get("/api/v1/sagas?updated_before=2000-01-01")).empty());
        CHECK(f.ids(c.get("/api/v1/sagas?updated_after=2000-01-01T00:00:00.5%2B02:00")).size() ==
              9);
        CHECK(f.ids(c.get("/api/v1/sagas?updated_after=946684800000")).size() == 9);
        // beyond what a 64-bit count of nanoseconds holds (year 2262): refused, not overflowed
        CHECK(c.get("/api/v1/sagas?updated_before=176722560025600000").status == 400);
    }
    SECTION("in pages") {
        std::set<std::string> seen;
        std::string after;
        int pages = 0;
        for (;;) {
            auto r = c.get("/api/v1/sagas?limit=4" + (after.empty() ? "" : "&after=" + after));
            auto ids = f.ids(r);
            CHECK(ids.size() <= 4);
            seen.insert(ids.begin(), ids.end());
            ++pages;
            if (r.json["next_after"].is_null()) break;
            after = r.json["next_after"].get<std::string>();
            REQUIRE(pages < 10);
        }
        CHECK(pages == 3);
        CHECK(seen.size() == 9);
    }
    SECTION("the summary counts every status") {
        auto r = c.get("/api/v1/summary");
        REQUIRE(r.status == 200);
        CHECK(r.json["total"] == 9);
        CHECK(r.json["counts"]["waiting"] == 2);
        CHECK(r.json["counts"]["completed"] == 1);
        CHECK(r.json["counts"]["compensation_failed"] == 1);
        CHECK(r.json["counts"]["running"] == 1);
        CHECK(r.json["definitions"] == json{"order", "slow"});
    }
}

TEST_CASE("one instance and its history timeline", "[admin][query]") {
    fixture f;
    f.start();
    auto c = f.connect();
    auto r = c.get("/api/v1/sagas/order-1001");
    REQUIRE(r.status == 200);
    CHECK(r.json["id"] == "order-1001");
    CHECK(r.json["status"] == "completed");
    CHECK(r.json["definition"] == "order");
    CHECK(r.json["correlation_key"] == "campaign-7");
    CHECK(r.json["percent_complete"] == Approx(100.0));
    CHECK(r.json["data"]["approved_by"] == "seed");
    std::vector<std::string> names;
    for (const auto& s : r.json["steps"]) {
        names.push_back(s["name"]);
        CHECK(s["status"] == "completed");
        CHECK(s["attempts"].get<int>() >= 1);
        CHECK(s["started_at"].is_string());
    }
    CHECK(names == std::vector<std::string>{"validate", "reserve", "approve", "charge", "notify"});

    auto failed = c.get("/api/v1/sagas/order-stuck-1005");
    REQUIRE(failed.status == 200);
    CHECK(failed.json["status"] == "compensation_failed");
    bool found = false;
    for (const auto& s : failed.json["steps"])
        if (s["name"] == "reserve") {
            found = true;
            CHECK(s["status"] == "compensation_failed");
            CHECK(s["compensation_attempts"].get<int>() >= 1);
            CHECK(s["error"].get<std::string>().find("maintenance") != std::string::npos);
        }
    CHECK(found);

    auto h = c.get("/api/v1/sagas/order-1001/history");
    REQUIRE(h.status == 200);
    REQUIRE(h.json["items"].size() >= 3);
    CHECK(h.json["items"][0]["event"] == "saga_started");
    CHECK(h.json["items"].back()["event"] == "saga_completed");
    std::uint64_t last = 0;
    for (const auto& e : h.json["items"]) {
        CHECK(e["version"].get<std::uint64_t>() >= last);
        last = e["version"];
        CHECK(e["at"].get<std::string>().ends_with("Z"));
    }
}

TEST_CASE("operator actions are recorded in the history with who and why", "[admin][operator]") {
    fixture f;
    f.start();
    auto c = f.connect();
    const std::map<std::string, std::string> alice{{"X-Saga-Operator", "alice"}};

    SECTION("pause and resume") {
        auto p = c.post("/api/v1/sagas/order-1003/pause", {{"why", "customer called"}}, alice);
        REQUIRE(p.status == 200);
        CHECK(p.json["saga"]["status"] == "paused");
        auto r = c.post("/api/v1/sagas/order-1003/resume", {{"why", "sorted out"}}, alice);
        REQUIRE(r.status == 200);
        CHECK(f.w.wait_for("order-1003", saga::saga_status::waiting) == saga::saga_status::waiting);
        CHECK(f.audited("order-1003", "alice", "customer called").size() == 1);
        CHECK(f.audited("order-1003", "alice", "sorted out").size() == 1);
    }
    SECTION("without the operator header the operator is 'api'") {
        REQUIRE(c.post("/api/v1/sagas/order-1003/pause", {{"why", "anonymous"}}).status == 200);
        CHECK(f.audited("order-1003", "api", "anonymous").size() == 1);
    }
    SECTION("cancel") {
        auto r = c.post("/api/v1/sagas/order-1002/cancel", {{"why", "duplicate order"}}, alice);
        REQUIRE(r.status == 200);
        CHECK(f.w.wait_for("order-1002", saga::saga_status::cancelled) ==
              saga::saga_status::cancelled);
        CHECK(f.audited("order-1002", "alice", "duplicate order").size() == 1);
    }
    SECTION("retry a failed compensation, then skip it") {
        auto r =
            c.post("/api/v1/sagas/order-stuck-1005/retry", {{"why", "billing is back"}}, alice);
        REQUIRE(r.status == 200);
        CHECK(f.audited("order-stuck-1005", "alice", "billing is back").size() == 1);
        // billing still refuses: the compensation fails again
        CHECK(f.w.wait_for("order-stuck-1005", saga::saga_status::compensation_failed) ==
              saga::saga_status::compensation_failed);
        auto s = c.post("/api/v1/sagas/order-stuck-1005/steps/reserve/skip",
                        {{"why", "released by hand in billing"}}, alice);
        REQUIRE(s.status == 200);
        CHECK(f.audited("order-stuck-1005", "alice", "released by hand in billing").size() == 1);
        CHECK(f.w.wait_for("order-stuck-1005", saga::saga_status::compensated) ==
              saga::saga_status::compensated);
        auto done = c.post("/api/v1/sagas/order-stuck-1005/steps/reserve/skip", {{"why", "x"}});
        CHECK(done.status == 409);
        auto unknown = c.post("/api/v1/sagas/order-1003/steps/nope/skip", {{"why", "x"}});
        CHECK(unknown.status == 404);
    }
    SECTION("retry a failed step") {
        auto r = c.post("/api/v1/sagas/order-1006/retry", {{"why", "mail is back"}}, alice);
        REQUIRE(r.status == 200);
        CHECK(f.audited("order-1006", "alice", "mail is back").size() == 1);
        auto bad = c.post("/api/v1/sagas/order-1003/retry", {{"why", "nothing failed"}});
        CHECK(bad.status == 409);
    }
    SECTION("skip a waiting step") {
        auto r = c.post("/api/v1/sagas/order-1003/steps/approve/skip",
                        {{"why", "approved by phone"}}, alice);
        REQUIRE(r.status == 200);
        CHECK(f.w.wait_for("order-1003", saga::saga_status::completed) ==
              saga::saga_status::completed);
        CHECK(f.audited("order-1003", "alice", "approved by phone").size() == 1);
    }
    SECTION("release a lock") {
        auto r = c.post("/api/v1/locks/campaign-8/release", {{"why", "stuck publish"}}, alice);
        REQUIRE(r.status == 200);
        CHECK(r.json["released"] == 1);
        CHECK(r.json["correlation_key"] == "campaign-8");
        CHECK(f.audited("order-1002", "alice", "stuck publish").size() == 1);
        auto again = c.post("/api/v1/locks/campaign-8/release", {{"why", "again"}}, alice);
        REQUIRE(again.status == 200);
        CHECK(again.json["released"] == 0);
        // a key with a slash, percent-encoded, is one path segment
        auto slash = c.post("/api/v1/locks/a%2Fb/release", {{"why", "none held"}});
        CHECK(slash.status == 200);
        CHECK(slash.json["correlation_key"] == "a/b");
    }
    SECTION("approve: the approval signal moves the saga on") {
        auto r = c.post("/api/v1/sagas/order-1003/signals/approval",
                        {{"payload", {{"by", "alice"}, {"why", "looks fine"}}}}, alice);
        REQUIRE(r.status == 200);
        CHECK(f.w.wait_for("order-1003", saga::saga_status::completed) ==
              saga::saga_status::completed);
        auto v = c.get("/api/v1/sagas/order-1003");
        CHECK(v.json["data"]["approved_by"] == "alice");
        auto done = c.post("/api/v1/sagas/order-1001/signals/approval", json::object());
        CHECK(done.status == 409);
    }
}

TEST_CASE("/metrics serves the engine's Prometheus text", "[admin][metrics]") {
    fixture f;
    f.w.eng().metrics().describe("admin_test_marker_total", saga::metric_type::counter,
                                 "a marker the test checks");
    f.w.eng().metrics().add("admin_test_marker_total", {{"kind", "check"}}, 3);
    f.start();
    auto r = f.connect().get("/metrics");
    REQUIRE(r.status == 200);
    CHECK(r.content_type.starts_with("text/plain; version=0.0.4"));
    CHECK(r.body.find("# TYPE admin_test_marker_total counter") != std::string::npos);
    CHECK(r.body.find("admin_test_marker_total{kind=\"check\"} 3") != std::string::npos);
}

TEST_CASE("routes added by the application share auth and error handling", "[admin][routes]") {
    fixture f;
    using saga::admin::request;
    using saga::admin::response;
    REQUIRE(f.admin->add_route(
        "POST", "/api/v1/campaigns", [](const request& r) -> saga::result<response> {
            SAGA_TRY(auto body, r.json());
            return response{201, {{"rest", r.rest}, {"body", body}, {"who", r.operator_name}}};
        }));
    REQUIRE(f.admin->add_route("GET", "/api/v1/campaigns/runs", [](const request& r) {
        if (r.rest == "/missing")
            return saga::result<response>(saga::error{saga::errc::not_found, "no such run"});
        return saga::result<response>(response{200, {{"run", r.rest}, {"q", r.query_or("x")}}});
    }));
    REQUIRE(f.admin->add_route("GET", "/api/v1/boom", [](const request&) -> saga::result<response> {
        throw std::runtime_error("kaboom");
    }));
    CHECK_FALSE(f.admin->add_route("POST", "/api/v1/campaigns/", {}));
    CHECK_FALSE(f.admin->add_route("POST", "/api/v1/campaigns", [](const request&) {
        return saga::result<response>(response{});
    }));
    CHECK_FALSE(f.admin->add_route(
        "GET", "relative", [](const request&) { return saga::result<response>(response{}); }));
    f.start();
    auto c = f.connect();
    auto r =
        c.post("/api/v1/campaigns/c-42/publish", {{"force", true}}, {{"X-Saga-Operator", "bob"}});
    REQUIRE(r.status == 201);
    CHECK(r.json["rest"] == "/c-42/publish");
    CHECK(r.json["body"]["force"] == true);
    CHECK(r.json["who"] == "bob");
    CHECK(c.send(verb::post, "/api/v1/campaigns", "{oops").status == 400);
    auto g = c.get("/api/v1/campaigns/runs/r-1?x=y%20z");
    REQUIRE(g.status == 200);
    CHECK(g.json["run"] == "/r-1");
    CHECK(g.json["q"] == "y z");
    CHECK(c.get("/api/v1/campaigns/runs/missing").status == 404);
    auto wrong = c.send(verb::put, "/api/v1/campaigns/c-1");
    CHECK(wrong.status == 405);
    CHECK(wrong.header("Allow") == "POST");
    auto boom = c.get("/api/v1/boom");
    CHECK(boom.status == 500);
    CHECK(boom.error_type() == "INTERNAL");
    CHECK(f.connect("").post("/api/v1/campaigns/c-1", json::object()).status == 401);
}

TEST_CASE("the dashboard and the OpenAPI description are served by the library",
          "[admin][dashboard]") {
    fixture f;
    f.start();
    auto anonymous = f.connect("");
    auto index = anonymous.get("/");
    REQUIRE(index.status == 200);
    CHECK(index.content_type.starts_with("text/html"));
    CHECK(index.body.find("<title>") != std::string::npos);
    CHECK(index.body.find("app.js") != std::string::npos);
    CHECK(index.header("Content-Security-Policy").find("default-src 'self'") != std::string::npos);
    auto js = anonymous.get("/app.js");
    REQUIRE(js.status == 200);
    CHECK(js.content_type.starts_with("text/javascript"));
    CHECK(js.body.find("/api/v1") != std::string::npos);
    CHECK(anonymous.get("/style.css").content_type.starts_with("text/css"));
    CHECK(anonymous.get("/api/v1/openapi.json").status == 401);

    auto spec = f.connect().get("/api/v1/openapi.json");
    REQUIRE(spec.status == 200);
    REQUIRE(spec.json.is_object());
    CHECK(spec.json["openapi"].get<std::string>().starts_with("3."));
    const auto& paths = spec.json["paths"];
    for (const auto* p :
         {"/healthz", "/metrics", "/api/v1/sagas", "/api/v1/summary", "/api/v1/sagas/{id}",
          "/api/v1/sagas/{id}/history", "/api/v1/sagas/{id}/cancel", "/api/v1/sagas/{id}/pause",
          "/api/v1/sagas/{id}/resume", "/api/v1/sagas/{id}/retry",
          "/api/v1/sagas/{id}/steps/{step}/skip", "/api/v1/sagas/{id}/signals/{name}",
          "/api/v1/locks/{correlation_key}/release", "/api/v1/openapi.json"}) {
        INFO(p);
        CHECK(paths.contains(p));
    }
    // the error format it describes is the one the server sends
    const auto& error = spec.json["components"]["schemas"]["Error"]["properties"]["error"];
    CHECK(error["required"] == json::array({"type", "message", "correlation"}));
    const auto sent = f.connect().get("/api/v1/sagas/order-9999");
    for (const auto& [name, _] : sent.json["error"].items())
        CHECK(error["properties"].contains(name));
}

TEST_CASE("the dashboard can be served from a directory for development", "[admin][dashboard]") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("saga-admin-web-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "index.html") << "<html><title>dev copy</title></html>";
    fixture f({.port = 0, .token = token, .static_dir = dir.string()});
    f.start();
    auto c = f.connect("");
    CHECK(c.get("/").body.find("dev copy") != std::string::npos);
    // files missing from the directory come from the library
    CHECK(c.get("/app.js").status == 200);
    CHECK(c.get("/../etc/passwd").status == 404);
    CHECK(c.get("/.hidden").status == 404);
    std::filesystem::remove_all(dir);
}

TEST_CASE("connections are kept alive and stop is graceful", "[admin][http]") {
    fixture f;
    f.start();
    auto c = f.connect();
    for (int i = 0; i < 3; ++i) {
        auto r = c.get("/api/v1/sagas/order-1001");
        CHECK(r.status == 200);
        CHECK(r.keep_alive);
    }
    const auto port = f.port;
    f.admin->stop();
    CHECK(f.admin->port() == 0);
    CHECK_THROWS(client(port).get("/healthz"));
    f.admin->stop();  // idempotent
    auto again = f.admin->start();
    REQUIRE(again);
    CHECK(client(again.value()).get("/healthz").status == 200);
}

TEST_CASE("the server can run on an executor the application owns", "[admin][http]") {
    world w;
    REQUIRE(w.open());
    boost::asio::io_context ioc;
    auto guard = boost::asio::make_work_guard(ioc);
    std::thread t([&] { ioc.run(); });
    {
        server s(w.eng(), {.port = 0, .token = token, .executor = ioc.get_executor()});
        auto p = s.start();
        REQUIRE(p);
        auto c = client(p.value(), token);
        CHECK(c.get("/api/v1/sagas").status == 200);
        CHECK(c.get("/healthz").status == 200);
        s.stop();
        CHECK_THROWS(client(p.value()).get("/healthz"));
    }
    guard.reset();
    t.join();
    CHECK(ioc.stopped());
}
