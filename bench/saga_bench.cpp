// saga_bench: how fast the engine and its store run the campaign-publishing saga.
//
// The workload: 6 sequential steps, every transition committed to the store before its effects
// leave the process (what the engine always does):
//   1 validate (local; undone locally)       2 reserve_budget (budget; undone by release)
//   3 ensure_feed (feeds)                    4 submit, a parallel group of 4 branches: google,
//   5 activate (campaigns)                     instagram, tiktok, snapchat (each undone by
//   withdraw) 6 announce (local)
// Variant A completes; in variant B the participant refuses step 5 permanently, so steps 4, 2 and
// 1 are compensated (newest first) and the saga ends `compensated`.
//
// Participants are `saga::participant`s on the in-memory transport that answer at once, running
// on the engine's executor: the benchmark measures the engine and the store, not a network.
// The engine runs on core v2 (it is given a `saga::journal_store`) on real threads
// (`engine.run()`, `--workers`) with `saga::system_clock`.
//
// Scenarios, per store (memory: memory_journal_store; sqlite: sqlite_journal_store at
// synchronous=FULL on a fresh temp file) and variant:
//   sequential  one saga at a time: start, then wait for it, then the next -> latency
//   concurrent  N sagas, `--inflight` of them outstanding at any time -> sagas/s, transitions/s
// Each scenario runs `--runs` times on a fresh engine and store (after a warm-up on that same
// engine); the table shows the median of the runs, with the SQLite store's own counts per saga
// (row writes, transactions, syncs: sqlite_journal_store::stats()). Committed transitions are
// the journal records the store counts (one per transition); no observer is attached, so the
// engine does not build history entries it would not otherwise build. Two more scenarios, run only
// when named:
//   waiting     `--waiting` sagas that each wait for a signal -> RSS growth per waiting instance
//   reopen      a SQLite file with `--waiting` such sagas: open the store, then the engine until
//               its recovery is done -> seconds
// See bench/README.md.

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/journal_store.hpp>
#include <saga/saga.hpp>

#if defined(SAGA_BENCH_SQLITE)
#include <saga/sqlite/sqlite_journal_store.hpp>
#endif

#include "campaign_saga.hpp"

#ifndef SAGA_BENCH_BUILD_TYPE
#define SAGA_BENCH_BUILD_TYPE ""
#endif

namespace {

using steady = std::chrono::steady_clock;
using json = nlohmann::json;

}  // namespace

// ---- the saga (campaign_saga.hpp) and the waiting one ---------------------------------------

namespace {

using bench::campaign;
using bench::id_of;
using bench::platforms;
using bench::publish_campaign;
using bench::saga_name;

constexpr std::string_view waiting_saga_name = "await_approval";

/// The waiting and reopen scenarios' saga: a local step, then a wait for the signal `approved`
/// (never sent: the instances stay `waiting`), then a local step.
saga::result<saga::definition<campaign>> await_approval() {
    saga::definition_builder<campaign> b(std::string(waiting_saga_name), 1);
    b.local("validate",
            [](campaign& c) -> saga::result<void> {
                if (c.budget <= 0) return saga::permanent_error("budget must be positive");
                c.validated = true;
                return saga::success();
            })
        .wait("approval", "approved")
        .local("announce", [](campaign& c) { c.announced = true; });
    return std::move(b).build();
}

// ---- options --------------------------------------------------------------------------------

enum class store_kind { memory, sqlite };
enum class scenario_kind { sequential, concurrent, waiting, reopen };
enum class variant_kind { a, b };

struct options {
    std::size_t runs = 3;
    std::size_t sagas = 2000;  // concurrent scenario; the sequential one runs sagas / 10
    std::size_t inflight = 64;
    std::size_t workers = 2;
    std::size_t starters = 8;  // threads calling start() in the concurrent scenario
    std::vector<store_kind> stores{store_kind::memory, store_kind::sqlite};
    std::vector<scenario_kind> scenarios{scenario_kind::sequential, scenario_kind::concurrent};
    std::vector<variant_kind> variants{variant_kind::a, variant_kind::b};
    bool quick = false;
    /// warm-up sagas per run (sequential, concurrent); unset: derived from the run's size
    std::optional<std::size_t> warmup;
    /// waiting and reopen scenarios: instances waiting for a signal
    std::size_t waiting = 10'000;
    /// waiting scenario: stop starting sagas once the process's RSS passes this
    std::size_t rss_limit_mb = 8192;
};

constexpr std::string_view usage_text =
    R"(usage: saga_bench [--runs N] [--sagas N] [--inflight N] [--workers N] [--starters N]
                  [--store memory|sqlite|all] [--variant A|B|all] [--warmup N] [--quick]
                  [--scenario sequential|concurrent|all|waiting|reopen] [--waiting N]
                  [--rss-limit-mb N]

  --runs N        repeat every scenario N times, report the median run (default 3)
  --sagas N       sagas of the concurrent scenario (default 2000); the sequential scenario runs
                  N/10 of them (at least 1)
  --inflight N    sagas outstanding at once in the concurrent scenario (default 64)
  --workers N     engine worker threads (default 2)
  --starters N    client threads calling start() in the concurrent, waiting and reopen
                  scenarios (default 8; at most --inflight)
  --store S       memory, sqlite (synchronous=FULL, a temp file per run) or all (default)
  --scenario S    sequential, concurrent, all (default: both), waiting or reopen; a
                  comma-separated list runs several (e.g. sequential,waiting)
  --variant V     A (completes), B (step 5 refused, compensated) or all (default); for the
                  sequential and concurrent scenarios
  --warmup N      warm-up sagas before every measured run (sequential and concurrent); default:
                  derived from the run's size (sequential N/4 in 1..50; concurrent N/5 in
                  2*inflight..400)
  --waiting N     waiting and reopen scenarios: sagas that each wait for a signal (default
                  10000; 2000 with --quick)
  --rss-limit-mb N  waiting scenario: stop starting sagas when the process's RSS passes N MB
                  and report what was reached (default 8192)
  --quick         a smoke run: 1 run, 300 sagas, smaller warm-up (explicit options still win)

  waiting: start --waiting sagas (definition await_approval: a local step, then a wait for the
           signal 'approved') after a warm-up of --waiting/20 (100..2000) of them, wait until
           all are waiting, and report the growth of VmRSS (and RssAnon) from /proc/self/status
           per waiting instance; per store.
  reopen:  start --waiting such sagas on a SQLite file, close the engine and the store, then
           per run: open the store (default options: quick_check on; and once without it),
           then make an engine and run its recovery (engine.run_until_idle(), which returns
           when every recovered instance has been loaded): the seconds of each; SQLite only.
)";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::size_t parse_count(std::string_view flag, std::string_view text, std::size_t min,
                        std::size_t max) {
    std::size_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end)
        throw usage_error(fmt::format("{} needs a whole number, not '{}'", flag, text));
    if (value < min || value > max)
        throw usage_error(
            fmt::format("{} must be between {} and {}, not {}", flag, min, max, value));
    return value;
}

