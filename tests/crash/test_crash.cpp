// The crash test: crash_driver (a real process running trip sagas on the SQLite store against
// services with their own durable state) is killed with SIGKILL at random moments and started
// again, many times; then the last run finishes, and the saga store and the services' database
// must show that nothing was lost, nothing applied twice and nothing left behind.
//
// Environment overrides: SAGA_CRASH_SEED (default 20260101), SAGA_CRASH_SAGAS (200),
// SAGA_CRASH_KILLS (25), SAGA_CRASH_START_INTERVAL_MS (50: the driver's pace of new starts; 0
// starts them all at once, which overloads the services and makes many commands time out),
// SAGA_CRASH_KEEP=1 keeps the work directory.
#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
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

#include <saga/sqlite/sqlite_journal_store.hpp>

#include "crash_model.hpp"

#ifndef SAGA_CRASH_DRIVER
#error "SAGA_CRASH_DRIVER must name the crash_driver executable"
#endif

extern char** environ;

namespace {

using namespace std::chrono_literals;
namespace crash = saga::crash;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    return std::stoull(v);
}

/// A running crash_driver; killed (SIGKILL) and reaped if still running when destroyed.
class driver_process {
public:
    driver_process(const std::vector<std::string>& args, const fs::path& log) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                         0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0)
            throw std::runtime_error(fmt::format("posix_spawn {} failed: {}", args[0], rc));
    }
    ~driver_process() {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }
    driver_process(const driver_process&) = delete;
    driver_process& operator=(const driver_process&) = delete;

    /// Waits until the process exits or `until`; its wait status, or nullopt if still running.
    std::optional<int> wait_until(steady::time_point until) {
        for (;;) {
            if (status_) return status_;
            int st = 0;
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                status_ = st;
                return status_;
            }
            if (steady::now() >= until) return std::nullopt;
            std::this_thread::sleep_for(2ms);
        }
    }
    /// SIGKILL, and reap.
    void kill() {
        if (status_) return;
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        status_ = st;
    }

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

std::string describe(int status) {
    if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
    return fmt::format("wait status {}", status);
}

/// The driver exits 0 when every saga is terminal, 3 when every saga is settled but some are
/// not terminal (failed, compensation_failed); anything else is a failure of the driver itself.
bool settled(int status) {
    return WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3);
}

std::string tail(const fs::path& p, std::size_t lines) {
    std::ifstream in(p);
    std::vector<std::string> all;
    for (std::string l; std::getline(in, l);) all.push_back(l);
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
        out += all[i] + "\n";
    return out;
}

std::string history_of(saga::journal_store& store, const std::string& id) {
    auto records = store.journal(id);
    if (!records) return "  (journal unavailable: " + records.error().what() + ")\n";
    std::string out;
    for (const auto& r : records.value()) {
        out += fmt::format("  v{} (released through {}, {} out):", r.version, r.released_through,
                           r.output.size());
        for (const auto& e : r.events)
            out += fmt::format(" {} {} #{}", saga::to_string(e.type), e.unit, e.attempt);
        out += "\n";
    }
    return out;
}

/// One row of a service's effects table.
struct effect {
    std::string service;
    std::string key;
    std::string saga_id;
    std::string kind;
    long long applications = 0;
    long long repeats = 0;
    long long seq = 0;
};

struct held_row {
    std::string service;
    std::string resource;
    std::string saga_id;
    std::string key;
};

}  // namespace

