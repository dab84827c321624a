// saga_store_floor: what the SQLite store alone can do on this machine, with zero engine cost.
// The bound the saga benchmark is measured against (see bench/README.md, "The floor").
//
//   fsync    one-row transactions, WAL + synchronous=FULL (and a raw write+fdatasync loop):
//            the latency of one durable commit, the floor of every serial transition
//   rows     the rows one saga writes (record insert + updates, history, outbox insert +
//            delete, inbox, timer upsert + delete), raw sqlite3 with prepared statements on the
//            store's own schema, `--per-tx` sagas per transaction: the SQLite floor
//   store    the same rows as transitions through sqlite_store::async_commit (JSON encoding,
//            group commit, the writer thread) from `--inflight` lanes, each one saga's
//            transitions one after another, acks batched: the store adapter's floor
//
// The row counts and sizes default to what one saga of variant A writes (measured on a kept
// database of saga_bench: SAGA_BENCH_KEEP_DB=1, see README); every one is an option.

#include <fmt/format.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <saga/sqlite/sqlite_store.hpp>

namespace {

using steady = std::chrono::steady_clock;

struct shape {
    int transitions = 7;  // 1 insert + 6 updates of the record
    int history = 29;
    int outbox = 7;  // inserted, then deleted by the acks
    int inbox = 7;
    int timers_set = 7;
    int timers_cleared = 7;
    int data_bytes = 530;
    int state_bytes = 900;
    int detail_bytes = 20;
    int message_bytes = 520;
    int timer_bytes = 60;
};

struct options {
    std::string mode = "all";
    int sagas = 2000;
    int per_tx = 64;
    int inflight = 64;
    int fsyncs = 300;
    shape s;
};

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto tv = [](timeval t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

std::filesystem::path fresh_path(std::string_view tag) {
    std::random_device rd;
    return std::filesystem::temp_directory_path() /
           fmt::format("saga_floor_{}_{}_{:08x}.db", tag, static_cast<long>(::getpid()), rd());
}

void remove_db(const std::filesystem::path& p) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
        std::filesystem::remove(p.string() + suffix, ec);
}

void check(int rc, sqlite3* db, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        std::fprintf(stderr, "sqlite: %s: %s\n", what, sqlite3_errmsg(db));
        std::exit(1);
    }
}

/// A store file with the saga schema (made by sqlite_store::open), opened raw: WAL, FULL.
sqlite3* open_raw(const std::filesystem::path& p) {
    {
        auto s = saga::sqlite::sqlite_store::open(saga::sqlite::store_options{.path = p.string()});
        if (!s) {
            std::fprintf(stderr, "open: %s\n", s.error().what().c_str());
            std::exit(1);
        }
    }
    sqlite3* db = nullptr;
    check(sqlite3_open_v2(p.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr), db,
          "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr), db, "wal");
    check(sqlite3_exec(db, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr), db, "sync");
    return db;
}

struct stmt {
    sqlite3* db;
    sqlite3_stmt* s = nullptr;
    stmt(sqlite3* d, const char* sql) : db(d) {
        check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr), db, sql);
    }
    ~stmt() { sqlite3_finalize(s); }
    stmt& text(int i, const std::string& v) {
        sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    stmt& integer(int i, std::int64_t v) {
        sqlite3_bind_int64(s, i, v);
        return *this;
    }
    void run() {
        check(sqlite3_step(s), db, sqlite3_sql(s));
        sqlite3_reset(s);
    }
};

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// ---- fsync ---------------------------------------------------------------------------------

void run_fsync(const options& o) {
    const auto p = fresh_path("fsync");
    sqlite3* db = open_raw(p);
    check(sqlite3_exec(db, "CREATE TABLE one (k INTEGER PRIMARY KEY, v TEXT)", nullptr, nullptr,
                       nullptr),
          db, "create");
    stmt begin(db, "BEGIN IMMEDIATE"), commit(db, "COMMIT"),
        insert(db, "INSERT INTO one (v) VALUES (?1)");
    const std::string v(100, 'x');
    std::vector<double> lat;
    const auto t0 = steady::now();
    for (int i = 0; i < o.fsyncs; ++i) {
        const auto a = steady::now();
        begin.run();
        insert.text(1, v).run();
        commit.run();
        lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - a).count());
    }
    const double wall = std::chrono::duration<double>(steady::now() - t0).count();
    sqlite3_close(db);
    remove_db(p);
    auto p99 = lat;
    std::sort(p99.begin(), p99.end());
    fmt::print(
        "fsync    sqlite one-row transactions (WAL, FULL): {} tx, {:.0f} tx/s, median {:.0f} "
        "us, p99 {:.0f} us\n",
        o.fsyncs, o.fsyncs / wall, median(lat), p99[p99.size() * 99 / 100]);

    // the disk alone: append 4 KiB and fdatasync
    const auto f = fresh_path("raw");
    const int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    std::vector<char> page(4096, 'y');
    lat.clear();
    const auto t1 = steady::now();
    for (int i = 0; i < o.fsyncs; ++i) {
        const auto a = steady::now();
        if (::write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size()) ||
            ::fdatasync(fd) != 0) {
            std::perror("write/fdatasync");
            std::exit(1);
        }
        lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - a).count());
    }
    const double wall1 = std::chrono::duration<double>(steady::now() - t1).count();
    ::close(fd);
    std::filesystem::remove(f);
    fmt::print("fsync    raw 4 KiB write + fdatasync: {:.0f} /s, median {:.0f} us\n",
               o.fsyncs / wall1, median(lat));
}