options parse_options(int argc, char** argv) {
    options o;
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    // --quick sets defaults first; explicit options override it wherever they appear
    bool waiting_given = false;
    if (std::find(args.begin(), args.end(), "--quick") != args.end()) {
        o.quick = true;
        o.runs = 1;
        o.sagas = 300;
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view a = args[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= args.size()) throw usage_error(fmt::format("{} needs a value", a));
            return args[++i];
        };
        if (a == "--quick") {
            continue;
        } else if (a == "--runs") {
            o.runs = parse_count(a, value(), 1, 1000);
        } else if (a == "--sagas") {
            o.sagas = parse_count(a, value(), 1, 10'000'000);
        } else if (a == "--inflight") {
            o.inflight = parse_count(a, value(), 1, 100'000);
        } else if (a == "--workers") {
            o.workers = parse_count(a, value(), 1, 256);
        } else if (a == "--starters") {
            o.starters = parse_count(a, value(), 1, 1024);
        } else if (a == "--store") {
            const auto v = value();
            if (v == "memory") {
                o.stores = {store_kind::memory};
            } else if (v == "sqlite") {
                o.stores = {store_kind::sqlite};
            } else if (v == "all") {
                o.stores = {store_kind::memory, store_kind::sqlite};
            } else {
                throw usage_error(fmt::format("--store takes memory, sqlite or all, not '{}'", v));
            }
        } else if (a == "--scenario") {
            const auto list = value();
            o.scenarios.clear();
            std::size_t from = 0;
            for (;;) {
                const auto comma = list.find(',', from);
                const auto v = list.substr(
                    from, comma == std::string_view::npos ? std::string_view::npos : comma - from);
                auto add = [&](scenario_kind k) {
                    if (std::find(o.scenarios.begin(), o.scenarios.end(), k) == o.scenarios.end())
                        o.scenarios.push_back(k);
                };
                if (v == "sequential") {
                    add(scenario_kind::sequential);
                } else if (v == "concurrent") {
                    add(scenario_kind::concurrent);
                } else if (v == "all") {
                    add(scenario_kind::sequential);
                    add(scenario_kind::concurrent);
                } else if (v == "waiting") {
                    add(scenario_kind::waiting);
                } else if (v == "reopen") {
                    add(scenario_kind::reopen);
                } else {
                    throw usage_error(fmt::format(
                        "--scenario takes sequential, concurrent, all, waiting or reopen (or a "
                        "comma-separated list of them), not '{}'",
                        v));
                }
                if (comma == std::string_view::npos) break;
                from = comma + 1;
            }
        } else if (a == "--warmup") {
            o.warmup = parse_count(a, value(), 0, 10'000'000);
        } else if (a == "--waiting") {
            o.waiting = parse_count(a, value(), 1, 100'000'000);
            waiting_given = true;
        } else if (a == "--rss-limit-mb") {
            o.rss_limit_mb = parse_count(a, value(), 1, 100'000'000);
        } else if (a == "--variant") {
            const auto v = value();
            if (v == "A" || v == "a") {
                o.variants = {variant_kind::a};
            } else if (v == "B" || v == "b") {
                o.variants = {variant_kind::b};
            } else if (v == "all") {
                o.variants = {variant_kind::a, variant_kind::b};
            } else {
                throw usage_error(fmt::format("--variant takes A, B or all, not '{}'", v));
            }
        } else {
            throw usage_error(fmt::format("unknown argument '{}'", a));
        }
    }
    o.starters = std::min(o.starters, o.inflight);
    if (o.quick && !waiting_given) o.waiting = 2000;
#if !defined(SAGA_BENCH_SQLITE)
    if (std::find(o.stores.begin(), o.stores.end(), store_kind::sqlite) != o.stores.end()) {
        if (o.stores.size() == 1)
            throw usage_error(
                "this saga_bench was built without saga::sqlite: --store sqlite is not available");
        std::erase(o.stores, store_kind::sqlite);
        fmt::print(stderr,
                   "saga_bench: built without saga::sqlite; running the memory store only\n");
    }
#endif
    return o;
}

std::size_t sequential_count(const options& o) {
    return std::max<std::size_t>(1, o.sagas / 10);
}

// ---- one engine with its store, transport and participants ----------------------------------

/// A temp file path that is not taken, and the removal of the file with its WAL and SHM.
std::filesystem::path fresh_db_path() {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    const auto dir = std::filesystem::temp_directory_path();
    for (;;) {
        auto p = dir / fmt::format("saga_bench_{}_{:08x}_{}.db", static_cast<long>(::getpid()),
                                   rd(), counter.fetch_add(1));
        if (!std::filesystem::exists(p)) return p;
    }
}

void remove_db(const std::filesystem::path& p) {
    // SAGA_BENCH_KEEP_DB=1 keeps the files (to inspect the rows a saga writes; see README)
    if (const char* keep = std::getenv("SAGA_BENCH_KEEP_DB"); keep && *keep && *keep != '0') {
        std::fprintf(stderr, "kept %s\n", p.c_str());
        return;
    }
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"})
        std::filesystem::remove(p.string() + suffix, ec);
}

/// Removes the SQLite file (with its WAL and SHM) when it goes, also when a constructor throws.
struct temp_db {
    std::filesystem::path path;
    temp_db() = default;
    temp_db(const temp_db&) = delete;
    temp_db& operator=(const temp_db&) = delete;
    ~temp_db() {
        if (!path.empty()) remove_db(path);
    }
};

struct bench_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Registers both definitions of the benchmark.
void add_definitions(saga::engine& eng) {
    auto add = [&](const saga::result<saga::definition<campaign>>& def) {
        if (!def) throw bench_error(fmt::format("invalid definition: {}", def.error().what()));
        if (auto r = eng.add(def.value()); !r)
            throw bench_error(fmt::format("cannot register the definition: {}", r.error().what()));
    };
    add(publish_campaign());
    add(await_approval());
}

/// What the SQLite store counted over a measured part (see sqlite_journal_store::stats).
struct store_delta {
    std::uint64_t row_writes = 0;
    std::uint64_t transactions = 0;
    std::uint64_t syncs = 0;
};

#if defined(SAGA_BENCH_SQLITE)
using store_counts = saga::sqlite::journal_store_stats;
std::optional<store_delta> delta_of(const std::optional<store_counts>& before,
                                    const std::optional<store_counts>& after) {
    if (!before || !after) return std::nullopt;
    return store_delta{after->row_writes - before->row_writes,
                       after->transactions - before->transactions, after->syncs - before->syncs};
}
#else
struct store_counts {};
std::optional<store_delta> delta_of(const std::optional<store_counts>&,
                                    const std::optional<store_counts>&) {
    return std::nullopt;
}
#endif

