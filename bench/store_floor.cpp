// saga_store_floor: what the SQLite journal store alone can do on this machine, with zero
// engine cost. The bound the saga benchmark is measured against (see bench/README.md, "The
// floor").
//
//   fsync    one-row transactions, WAL + synchronous=FULL (and a raw write+fdatasync loop):
//            the latency of one durable commit, the floor of every serial transition
//   rows     the rows one saga writes on schema v2 (a head insert, a journal record per
//            transition, a few head updates), raw sqlite3 with the store's own prepared
//            statements (the newest-version seek included), `--per-tx` sagas per transaction:
//            the SQLite floor
//   store    the same sagas as `journal_write`s through sqlite_journal_store::async_commit (the
//            checks, the journal codec, the writer thread, group commit, a savepoint per write)
//            from `--inflight` lanes, each one saga's records one after another: the store
//            adapter's floor
//
// The shape (records, head writes, the sizes of events, output and data) defaults to what one
// saga of variant A writes on core v2 (measured on a kept database of saga_bench:
// SAGA_BENCH_KEEP_DB=1, see README); every one is an option. The rows and store modes write the
// same texts: the events and output are made once per saga as saga::event and
// saga::outbound_message values and encoded with the journal codec (in the rows mode before the
// clock starts).

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
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <saga/journal_codec.hpp>
#include <saga/journal_store.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>

namespace {

using steady = std::chrono::steady_clock;

/// What one saga writes (defaults: variant A on core v2, from a kept saga_bench database).
struct shape {
    int transitions = 8;      // journal records: one per committed transition
    int head_updates = 2;     // head rows updated after the first record's insert
    int events_bytes = 250;   // encoded events per record (about)
    int output_records = 4;   // records that release messages
    int messages = 7;         // messages per saga, spread over the output records
    int message_bytes = 480;  // encoded output per message (about)
    int data_records = 8;     // records that carry the user's data
    int data_bytes = 320;
    int snapshots = 0;  // records that carry a snapshot
    int snapshot_bytes = 900;
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
    for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"})
        std::filesystem::remove(p.string() + suffix, ec);
}

void check(int rc, sqlite3* db, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        std::fprintf(stderr, "sqlite: %s: %s\n", what, sqlite3_errmsg(db));
        std::exit(1);
    }
}

std::shared_ptr<saga::sqlite::sqlite_journal_store> open_store(const std::filesystem::path& p) {
    auto s = saga::sqlite::sqlite_journal_store::open(
        saga::sqlite::journal_store_options{.path = p.string()});
    if (!s) {
        std::fprintf(stderr, "open: %s\n", s.error().what().c_str());
        std::exit(1);
    }
    return std::move(s).value();
}

