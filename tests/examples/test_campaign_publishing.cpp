// End-to-end tests of campaign_publishing: the real executable runs as a child process (demo,
// operator subcommands, a SIGKILL in the middle of a demo and `resume`), and each test checks
// exit codes, the consistency check's verdict, and the JSON of `status` and `history`.
#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CAMPAIGN_PUBLISHING_BIN
#error "CAMPAIGN_PUBLISHING_BIN must name the campaign_publishing executable"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

/// A scratch directory, removed at the end.
struct scratch {
    fs::path dir;
    explicit scratch(const std::string& name)
        : dir(fs::temp_directory_path() / fmt::format("cp-e2e-{}-{}", name, ::getpid())) {
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    [[nodiscard]] std::string store() const { return (dir / "campaigns.db").string(); }
};

/// A child process running campaign_publishing with `args`, its stdout and stderr in a file.
class child {
public:
    /// `prefix` runs the binary through another program (e.g. setpriv).
    child(const std::vector<std::string>& args, const fs::path& log,
          const std::vector<std::string>& prefix = {})
        : log_(log) {
        std::vector<std::string> full = prefix;
        full.push_back(CAMPAIGN_PUBLISHING_BIN);
        full.insert(full.end(), args.begin(), args.end());
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
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
    /// Waits for the exit; the exit code, or 128 + signal.
    int wait() {
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    void kill() { ::kill(pid_, SIGKILL); }
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

/// The outcome of one run of the binary.
struct run_result {
    int code = -1;
    std::string output;
};

/// Runs the binary on the store at `store`, its output logged in `s.dir`.
run_result run_at(const scratch& s, const std::string& store, std::vector<std::string> args,
                  const std::vector<std::string>& prefix = {}) {
    static int n = 0;
    args.push_back("--store");
    args.push_back(store);
    child c(args, s.dir / fmt::format("run-{}.log", ++n), prefix);
    run_result r;
    r.code = c.wait();
    r.output = c.output();
    return r;
}

run_result run(const scratch& s, std::vector<std::string> args) {
    return run_at(s, s.store(), std::move(args));
}

/// The JSON document a `--json` command printed on stdout (the engine logs to stderr: skip
/// its one-line JSON records, which start with {"ts").
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

json status_of(const scratch& s, const std::string& campaign) {
    auto r = run(s, {"status", campaign, "--json"});
    REQUIRE(r.code == 0);
    return json_of(r.output);
}

std::string history_of(const scratch& s, const std::string& campaign) {
    auto r = run(s, {"history", campaign, "--json"});
    REQUIRE(r.code == 0);
    return json_of(r.output).dump();
}

}  // namespace

TEST_CASE("the demo passes its consistency check across seeds and failure rates",
          "[examples][campaign_publishing]") {
    const std::vector<std::pair<std::string, std::string>> runs{
        {"1", "0"}, {"7", "0.3"}, {"2024", "0.15"}};
    for (const auto& [seed, rate] : runs) {
        scratch s("demo-" + seed);
        auto r = run(s, {"--seed", seed, "--failure-rate", rate, "--campaigns", "10"});
        INFO("seed " << seed << " rate " << rate << "\n" << r.output);
        CHECK(r.code == 0);
        CHECK(contains(r.output, "consistency check: OK"));
        // the scripted campaigns end as scripted whatever the transient failures
        CHECK(contains(r.output, "c-1003   budget over credit       DRAFT"));
        CHECK(contains(r.output, "c-1005   TikTok rejects the ad    DRAFT"));
    }
}

TEST_CASE("a demo killed with SIGKILL and resumed passes the consistency check",
          "[examples][campaign_publishing][crash]") {
    for (auto delay : {400ms, 1200ms}) {
        scratch s(fmt::format("kill-{}", delay.count()));
        {
            child demo({"--seed", "5", "--failure-rate", "0.2", "--store", s.store()},
                       s.dir / "demo.log");
            std::this_thread::sleep_for(delay);
            demo.kill();
            CHECK(demo.wait() == 128 + SIGKILL);
        }
        auto r = run(s, {"resume", "--seed", "5", "--failure-rate", "0.2"});
        INFO(r.output);
        CHECK(r.code == 0);
        CHECK(contains(r.output, "consistency check: OK"));
        auto again = run(s, {"check"});
        CHECK(again.code == 0);
    }
}

TEST_CASE("every compensation path of the publish saga undoes what was done",
          "[examples][campaign_publishing][compensation]") {
    scratch s("paths");
    auto demo = run(s, {"--seed", "42", "--failure-rate", "0.1"});
    INFO(demo.output);
    REQUIRE(demo.code == 0);

    // budget refused: validate is reverted, nothing else ran
    auto budget = status_of(s, "c-1003");
    CHECK(budget["status"] == "compensated");
    CHECK(contains(budget["error"].get<std::string>(), "insufficient credit"));
    CHECK(budget["phases_status"]["validate"]["status"] == "compensated");
    CHECK(budget["phases_status"]["feed"]["processed"] == 0);

    // feed: one product not compliant; the products added are removed again, budget released
    auto feed = status_of(s, "c-1004");
    CHECK(feed["status"] == "compensated");
    CHECK(contains(feed["error"].get<std::string>(), "missing GTIN"));
    CHECK(feed["phases_status"]["feed"]["failed"] == 1);
    CHECK(feed["phases_status"]["budget"]["compensated"] == 1);
    for (const auto& p : feed["products"])
        CHECK((p["status"] == "rejected" || p["status"] == "removed"));

    // review rejection: TikTok refuses, the Instagram ad is withdrawn
    auto rejected = status_of(s, "c-1005");
    CHECK(rejected["status"] == "compensated");
    CHECK(contains(rejected["error"].get<std::string>(), "tiktok rejected the ad"));
    const auto h = history_of(s, "c-1005");
    CHECK(contains(h, R"("event":"step_compensated","step":"submit_instagram")"));
    CHECK(contains(h, R"("event":"step_compensated","step":"reserve_budget")"));
    CHECK(contains(h, R"("event":"step_compensated","step":"validate")"));

    // review deadline: Snapchat's manual review is too slow
    auto deadline = status_of(s, "c-1006");
    CHECK(deadline["status"] == "compensated");
    CHECK(contains(deadline["error"].get<std::string>(), "deadline"));
    CHECK(deadline["phases_status"]["submit"]["compensated"] == 2);

    // approval refused by a human
    auto refused = status_of(s, "c-1007");
    CHECK(refused["status"] == "compensated");
    CHECK(contains(refused["error"].get<std::string>(), "approval refused"));
    CHECK(refused["phases_status"]["review"]["successful"] == 3);

    // and the happy paths: published, paused and republished, finished
    CHECK(status_of(s, "c-1001")["action"] == "republish_campaign");
    CHECK(status_of(s, "c-1002")["action"] == "finish_campaign");
    CHECK(run(s, {"check"}).code == 0);
}

TEST_CASE("one action at a time per campaign: the lock refuses a concurrent action",
          "[examples][campaign_publishing][lock]") {
    scratch s("lock");
    REQUIRE(run(s, {"--seed", "42", "--campaigns", "7"}).code == 0);

    // c-1007 was rolled back; publish it again, this time waiting for an approval
    auto publish = run(s, {"publish", "c-1007", "--require-approval"});
    INFO(publish.output);
    REQUIRE(publish.code == 0);
    CHECK(contains(publish.output, "waits for approval"));

    auto pause = run(s, {"pause", "c-1007"});
    CHECK(pause.code == 3);
    CHECK(contains(pause.output, "is busy: publish-c-1007-2 holds its lock"));
    auto second = run(s, {"publish", "c-1007"});
    CHECK(second.code == 3);

    auto approve = run(s, {"approve", "c-1007", "--by", "alice"});
    INFO(approve.output);
    CHECK(approve.code == 0);
    CHECK(status_of(s, "c-1007")["status"] == "completed");
    CHECK(run(s, {"check"}).code == 0);

    // an explicit force-reset releases a held lock and is audited in the history
    REQUIRE(run(s, {"publish", "c-1005", "--require-approval"}).code == 1);  // TikTok rejects
    auto reset = run(s, {"reset", "c-1001", "--by", "ops", "--note", "stuck"});
    CHECK(reset.code == 0);
    CHECK(contains(reset.output, "released 0 lock(s) on c-1001"));
}

TEST_CASE("the tracker's counts add up", "[examples][campaign_publishing][tracker]") {
    scratch s("tracker");
    REQUIRE(run(s, {"--seed", "11", "--failure-rate", "0.2", "--campaigns", "9"}).code == 0);
    for (const char* campaign : {"c-1001", "c-1002", "c-1004", "c-1005", "c-1008", "c-1009"}) {
        auto t = status_of(s, campaign);
        INFO(campaign << " " << t.dump());
        for (const auto& [name, p] : t["phases_status"].items()) {
            CHECK(p["processed"].get<int>() == p["successful"].get<int>() + p["failed"].get<int>());
            CHECK(p["processed"].get<int>() <= p["total"].get<int>());
            CHECK(p["compensated"].get<int>() <= p["successful"].get<int>());
        }
        if (t["phases_status"].contains("feed"))
            CHECK(t["phases_status"]["feed"]["total"] == t["products"].size());
        if (t["status"] == "completed") {
            CHECK(t["progress"] == 100.0);
            for (const auto& [name, p] : t["phases_status"].items())
                CHECK(p["processed"] == p["total"]);
        }
    }
}

TEST_CASE("bad arguments and unknown ids are clear errors", "[examples][campaign_publishing]") {
    scratch s("args");
    CHECK(run(s, {"--seed", "x"}).code == 2);
    CHECK(run(s, {"--failure-rate", "2"}).code == 2);
    CHECK(run(s, {"publish"}).code == 2);
    CHECK(run(s, {"frobnicate"}).code == 2);
    auto missing = run(s, {"status", "c-1001"});
    CHECK(missing.code != 0);
    CHECK(contains(missing.output, "no store at"));
    REQUIRE(run(s, {"--campaigns", "1"}).code == 0);
    auto unknown = run(s, {"publish", "c-9999"});
    CHECK(unknown.code == 1);
    CHECK(contains(unknown.output, "unknown campaign 'c-9999'"));
    CHECK(run(s, {"status", "c-9999"}).code == 1);
    CHECK(run(s, {"--help"}).code == 0);
}

// ---- the store file: what setup and the demo replace, read-only use, damage -----------------

namespace {

/// The bytes of a file.
std::string bytes_of(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

/// The bytes of every file in `dir` (name -> bytes).
std::map<std::string, std::string> snapshot(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) out[e.path().filename().string()] = bytes_of(e.path());
    return out;
}

/// Waits until `file` contains `text` (the bound only stops a broken build).
bool wait_for_text(const fs::path& file, const std::string& text) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (!contains(bytes_of(file), text)) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

/// Runs commands with CAP_DAC_OVERRIDE dropped, so that root obeys file modes (chmod 0444, a
/// 0555 directory) as any user does; empty where setpriv cannot do it.
std::vector<std::string> without_root_override() {
    const std::vector<std::string> prefix{"/usr/bin/setpriv", "--bounding-set=-dac_override", "--"};
    if (!fs::exists(prefix.front())) return {};
    child probe({"--help"}, fs::temp_directory_path() / "cp-e2e-setpriv-probe.log", prefix);
    return probe.wait() == 0 ? prefix : std::vector<std::string>{};
}

/// Overwrites 64 bytes of page `page` (4096-byte pages) past its header: a leaf page's cell
/// pointers then point to nonsense.
void damage_page(const fs::path& file, std::int64_t page) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    f.seekp((page - 1) * 4096 + 8);
    const std::string junk(64, '\xa5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    REQUIRE(f);
}

}  // namespace

TEST_CASE(
    "setup and the demo replace only an installation of theirs that nothing uses, and "
    "say what to do otherwise",
    "[examples][campaign_publishing][store-file]") {
    scratch s("replace");
    const fs::path store = s.store();
    auto refused = [&](const std::vector<std::string>& command, const fs::path& named,
                       const std::string& why) {
        const auto before = snapshot(s.dir);
        auto r = run(s, command);
        INFO(r.output);
        CHECK(r.code == 1);
        CHECK(contains(r.output, "refuses to replace"));
        CHECK(contains(r.output, named.string()));
        CHECK(contains(r.output, why));
        CHECK(contains(r.output, "--store"));
        // every file is still there, unchanged (reading a WAL-mode file may add a -shm)
        const auto after = snapshot(s.dir);
        for (const auto& [name, bytes] : before) {
            if (name.rfind("run-", 0) == 0) continue;  // the runs' own output
            INFO(name);
            CHECK((after.contains(name) && after.at(name) == bytes));
        }
    };

    SECTION("a file that is not a SQLite database") {
        std::ofstream(store) << "id,name\n1,spring sale\n";
        refused({"setup"}, store, "not a SQLite database");
        refused({"demo"}, store, "not a SQLite database");
    }
    SECTION("a SQLite database of another application") {
        {
            SQLite::Database db(store.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY)");
        }
        refused({"setup"}, store, "not a saga store");
    }
    SECTION("a read-only store") {
        REQUIRE(run(s, {"setup", "--campaigns", "2"}).code == 0);
        fs::permissions(store,
                        fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
        refused({"setup"}, store, "read-only");
        refused({"demo"}, store, "read-only");
    }
    SECTION("a service's file that is not a service database") {
        REQUIRE(run(s, {"setup", "--campaigns", "2"}).code == 0);
        const fs::path billing = s.dir / "campaigns.billing.db";
        REQUIRE(fs::exists(billing));
        std::ofstream(billing) << "not billing";
        refused({"setup"}, billing, "not a SQLite database");
    }
    SECTION("an installation in use, until the process using it is killed") {
        REQUIRE(run(s, {"setup", "--campaigns", "2"}).code == 0);
        child busy({"demo", "--campaigns", "200", "--store", s.store()}, s.dir / "busy.log");
        REQUIRE(wait_for_text(s.dir / "busy.log", "== publishing"));
        auto r = run(s, {"setup"});
        INFO(r.output);
        CHECK(r.code == 1);
        CHECK(contains(r.output, store.string()));
        CHECK(contains(r.output, "in use by another process"));
        CHECK(contains(r.output, "stop it first"));
        CHECK(fs::exists(store));
        busy.kill();
        CHECK(busy.wait() == 128 + SIGKILL);
        // nothing stale: the kernel dropped the dead process's lock; its -wal and -shm go too
        auto again = run(s, {"setup", "--campaigns", "3"});
        INFO(again.output);
        CHECK(again.code == 0);
        CHECK(contains(run(s, {"list"}).output, "c-1003"));
    }
    SECTION("an earlier installation that nothing uses is replaced") {
        REQUIRE(run(s, {"setup", "--campaigns", "2"}).code == 0);
        REQUIRE(run(s, {"publish", "c-1001"}).code == 0);
        auto r = run(s, {"setup", "--campaigns", "3"});
        INFO(r.output);
        CHECK(r.code == 0);
        auto list = run(s, {"list"});
        CHECK(contains(list.output, "c-1003"));
        CHECK_FALSE(contains(list.output, "publish-c-1001-1"));
    }
}

TEST_CASE("list, status, history and check read an installation that cannot be written",
          "[examples][campaign_publishing][read-only]") {
    scratch s("readonly");
    const fs::path dir = s.dir / "ro";
    fs::create_directories(dir);
    const std::string store = (dir / "campaigns.db").string();
    REQUIRE(run_at(s, store, {"setup", "--campaigns", "3"}).code == 0);
    REQUIRE(run_at(s, store, {"publish", "c-1001"}).code == 0);
    const auto before = snapshot(dir);
    // Tests run as root, which writes through file modes: drop CAP_DAC_OVERRIDE for the runs so
    // the modes apply as to any user. Without setpriv, the runs still prove that the read-only
    // subcommands write nothing (the bytes are compared), but not that they need no write access.
    const auto prefix = without_root_override();
    if (prefix.empty()) WARN("setpriv cannot drop CAP_DAC_OVERRIDE here: modes do not bind root");
    const auto read_only = fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read;
    const auto read_only_dir =
        read_only | fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec;

    auto read_everything = [&] {
        auto list = run_at(s, store, {"list"}, prefix);
        INFO(list.output);
        CHECK(list.code == 0);
        CHECK(contains(list.output, "publish-c-1001-1 completed"));
        auto check = run_at(s, store, {"check"}, prefix);
        INFO(check.output);
        CHECK(check.code == 0);
        CHECK(contains(check.output, "consistency check: OK"));
        auto status = run_at(s, store, {"status", "c-1001", "--json"}, prefix);
        CHECK(status.code == 0);
        CHECK(json_of(status.output)["status"] == "completed");
        auto history = run_at(s, store, {"history", "c-1001"}, prefix);
        CHECK(history.code == 0);
        CHECK(contains(history.output, "saga_completed"));
        // a command that writes says why it cannot
        auto resume = run_at(s, store, {"resume"}, prefix);
        INFO(resume.output);
        CHECK(resume.code == 1);
        CHECK(contains(resume.output, store));
        if (!prefix.empty()) CHECK(contains(resume.output, "read-only"));
    };

    SECTION("every file 0444, in a 0555 directory") {
        for (const auto& e : fs::directory_iterator(dir)) fs::permissions(e.path(), read_only);
        fs::permissions(dir, read_only_dir);
        read_everything();
        fs::permissions(dir, fs::perms::owner_all);
        CHECK(snapshot(dir) == before);
    }
    SECTION("every file 0444, in a directory that can be written") {
        for (const auto& e : fs::directory_iterator(dir)) fs::permissions(e.path(), read_only);
        read_everything();
        // SQLite leaves empty -wal and -shm files beside a file read in WAL mode; the files
        // themselves are unchanged
        auto after = snapshot(dir);
        for (const auto& [name, bytes] : before) CHECK(after[name] == bytes);
    }
    for (const auto& e : fs::directory_iterator(dir))
        fs::permissions(e.path(), fs::perms::owner_all);
}

TEST_CASE("a damaged store is refused by list, check and resume, and check reads every history",
          "[examples][campaign_publishing][integrity]") {
    scratch s("damaged");
    REQUIRE(run(s, {"setup", "--campaigns", "3"}).code == 0);
    REQUIRE(run(s, {"publish", "c-1001"}).code == 0);
    REQUIRE(run(s, {"check"}).code == 0);
    const fs::path store = s.store();

    SECTION("a damaged page of the journal: every command refuses the store on open") {
        std::int64_t page = 0;
        {
            SQLite::Database db(store.string(), SQLite::OPEN_READONLY);
            SQLite::Statement q(db,
                                "SELECT pageno FROM dbstat WHERE name = 'journal' AND "
                                "pagetype = 'leaf' ORDER BY pageno LIMIT 1");
            REQUIRE(q.executeStep());
            page = q.getColumn(0).getInt64();
        }
        damage_page(store, page);
        for (const auto& command : std::vector<std::vector<std::string>>{
                 {"list"}, {"check"}, {"resume"}, {"status", "c-1001"}}) {
            auto r = run(s, command);
            INFO(command.front() << "\n" << r.output);
            CHECK(r.code == 1);
            CHECK(contains(r.output, store.string()));
            CHECK(contains(r.output, "damaged"));
            CHECK(contains(r.output, "backup"));
        }
    }
    SECTION("a damaged journal record (its page is sound): check reports it") {
        // find a record's events whose text is in the file once, and break their JSON
        const std::string file = bytes_of(store);
        std::string victim;
        {
            SQLite::Database db(store.string(), SQLite::OPEN_READONLY);
            SQLite::Statement q(db,
                                "SELECT events FROM journal WHERE saga_id = 'publish-c-1001-1' "
                                "AND length(events) > 12");
            while (victim.empty() && q.executeStep()) {
                const std::string detail = q.getColumn(0).getString();
                const auto at = file.find(detail);
                if (at != std::string::npos && file.find(detail, at + 1) == std::string::npos)
                    victim = detail;
            }
        }
        REQUIRE_FALSE(victim.empty());
        {
            std::fstream f(store, std::ios::in | std::ios::out | std::ios::binary);
            f.seekp(static_cast<std::streamoff>(file.find(victim)));
            f.put('\xff');
        }
        auto list = run(s, {"list"});
        INFO(list.output);
        CHECK(list.code == 0);  // quick_check passes: the b-tree is intact
        auto check = run(s, {"check"});
        INFO(check.output);
        CHECK(check.code == 1);
        CHECK(contains(check.output, "the history of publish-c-1001-1 cannot be read"));
    }
}