class environment {
public:
    /// With `kept_file`, the SQLite store is that file, and it stays when the environment goes;
    /// else a fresh temp file, removed at the end.
    environment(store_kind kind, std::size_t workers, const std::filesystem::path& kept_file = {}) {
        clock_ = std::make_shared<saga::system_clock>();
        if (kind == store_kind::memory) {
            memory_ = std::make_shared<saga::inmemory::memory_journal_store>();
            store_ = memory_;
        } else {
#if defined(SAGA_BENCH_SQLITE)
            if (kept_file.empty()) db_.path = fresh_db_path();
            const auto& file = kept_file.empty() ? db_.path : kept_file;
            auto s = saga::sqlite::sqlite_journal_store::open(saga::sqlite::journal_store_options{
                .path = file.string(), .sync = saga::sqlite::synchronous::full});
            if (!s)
                throw bench_error(
                    fmt::format("cannot open the SQLite store: {}", s.error().what()));
            sqlite_ = s.value();
            store_ = std::move(s).value();
#else
            throw bench_error("built without saga::sqlite");
#endif
        }
        transport_ = std::make_shared<saga::inmemory::memory_transport>(clock_);
        // a journal store: the engine runs on core v2
        engine_ = std::make_unique<saga::engine>(
            store_, transport_, saga::engine_options{.workers = workers, .clock = clock_});
        add_definitions(*engine_);
        add_participants();
        runner_ = std::thread([this] {
            if (auto r = engine_->run(); !r)
                fmt::print(stderr, "saga_bench: engine.run failed: {}\n", r.error().what());
        });
    }

    ~environment() {
        for (auto& p : participants_) p->stop();
        engine_->stop();
        if (runner_.joinable()) runner_.join();
        engine_.reset();
        participants_.clear();
        transport_.reset();
        memory_.reset();
#if defined(SAGA_BENCH_SQLITE)
        sqlite_.reset();
#endif
        store_
            .reset();  // the SQLite store drains its queue and closes the file here; db_ removes it
    }
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;

    saga::engine& engine() {
        return *engine_;
    }
    saga::journal_store& store() {
        return *store_;
    }
    /// Journal records committed since the environment was made, as the store counts them: one
    /// per committed transition (`memory_journal_store::commits`, `journal_store_stats::commits`).
    [[nodiscard]] std::uint64_t committed() const {
#if defined(SAGA_BENCH_SQLITE)
        if (sqlite_) return sqlite_->stats().commits;
#endif
        return memory_ ? memory_->commits() : 0;
    }
    /// The SQLite store's own counters (none for the memory store).
    [[nodiscard]] std::optional<store_counts> store_stats() const {
#if defined(SAGA_BENCH_SQLITE)
        if (sqlite_) return sqlite_->stats();
#endif
        return std::nullopt;
    }

    /// What happened below the engine since the environment was made (for the progress lines).
    [[nodiscard]] std::string diagnostics() const {
        const auto t = transport_->stats();
        auto out = fmt::format("transport: {} sent, {} delivered, {} redelivered, {} nacked",
                               t.sent, t.delivered, t.redelivered, t.nacked);
#if defined(SAGA_BENCH_SQLITE)
        if (sqlite_) {
            const auto st = sqlite_->stats();
            out += fmt::format(
                "; sqlite: {} commits in {} transactions ({:.1f} per transaction, largest {})",
                st.commits, st.batches,
                st.batches ? static_cast<double>(st.commits) / static_cast<double>(st.batches)
                           : 0.0,
                st.largest_batch);
        }
#endif
        if (memory_) out += fmt::format("; memory store: {} commits", memory_->commits());
        return out;
    }

private:
    saga::participant& participant(const std::string& endpoint) {
        participants_.push_back(std::make_unique<saga::participant>(transport_, endpoint));
        return *participants_.back();
    }

    void add_participants() {
        using saga::participant_reply;
        participant("budget")
            .on("reserve",
                [](const saga::envelope& e) {
                    return participant_reply::success({{"id", "budget:" + e.idempotency_key}});
                })
            .on("release", [](const saga::envelope&) { return participant_reply::success(); });
        participant("feeds").on("ensure", [](const saga::envelope& e) {
            return participant_reply::success(
                {{"id", "feed:" + e.payload.value("campaign", std::string())}});
        });
        for (const auto platform : platforms) {
            const std::string name(platform);
            participant(name)
                .on("submit",
                    [name](const saga::envelope& e) {
                        return participant_reply::success({{"id", name + ":" + e.idempotency_key}});
                    })
                .on("withdraw", [](const saga::envelope&) { return participant_reply::success(); });
        }
        participant("campaigns").on("activate", [](const saga::envelope& e) {
            if (e.payload.value("refuse", false))
                return participant_reply::permanent("activation refused");
            return participant_reply::success({{"id", "live:" + e.idempotency_key}});
        });
        for (auto& p : participants_)
            if (auto r = p->start(engine_->get_executor()); !r)
                throw bench_error(fmt::format("cannot start participant '{}': {}", p->endpoint(),
                                              r.error().what()));
    }

    temp_db db_;  // first: removed after everything else is gone
    std::shared_ptr<saga::system_clock> clock_;
    std::shared_ptr<saga::journal_store> store_;
    std::shared_ptr<saga::inmemory::memory_journal_store> memory_;
#if defined(SAGA_BENCH_SQLITE)
    std::shared_ptr<saga::sqlite::sqlite_journal_store> sqlite_;
#endif
    std::shared_ptr<saga::inmemory::memory_transport> transport_;
    std::unique_ptr<saga::engine> engine_;
    std::vector<std::unique_ptr<saga::participant>> participants_;
    std::thread runner_;
};

// ---- scenarios --------------------------------------------------------------------------------

campaign make_campaign(std::size_t i, variant_kind v) {
    campaign c;
    c.campaign_id = fmt::format("cmp-{}", i);
    c.budget = 1000 + static_cast<std::int64_t>(i % 97);
    c.refuse_activation = v == variant_kind::b;
    return c;
}

saga::saga_status expected_status(variant_kind v) {
    return v == variant_kind::a ? saga::saga_status::completed : saga::saga_status::compensated;
}

/// The figures of one measured run.
struct run_result {
    std::size_t sagas = 0;
    double seconds = 0;
    std::vector<double> latencies_ms;  // per saga, from just before start() to the wait returning
    std::uint64_t transitions = 0;     // journal records committed (the store's count)
    std::size_t history_entries =
        0;                   // of one saga of the run (every saga of a variant has the same)
    double cpu_seconds = 0;  // user + system time of the whole process while the run lasted
    double sys_seconds = 0;  // of which system time
    std::optional<store_delta> store;  // the SQLite store's counts over the measured part
};

/// System CPU time of this process so far (every thread), in seconds.
double process_sys_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6;
}

/// User + system CPU time of this process so far (every thread), in seconds.
double process_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto secs = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return secs(u.ru_utime) + secs(u.ru_stime);
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    // nearest rank
    const auto rank =
        static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double ms_since(steady::time_point t0) {
    return std::chrono::duration<double, std::milli>(steady::now() - t0).count();
}

