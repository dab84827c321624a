// `campaign_publishing serve` as a child process: without SAGA_ADMIN_TOKEN it refuses to start
// (exit 2, naming the variable); with it, the campaign routes answer 401 without or with a wrong
// token, work with the right one, and SIGTERM stops the server with exit 0.
// (The dashboard against a running `serve` is the browser test: campaign_serve_browser.)
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters/admin/http_client.hpp"

#ifndef CAMPAIGN_PUBLISHING_BIN
#error "CAMPAIGN_PUBLISHING_BIN must name the campaign_publishing executable"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using saga::test::admin::client;
namespace http = boost::beast::http;

constexpr const char* token = "serve-test-token";

/// A scratch directory, removed at the end.
struct scratch {
    fs::path dir;
    explicit scratch(const std::string& name)
        : dir(fs::temp_directory_path() / fmt::format("cp-serve-{}-{}", name, ::getpid())) {
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

/// `campaign_publishing serve ...` with SAGA_ADMIN_TOKEN set to `token_value` (unset: nullopt),
/// its output in a file; killed at the end if still running.
class serve_process {
public:
    serve_process(const scratch& s, std::optional<std::string> token_value)
        : log_(s.dir / "serve.log") {
        std::vector<std::string> args{CAMPAIGN_PUBLISHING_BIN,  "serve", "--port", "0", "--store",
                                      (s.dir / "c.db").string()};
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e)
            if (std::string_view(*e).rfind("SAGA_ADMIN_TOKEN=", 0) != 0) env.emplace_back(*e);
        if (token_value) env.push_back("SAGA_ADMIN_TOKEN=" + *token_value);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<char*> envp;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error(fmt::format("posix_spawn failed: {}", rc));
    }
    ~serve_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }
    serve_process(const serve_process&) = delete;
    serve_process& operator=(const serve_process&) = delete;

    /// Waits up to `limit` for the exit; the exit code, 128 + signal, or nullopt if still running.
    std::optional<int> wait(std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        for (;;) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            if (std::chrono::steady_clock::now() > until) return std::nullopt;
            std::this_thread::sleep_for(20ms);
        }
    }
    /// The port from the "http://127.0.0.1:<port>/" line; 0 if it does not come within 60 s.
    std::uint16_t port() {
        static const std::regex url(R"(http://127\.0\.0\.1:(\d+)/)");
        for (int i = 0; i < 600; ++i) {
            std::smatch m;
            const auto text = output();
            if (std::regex_search(text, m, url))
                return static_cast<std::uint16_t>(std::stoi(m[1].str()));
            if (wait(0ms)) return 0;
            std::this_thread::sleep_for(100ms);
        }
        return 0;
    }
    void signal(int sig) const { ::kill(pid_, sig); }
    [[nodiscard]] std::string output() const {
        std::ifstream in(log_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    pid_t pid_ = -1;
    fs::path log_;
};

}  // namespace

TEST_CASE("serve without SAGA_ADMIN_TOKEN refuses to start, saying why") {
    scratch s("no-token");
    serve_process serve(s, std::nullopt);
    const auto code = serve.wait(30s);
    INFO(serve.output());
    REQUIRE(code.has_value());
    CHECK(*code == 2);
    CHECK(serve.output().find("SAGA_ADMIN_TOKEN") != std::string::npos);

    serve_process empty(s, std::string());
    CHECK(empty.wait(30s) == std::optional<int>(2));
}

TEST_CASE("serve: the campaign routes need the bearer token, and SIGTERM stops it") {
    scratch s("auth");
    serve_process serve(s, std::string(token));
    const auto port = serve.port();
    INFO(serve.output());
    REQUIRE(port != 0);

    client anonymous(port);
    CHECK(anonymous.get("/healthz").status == 200);
    const auto none = anonymous.get("/api/v1/campaigns");
    CHECK(none.status == 401);
    CHECK(none.error_type() == "UNAUTHORIZED");
    CHECK(anonymous.post("/api/v1/campaigns/c-1001/publish", json::object()).status == 401);
    CHECK(anonymous.post("/api/v1/campaigns/c-1001/approve", json::object()).status == 401);
    CHECK(anonymous.get("/api/v1/runs/publish-c-1001-1/progress").status == 401);
    CHECK(anonymous.post("/api/v1/demo/seed", json::object()).status == 401);
    client wrong(port, "not-the-token");
    CHECK(wrong.get("/api/v1/campaigns").status == 401);
    CHECK(wrong.post("/api/v1/campaigns/c-1001/publish", json::object()).status == 401);

    client api(port, token);
    const auto empty = api.get("/api/v1/campaigns");
    CHECK(empty.status == 200);
    CHECK(empty.json["items"] == json::array());
    CHECK(api.post("/api/v1/campaigns/c-1001/publish", json::object()).status == 404);
    CHECK(api.get("/api/v1/runs/nope/progress").status == 404);
    const auto seeded = api.post("/api/v1/demo/seed", {{"campaigns", 2}});
    CHECK(seeded.status == 201);
    CHECK(seeded.json["campaigns"] == json::array({"c-1001", "c-1002"}));
    const auto bad = api.post("/api/v1/campaigns/c-1001/pause", {{"force", 1}});
    CHECK(bad.status == 400);
    const auto started = api.post("/api/v1/campaigns/c-1001/publish", {{"require_approval", true}},
                                  {{"X-Saga-Operator", "ada"}});
    CHECK(started.status == 202);
    CHECK(started.json["run_id"] == "publish-c-1001-1");
    // the refusal speaks to an API client: no command-line flags
    const auto locked = api.post("/api/v1/campaigns/c-1001/publish", json::object(),
                                 {{"X-Correlation-Id", "lock-1"}});
    CHECK(locked.status == 409);
    CHECK(locked.error_type() == "LOCK_HELD");
    CHECK(locked.error_correlation() == "lock-1");
    const auto says = locked.json["error"].value("message", std::string());
    INFO(says);
    CHECK(says.find("publish-c-1001-1 holds its lock") != std::string::npos);
    CHECK(says.find("\"force\": true") != std::string::npos);
    CHECK(says.find("--force") == std::string::npos);
    CHECK(says.find("`reset") == std::string::npos);
    // ingestion and the status refresh are scheduled: their runs have no campaign tracker
    const auto list = api.get("/api/v1/sagas?definition=refresh_campaign_status");
    CHECK(list.status == 200);

    serve.signal(SIGTERM);
    const auto code = serve.wait(30s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}
