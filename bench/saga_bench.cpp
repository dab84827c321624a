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
// The engine runs on real threads (`engine.run()`, `--workers`) with `saga::system_clock`.
//
// Scenarios, per store (memory; sqlite at synchronous=FULL on a fresh temp file) and variant:
//   sequential  one saga at a time: start, then wait for it, then the next -> latency
//   concurrent  N sagas, `--inflight` of them outstanding at any time -> sagas/s, transitions/s
// Each scenario runs `--runs` times on a fresh engine and store (after a warm-up on that same
// engine); the table shows the median of the runs. See bench/README.md.

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
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <saga/inmemory/memory_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

#if defined(SAGA_BENCH_SQLITE)
#include <saga/sqlite/sqlite_store.hpp>
#endif

#ifndef SAGA_BENCH_BUILD_TYPE
#define SAGA_BENCH_BUILD_TYPE ""
#endif

namespace {

using steady = std::chrono::steady_clock;
using json = nlohmann::json;

}  // namespace

// ---- the saga -------------------------------------------------------------------------------

namespace bench {

struct campaign {
    std::string campaign_id;
    std::int64_t budget = 0;
    bool refuse_activation = false;  // variant B
    bool validated = false;
    std::string reservation;
    std::string feed;
    std::map<std::string, std::string> ads;  // platform -> ad id
    std::string activation;
    bool announced = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(campaign, campaign_id, budget, refuse_activation,
                                                validated, reservation, feed, ads, activation,
                                                announced)

}  // namespace bench

namespace {

using bench::campaign;

constexpr std::string_view saga_name = "publish_campaign";
constexpr std::string_view platforms[] = {"google", "instagram", "tiktok", "snapchat"};

std::string id_of(const json& reply) {
    return reply.value("id", std::string());
}

saga::result<saga::definition<campaign>> publish_campaign() {
    saga::definition_builder<campaign> b(std::string(saga_name), 1);
    b.local("validate",
            [](campaign& c) -> saga::result<void> {
                if (c.budget <= 0) return saga::permanent_error("budget must be positive");
                c.validated = true;
                return saga::success();
            })
        .compensate([](campaign& c) { c.validated = false; })
        .remote("reserve_budget", "budget",
                [](const campaign& c) {
                    return saga::command{"reserve",
                                         {{"campaign", c.campaign_id}, {"amount", c.budget}}};
                })
        .on_reply([](campaign& c, const json& r) { c.reservation = id_of(r); })
        .compensate_remote("budget",
                           [](const campaign& c) {
                               return saga::command{"release", {{"id", c.reservation}}};
                           })
        .remote("ensure_feed", "feeds",
                [](const campaign& c) {
                    return saga::command{"ensure", {{"campaign", c.campaign_id}}};
                })
        .on_reply([](campaign& c, const json& r) { c.feed = id_of(r); })
        .parallel(
            "submit",
            [](saga::parallel_builder<campaign>& p) {
                for (const auto platform : platforms) {
                    const std::string name(platform);
                    p.branch(name)
                        .remote("submit_" + name, name,
                                [name](const campaign& c) {
                                    return saga::command{
                                        "submit", {{"campaign", c.campaign_id}, {"feed", c.feed}}};
                                })
                        .on_reply([name](campaign& c, const json& r) { c.ads[name] = id_of(r); })
                        .compensate_remote(name, [name](const campaign& c) {
                            const auto it = c.ads.find(name);
                            return saga::command{"withdraw",
                                                 {{"ad", it == c.ads.end() ? "" : it->second}}};
                        });
                }
            })
        .remote("activate", "campaigns",
                [](const campaign& c) {
                    return saga::command{
                        "activate", {{"campaign", c.campaign_id}, {"refuse", c.refuse_activation}}};
                })
        .on_reply([](campaign& c, const json& r) { c.activation = id_of(r); })
        .local("announce", [](campaign& c) { c.announced = true; });
    return std::move(b).build();
}

// ---- options --------------------------------------------------------------------------------

enum class store_kind { memory, sqlite };
enum class scenario_kind { sequential, concurrent };
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
};

constexpr std::string_view usage_text =
    R"(usage: saga_bench [--runs N] [--sagas N] [--inflight N] [--workers N] [--starters N]
                  [--store memory|sqlite|all] [--scenario sequential|concurrent|all]
                  [--variant A|B|all] [--quick]