/// The history entries of saga `id` (`engine.history`, made from its journal): read after the
/// measured part, once per run.
std::size_t history_size(saga::engine& eng, const std::string& id) {
    if (id.empty()) return 0;
    auto h = eng.history(id);
    if (!h) throw bench_error(fmt::format("history of {} failed: {}", id, h.error().what()));
    return h.value().size();
}

void check_outcome(const saga::result<saga::instance_view>& r, variant_kind v) {
    if (!r) throw bench_error(fmt::format("waiting for a saga failed: {}", r.error().what()));
    if (r.value().status != expected_status(v))
        throw bench_error(fmt::format("saga {} ended {} (expected {}){}", r.value().id,
                                      saga::to_string(r.value().status),
                                      saga::to_string(expected_status(v)),
                                      r.value().error.empty() ? "" : ": " + r.value().error));
}

/// One saga at a time.
run_result run_sequential(environment& env, variant_kind v, std::size_t n,
                          std::size_t first_index) {
    auto& eng = env.engine();
    run_result out;
    out.sagas = n;
    out.latencies_ms.reserve(n);
    const auto t_before = env.committed();
    const auto store_before = env.store_stats();
    std::string last_id;
    const auto cpu0 = process_cpu_seconds();
    const auto sys0 = process_sys_seconds();
    const auto t0 = steady::now();
    for (std::size_t i = 0; i < n; ++i) {
        const auto data = make_campaign(first_index + i, v);
        const auto s0 = steady::now();
        auto id = eng.start(saga_name, data);
        if (!id) throw bench_error(fmt::format("start failed: {}", id.error().what()));
        auto r = eng.wait(id.value());
        out.latencies_ms.push_back(ms_since(s0));
        check_outcome(r, v);
        last_id = std::move(id).value();
    }
    out.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    out.cpu_seconds = process_cpu_seconds() - cpu0;
    out.sys_seconds = process_sys_seconds() - sys0;
    out.transitions = env.committed() - t_before;
    out.store = delta_of(store_before, env.store_stats());
    out.history_entries = history_size(eng, last_id);
    return out;
}

/// How long one concurrent run may take before the benchmark gives up (a saga that never settles).
constexpr std::chrono::seconds run_time_limit{1800};

/// Counts slots and finished sagas with a mutex and a condition variable. (std::counting_semaphore
/// and std::latch spin and sched_yield before they sleep, which takes CPU from the engine's
/// workers on a small machine.)
class counter {
public:
    explicit counter(std::size_t initial) : value_(initial) {}
    /// Waits until the count is positive and takes one.
    void acquire() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return value_ > 0; });
        --value_;
    }
    void release() {
        {
            std::lock_guard lock(mutex_);
            ++value_;
        }
        cv_.notify_one();
    }
    /// Counts one down; wakes `wait_zero` at zero.
    void count_down() {
        bool zero = false;
        {
            std::lock_guard lock(mutex_);
            zero = --value_ == 0;
        }
        if (zero) cv_.notify_all();
    }
    /// Waits until the count is zero, or `limit` has passed (false).
    bool wait_zero(std::chrono::seconds limit) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, limit, [&] { return value_ == 0; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::size_t value_;
};

/// `n` sagas, `inflight` outstanding: `starters` client threads take a slot, start a saga and
/// hand the slot back from the saga's `async_wait` completion.
run_result run_concurrent(environment& env, variant_kind v, std::size_t n, std::size_t inflight,
                          std::size_t starters, std::size_t first_index) {
    auto& eng = env.engine();
    // Shared with the completion handlers, which may still be returning when the last one has
    // counted down; they keep it alive.
    struct shared_state {
        shared_state(std::size_t n, std::size_t inflight)
            : slots(inflight), done(n), started_at(n), latencies_ms(n) {}
        counter slots;
        counter done;
        std::atomic<std::size_t> next{0};
        std::vector<steady::time_point> started_at;
        std::vector<double> latencies_ms;
        std::mutex mutex;
        std::optional<std::string> failure;  // the first failure
        std::string settled_id;              // one saga that settled (for its history)
        void fail(std::string why) {
            std::lock_guard lock(mutex);
            if (!failure) failure = std::move(why);
        }
        void settled(const std::string& id) {
            std::lock_guard lock(mutex);
            if (settled_id.empty()) settled_id = id;
        }
    };
    auto st = std::make_shared<shared_state>(n, inflight);
    const auto t_before = env.committed();
    const auto store_before = env.store_stats();
    const auto cpu0 = process_cpu_seconds();
    const auto sys0 = process_sys_seconds();
    const auto t0 = steady::now();
    auto client = [&eng, st, n, v, first_index] {
        for (;;) {
            st->slots.acquire();
            const std::size_t i = st->next.fetch_add(1);
            if (i >= n) {
                st->slots.release();
                return;
            }
            const auto data = make_campaign(first_index + i, v);
            st->started_at[i] = steady::now();
            auto id = eng.start(saga_name, data);
            if (!id) {
                st->fail(fmt::format("start failed: {}", id.error().what()));
                st->slots.release();
                st->done.count_down();
                continue;
            }
            eng.async_wait(std::move(id).value(), [st, i, v](saga::result<saga::instance_view> r) {
                st->latencies_ms[i] = ms_since(st->started_at[i]);
                try {
                    check_outcome(r, v);
                    st->settled(r.value().id);
                } catch (const std::exception& e) {
                    st->fail(e.what());
                }
                st->slots.release();
                st->done.count_down();
            });
        }
    };
    std::vector<std::thread> clients;
    clients.reserve(starters);
    for (std::size_t k = 0; k < starters; ++k) clients.emplace_back(client);
    if (!st->done.wait_zero(run_time_limit)) {
        // Something is stuck: report it and leave (the clients may be blocked in the engine).
        fmt::print(stderr, "saga_bench: the concurrent scenario did not finish within {} s\n",
                   run_time_limit.count());
        std::_Exit(1);
    }
    const auto seconds = std::chrono::duration<double>(steady::now() - t0).count();
    const auto cpu_seconds = process_cpu_seconds() - cpu0;
    const auto sys_seconds = process_sys_seconds() - sys0;
    const auto store_after = env.store_stats();
    const auto t_after = env.committed();
    for (auto& c : clients) c.join();
    run_result out;
    std::string sample;
    {
        std::lock_guard lock(st->mutex);
        if (st->failure) throw bench_error(*st->failure);
        out.latencies_ms = std::move(st->latencies_ms);
        sample = st->settled_id;
    }
    out.sagas = n;
    out.seconds = seconds;
    out.cpu_seconds = cpu_seconds;
    out.sys_seconds = sys_seconds;
    out.transitions = t_after - t_before;
    out.store = delta_of(store_before, store_after);
    out.history_entries = history_size(eng, sample);
    return out;
}

// ---- reporting --------------------------------------------------------------------------------

struct row {
    store_kind store;
    variant_kind variant;
    scenario_kind scenario;
    std::size_t sagas = 0;
    std::size_t inflight = 0;
    double median_ms = 0;
    double p99_ms = 0;
    double sagas_per_s = 0;
    double transitions_per_s = 0;
    // the SQLite store's counts per saga (medians of the runs); none for the memory store
    std::optional<double> row_writes_per_saga;
    std::optional<double> transactions_per_saga;
    std::optional<double> syncs_per_saga;
};