TEST_CASE("sagas survive repeated SIGKILLs of the process running them", "[crash]") {
    const std::uint64_t seed = env_number("SAGA_CRASH_SEED", 20260101);
    const std::size_t sagas = env_number("SAGA_CRASH_SAGAS", 200);
    const std::size_t kills_wanted = env_number("SAGA_CRASH_KILLS", 25);
    const std::uint64_t start_interval = env_number("SAGA_CRASH_START_INTERVAL_MS", 50);
    const bool keep = env_number("SAGA_CRASH_KEEP", 0) != 0;

    const fs::path dir =
        fs::temp_directory_path() /
        fmt::format("saga-crash-{}-{}", ::getpid(), steady::now().time_since_epoch().count());
    fs::create_directories(dir);
    const fs::path store_path = dir / "saga.db";
    const fs::path services_path = dir / "services.db";
    const fs::path log = dir / "driver.log";
    const std::vector<std::string> args{SAGA_CRASH_DRIVER,
                                        "--store",
                                        store_path.string(),
                                        "--services",
                                        services_path.string(),
                                        "--sagas",
                                        std::to_string(sagas),
                                        "--seed",
                                        std::to_string(seed),
                                        "--start-interval-ms",
                                        std::to_string(start_interval)};
    INFO("seed " << seed << ", work directory " << dir.string() << " (driver log: driver.log)");

    // ---- kill it again and again ------------------------------------------------------------
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> delay_ms(50, 600);
    const auto begin = steady::now();
    const auto deadline = begin + 120s;
    std::size_t kills = 0, runs = 0, finished_early = 0;
    while (kills < kills_wanted) {
        REQUIRE(steady::now() < deadline);
        driver_process p(args, log);
        ++runs;
        const auto delay = std::chrono::milliseconds{delay_ms(rng)};
        if (auto st = p.wait_until(steady::now() + delay)) {
            // It finished on its own before the kill: every saga is settled already (exit code
            // 3: some of them not terminal; the checks below say which).
            INFO("driver log:\n" << tail(log, 30));
            REQUIRE(settled(*st));
            ++finished_early;
            break;
        }
        p.kill();
        ++kills;
    }
    const auto kill_phase = steady::now() - begin;

    // ---- the last run finishes --------------------------------------------------------------
    std::optional<int> last;
    {
        driver_process p(args, log);
        ++runs;
        last = p.wait_until(deadline);
        if (!last) p.kill();
    }
    const auto total = steady::now() - begin;
    INFO("driver log:\n" << tail(log, 30));
    // A run that never finishes (a saga stuck) is reported, and the checks below show which
    // sagas are stuck and their histories.
    CHECK(last.has_value());  // finished within 120 s of restarts
    if (last) {
        REQUIRE(settled(*last));
        CHECK(describe(*last) == "exit code 0");
    }
    const std::string summary = [&] {
        const auto t = tail(log, 1);
        return t.empty() ? std::string() : t.substr(0, t.size() - 1);
    }();
    fmt::print(
        "crash test: seed {}, {} sagas, {} kills in {} runs ({} finished before its kill), kill "
        "phase {} ms, "
        "total {} ms\n  last run: {}\n",
        seed, sagas, kills, runs, finished_early,
        std::chrono::duration_cast<std::chrono::milliseconds>(kill_phase).count(),
        std::chrono::duration_cast<std::chrono::milliseconds>(total).count(), summary);
    CHECK(kills >= 20);

    // ---- what the saga store says -----------------------------------------------------------
    std::vector<std::string> problems;
    auto opened = saga::sqlite::sqlite_journal_store::open({.path = store_path.string()});
    REQUIRE(opened);
    auto store = opened.value();
    auto records = store->list({.limit = sagas + 1000});
    REQUIRE(records);
    std::map<std::string, saga::saga_status> status;
    for (const auto& r : records.value()) status[r.id] = r.status;
    std::set<std::string> expected;
    for (std::size_t i = 0; i < sagas; ++i) expected.insert(crash::saga_id(seed, i));
    for (const auto& id : expected)
        if (!status.contains(id))
            problems.push_back(fmt::format("{}: lost (not in the store)", id));
    for (const auto& [id, s] : status) {
        if (!expected.contains(id))
            problems.push_back(fmt::format("{}: unexpected saga in the store", id));
        if (s != saga::saga_status::completed && s != saga::saga_status::compensated)
            problems.push_back(fmt::format("{}: ended {}", id, saga::to_string(s)));
    }
    std::size_t completed = 0, compensated = 0, planned_failures = 0, unplanned_compensations = 0;
    for (const auto& [id, s] : status) {
        const bool planned = crash::permanent_failure_step(seed, id).has_value();
        planned_failures += planned ? 1 : 0;
        if (s == saga::saga_status::completed) {
            ++completed;
            if (planned)
                problems.push_back(
                    fmt::format("{}: completed although step {} always fails permanently", id,
                                *crash::permanent_failure_step(seed, id)));
        } else if (s == saga::saga_status::compensated) {
            ++compensated;
            if (!planned) ++unplanned_compensations;  // a step ran out of retries: legitimate
        }
    }
    // instances with something still due (their wake-up time), at any time from now on
    auto leftover_timers = store->due(saga::time_point::max(), 100000);
    REQUIRE(leftover_timers);

    // ---- what the services say --------------------------------------------------------------
    std::vector<effect> effects;
    std::vector<held_row> held;
    {
        SQLite::Database db(services_path.string(), SQLite::OPEN_READONLY);
        for (const auto& s : crash::services) {
            SQLite::Statement q(
                db,
                fmt::format("SELECT key, saga_id, kind, applications, repeats, seq FROM {}_effects",
                            s.endpoint));
            while (q.executeStep())
                effects.push_back({std::string(s.endpoint), q.getColumn(0).getString(),
                                   q.getColumn(1).getString(), q.getColumn(2).getString(),
                                   q.getColumn(3).getInt64(), q.getColumn(4).getInt64(),
                                   q.getColumn(5).getInt64()});
            SQLite::Statement h(
                db, fmt::format("SELECT resource, saga_id, key FROM {}_held", s.endpoint));
            while (h.executeStep())
                held.push_back({std::string(s.endpoint), h.getColumn(0).getString(),
                                h.getColumn(1).getString(), h.getColumn(2).getString()});
        }
    }
    std::map<std::pair<std::string, std::string>, const effect*> by_key;  // (service, key)
    for (const auto& e : effects) by_key[{e.service, e.key}] = &e;
    auto find = [&](std::string_view service, const std::string& key) -> const effect* {
        auto it = by_key.find({std::string(service), key});
        return it == by_key.end() ? nullptr : it->second;
    };

    // No effect applied twice for one idempotency key.
    long long repeats = 0;
    std::size_t tombstones = 0, late_forwards_refused = 0, compensations = 0,
                compensations_of_refused = 0;
    for (const auto& e : effects) {
        repeats += e.repeats;
        if (e.applications != 1)
            problems.push_back(fmt::format("{}: {} {} applied {} times ({})", e.saga_id, e.service,
                                           e.key, e.applications, e.kind));
        if (!status.contains(e.saga_id))
            problems.push_back(fmt::format("{}: {} has an effect {} of an unknown saga", e.saga_id,
                                           e.service, e.key));
        if (e.kind == "tombstone") {
            ++tombstones;
            if (e.repeats > 0) ++late_forwards_refused;
        }
        // Compensations only for steps that were tried: each has its forward effect (applied or
        // refused) or the tombstone it left, and belongs to a compensated saga.
        if (e.kind == "compensation") {
            ++compensations;
            const std::string suffix = "/compensate";
            const std::string forward = e.key.ends_with(suffix)
                                            ? e.key.substr(0, e.key.size() - suffix.size())
                                            : std::string();
            const effect* f = forward.empty() ? nullptr : find(e.service, forward);
            if (!f)
                problems.push_back(fmt::format(
                    "{}: compensation {} on {} without its forward effect or a tombstone",
                    e.saga_id, e.key, e.service));
            else if (f->kind == "refused")
                ++compensations_of_refused;  // an uncertain attempt, then a refusal: compensated
                                             // anyway
            if (status.contains(e.saga_id) && status[e.saga_id] != saga::saga_status::compensated)
                problems.push_back(fmt::format("{}: compensation {} on {} in a saga that ended {}",
                                               e.saga_id, e.key, e.service,
                                               saga::to_string(status[e.saga_id])));
        }
    }

    // Held resources belong exactly to completed sagas: one per service, from that saga's step.
    std::map<std::string, std::set<std::string>> held_by;  // saga -> services holding for it
    for (const auto& h : held) {
        held_by[h.saga_id].insert(h.service);
        auto s = status.find(h.saga_id);
        if (s == status.end() || s->second != saga::saga_status::completed)
            problems.push_back(fmt::format(
                "{}: orphan: {} still holds {} for a saga that ended {}", h.saga_id, h.service,
                h.resource, s == status.end() ? "unknown" : saga::to_string(s->second)));
        const effect* f = find(h.service, h.key);
        if (!f || f->kind != "forward")
            problems.push_back(fmt::format("{}: {} holds {} without an applied forward effect",
                                           h.saga_id, h.service, h.resource));
    }
    for (const auto& [id, s] : status) {
        if (s == saga::saga_status::completed) {
            for (const auto& svc : crash::services) {
                const effect* f = find(svc.endpoint, id + "/" + std::string(svc.step));
                if (!f || f->kind != "forward")
                    problems.push_back(fmt::format("{}: completed but {} has no applied {}", id,
                                                   svc.endpoint, svc.forward));
                if (!held_by[id].contains(std::string(svc.endpoint)))
                    problems.push_back(
                        fmt::format("{}: completed but {} holds nothing for it", id, svc.endpoint));
            }
        } else if (s == saga::saga_status::compensated) {
            // The pivot was never applied, and the undos ran newest first: the bookings (done
            // after the credit reservation) were cancelled before the credit was released.
            if (const effect* c = find("payments", id + "/charge"); c && c->kind == "forward")
                problems.push_back(
                    fmt::format("{}: compensated but its pivot (charge) was applied", id));
            const effect* release = find("billing", id + "/reserve_credit/compensate");
            for (const char* booking : {"flights/book_flight", "hotels/book_hotel"}) {
                const std::string b(booking);
                const auto slash = b.find('/');
                const effect* cancel =
                    find(b.substr(0, slash), id + "/" + b.substr(slash + 1) + "/compensate");
                if (cancel && release && cancel->seq > release->seq)
                    problems.push_back(
                        fmt::format("{}: {} was compensated after billing (not newest first)", id,
                                    b.substr(0, slash)));
            }
        }
    }

    fmt::print(
        "  outcome: {} completed, {} compensated ({} planned permanent failures, {} after retries "
        "ran out); "
        "{} effects, {} compensations ({} of refused commands), {} tombstones ({} late commands "
        "refused), "
        "{} repeats answered from the record, {} held resources, {} timers left\n",
        completed, compensated, planned_failures, unplanned_compensations, effects.size(),
        compensations, compensations_of_refused, tombstones, late_forwards_refused, repeats,
        held.size(), leftover_timers.value().size());

    if (!problems.empty()) {
        std::string report = fmt::format("{} problems:\n", problems.size());
        std::set<std::string> shown;
        for (std::size_t i = 0; i < problems.size() && i < 30; ++i)
            report += "  " + problems[i] + "\n";
        for (const auto& p : problems) {
            const auto id = p.substr(0, p.find(':'));
            if (shown.size() >= 3 || !status.contains(id) || !shown.insert(id).second) continue;
            report += fmt::format("history of {}:\n{}", id, history_of(*store, id));
        }
        FAIL_CHECK(report);
    }
    const bool ok = problems.empty() && kills >= 20 && last && describe(*last) == "exit code 0";
    store.reset();
    if (ok && !keep) {
        std::error_code ec;
        fs::remove_all(dir, ec);
    } else {
        fmt::print("  work directory kept: {}\n", dir.string());
    }
}