/// A store file with the journal schema (made by sqlite_journal_store::open, then closed),
/// opened raw: WAL, FULL.
sqlite3* open_raw(const std::filesystem::path& p) {
    (void)open_store(p);
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
    stmt(const stmt&) = delete;
    stmt& operator=(const stmt&) = delete;
    stmt& text(int i, const std::string& v) {
        sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    stmt& text(int i, const std::optional<std::string>& v) {
        if (!v) {
            sqlite3_bind_null(s, i);
            return *this;
        }
        return text(i, *v);
    }
    stmt& integer(int i, std::int64_t v) {
        sqlite3_bind_int64(s, i, v);
        return *this;
    }
    stmt& null(int i) {
        sqlite3_bind_null(s, i);
        return *this;
    }
    /// Runs the statement to its end; the number of rows it returned.
    int run() {
        int rows = 0;
        for (;;) {
            const int rc = sqlite3_step(s);
            if (rc == SQLITE_ROW) {
                ++rows;
                continue;
            }
            check(rc, db, sqlite3_sql(s));
            break;
        }
        sqlite3_reset(s);
        return rows;
    }
};

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// ---- one saga's writes ---------------------------------------------------------------------

const saga::time_point t_start{std::chrono::seconds{1767225600}};

/// How many of `total` things fall on step `step` of `steps` (spread evenly, summing to total).
int share(int total, int step, int steps) {
    return total * (step + 1) / steps - total * step / steps;
}

/// True when record `version` (1-based) of `records` is one of `count` spread over them.
bool picked(int count, int version, int records) {
    return share(count, version - 1, records) > 0;
}

/// The head of `id` as record `version` leaves it.
saga::instance_head head_of(const std::string& id, int version, bool last) {
    saga::instance_head h;
    h.id = id;
    h.definition = "publish_campaign";
    h.definition_version = 1;
    h.status = last ? saga::saga_status::completed : saga::saga_status::running;
    h.version = static_cast<std::uint64_t>(version);
    h.created_at = t_start;
    h.updated_at = t_start + std::chrono::microseconds{version};
    if (!last) h.wake_at = t_start + std::chrono::seconds{30};
    return h;
}

/// Events of about `bytes` encoded: step completions and attempt starts, as the campaign saga
/// writes them.
std::vector<saga::event> events_of(int version, int bytes) {
    std::vector<saga::event> out;
    for (int k = 0;; ++k) {
        saga::event e;
        e.unit = fmt::format("submit_{}", k);
        e.attempt = 1;
        if (k % 2 == 0) {
            e.type = saga::event_type::step_completed;
        } else {
            e.type = saga::event_type::attempt_started;
            e.due = t_start + std::chrono::seconds{30 + version};
            e.name = "google";
        }
        out.push_back(std::move(e));
        if (static_cast<int>(saga::encode_events(out).size()) >= bytes) return out;
    }
}

/// A command to `destination` of about `bytes` encoded (as one element of the output).
saga::outbound_message message_of(const std::string& id, int version, int k, int bytes) {
    saga::outbound_message m;
    m.destination = "budget";
    auto& e = m.message;
    e.message_id = fmt::format("{}/step_{}_{}/f0/1", id, version, k);
    e.type = "reserve";
    e.saga_id = id;
    e.step = fmt::format("step_{}_{}", version, k);
    e.attempt = 1;
    e.idempotency_key = id + "/" + e.step;
    e.reply_to = "saga.engine";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.payload = {{"amount", 1007}, {"campaign", "cmp-7"}};
    const auto size = static_cast<int>(
        saga::encode_output(std::span<const saga::outbound_message>(&m, 1)).size());
    if (size < bytes)
        e.payload["note"] =
            std::string(static_cast<std::size_t>(std::max(0, bytes - size - 10)), 'c');
    return m;
}

/// The writes of saga `n`: record 1 with the head, then the others, `head_updates` of them
/// with the head again (the last one always, ending it `completed`).
std::vector<saga::journal_write> saga_writes(const shape& s, int n) {
    const std::string id = fmt::format("{:016x}{:016x}", n * 2654435761u, n);
    const std::string data =
        R"({"d":")" + std::string(static_cast<std::size_t>(std::max(0, s.data_bytes - 8)), 'd') +
        R"("})";
    std::vector<saga::journal_write> out;
    int output_seen = 0;
    for (int v = 1; v <= s.transitions; ++v) {
        saga::journal_write w;
        auto& r = w.record;
        r.saga_id = id;
        r.version = static_cast<std::uint64_t>(v);
        r.at = t_start + std::chrono::microseconds{v};
        r.released_through = static_cast<std::uint64_t>(v > 1 ? v - 2 : 0);
        r.events = events_of(v, s.events_bytes);
        if (s.output_records > 0 && picked(s.output_records, v, s.transitions)) {
            const int k = share(s.messages, output_seen++, s.output_records);
            for (int i = 0; i < k; ++i) r.output.push_back(message_of(id, v, i, s.message_bytes));
        }
        if (picked(s.data_records, v, s.transitions)) r.data = data;
        if (picked(s.snapshots, v, s.transitions))
            r.snapshot = std::string(static_cast<std::size_t>(s.snapshot_bytes), 's');
        const bool last = v == s.transitions;
        // head updates: the last record's, and the others spread over records 2 .. last - 1
        bool update = false;
        if (v > 1 && s.head_updates > 0)
            update =
                last || (s.transitions > 2 && picked(s.head_updates - 1, v - 1, s.transitions - 2));
        if (v == 1 || update) w.head = head_of(id, v, last);
        out.push_back(std::move(w));
    }
    return out;
}

// ---- fsync ---------------------------------------------------------------------------------