std::string_view store_name(store_kind k) {
    return k == store_kind::memory ? "memory" : "sqlite";
}
std::string_view durability(store_kind k) {
    return k == store_kind::memory ? "memory (none)" : "sqlite synchronous=FULL";
}
std::string_view variant_name(variant_kind v) {
    return v == variant_kind::a ? "A (completes)" : "B (step 5 refused, compensated)";
}
std::string_view scenario_name(scenario_kind s) {
    switch (s) {
        case scenario_kind::sequential: return "sequential";
        case scenario_kind::concurrent: return "concurrent";
        case scenario_kind::waiting: return "waiting";
        case scenario_kind::reopen: return "reopen";
    }
    return "?";
}

/// The load averages (1, 5, 15 minutes) from /proc/loadavg.
std::string load_average() {
    std::ifstream in("/proc/loadavg");
    double a = 0, b = 0, c = 0;
    if (!(in >> a >> b >> c)) return "unknown";
    return fmt::format("{:.2f} {:.2f} {:.2f}", a, b, c);
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            if (auto pos = line.find(':'); pos != std::string::npos) {
                auto s = line.substr(pos + 1);
                s.erase(0, s.find_first_not_of(' '));
                return s;
            }
        }
    }
    return "unknown CPU";
}

std::string utc_now() {
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

std::string compiler() {
#if defined(__clang__)
    return fmt::format("clang {}", __clang_version__);
#elif defined(__GNUC__)
    return fmt::format("g++ {}", __VERSION__);
#else
    return "unknown compiler";
#endif
}

std::string fmt_ms(double ms) {
    return ms >= 100 ? fmt::format("{:.0f}", ms) : fmt::format("{:.3f}", ms);
}

std::string fmt_rate(double r) {
    // 12345.6 -> "12,346"
    // (built by appending: g++ 12 reports a false -Wrestrict on std::string::insert at -O3)
    const auto digits = fmt::format("{:.0f}", r);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
        out.push_back(digits[i]);
    }
    return out;
}

std::string fmt_per_saga(const std::optional<double>& v) {
    return v ? fmt::format("{:.2f}", *v) : std::string("—");
}

void print_table(const std::vector<row>& rows) {
    if (rows.empty()) return;
    fmt::print(
        "| store | durability | variant | scenario | sagas | in flight | median ms | p99 ms | "
        "sagas/s | transitions/s | row writes/saga | transactions/saga | syncs/saga |\n");
    fmt::print("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (const auto& r : rows)
        fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                   store_name(r.store), durability(r.store), variant_name(r.variant),
                   scenario_name(r.scenario), r.sagas, r.inflight, fmt_ms(r.median_ms),
                   fmt_ms(r.p99_ms), fmt_rate(r.sagas_per_s), fmt_rate(r.transitions_per_s),
                   fmt_per_saga(r.row_writes_per_saga), fmt_per_saga(r.transactions_per_saga),
                   fmt_per_saga(r.syncs_per_saga));
    fmt::print("\n");
}

void print_machine(const options& o, const std::string& load_at_start) {
    const std::string build = SAGA_BENCH_BUILD_TYPE;
    fmt::print(
        "machine: nproc {}, {}; compiler {}; {} build; {} allocator; engine workers {}, {} client "
        "threads; median of {} run{}; load average {} at the start, {} at the end; date {}\n",
        std::thread::hardware_concurrency(), cpu_model(), compiler(),
        build.empty() ? "unknown" : build, SAGA_ALLOCATOR_NAME, o.workers, o.starters, o.runs,
        o.runs == 1 ? "" : "s", load_at_start, load_average(), utc_now());
}

// ---- waiting and reopen -----------------------------------------------------------------------

/// This process's resident set in KiB, from /proc/self/status: `VmRSS` (every resident page:
/// anonymous, file-backed, shared memory) and `RssAnon` (heap, stacks, anonymous maps).
struct rss_kib {
    std::uint64_t total = 0;
    std::uint64_t anon = 0;
};
rss_kib read_rss() {
    std::ifstream in("/proc/self/status");
    std::string line;
    rss_kib out;
    while (std::getline(in, line)) {
        auto field = [&](std::string_view name, std::uint64_t& v) {
            if (line.rfind(name, 0) == 0)
                v = std::strtoull(line.c_str() + name.size(), nullptr, 10);
        };
        field("VmRSS:", out.total);
        field("RssAnon:", out.anon);
    }
    return out;
}

/// The figures of one start_waiting.
struct waiting_result {
    std::size_t started = 0;  // sagas started, each of them waiting at the end
    double seconds = 0;       // to start them all and see each one waiting
    rss_kib before;           // just before the first start
    rss_kib after;            // once every one is waiting
    bool hit_limit = false;   // stopped early: the RSS passed the limit
    std::optional<store_delta> store;
    std::size_t cached = 0;  // instances the engine holds in memory at the end
};

/// Starts `n` sagas of await_approval from `starters` client threads, and waits until each one
/// is waiting for its signal (its transition to `waiting` committed: once every start has
/// returned, until the store has no `running` head left; then each client's last saga is checked
/// to be `waiting`). Stops starting once the RSS passes `rss_limit_kib` (checked every 1,024
/// starts).
waiting_result start_waiting(environment& env, std::size_t n, std::size_t starters,
                             std::size_t first_index, std::uint64_t rss_limit_kib) {
    auto& eng = env.engine();
    waiting_result out;
    const auto store_before = env.store_stats();
    std::vector<std::string> last_ids(starters);  // per client, its last started saga
    std::atomic<std::size_t> next_client{0};
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> started{0};
    std::atomic<bool> stop{false};
    std::atomic<bool> over_limit{false};
    std::mutex failure_mutex;
    std::optional<std::string> failure;
    out.before = read_rss();
    const auto t0 = steady::now();
    auto client = [&] {
        std::string& last_id = last_ids[next_client.fetch_add(1)];
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t i = next.fetch_add(1);
            if (i >= n) return;
            if (i % 1024 == 0 && read_rss().total > rss_limit_kib) {
                over_limit = true;
                stop = true;
                return;
            }
            auto id = eng.start(waiting_saga_name, make_campaign(first_index + i, variant_kind::a));
            if (!id) {
                std::lock_guard lock(failure_mutex);
                if (!failure) failure = fmt::format("start failed: {}", id.error().what());
                stop = true;
                return;
            }
            last_id = std::move(id).value();
            started.fetch_add(1, std::memory_order_relaxed);
        }
    };
    std::vector<std::thread> clients;
    clients.reserve(starters);
    for (std::size_t k = 0; k < starters; ++k) clients.emplace_back(client);
    for (auto& c : clients) c.join();
    if (failure) throw bench_error(*failure);
    out.started = started.load();
    out.hit_limit = over_limit.load();
    // every start has returned (its first record is durable); wait for the records that take
    // the instances on to `waiting`, if any are left to commit
    const auto deadline = steady::now() + run_time_limit;
    for (;;) {
        auto running = env.store().in_status({saga::saga_status::running}, "", 1);
        if (!running)
            throw bench_error(
                fmt::format("cannot list running instances: {}", running.error().what()));
        if (running.value().empty()) break;
        if (steady::now() > deadline)
            throw bench_error(
                fmt::format("saga {} (of {} started) did not reach its wait within {} s",
                            running.value().front(), out.started, run_time_limit.count()));
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    out.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    for (const auto& id : last_ids) {
        if (id.empty()) continue;
        auto h = env.store().head(id);
        if (!h || h.value().status != saga::saga_status::waiting)
            throw bench_error(
                fmt::format("saga {} is {}, not waiting", id,
                            h ? std::string(saga::to_string(h.value().status)) : h.error().what()));
    }
    out.after = read_rss();
    out.store = delta_of(store_before, env.store_stats());
    out.cached = eng.active_instances();
    return out;
}

