// saga_journal_store_bench: what sqlite_journal_store costs per saga-shaped sequence of writes,
// and how long opening a file with many non-terminal instances takes. A benchmark, not a test.
//
//   sequence  --sagas sagas, each 1 head insert + 7 records (2 of them updating the head), from
//             --inflight lanes (1: one at a time); prints transactions, row writes, syncs and
//             commits per saga (counted by the store) and the time per saga
//   reopen    a file with --heads non-terminal instances (each its head and 3 records), then
//             opens it --runs times, with and without the integrity check
//
// Each figure is the median of --runs runs (default 3); synchronous=FULL unless --normal;
// --keep leaves the last sequence run's file for a look with the sqlite3 shell.

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <saga/journal_store.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>

namespace {

using steady = std::chrono::steady_clock;
using saga::sqlite::journal_store_options;
using saga::sqlite::sqlite_journal_store;

struct options {
    std::string mode = "all";
    int sagas = 2000;
    int inflight = 1;
    int heads = 100'000;
    int runs = 3;
    bool normal = false;
    /// leave the last sequence run's file (for a look with the sqlite3 shell)
    bool keep = false;
    std::string dir = std::filesystem::temp_directory_path().string();
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string file_in(const options& o, std::string_view name) {
    return (std::filesystem::path(o.dir) /
            fmt::format("saga-journal-bench-{}-{}.db", ::getpid(), name))
        .string();
}

void remove_store(const std::string& path) {
    for (const char* suffix : {"", "-wal", "-shm", ".lock"}) {
        std::error_code ec;
        std::filesystem::remove(path + suffix, ec);
    }
}

std::shared_ptr<sqlite_journal_store> open_or_die(journal_store_options o) {
    auto store = sqlite_journal_store::open(std::move(o));
    if (!store) {
        fmt::print(stderr, "open failed: {}\n", store.error().what());
        std::exit(1);
    }
    return std::move(store).value();
}

void or_die(const saga::result<void>& r) {
    if (!r) {
        fmt::print(stderr, "commit failed: {}\n", r.error().what());
        std::exit(1);
    }
}

saga::time_point now() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now());
}

/// Events and messages of about the size the campaign saga writes per transition.
saga::journal_record record_of(const std::string& id, std::uint64_t version) {
    saga::journal_record r;
    r.saga_id = id;
    r.version = version;
    r.at = now();
    r.released_through = version - 1;
    saga::event started;
    started.type = saga::event_type::attempt_started;
    started.unit = "submit[" + std::to_string(version) + "]";
    started.attempt = 1;
    started.due = r.at + std::chrono::seconds{30};
    started.name = "google_ads";
    saga::event done;
    done.type = saga::event_type::step_completed;
    done.unit = "reserve_budget";
    done.attempt = 1;
    r.events = {done, started};
    saga::outbound_message m;
    m.destination = "google_ads";
    m.message.message_id = id + "/" + started.unit + "/f1/1";
    m.message.type = "submit_ad";
    m.message.saga_id = id;
    m.message.step = started.unit;
    m.message.attempt = 1;
    m.message.idempotency_key = id + "/" + started.unit;
    m.message.reply_to = "saga.engine";
    m.message.correlation_id = "acme-spring-sale";
    m.message.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    m.message.payload = {{"campaign", id}, {"budget", 1250.5}, {"creative", std::string(200, 'c')}};
    r.output = {m};
    if (version == 1 || version == 4 || version == 7) {
        r.data = R"({"campaign":")" + id + R"(","budget":1250.5,"networks":["google","meta"],)" +
                 R"("note":")" + std::string(260, 'd') + R"("})";
    }
    if (version == 7) r.snapshot = std::string(900, 's');
    return r;
}

saga::instance_head head_of(const std::string& id, std::uint64_t version, saga::saga_status st) {
    saga::instance_head h;
    h.id = id;
    h.definition = "campaign_publishing";
    h.definition_version = 3;
    h.status = st;
    h.correlation_key = "campaign-" + id;
    h.exclusive = true;
    h.version = version;
    h.created_at = now();
    h.updated_at = h.created_at;
    if (!saga::is_terminal(st)) h.wake_at = h.created_at + std::chrono::seconds{30};
    return h;
}

/// One saga: the first record with its head, records 2..7, the head updated at 4 (waiting) and
/// 7 (completed).
void run_saga(saga::journal_store& store, const std::string& id) {
    for (std::uint64_t v = 1; v <= 7; ++v) {
        saga::journal_write w{record_of(id, v), std::nullopt};
        if (v == 1) w.head = head_of(id, v, saga::saga_status::running);
        if (v == 4) w.head = head_of(id, v, saga::saga_status::waiting);
        if (v == 7) w.head = head_of(id, v, saga::saga_status::completed);
        or_die(store.commit(std::move(w)));
    }
}