  --runs N        repeat every scenario N times, report the median run (default 3)
  --sagas N       sagas of the concurrent scenario (default 2000); the sequential scenario runs
                  N/10 of them (at least 1)
  --inflight N    sagas outstanding at once in the concurrent scenario (default 64)
  --workers N     engine worker threads (default 2)
  --starters N    client threads calling start() in the concurrent scenario (default 8; at most
                  --inflight)
  --store S       memory, sqlite (synchronous=FULL, a temp file per run) or all (default)
  --scenario S    sequential, concurrent or all (default)
  --variant V     A (completes), B (step 5 refused, compensated) or all (default)
  --quick         a smoke run: 1 run, 300 sagas, smaller warm-up (explicit options still win)
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
            const auto v = value();
            if (v == "sequential") {
                o.scenarios = {scenario_kind::sequential};
            } else if (v == "concurrent") {
                o.scenarios = {scenario_kind::concurrent};
            } else if (v == "all") {
                o.scenarios = {scenario_kind::sequential, scenario_kind::concurrent};
            } else {
                throw usage_error(
                    fmt::format("--scenario takes sequential, concurrent or all, not '{}'", v));
            }
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

/// Counts committed transitions: the engine calls observers once per committed transition.
class counting_observer final : public saga::observer {
public:
    void on_transition(const saga::instance_record&,
                       std::span<const saga::history_entry> entries) override {
        transitions.fetch_add(1, std::memory_order_relaxed);
        history_entries.fetch_add(entries.size(), std::memory_order_relaxed);
    }
    std::atomic<std::uint64_t> transitions{0};
    std::atomic<std::uint64_t> history_entries{0};
};

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
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
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

class environment {
public:
    environment(store_kind kind, std::size_t workers) {
        clock_ = std::make_shared<saga::system_clock>();
        if (kind == store_kind::memory) {
            store_ = std::make_shared<saga::inmemory::memory_store>();
        } else {
#if defined(SAGA_BENCH_SQLITE)
            db_.path = fresh_db_path();
            auto s = saga::sqlite::sqlite_store::open(saga::sqlite::store_options{
                .path = db_.path.string(), .sync = saga::sqlite::synchronous::full});
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
        engine_ = std::make_unique<saga::engine>(
            store_, transport_, saga::engine_options{.workers = workers, .clock = clock_});
        auto def = publish_campaign();
        if (!def) throw bench_error(fmt::format("invalid definition: {}", def.error().what()));
        if (auto r = engine_->add(def.value()); !r)
            throw bench_error(fmt::format("cannot register the definition: {}", r.error().what()));
        observer_ = std::make_shared<counting_observer>();
        engine_->add_observer(observer_);
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
    counting_observer& observer() {
        return *observer_;
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
    std::shared_ptr<saga::state_store> store_;
#if defined(SAGA_BENCH_SQLITE)
    std::shared_ptr<saga::sqlite::sqlite_store> sqlite_;
#endif
    std::shared_ptr<saga::inmemory::memory_transport> transport_;
    std::unique_ptr<saga::engine> engine_;
    std::shared_ptr<counting_observer> observer_;
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
    std::uint64_t transitions = 0;
    std::uint64_t history_entries = 0;
    double cpu_seconds = 0;  // user + system time of the whole process while the run lasted
    double sys_seconds = 0;  // of which system time
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
    const auto t_before = env.observer().transitions.load();
    const auto h_before = env.observer().history_entries.load();
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
    }
    out.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    out.cpu_seconds = process_cpu_seconds() - cpu0;
    out.sys_seconds = process_sys_seconds() - sys0;
    out.transitions = env.observer().transitions.load() - t_before;
    out.history_entries = env.observer().history_entries.load() - h_before;
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
        void fail(std::string why) {
            std::lock_guard lock(mutex);
            if (!failure) failure = std::move(why);
        }
    };
    auto st = std::make_shared<shared_state>(n, inflight);
    const auto t_before = env.observer().transitions.load();
    const auto h_before = env.observer().history_entries.load();
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
    for (auto& c : clients) c.join();
    if (st->failure) throw bench_error(*st->failure);
    run_result out;
    out.sagas = n;
    out.seconds = seconds;
    out.cpu_seconds = cpu_seconds;
    out.sys_seconds = sys_seconds;
    out.latencies_ms = std::move(st->latencies_ms);
    out.transitions = env.observer().transitions.load() - t_before;
    out.history_entries = env.observer().history_entries.load() - h_before;
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
    return s == scenario_kind::sequential ? "sequential" : "concurrent";
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

void print_table(const std::vector<row>& rows, const options& o) {
    fmt::print(
        "| store | durability | variant | scenario | sagas | in flight | median ms | p99 ms | "
        "sagas/s | "
        "transitions/s |\n");
    fmt::print("|---|---|---|---|--:|--:|--:|--:|--:|--:|\n");
    for (const auto& r : rows)
        fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", store_name(r.store),
                   durability(r.store), variant_name(r.variant), scenario_name(r.scenario), r.sagas,
                   r.inflight, fmt_ms(r.median_ms), fmt_ms(r.p99_ms), fmt_rate(r.sagas_per_s),
                   fmt_rate(r.transitions_per_s));
    const std::string build = SAGA_BENCH_BUILD_TYPE;
    fmt::print(
        "\nmachine: nproc {}, {}; compiler {}; {} build; engine workers {}, {} client threads; "
        "median of "
        "{} run{}; date {}\n",
        std::thread::hardware_concurrency(), cpu_model(), compiler(),
        build.empty() ? "unknown" : build, o.workers, o.starters, o.runs, o.runs == 1 ? "" : "s",
        utc_now());
}

row measure(const options& o, store_kind store, variant_kind v, scenario_kind sc) {
    const bool seq = sc == scenario_kind::sequential;
    const std::size_t n = seq ? sequential_count(o) : o.sagas;
    const std::size_t inflight = seq ? 1 : o.inflight;
    // warm-up on the same engine (allocators, caches, the SQLite file and its WAL)
    const std::size_t warm =
        seq ? std::clamp<std::size_t>(n / 4, 1, o.quick ? 10 : 50)
            : std::clamp<std::size_t>(n / 5, std::min(n, 2 * inflight), o.quick ? 100 : 400);
    std::vector<double> medians;
    std::vector<double> p99s;
    std::vector<double> rates;
    std::vector<double> transition_rates;
    for (std::size_t run = 0; run < o.runs; ++run) {
        environment env(store, o.workers);
        std::size_t index = 0;
        if (seq) {
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
        fmt::print(stderr,
                   "  {} {} {} run {}/{}: {} sagas in {:.3f} s, median {} ms, p99 {} ms, {} "
                   "sagas/s, {} transitions/s "
                   "({:.1f} transitions, {:.1f} history entries, {:.0f} us of CPU per saga, "
                   "{:.0f}% of it system)\n",
                   store_name(store), v == variant_kind::a ? "A" : "B", scenario_name(sc), run + 1,
                   o.runs, r.sagas, r.seconds, fmt_ms(med), fmt_ms(p99), fmt_rate(rate),
                   fmt_rate(trate),
                   static_cast<double>(r.transitions) / static_cast<double>(r.sagas),
                   static_cast<double>(r.history_entries) / static_cast<double>(r.sagas),
                   r.cpu_seconds * 1e6 / static_cast<double>(r.sagas),
                   r.cpu_seconds > 0 ? 100.0 * r.sys_seconds / r.cpu_seconds : 0.0);
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
               median(transition_rates)};
}

}  // namespace

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
    std::vector<row> rows;
    try {
        for (const auto store : o.stores)
            for (const auto v : o.variants)
                for (const auto sc : o.scenarios) rows.push_back(measure(o, store, v, sc));
    } catch (const std::exception& e) {
        fmt::print(stderr, "saga_bench: {}\n", e.what());
        return 1;
    }
    print_table(rows, o);
    return 0;
}