/// Runs `fn` in a child process and returns its result: every run of the waiting and reopen
/// scenarios starts from a fresh heap, as a new process would (in one process, a run reuses the
/// memory earlier runs freed, and its RSS hardly grows). Called with no other thread running.
template <class Result, class Fn>
Result in_child_process(Fn&& fn) {
    static_assert(std::is_trivially_copyable_v<Result>);
    int fds[2];
    if (::pipe(fds) != 0) throw bench_error("cannot make a pipe for the child process");
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) throw bench_error("cannot fork the child process");
    if (pid == 0) {
        ::close(fds[0]);
        int code = 0;
        try {
            const Result r = fn();
            const char* p = reinterpret_cast<const char*>(&r);
            std::size_t left = sizeof r;
            while (left > 0) {
                const auto w = ::write(fds[1], p, left);
                if (w <= 0) {
                    code = 1;
                    break;
                }
                p += w;
                left -= static_cast<std::size_t>(w);
            }
        } catch (const std::exception& e) {
            fmt::print(stderr, "saga_bench: {}\n", e.what());
            code = 1;
        }
        std::fflush(stderr);
        ::_exit(code);
    }
    ::close(fds[1]);
    Result r{};
    char* p = reinterpret_cast<char*>(&r);
    std::size_t got = 0;
    while (got < sizeof r) {
        const auto n = ::read(fds[0], p + got, sizeof r - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != sizeof r)
        throw bench_error("a measuring child process failed (see above)");
    return r;
}

/// Warm-up of the waiting scenario: allocator arenas, thread stacks, SQLite's page cache.
std::size_t waiting_warmup(std::size_t n) {
    return std::clamp<std::size_t>(n / 20, 100, 2000);
}

struct waiting_row {
    store_kind store;
    std::size_t requested = 0;
    std::size_t reached = 0;  // median of the runs; less than requested if the RSS limit hit
    double rss_before_mib = 0;
    double rss_after_mib = 0;
    double bytes_per_instance = 0;       // VmRSS growth / instances
    double anon_bytes_per_instance = 0;  // RssAnon growth / instances
    double starts_per_s = 0;
    bool hit_limit = false;
    std::optional<double> row_writes_per_saga;
    std::optional<double> transactions_per_saga;
    std::optional<double> syncs_per_saga;
};

std::optional<double> median_or_none(const std::vector<double>& v) {
    if (v.empty()) return std::nullopt;
    return median(v);
}

waiting_row measure_waiting(const options& o, store_kind store) {
    const std::size_t n = o.waiting;
    const std::size_t warm = std::min(n, waiting_warmup(n));
    const std::uint64_t limit_kib = static_cast<std::uint64_t>(o.rss_limit_mb) * 1024;
    fmt::print(stderr, "  {} waiting: {} warm-up sagas, then {} measured, per run\n",
               store_name(store), warm, n);
    std::vector<double> reached, before_mib, after_mib, per, anon_per, rates, rows, txs, syncs;
    bool hit_limit = false;
    for (std::size_t run = 0; run < o.runs; ++run) {
        const auto r = in_child_process<waiting_result>([&] {
            environment env(store, o.workers);
            (void)start_waiting(env, warm, o.starters, 0, limit_kib);
            return start_waiting(env, n, o.starters, warm, limit_kib);
        });
        hit_limit = hit_limit || r.hit_limit;
        const double count = static_cast<double>(std::max<std::size_t>(r.started, 1));
        const auto grown = [&](std::uint64_t a, std::uint64_t b) {
            return (static_cast<double>(b) - static_cast<double>(a)) * 1024.0 / count;
        };
        reached.push_back(static_cast<double>(r.started));
        before_mib.push_back(static_cast<double>(r.before.total) / 1024.0);
        after_mib.push_back(static_cast<double>(r.after.total) / 1024.0);
        per.push_back(grown(r.before.total, r.after.total));
        anon_per.push_back(grown(r.before.anon, r.after.anon));
        rates.push_back(static_cast<double>(r.started) / r.seconds);
        std::string store_line;
        if (r.store) {
            rows.push_back(static_cast<double>(r.store->row_writes) / count);
            txs.push_back(static_cast<double>(r.store->transactions) / count);
            syncs.push_back(static_cast<double>(r.store->syncs) / count);
            store_line = fmt::format(
                "; sqlite per saga: {:.1f} row writes, {:.2f} transactions, {:.2f} syncs",
                rows.back(), txs.back(), syncs.back());
        }
        fmt::print(stderr,
                   "  {} waiting run {}/{}: {} sagas waiting{} in {:.2f} s ({} started/s); "
                   "VmRSS {:.1f} -> {:.1f} MiB: {:.0f} B per waiting instance (RssAnon {:.0f} "
                   "B){}; engine caches {} instances\n",
                   store_name(store), run + 1, o.runs, r.started,
                   r.hit_limit ? fmt::format(" (stopped: RSS passed {} MB)", o.rss_limit_mb) : "",
                   r.seconds, fmt_rate(rates.back()), before_mib.back(), after_mib.back(),
                   per.back(), anon_per.back(), store_line, r.cached);
    }
    return waiting_row{store,
                       n,
                       static_cast<std::size_t>(median(reached)),
                       median(before_mib),
                       median(after_mib),
                       median(per),
                       median(anon_per),
                       median(rates),
                       hit_limit,
                       median_or_none(rows),
                       median_or_none(txs),
                       median_or_none(syncs)};
}

struct reopen_row {
    std::size_t instances = 0;
    double file_mib = 0;
    double create_seconds = 0;
    double open_seconds = 0;            // sqlite_journal_store::open, default options (quick_check)
    double open_unchecked_seconds = 0;  // sqlite_journal_store::open, check_integrity = false
    double engine_seconds = 0;          // engine made, definitions added, recovery run to idle
    double engine_open_seconds = 0;     // of which engine.open() (the recovery scan)
    double engine_cpu_seconds = 0;      // process CPU time while the engine got ready
    double total_seconds = 0;           // store open + engine ready (median of the runs' sums)
    double cached = 0;                  // instances the engine holds after recovery
    double bytes_per_instance = 0;      // VmRSS growth from before the open to ready
};