void sequence(const options& o) {
    std::vector<double> tx, rows, syncs, commits, per_saga_ms;
    for (int run = 0; run < o.runs; ++run) {
        const std::string path = file_in(o, "sequence");
        remove_store(path);
        auto store = open_or_die({.path = path,
                                  .sync = o.normal ? saga::sqlite::synchronous::normal
                                                   : saga::sqlite::synchronous::full});
        std::atomic<int> next{0};
        const auto began = steady::now();
        std::vector<std::thread> lanes;
        for (int l = 0; l < o.inflight; ++l) {
            lanes.emplace_back([&] {
                for (int i = next++; i < o.sagas; i = next++)
                    run_saga(*store, fmt::format("campaign-{:06}", i));
            });
        }
        for (auto& t : lanes) t.join();
        const double seconds = std::chrono::duration<double>(steady::now() - began).count();
        const auto s = store->stats();
        tx.push_back(static_cast<double>(s.transactions) / o.sagas);
        rows.push_back(static_cast<double>(s.row_writes) / o.sagas);
        syncs.push_back(static_cast<double>(s.syncs) / o.sagas);
        commits.push_back(static_cast<double>(s.commits) / o.sagas);
        per_saga_ms.push_back(seconds * 1000.0 / o.sagas);
        store.reset();
        fmt::print(
            "  run {}: {:.2f} transactions, {:.2f} row writes, {:.2f} syncs, {:.2f} commits per "
            "saga; "
            "{:.3f} ms per saga ({:.0f} sagas/s)\n",
            run + 1, tx.back(), rows.back(), syncs.back(), commits.back(), per_saga_ms.back(),
            o.sagas / seconds);
        if (o.keep && run + 1 == o.runs) {
            fmt::print("  kept {}\n", path);
        } else {
            remove_store(path);
        }
    }
    fmt::print(
        "sequence, {} sagas, {} in flight, synchronous={}: median {:.2f} transactions, "
        "{:.2f} row writes, {:.2f} syncs, {:.2f} commits per saga; {:.3f} ms per saga\n",
        o.sagas, o.inflight, o.normal ? "NORMAL" : "FULL", median(tx), median(rows), median(syncs),
        median(commits), median(per_saga_ms));
}

void reopen(const options& o) {
    const std::string path = file_in(o, "reopen");
    remove_store(path);
    {
        // filling is not what is measured: NORMAL, big batches from many lanes
        auto store = open_or_die({.path = path, .sync = saga::sqlite::synchronous::normal});
        const auto began = steady::now();
        std::atomic<int> next{0};
        std::vector<std::thread> lanes;
        for (int l = 0; l < 64; ++l) {
            lanes.emplace_back([&] {
                for (int i = next++; i < o.heads; i = next++) {
                    const std::string id = fmt::format("campaign-{:07}", i);
                    for (std::uint64_t v = 1; v <= 3; ++v) {
                        saga::journal_write w{record_of(id, v), std::nullopt};
                        if (v == 1) w.head = head_of(id, 1, saga::saga_status::running);
                        if (v == 3) w.head = head_of(id, 3, saga::saga_status::waiting);
                        or_die(store->commit(std::move(w)));
                    }
                }
            });
        }
        for (auto& t : lanes) t.join();
        fmt::print("  filled {} non-terminal instances (3 records each) in {:.1f} s\n", o.heads,
                   std::chrono::duration<double>(steady::now() - began).count());
    }
    fmt::print("  file: {:.1f} MiB\n",
               static_cast<double>(std::filesystem::file_size(path)) / (1 << 20));
    for (const bool check : {true, false}) {
        std::vector<double> open_ms, due_ms;
        for (int run = 0; run < o.runs; ++run) {
            const auto began = steady::now();
            auto store = open_or_die({.path = path, .check_integrity = check});
            open_ms.push_back(
                std::chrono::duration<double, std::milli>(steady::now() - began).count());
            // what recovery asks first: the first page of what is due
            const auto asked = steady::now();
            auto due = store->due(now() + std::chrono::hours{1}, 1000);
            due_ms.push_back(
                std::chrono::duration<double, std::milli>(steady::now() - asked).count());
            if (!due || due.value().size() != 1000) {
                fmt::print(stderr, "due() found {}\n", due ? due.value().size() : 0);
                std::exit(1);
            }
        }
        fmt::print(
            "reopen, {} non-terminal instances, check_integrity={}: median open {:.1f} ms "
            "(runs: {:.1f} / {:.1f} / {:.1f}); first page of due(): {:.2f} ms\n",
            o.heads, check, median(open_ms), open_ms.at(0), open_ms.at(1 % open_ms.size()),
            open_ms.at(2 % open_ms.size()), median(due_ms));
    }
    remove_store(path);
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "{} needs a value\n", a);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--mode") {
            o.mode = value();
        } else if (a == "--sagas") {
            o.sagas = std::stoi(value());
        } else if (a == "--inflight") {
            o.inflight = std::stoi(value());
        } else if (a == "--heads") {
            o.heads = std::stoi(value());
        } else if (a == "--runs") {
            o.runs = std::stoi(value());
        } else if (a == "--dir") {
            o.dir = value();
        } else if (a == "--normal") {
            o.normal = true;
        } else if (a == "--keep") {
            o.keep = true;
        } else {
            fmt::print(stderr,
                       "usage: saga_journal_store_bench [--mode sequence|reopen|all] [--sagas N] "
                       "[--inflight N] [--heads N] [--runs N] [--dir DIR] [--normal] [--keep]\n");
            return 2;
        }
    }
    if (o.runs < 1 || o.sagas < 1 || o.inflight < 1 || o.heads < 1000) {
        fmt::print(stderr, "--runs, --sagas, --inflight must be >= 1, --heads >= 1000\n");
        return 2;
    }
    if (o.mode == "sequence" || o.mode == "all") sequence(o);
    if (o.mode == "reopen" || o.mode == "all") reopen(o);
    return 0;
}