// ---- rows: raw SQLite ----------------------------------------------------------------------

void run_rows(const options& o) {
    const shape& s = o.s;
    const auto p = fresh_path("rows");
    sqlite3* db = open_raw(p);
    stmt begin(db, "BEGIN IMMEDIATE"), commit(db, "COMMIT");
    stmt insert_instance(db,
                         "INSERT INTO instances (id, definition, definition_version, version, "
                         "status, correlation_key, exclusive, data, state, created_at, "
                         "updated_at) VALUES (?1, 'publish_campaign', 1, 1, 'running', ?2, 0, "
                         "?3, ?4, ?5, ?5) ON CONFLICT (id) DO NOTHING");
    stmt update_instance(db,
                         "UPDATE instances SET definition = 'publish_campaign', "
                         "definition_version = 1, version = ?2, status = 'running', "
                         "correlation_key = ?3, exclusive = 0, data = ?4, state = ?5, "
                         "created_at = ?6, updated_at = ?6 WHERE id = ?1 AND version = ?7");
    stmt insert_history(db,
                        "INSERT INTO history (saga_id, version, at, event, step, attempt, "
                        "detail) VALUES (?1, ?2, ?3, 'step_completed', 'reserve_budget', 1, ?4)");
    stmt insert_outbox(db,
                       "INSERT INTO outbox (message_id, saga_id, destination, topic, message) "
                       "VALUES (?1, ?2, 'budget', 0, ?3) ON CONFLICT (message_id) DO NOTHING");
    stmt delete_outbox(db, "DELETE FROM outbox WHERE message_id = ?1");
    stmt insert_inbox(db,
                      "INSERT INTO inbox (saga_id, message_id) VALUES (?1, ?2) ON CONFLICT DO "
                      "NOTHING");
    stmt upsert_timer(db,
                      "INSERT INTO timers (saga_id, id, due, payload) VALUES (?1, ?2, ?3, ?4) ON "
                      "CONFLICT (saga_id, id) DO UPDATE SET due = excluded.due, payload = "
                      "excluded.payload");
    stmt delete_timer(db, "DELETE FROM timers WHERE saga_id = ?1 AND id = ?2");

    const std::string data(s.data_bytes, 'd'), state(s.state_bytes, 's'),
        detail(s.detail_bytes, 'h'), message(s.message_bytes, 'm'), payload(s.timer_bytes, 'p');
    const std::int64_t now = 1767225600000;
    std::vector<std::string> ids;
    auto one_saga = [&](int n) {
        const std::string id = fmt::format("{:016x}{:016x}", n * 2654435761u, n);
        const std::string key = fmt::format("campaign-{}", n);
        insert_instance.text(1, id).text(2, key).text(3, data).text(4, state).integer(5, now).run();
        for (int v = 2; v <= s.transitions; ++v)
            update_instance.text(1, id)
                .integer(2, v)
                .text(3, key)
                .text(4, data)
                .text(5, state)
                .integer(6, now + v)
                .integer(7, v - 1)
                .run();
        for (int h = 0; h < s.history; ++h)
            insert_history.text(1, id)
                .integer(2, 1 + h * s.transitions / s.history)
                .integer(3, now + h)
                .text(4, detail)
                .run();
        for (int m = 0; m < s.outbox; ++m) {
            ids.push_back(fmt::format("{}-m{}", id, m));
            insert_outbox.text(1, ids.back()).text(2, id).text(3, message).run();
        }
        for (int m = 0; m < s.inbox; ++m) {
            const std::string mid = fmt::format("{}-r{}", id, m);
            insert_inbox.text(1, id).text(2, mid).run();
        }
        for (int t = 0; t < s.timers_set; ++t) {
            const std::string tid = fmt::format("step-{}/timeout", t);
            upsert_timer.text(1, id).text(2, tid).integer(3, now + 30000).text(4, payload).run();
        }
        for (int t = 0; t < s.timers_cleared; ++t) {
            const std::string tid = fmt::format("step-{}/timeout", t);
            delete_timer.text(1, id).text(2, tid).run();
        }
    };
    auto acks = [&] {
        for (const auto& m : ids) delete_outbox.text(1, m).run();
        ids.clear();
    };
    // warm-up
    begin.run();
    for (int i = 0; i < 200; ++i) one_saga(-1 - i);
    acks();
    commit.run();

    const double c0 = cpu_seconds();
    const auto t0 = steady::now();
    int done = 0, txs = 0;
    while (done < o.sagas) {
        begin.run();
        const int n = std::min(o.per_tx, o.sagas - done);
        for (int i = 0; i < n; ++i) one_saga(done + i);
        acks();  // the previous batch's acks ride in this transaction (as the store's do)
        commit.run();
        done += n;
        ++txs;
    }
    const double wall = std::chrono::duration<double>(steady::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    sqlite3_close(db);
    remove_db(p);
    const int rows_per_saga =
        s.transitions + s.history + 2 * s.outbox + s.inbox + s.timers_set + s.timers_cleared;
    fmt::print(
        "rows     raw sqlite, {} sagas, {} per transaction ({} tx, {} row writes per saga): "
        "{:.0f} sagas/s, {:.0f} us CPU per saga, {:.0f} us wall per transaction\n",
        o.sagas, o.per_tx, txs, rows_per_saga, o.sagas / wall, cpu / o.sagas * 1e6,
        wall / txs * 1e6);
}

// ---- store: through sqlite_store ----------------------------------------------------------

void run_store(const options& o) {
    const shape& s = o.s;
    const auto p = fresh_path("store");
    auto opened = saga::sqlite::sqlite_store::open(saga::sqlite::store_options{.path = p.string()});
    if (!opened) {
        std::fprintf(stderr, "open: %s\n", opened.error().what().c_str());
        std::exit(1);
    }
    auto store = opened.value();
    using nlohmann::json;
    // JSON values of about the measured sizes (their dump is part of the store's cost)
    json data = json::object();
    for (int i = 0; i * 30 < s.data_bytes; ++i) data[fmt::format("field{}", i)] = "value-value-val";
    json state = json::object();
    json units = json::object();
    for (int i = 0; i * 60 < s.state_bytes; ++i)
        units[fmt::format("step{}", i)] = json{{"s", "completed"}, {"a", 1}, {"t0", 1767225600000}};
    state["units"] = std::move(units);
    json detail = json{{"note", std::string(std::max(0, s.detail_bytes - 12), 'h')}};

    struct lane {
        int saga = -1;
        int step = 0;
    };
    std::mutex m;
    std::condition_variable cv;
    std::deque<int> ready;  // lanes whose last commit is done
    std::vector<std::string> acks;
    std::vector<lane> lanes(o.inflight);
    const auto t_start = saga::time_point{std::chrono::seconds{1767225600}};
    int next_saga = 0, finished = 0, warm = std::min(200, o.sagas);
    const int total = o.sagas + warm;
    double c0 = 0;
    steady::time_point t0{};

    auto make = [&](int n, int step) {
        saga::transition t;
        const std::string id = fmt::format("{:016x}{:016x}", n * 2654435761u, n);
        t.record.id = id;
        t.record.definition = "publish_campaign";
        t.record.definition_version = 1;
        t.record.version = static_cast<std::uint64_t>(step + 1);
        t.expected_version = static_cast<std::uint64_t>(step);
        t.record.correlation_key = fmt::format("campaign-{}", n);
        t.record.data = data;
        t.record.state = state;
        t.record.created_at = t.record.updated_at = t_start;
        // spread the saga's rows over its transitions
        auto share = [&](int total_rows) {
            return total_rows * (step + 1) / s.transitions - total_rows * step / s.transitions;
        };
        for (int h = 0, k = share(s.history); h < k; ++h)
            t.history.push_back(
                {id, t.record.version, t_start, "step_completed", "reserve_budget", 1, detail});
        for (int k = share(s.outbox), i = 0; i < k; ++i) {
            saga::outbox_record r;
            r.saga_id = id;
            r.destination = "budget";
            r.message.message_id = fmt::format("{}-s{}-{}", id, step, i);
            r.message.saga_id = id;
            r.message.step = "reserve_budget";
            r.message.type = "reserve";
            r.message.payload =
                json{{"campaign", std::string(std::max(0, s.message_bytes - 330), 'c')}};
            t.outbox.push_back(std::move(r));
        }
        for (int k = share(s.inbox), i = 0; i < k; ++i)
            t.inbox.push_back(fmt::format("{}-r{}-{}", id, step, i));
        for (int k = share(s.timers_set), i = 0; i < k; ++i)
            t.timers_set.push_back({id, fmt::format("t{}/{}", step, i),
                                    t_start + std::chrono::seconds{30},
                                    json{{"k", "timeout"}, {"attempt", 1}}});
        if (step > 0)
            for (int k = share(s.timers_cleared), i = 0; i < k; ++i)
                t.timers_cleared.push_back(fmt::format("t{}/{}", step - 1, i));
        return t;
    };
    auto submit = [&](int li) {
        lane& l = lanes[li];
        auto t = make(l.saga, l.step);
        std::vector<std::string> ids;
        for (const auto& r : t.outbox) ids.push_back(r.message.message_id);
        store->async_commit(std::move(t), [&, li, ids = std::move(ids)](saga::result<void> r) {
            if (!r) {
                std::fprintf(stderr, "commit: %s\n", r.error().what().c_str());
                std::exit(1);
            }
            std::lock_guard lock(m);
            acks.insert(acks.end(), ids.begin(), ids.end());
            ready.push_back(li);
            cv.notify_one();
        });
    };
    for (int i = 0; i < o.inflight && next_saga < total; ++i) {
        lanes[i].saga = next_saga++;
        submit(i);
    }
    int active = std::min(o.inflight, total);
    while (active > 0) {
        std::vector<int> now_ready;
        std::vector<std::string> now_acks;
        {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return !ready.empty(); });
            now_ready.assign(ready.begin(), ready.end());
            ready.clear();
            now_acks.swap(acks);
        }
        // the engine's batched acks: one store call for what was released meanwhile
        if (!now_acks.empty()) {
            if (auto a = store->ack_outbox(now_acks); !a) {
                std::fprintf(stderr, "ack: %s\n", a.error().what().c_str());
                std::exit(1);
            }
        }
        for (int li : now_ready) {
            lane& l = lanes[li];
            if (++l.step < s.transitions) {
                submit(li);
                continue;
            }
            if (++finished == warm) {
                c0 = cpu_seconds();
                t0 = steady::now();
            }
            if (next_saga < total) {
                l.saga = next_saga++;
                l.step = 0;
                submit(li);
            } else {
                --active;
            }
        }
    }
    const double wall = std::chrono::duration<double>(steady::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    const auto stats = store->stats();
    store.reset();
    remove_db(p);
    fmt::print(
        "store    sqlite_store::async_commit, {} sagas, {} in flight ({} transitions each): "
        "{:.0f} sagas/s, {:.0f} us CPU per saga, {:.1f} transitions per transaction\n",
        o.sagas, o.inflight, s.transitions, o.sagas / wall, cpu / o.sagas * 1e6,
        stats.batches ? static_cast<double>(stats.commits) / static_cast<double>(stats.batches)
                      : 0.0);
}