void run_fsync(const options& o) {
    const auto p = fresh_path("fsync");
    sqlite3* db = open_raw(p);
    check(sqlite3_exec(db, "CREATE TABLE one (k INTEGER PRIMARY KEY, v TEXT)", nullptr, nullptr,
                       nullptr),
          db, "create");
    std::vector<double> lat;
    double wall = 0;
    {
        stmt begin(db, "BEGIN IMMEDIATE"), commit(db, "COMMIT"),
            insert(db, "INSERT INTO one (v) VALUES (?1)");
        const std::string v(100, 'x');
        const auto t0 = steady::now();
        for (int i = 0; i < o.fsyncs; ++i) {
            const auto a = steady::now();
            begin.run();
            insert.text(1, v).run();
            commit.run();
            lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - a).count());
        }
        wall = std::chrono::duration<double>(steady::now() - t0).count();
    }
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

/// A journal_write as the store binds it.
struct encoded_write {
    std::string saga_id;
    std::int64_t version = 0;
    std::int64_t at = 0;
    std::string events;
    std::optional<std::string> output;
    std::int64_t released_through = 0;
    std::optional<std::string> data;
    std::optional<std::string> snapshot;
    bool has_head = false;
    std::string status;
    std::optional<std::int64_t> wake_at;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

std::vector<encoded_write> encode_saga(const shape& s, int n) {
    std::vector<encoded_write> out;
    for (auto& w : saga_writes(s, n)) {
        encoded_write e;
        const auto& r = w.record;
        e.saga_id = r.saga_id;
        e.version = static_cast<std::int64_t>(r.version);
        e.at = saga::to_unix_micros(r.at);
        e.events = saga::encode_events(r.events);
        if (!r.output.empty()) e.output = saga::encode_output(r.output);
        e.released_through = static_cast<std::int64_t>(r.released_through);
        e.data = r.data;
        e.snapshot = r.snapshot;
        if (w.head) {
            e.has_head = true;
            e.status = std::string(saga::to_string(w.head->status));
            if (w.head->wake_at) e.wake_at = saga::to_unix_micros(*w.head->wake_at);
            e.created_at = saga::to_unix_micros(w.head->created_at);
            e.updated_at = saga::to_unix_micros(w.head->updated_at);
        }
        out.push_back(std::move(e));
    }
    return out;
}

struct text_sizes {
    double events = 0, output = 0, data = 0, snapshot = 0;  // bytes per saga
    int head_writes = 0;
};

text_sizes sizes_of(const std::vector<encoded_write>& saga) {
    text_sizes t;
    for (const auto& w : saga) {
        t.events += static_cast<double>(w.events.size());
        t.output += w.output ? static_cast<double>(w.output->size()) : 0;
        t.data += w.data ? static_cast<double>(w.data->size()) : 0;
        t.snapshot += w.snapshot ? static_cast<double>(w.snapshot->size()) : 0;
        t.head_writes += w.has_head ? 1 : 0;
    }
    return t;
}

void run_rows(const options& o) {
    const shape& s = o.s;
    const auto p = fresh_path("rows");
    sqlite3* db = open_raw(p);
    int txs = 0;
    double wall = 0, cpu = 0;
    text_sizes sizes;
    {
        // the statements of adapters/sqlite/src/journal_rows.cpp and sqlite_journal_store.cpp
        stmt begin(db, "BEGIN IMMEDIATE"), commit(db, "COMMIT");
        stmt newest(db,
                    "SELECT version FROM journal WHERE saga_id = ?1 ORDER BY version DESC LIMIT 1");
        stmt insert_head(db,
                         "INSERT INTO heads (id, definition, definition_version, status, "
                         "correlation_key, exclusive, wake_at, version, created_at, updated_at) "
                         "VALUES (?1, 'publish_campaign', 1, ?2, '', 0, ?3, ?4, ?5, ?6) ON "
                         "CONFLICT DO NOTHING");
        stmt update_head(db,
                         "UPDATE OR IGNORE heads SET status = ?2, exclusive = 0, wake_at = ?3, "
                         "version = ?4, updated_at = ?6 WHERE id = ?1 AND definition = "
                         "'publish_campaign' AND definition_version = 1 AND correlation_key = '' "
                         "AND created_at = ?5");
        stmt insert_record(db,
                           "INSERT INTO journal (saga_id, version, at, events, output, "
                           "released_through, data, snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                           "?7, ?8)");
        auto write = [&](const encoded_write& w) {
            if (w.version > 1 && newest.text(1, w.saga_id).run() != 1) {
                std::fprintf(stderr, "rows: no newest record for %s\n", w.saga_id.c_str());
                std::exit(1);
            }
            if (w.has_head) {
                auto& h = w.version == 1 ? insert_head : update_head;
                h.text(1, w.saga_id).text(2, w.status);
                if (w.wake_at) {
                    h.integer(3, *w.wake_at);
                } else {
                    h.null(3);
                }
                h.integer(4, w.version).integer(5, w.created_at).integer(6, w.updated_at).run();
            }
            insert_record.text(1, w.saga_id)
                .integer(2, w.version)
                .integer(3, w.at)
                .text(4, w.events)
                .text(5, w.output)
                .integer(6, w.released_through)
                .text(7, w.data)
                .text(8, w.snapshot)
                .run();
        };
        // warm-up, then every measured saga's texts made before the clock starts
        begin.run();
        for (int i = 0; i < 200; ++i)
            for (const auto& w : encode_saga(s, -1 - i)) write(w);
        commit.run();
        std::vector<std::vector<encoded_write>> sagas;
        sagas.reserve(static_cast<std::size_t>(o.sagas));
        for (int i = 0; i < o.sagas; ++i) sagas.push_back(encode_saga(s, i));
        sizes = sizes_of(sagas.front());

        const double c0 = cpu_seconds();
        const auto t0 = steady::now();
        int done = 0;
        while (done < o.sagas) {
            begin.run();
            const int n = std::min(o.per_tx, o.sagas - done);
            for (int i = 0; i < n; ++i)
                for (const auto& w : sagas[static_cast<std::size_t>(done + i)]) write(w);
            commit.run();
            done += n;
            ++txs;
        }
        wall = std::chrono::duration<double>(steady::now() - t0).count();
        cpu = cpu_seconds() - c0;
    }
    sqlite3_close(db);
    remove_db(p);
    const int rows_per_saga = s.transitions + sizes.head_writes;
    fmt::print(
        "rows     raw sqlite (schema v2), {} sagas, {} per transaction ({} tx, {} row writes per "
        "saga: {} records, {} head writes; {:.0f} B events, {:.0f} B output, {:.0f} B data, "
        "{:.0f} B snapshot per saga): {:.0f} sagas/s, {:.0f} us CPU per saga, {:.0f} us wall per "
        "transaction\n",
        o.sagas, o.per_tx, txs, rows_per_saga, s.transitions, sizes.head_writes, sizes.events,
        sizes.output, sizes.data, sizes.snapshot, o.sagas / wall, cpu / o.sagas * 1e6,
        wall / txs * 1e6);
}

// ---- store: through sqlite_journal_store ----------------------------------------------------

void run_store(const options& o) {
    const shape& s = o.s;
    const auto p = fresh_path("store");
    auto store = open_store(p);

    std::mutex m;
    std::condition_variable cv;
    std::deque<int> ready;  // lanes whose last commit is done
    struct lane {
        std::vector<saga::journal_write> writes;  // the saga's writes not yet committed
        std::size_t next = 0;
    };
    std::vector<lane> lanes(static_cast<std::size_t>(o.inflight));
    int next_saga = 0, finished = 0;
    const int warm = std::min(200, o.sagas);
    const int total = o.sagas + warm;
    double c0 = 0;
    steady::time_point t0{};

    auto submit = [&](int li) {
        lane& l = lanes[static_cast<std::size_t>(li)];
        store->async_commit(std::move(l.writes[l.next++]), [&, li](saga::result<void> r) {
            if (!r) {
                std::fprintf(stderr, "commit: %s\n", r.error().what().c_str());
                std::exit(1);
            }
            std::lock_guard lock(m);
            ready.push_back(li);
            cv.notify_one();
        });
    };
    auto begin_saga = [&](int li) {
        lane& l = lanes[static_cast<std::size_t>(li)];
        l.writes = saga_writes(s, next_saga++);
        l.next = 0;
        submit(li);
    };
    for (int i = 0; i < o.inflight && next_saga < total; ++i) begin_saga(i);
    int active = std::min(o.inflight, total);
    while (active > 0) {
        std::vector<int> now_ready;
        {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return !ready.empty(); });
            now_ready.assign(ready.begin(), ready.end());
            ready.clear();
        }
        for (int li : now_ready) {
            lane& l = lanes[static_cast<std::size_t>(li)];
            if (l.next < l.writes.size()) {
                submit(li);
                continue;
            }
            if (++finished == warm) {
                c0 = cpu_seconds();
                t0 = steady::now();
            }
            if (next_saga < total) {
                begin_saga(li);
            } else {
                --active;
            }
        }
    }
    const double wall = std::chrono::duration<double>(steady::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    const auto st = store->stats();
    store.reset();
    remove_db(p);
    // the store's counts over the whole run (warm-up included: the measured window starts and
    // ends with sagas half done), per saga
    const auto per_saga = [&](std::uint64_t x) { return static_cast<double>(x) / total; };
    fmt::print(
        "store    sqlite_journal_store::async_commit, {} sagas, {} in flight ({} records each): "
        "{:.0f} sagas/s, {:.0f} us CPU per saga, {:.1f} records per transaction; per saga {:.2f} "
        "row writes, {:.2f} transactions, {:.2f} syncs (warm-up included)\n",
        o.sagas, o.inflight, s.transitions, o.sagas / wall, cpu / o.sagas * 1e6,
        st.batches ? static_cast<double>(st.commits) / static_cast<double>(st.batches) : 0.0,
        per_saga(st.row_writes), per_saga(st.transactions), per_saga(st.syncs));
}