#if defined(SAGA_BENCH_SQLITE)
double file_mib(const std::filesystem::path& p) {
    double total = 0;
    for (const char* suffix : {"", "-wal"}) {
        struct stat st {};
        if (::stat((p.string() + suffix).c_str(), &st) == 0)
            total += static_cast<double>(st.st_size);
    }
    return total / (1024.0 * 1024.0);
}

/// The figures of one reopen run (in a fresh process).
struct reopen_run {
    double open_seconds = 0;
    double engine_seconds = 0;       // engine made, opened, recovery run to idle
    double engine_open_seconds = 0;  // of which engine.open(): list and post each instance
    double engine_cpu_seconds = 0;   // process CPU time over engine_seconds
    double open_unchecked_seconds = 0;
    std::size_t cached = 0;
    double bytes_per_instance = 0;
};

/// Opens the store at `path` (default options, so quick_check runs), then an engine on it until
/// its recovery is done; then, with both closed, the store again with check_integrity = false.
reopen_run reopen_once(const options& o, const std::filesystem::path& path, std::size_t n) {
    reopen_run out;
    const auto rss0 = read_rss();
    {
        const auto t0 = steady::now();
        auto s = saga::sqlite::sqlite_journal_store::open({.path = path.string()});
        if (!s) throw bench_error(fmt::format("cannot reopen the store: {}", s.error().what()));
        const auto t1 = steady::now();
        auto clock = std::make_shared<saga::system_clock>();
        auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
        saga::engine eng(s.value(), transport,
                         saga::engine_options{.workers = o.workers, .clock = clock});
        add_definitions(eng);
        const auto cpu1 = process_cpu_seconds();
        // engine.open() is the recovery scan: it lists the unfinished instances and posts one
        // input to each; run_until_idle() then runs those inputs on this thread (each loads its
        // instance) until nothing is left to do
        if (auto r = eng.open(); !r)
            throw bench_error(fmt::format("cannot open the engine: {}", r.error().what()));
        const auto t_opened = steady::now();
        (void)eng.run_until_idle();
        const auto t2 = steady::now();
        out.engine_cpu_seconds = process_cpu_seconds() - cpu1;
        out.engine_open_seconds = std::chrono::duration<double>(t_opened - t1).count();
        const auto rss1 = read_rss();
        out.open_seconds = std::chrono::duration<double>(t1 - t0).count();
        out.engine_seconds = std::chrono::duration<double>(t2 - t1).count();
        out.cached = eng.active_instances();
        out.bytes_per_instance =
            (static_cast<double>(rss1.total) - static_cast<double>(rss0.total)) * 1024.0 /
            static_cast<double>(std::max<std::size_t>(n, 1));
        eng.stop();
    }
    const auto t0 = steady::now();
    auto s =
        saga::sqlite::sqlite_journal_store::open({.path = path.string(), .check_integrity = false});
    if (!s) throw bench_error(fmt::format("cannot reopen the store: {}", s.error().what()));
    out.open_unchecked_seconds = std::chrono::duration<double>(steady::now() - t0).count();
    return out;
}

reopen_row measure_reopen(const options& o) {
    const std::size_t n = o.waiting;
    reopen_row out;
    out.instances = n;
    temp_db db;  // removes the file at the end
    db.path = fresh_db_path();
    fmt::print(stderr, "  sqlite reopen: starting {} waiting sagas on a fresh file\n", n);
    out.create_seconds = in_child_process<double>([&] {
        environment env(store_kind::sqlite, o.workers, db.path);
        return start_waiting(env, n, o.starters, 0, std::numeric_limits<std::uint64_t>::max())
            .seconds;
    });  // engine stopped, store closed (the WAL checkpointed into the file)
    out.file_mib = file_mib(db.path);
    fmt::print(stderr, "  sqlite reopen: {} sagas waiting in {:.1f} s; the file has {:.1f} MiB\n",
               n, out.create_seconds, out.file_mib);
    std::vector<double> opens, unchecked, engines, engine_opens, cpus, totals, cached, per;
    for (std::size_t run = 0; run < o.runs; ++run) {
        const auto r = in_child_process<reopen_run>([&] { return reopen_once(o, db.path, n); });
        opens.push_back(r.open_seconds);
        unchecked.push_back(r.open_unchecked_seconds);
        engines.push_back(r.engine_seconds);
        engine_opens.push_back(r.engine_open_seconds);
        totals.push_back(r.open_seconds + r.engine_seconds);
        cpus.push_back(r.engine_cpu_seconds);
        cached.push_back(static_cast<double>(r.cached));
        per.push_back(r.bytes_per_instance);
        fmt::print(stderr,
                   "  sqlite reopen run {}/{}: {} waiting instances: store open {:.3f} s ({:.3f} s "
                   "without quick_check), engine ready {:.3f} s (engine.open {:.3f} s; {:.3f} s of "
                   "CPU), total {:.3f} s; engine caches {} instances, VmRSS +{:.0f} B per "
                   "instance\n",
                   run + 1, o.runs, n, r.open_seconds, r.open_unchecked_seconds, r.engine_seconds,
                   r.engine_open_seconds, r.engine_cpu_seconds, r.open_seconds + r.engine_seconds,
                   r.cached, r.bytes_per_instance);
    }
    out.open_seconds = median(opens);
    out.open_unchecked_seconds = median(unchecked);
    out.engine_seconds = median(engines);
    out.engine_open_seconds = median(engine_opens);
    out.total_seconds = median(totals);
    out.engine_cpu_seconds = median(cpus);
    out.cached = median(cached);
    out.bytes_per_instance = median(per);
    return out;
}
#endif