int to_int(const char* v) {
    return std::atoi(v);
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto v = [&] {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", argv[i]);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--mode")
            o.mode = v();
        else if (a == "--sagas")
            o.sagas = to_int(v());
        else if (a == "--per-tx")
            o.per_tx = to_int(v());
        else if (a == "--inflight")
            o.inflight = to_int(v());
        else if (a == "--fsyncs")
            o.fsyncs = to_int(v());
        else if (a == "--transitions")
            o.s.transitions = to_int(v());
        else if (a == "--history")
            o.s.history = to_int(v());
        else if (a == "--outbox")
            o.s.outbox = to_int(v());
        else if (a == "--inbox")
            o.s.inbox = to_int(v());
        else if (a == "--timers")
            o.s.timers_set = o.s.timers_cleared = to_int(v());
        else if (a == "--data-bytes")
            o.s.data_bytes = to_int(v());
        else if (a == "--state-bytes")
            o.s.state_bytes = to_int(v());
        else if (a == "--message-bytes")
            o.s.message_bytes = to_int(v());
        else {
            std::fprintf(stderr,
                         "usage: saga_store_floor [--mode fsync|rows|store|all] [--sagas N] "
                         "[--per-tx N] [--inflight N] [--fsyncs N] [--transitions N] "
                         "[--history N] [--outbox N] [--inbox N] [--timers N] [--data-bytes N] "
                         "[--state-bytes N] [--message-bytes N]\n");
            return 2;
        }
    }
    if (o.s.transitions < 1 || o.sagas < 1 || o.per_tx < 1 || o.inflight < 1 || o.fsyncs < 1) {
        std::fprintf(stderr, "counts must be at least 1\n");
        return 2;
    }
    if (o.mode == "fsync" || o.mode == "all") run_fsync(o);
    if (o.mode == "rows" || o.mode == "all") run_rows(o);
    if (o.mode == "store" || o.mode == "all") run_store(o);
    return 0;
}