int to_int(const char* v) {
    return std::atoi(v);
}

constexpr const char* usage =
    "usage: saga_store_floor [--mode fsync|rows|store|all] [--sagas N] [--per-tx N] "
    "[--inflight N] [--fsyncs N] [--transitions N] [--head-updates N] [--events-bytes N] "
    "[--output-records N] [--messages N] [--message-bytes N] [--data-records N] "
    "[--data-bytes N] [--snapshots N] [--snapshot-bytes N]\n";

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
        else if (a == "--head-updates")
            o.s.head_updates = to_int(v());
        else if (a == "--events-bytes")
            o.s.events_bytes = to_int(v());
        else if (a == "--output-records")
            o.s.output_records = to_int(v());
        else if (a == "--messages")
            o.s.messages = to_int(v());
        else if (a == "--message-bytes")
            o.s.message_bytes = to_int(v());
        else if (a == "--data-records")
            o.s.data_records = to_int(v());
        else if (a == "--data-bytes")
            o.s.data_bytes = to_int(v());
        else if (a == "--snapshots")
            o.s.snapshots = to_int(v());
        else if (a == "--snapshot-bytes")
            o.s.snapshot_bytes = to_int(v());
        else {
            std::fprintf(stderr, "%s", usage);
            return a == "--help" || a == "-h" ? 0 : 2;
        }
    }
    const shape& s = o.s;
    if (s.transitions < 1 || o.sagas < 1 || o.per_tx < 1 || o.inflight < 1 || o.fsyncs < 1) {
        std::fprintf(stderr, "counts must be at least 1\n");
        return 2;
    }
    if (s.head_updates < 0 || s.head_updates > s.transitions - 1 || s.output_records < 0 ||
        s.output_records > s.transitions || s.messages < 0 || s.data_records < 0 ||
        s.data_records > s.transitions || s.snapshots < 0 || s.snapshots > s.transitions ||
        s.events_bytes < 0 || s.message_bytes < 0 || s.data_bytes < 0 || s.snapshot_bytes < 0) {
        std::fprintf(stderr,
                     "--head-updates at most --transitions - 1; --output-records, "
                     "--data-records and --snapshots at most --transitions; sizes at least 0\n");
        return 2;
    }
    if (o.mode != "fsync" && o.mode != "rows" && o.mode != "store" && o.mode != "all") {
        std::fprintf(stderr, "%s", usage);
        return 2;
    }
    if (o.mode == "fsync" || o.mode == "all") run_fsync(o);
    if (o.mode == "rows" || o.mode == "all") run_rows(o);
    if (o.mode == "store" || o.mode == "all") run_store(o);
    return 0;
}
