// The campaign-publishing saga distributed over SQS/SNS (moto_server): the orchestrator and the
// participant services run as separate campaign_publishing processes on one machine, talking
// only through SQS/SNS and sharing nothing but the --store directory (the consistency check
// reads every service's SQLite file). The tests SIGKILL a participant and the orchestrator in
// the middle of runs and restart them, and run two orchestrators on the same store and queues;
// afterwards every run is settled, the consistency check passes, and every run's history is
// one ordered sequence of versions with no step completed twice (optimistic concurrency).
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters/sqs/moto_fixture.hpp"

#ifndef CAMPAIGN_PUBLISHING_BIN
#error "CAMPAIGN_PUBLISHING_BIN must name the campaign_publishing executable"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

/// A scratch directory, removed at the end.
struct scratch {
    fs::path dir;
    explicit scratch(const std::string& name)
        : dir(fs::temp_directory_path() / fmt::format("cp-dist-{}-{}", name, ::getpid())) {
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~scratch() {
        std::error_code ec;
        if (!std::getenv("SAGA_KEEP_TEST_DIR")) fs::remove_all(dir, ec);  // kept for a post-mortem
    }
    scratch(const scratch&) = delete;
    scratch& operator=(const scratch&) = delete;
    [[nodiscard]] std::string store() const { return (dir / "campaigns.db").string(); }
};

/// A child process running campaign_publishing, its stdout and stderr in a file; killed with
/// SIGKILL (by its PID) when it goes out of scope still running, so a failing test leaves no
/// process behind.
class child {
public:
    child(const std::vector<std::string>& args, fs::path log) : log_(std::move(log)) {
        std::vector<std::string> full{CAMPAIGN_PUBLISHING_BIN};
        full.insert(full.end(), args.begin(), args.end());
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                         0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        std::vector<char*> argv;
        for (auto& a : full) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error(fmt::format("posix_spawn failed: {}", rc));
    }
    ~child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    /// Waits for the exit; the exit code, or 128 + signal.
    int wait() {
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    /// True once the process has exited (reaped).
    bool exited() {
        if (pid_ <= 0) return true;
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
        }
        return false;
    }
    /// SIGKILL, as a crash; returns the exit status (128 + SIGKILL unless it had exited).
    int kill_hard() {
        if (pid_ <= 0) return 0;
        ::kill(pid_, SIGKILL);
        return wait();
    }
    /// SIGTERM, the graceful stop; returns the exit code.
    int terminate() {
        if (pid_ <= 0) return 0;
        ::kill(pid_, SIGTERM);
        return wait();
    }
    [[nodiscard]] std::string output() const {
        std::ifstream in(log_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    /// Waits until the output contains `what` (false if the process exited or `limit` passed).
    bool wait_for_output(const std::string& what, std::chrono::milliseconds limit) {
        const auto until = clock_type::now() + limit;
        while (clock_type::now() < until) {
            if (output().find(what) != std::string::npos) return true;
            if (exited()) return output().find(what) != std::string::npos;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

private:
    pid_t pid_ = -1;
    fs::path log_;
};

/// The JSON document a `--json` command printed (skipping the engine's one-line JSON records
/// and the transport's log lines).
json json_of(const std::string& output) {
    std::string doc;
    std::istringstream in(output);
    std::string line;
    bool inside = false;
    while (std::getline(in, line)) {
        if (!inside && (line == "{" || line == "[")) inside = true;
        if (inside && line.rfind("{\"ts\"", 0) != 0) doc += line + "\n";
    }
    return json::parse(doc);
}

bool contains(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

/// One installation of the distributed example: a store directory, the moto it talks to and a
/// queue prefix of its own; spawns campaign_publishing processes with the shared options.
class installation {
public:
    installation(const saga::sqs::test::moto_server& moto, const std::string& name)
        : dir_(name), endpoint_(moto.url()), prefix_(fmt::format("cp{}-{}-", ::getpid(), name)) {}

    /// The options every process of the installation is given.
    [[nodiscard]] std::vector<std::string> with_common(std::vector<std::string> args) const {
        const std::vector<std::string> common{
            "--store",        dir_.store(), "--transport", "sqs", "--sqs-endpoint", endpoint_,
            "--sqs-prefix",   prefix_,      "--sqs-wait",  "0",   "--seed",         "7",
            "--failure-rate", "0.2"};
        args.insert(args.end(), common.begin(), common.end());
        return args;
    }

    /// Starts a long-running process (`services ...`, `orchestrate`, `publish ...`).
    std::unique_ptr<child> spawn(const std::vector<std::string>& args, const std::string& log) {
        return std::make_unique<child>(with_common(args), dir_.dir / (log + ".log"));
    }

    /// Runs a command to its end; its exit code and output.
    std::pair<int, std::string> run(const std::vector<std::string>& args) {
        child c(with_common(args), dir_.dir / fmt::format("cmd-{}.log", ++runs_));
        const int code = c.wait();
        return {code, c.output()};
    }

    /// Starts the participant services of `only` as one process and waits until it consumes.
    std::unique_ptr<child> services(const std::string& only) {
        auto c = spawn({"services", "--only", only}, "services-" + only);
        REQUIRE(c->wait_for_output("running on transport sqs", 20s));
        return c;
    }

    /// Starts an orchestrator process and waits until it consumes.
    std::unique_ptr<child> orchestrator(const std::string& name) {
        auto c = spawn({"orchestrate", "--schedule-every", "3000"}, name);
        REQUIRE(c->wait_for_output("orchestrator running", 20s));
        return c;
    }

    /// `list --json`: campaign -> the status of its latest run ("" when none).
    std::map<std::string, std::string> latest_runs() {
        auto [code, out] = run({"list", "--json"});
        std::map<std::string, std::string> m;
        if (code != 0) return m;
        for (const auto& c : json_of(out))
            m[c["campaign"].get<std::string>()] = c["latest_run_status"].get<std::string>();
        return m;
    }

    /// Polls `list --json` until every campaign's latest run is settled (or `limit` passed).
    bool wait_settled(std::size_t campaigns, std::chrono::seconds limit,
                      std::map<std::string, std::string>& last) {
        static const std::set<std::string> open{"", "running", "waiting", "compensating", "paused"};
        const auto until = clock_type::now() + limit;
        while (clock_type::now() < until) {
            last = latest_runs();
            std::size_t settled = 0;
            for (const auto& [id, status] : last)
                if (!open.contains(status)) ++settled;
            if (last.size() == campaigns && settled == campaigns) return true;
            std::this_thread::sleep_for(500ms);
        }
        return false;
    }

    /// Checks the history of run `id`: versions start at 1 and never go down (the entries of one
    /// transition share its version; a transition that records no event, e.g. a late reply
    /// consumed, leaves a gap), and no step starts the saga, completes or is compensated twice.
    void check_history(const std::string& id) {
        auto [code, out] = run({"history", id, "--json"});
        INFO(id << "\n" << out);
        REQUIRE(code == 0);
        const auto h = json_of(out);
        REQUIRE(!h.empty());
        std::uint64_t version = 0;
        std::map<std::string, int> outcomes;
        for (const auto& e : h) {
            const auto v = e["version"].get<std::uint64_t>();
            CHECK(v >= version);
            version = v;
            const auto event = e["event"].get<std::string>();
            if (event == "step_completed" || event == "step_compensated" || event == "saga_started")
                ++outcomes[event + " " + e["step"].get<std::string>()];
        }
        CHECK(h.front()["version"] == 1);
        for (const auto& [what, n] : outcomes) {
            INFO(what);
            CHECK(n == 1);
        }
    }

    /// Runs `check`: exit 0, OK, nothing orphaned.
    void check_consistent() {
        auto [code, out] = run({"check"});
        INFO(out);
        CHECK(code == 0);
        CHECK(contains(out, "consistency check: OK"));
        CHECK_FALSE(contains(out, "ORPHAN"));
        CHECK_FALSE(contains(out, "STUCK"));
    }

    [[nodiscard]] const scratch& dir() const { return dir_; }

private:
    scratch dir_;
    std::string endpoint_;
    std::string prefix_;
    int runs_ = 0;
};

/// Credentials and region for every child (moto accepts any keys, but requests must be signed).
void aws_environment() {
    ::setenv("AWS_ACCESS_KEY_ID", "test", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "test", 1);
    ::setenv("AWS_REGION", "us-east-1", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
    ::unsetenv("AWS_PROFILE");
}

const std::vector<std::string> campaigns{"c-1001", "c-1002", "c-1003",
                                         "c-1004", "c-1005", "c-1006"};

}  // namespace

TEST_CASE("distributed over SQS: a participant and the orchestrator killed with SIGKILL mid-run",
          "[examples][campaign_publishing][distributed][sqs]") {
    saga::sqs::test::moto_server moto;
    SAGA_REQUIRE_MOTO(moto);
    aws_environment();
    installation app(moto, "kill");
    {
        auto [code, out] = app.run({"setup", "--campaigns", "6"});
        INFO(out);
        REQUIRE(code == 0);
    }

    // every participant in a process of its own group; billing (killed below) alone
    auto billing = app.services("billing");
    auto core = app.services("campaigns,catalog,analytics");
    auto networks = app.services("google,instagram,tiktok,snapchat");
    auto orchestrator = app.orchestrator("orchestrator-1");

    // each `publish` process starts its run and follows it: a second engine on the same store
    // and queues until the run is decided
    std::vector<std::unique_ptr<child>> publishers;
    for (const auto& c : campaigns) publishers.push_back(app.spawn({"publish", c}, "publish-" + c));
    for (auto& p : publishers) CHECK(p->wait_for_output("started publish-", 20s));

    // mid-run: the participant and every orchestrator go down at once
    std::this_thread::sleep_for(800ms);
    const auto at_kill = app.latest_runs();
    CHECK(billing->kill_hard() == 128 + SIGKILL);
    CHECK(orchestrator->kill_hard() == 128 + SIGKILL);
    std::size_t killed_publishers = 0;
    for (auto& p : publishers)
        if (!p->exited() && p->kill_hard() == 128 + SIGKILL) ++killed_publishers;
    std::size_t open_at_kill = 0;
    for (const auto& [id, status] : at_kill)
        if (status == "running" || status == "waiting" || status == "compensating") ++open_at_kill;
    WARN("runs open when killed: " << open_at_kill
                                   << ", publish processes killed: " << killed_publishers);

    // restart: the orchestrator recovers every open run, billing gets its unacked commands back
    billing = app.services("billing");
    orchestrator = app.orchestrator("orchestrator-2");

    std::map<std::string, std::string> last;
    const bool settled = app.wait_settled(campaigns.size(), 60s, last);
    INFO("latest runs: " << json(last).dump());
    REQUIRE(settled);
    // the scripted failures were compensated, the rest published (whatever the crash did)
    CHECK(last["c-1003"] == "compensated");
    CHECK(last["c-1004"] == "compensated");
    CHECK(last["c-1005"] == "compensated");
    app.check_consistent();
    for (const auto& c : campaigns) app.check_history("publish-" + c + "-1");

    CHECK(orchestrator->terminate() == 0);
    for (auto* s : {billing.get(), core.get(), networks.get()}) CHECK(s->terminate() == 0);
    app.check_consistent();
}

// Two orchestrators (and the publish processes, engines too) consume the same queues and commit
// to the same store at once; optimistic concurrency must keep every instance whole. Then one
// orchestrator stops and the publish processes die, and the survivor (its sweep picks up their
// timers and runs) brings every run to its end. Together over moto's FIFO emulation, whose long
// polls hold a message group back for a whole poll, many engines slow each other down more
// than a real SQS would, hence the hand-over before the end.
TEST_CASE("distributed over SQS: two orchestrators on the same store and queues",
          "[two_orchestrators][examples][campaign_publishing][distributed][sqs]") {
    saga::sqs::test::moto_server moto;
    SAGA_REQUIRE_MOTO(moto);
    aws_environment();
    installation app(moto, "two");
    {
        auto [code, out] = app.run({"setup", "--campaigns", "6"});
        INFO(out);
        REQUIRE(code == 0);
    }
    auto all = app.services("campaigns,catalog,billing,analytics,google,instagram,tiktok,snapchat");
    auto first = app.orchestrator("orchestrator-a");
    auto second = app.orchestrator("orchestrator-b");

    // the publish processes are engines too: every reply may land on any of them, and the
    // scheduled sagas of both orchestrators start the same tick ids
    std::vector<std::unique_ptr<child>> publishers;
    for (const auto& c : campaigns) publishers.push_back(app.spawn({"publish", c}, "publish-" + c));
    for (auto& p : publishers) CHECK(p->wait_for_output("started publish-", 20s));

    // Every engine competes for the replies for a while ...
    std::this_thread::sleep_for(15s);
    // ... then the second orchestrator stops and the publish processes crash.
    CHECK(second->terminate() == 0);
    for (auto& p : publishers) p->kill_hard();

    std::map<std::string, std::string> last;
    const bool settled = app.wait_settled(campaigns.size(), 150s, last);
    INFO("latest runs: " << json(last).dump());
    REQUIRE(settled);
    CHECK(last["c-1003"] == "compensated");
    CHECK(last["c-1005"] == "compensated");
    app.check_consistent();
    for (const auto& c : campaigns) app.check_history("publish-" + c + "-1");
    CHECK(first->terminate() == 0);
    CHECK(all->terminate() == 0);
}