row measure(const options& o, store_kind store, variant_kind v, scenario_kind sc) {
    const bool seq = sc == scenario_kind::sequential;
    const std::size_t n = seq ? sequential_count(o) : o.sagas;
    const std::size_t inflight = seq ? 1 : o.inflight;
    // warm-up on the same engine (allocators, caches, the SQLite file and its WAL)
    const std::size_t warm =
        o.warmup ? *o.warmup
        : seq    ? std::clamp<std::size_t>(n / 4, 1, o.quick ? 10 : 50)
                 : std::clamp<std::size_t>(n / 5, std::min(n, 2 * inflight), o.quick ? 100 : 400);
    fmt::print(stderr, "  {} {} {}: {} warm-up sagas, then {} measured, per run\n",
               store_name(store), v == variant_kind::a ? "A" : "B", scenario_name(sc), warm, n);
    std::vector<double> medians;
    std::vector<double> p99s;
    std::vector<double> rates;
    std::vector<double> transition_rates;
    std::vector<double> rows_per_saga;
    std::vector<double> tx_per_saga;
    std::vector<double> syncs_per_saga;
    for (std::size_t run = 0; run < o.runs; ++run) {
        environment env(store, o.workers);
        std::size_t index = 0;
        if (warm == 0) {
            // nothing
        } else if (seq) {
            (void)run_sequential(env, v, warm, index);
        } else {
            (void)run_concurrent(env, v, warm, inflight, o.starters, index);
        }
        index += warm;
        const auto r = seq ? run_sequential(env, v, n, index)
                           : run_concurrent(env, v, n, inflight, o.starters, index);
        const double med = median(r.latencies_ms);
        const double p99 = percentile(r.latencies_ms, 99);
        const double rate = static_cast<double>(r.sagas) / r.seconds;
        const double trate = static_cast<double>(r.transitions) / r.seconds;
        medians.push_back(med);
        p99s.push_back(p99);
        rates.push_back(rate);
        transition_rates.push_back(trate);
        std::string store_line;
        if (r.store) {
            const auto per = [&](std::uint64_t x) {
                return static_cast<double>(x) / static_cast<double>(r.sagas);
            };
            rows_per_saga.push_back(per(r.store->row_writes));
            tx_per_saga.push_back(per(r.store->transactions));
            syncs_per_saga.push_back(per(r.store->syncs));
            store_line = fmt::format(
                "; sqlite per saga: {:.1f} row writes, {:.2f} transactions, {:.2f} syncs",
                rows_per_saga.back(), tx_per_saga.back(), syncs_per_saga.back());
        }
        fmt::print(stderr,
                   "  {} {} {} run {}/{}: {} sagas in {:.3f} s, median {} ms, p99 {} ms, {} "
                   "sagas/s, {} transitions/s "
                   "({:.1f} transitions, {} history entries, {:.0f} us of CPU per saga, "
                   "{:.0f}% of it system{})\n",
                   store_name(store), v == variant_kind::a ? "A" : "B", scenario_name(sc), run + 1,
                   o.runs, r.sagas, r.seconds, fmt_ms(med), fmt_ms(p99), fmt_rate(rate),
                   fmt_rate(trate),
                   static_cast<double>(r.transitions) / static_cast<double>(r.sagas),
                   r.history_entries, r.cpu_seconds * 1e6 / static_cast<double>(r.sagas),
                   r.cpu_seconds > 0 ? 100.0 * r.sys_seconds / r.cpu_seconds : 0.0, store_line);
        fmt::print(stderr, "    (warm-up included) {}\n", env.diagnostics());
    }
    return row{store,
               v,
               sc,
               n,
               inflight,
               median(medians),
               median(p99s),
               median(rates),
               median(transition_rates),
               median_or_none(rows_per_saga),
               median_or_none(tx_per_saga),
               median_or_none(syncs_per_saga)};
}

}  // namespace

void print_waiting_table(const std::vector<waiting_row>& rows) {
    if (rows.empty()) return;
    fmt::print(
        "| store | durability | waiting instances | reached | VmRSS before MiB | VmRSS after MiB | "
        "RSS per waiting instance | RssAnon per instance | started/s | row writes/saga | "
        "transactions/saga | syncs/saga |\n");
    fmt::print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (const auto& r : rows)
        fmt::print(
            "| {} | {} | {} | {}{} | {:.1f} | {:.1f} | {:.2f} KiB | {:.2f} KiB | {} | {} | {} | "
            "{} |\n",
            store_name(r.store), durability(r.store), r.requested, r.reached,
            r.hit_limit ? " (RSS limit)" : "", r.rss_before_mib, r.rss_after_mib,
            r.bytes_per_instance / 1024.0, r.anon_bytes_per_instance / 1024.0,
            fmt_rate(r.starts_per_s), fmt_per_saga(r.row_writes_per_saga),
            fmt_per_saga(r.transactions_per_saga), fmt_per_saga(r.syncs_per_saga));
    fmt::print("\n");
}

void print_reopen_table(const std::vector<reopen_row>& rows) {
    if (rows.empty()) return;
    fmt::print(
        "| store | non-terminal instances | file MiB | store open s | store open s, no "
        "quick_check | engine ready s | of which engine.open s | engine CPU s | total s | cached "
        "after recovery | RSS per recovered instance |\n");
    fmt::print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (const auto& r : rows)
        fmt::print(
            "| sqlite synchronous=FULL | {} | {:.1f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} "
            "| "
            "{:.3f} | {:.0f} | {:.2f} KiB |\n",
            r.instances, r.file_mib, r.open_seconds, r.open_unchecked_seconds, r.engine_seconds,
            r.engine_open_seconds, r.engine_cpu_seconds, r.total_seconds, r.cached,
            r.bytes_per_instance / 1024.0);
    fmt::print("\n");
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
            fmt::print("{}", usage_text);
            return 0;
        }
    }
    options o;
    try {
        o = parse_options(argc, argv);
    } catch (const usage_error& e) {
        const auto first_lines = usage_text.substr(0, usage_text.find("\n\n") + 1);
        fmt::print(stderr, "saga_bench: error: {}\n{}(saga_bench --help explains the options)\n",
                   e.what(), first_lines);
        return 2;
    }
    if (std::string_view(SAGA_BENCH_BUILD_TYPE) != "Release")
        fmt::print(stderr,
                   "saga_bench: warning: this is a '{}' build, not Release; figures are not "
                   "representative\n",
                   SAGA_BENCH_BUILD_TYPE);
    const auto has = [&](scenario_kind k) {
        return std::find(o.scenarios.begin(), o.scenarios.end(), k) != o.scenarios.end();
    };
#if !defined(SAGA_BENCH_SQLITE)
    if (has(scenario_kind::reopen)) {
        fmt::print(stderr, "saga_bench: error: the reopen scenario needs saga::sqlite\n");
        return 2;
    }
#endif
    const bool has_sqlite =
        std::find(o.stores.begin(), o.stores.end(), store_kind::sqlite) != o.stores.end();
    if (has(scenario_kind::reopen) && !has_sqlite) {
        fmt::print(stderr,
                   "saga_bench: error: the reopen scenario is for --store sqlite (or all)\n");
        return 2;
    }
    const std::string load_at_start = load_average();
    std::vector<row> rows;
    std::vector<waiting_row> waiting_rows;
    std::vector<reopen_row> reopen_rows;
    try {
        for (const auto store : o.stores)
            for (const auto v : o.variants)
                for (const auto sc : o.scenarios)
                    if (sc == scenario_kind::sequential || sc == scenario_kind::concurrent)
                        rows.push_back(measure(o, store, v, sc));
        if (has(scenario_kind::waiting))
            for (const auto store : o.stores) waiting_rows.push_back(measure_waiting(o, store));
#if defined(SAGA_BENCH_SQLITE)
        if (has(scenario_kind::reopen)) reopen_rows.push_back(measure_reopen(o));
#endif
    } catch (const std::exception& e) {
        fmt::print(stderr, "saga_bench: {}\n", e.what());
        return 1;
    }
    print_table(rows);
    print_waiting_table(waiting_rows);
    print_reopen_table(reopen_rows);
    print_machine(o, load_at_start);
    return 0;
}
