// saga::sqlite::sqlite_journal_store beyond the contract: real files reopened, the schema as the
// sqlite3 shell sees it, refusals (not ours, newer, version 1, damaged, in use, read-only),
// the counters (transactions, row writes, syncs), group commit with many threads, one refused
// write among others in a batch, a failed transaction (disk full) that fails each caller and
// loses nothing of the others'.
#include "contract/journal_store_contract.hpp"

#include "temp_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <saga/journal_codec.hpp>
#include <saga/sqlite/detail/journal_schema.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>
#include <saga/sqlite/sqlite_store.hpp>
#include <saga/sqlite/store_lock.hpp>

using namespace saga;
using namespace saga::journal_contract;
using Catch::Matchers::Contains;
using saga::sqlite::journal_store_options;
using saga::sqlite::sqlite_journal_store;
using saga::sqlite::test::damage_page;
using saga::sqlite::test::file_bytes;
using saga::sqlite::test::leaf_page_of;
using saga::sqlite::test::open_journal_store;
using saga::sqlite::test::temp_dir;
using saga::sqlite::test::temp_path;

namespace fs = std::filesystem;

namespace {

std::string meta_value(const std::string& path, const std::string& key) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT value FROM saga_meta WHERE key = ?1");
    q.bind(1, key);
    REQUIRE(q.executeStep());
    return q.getColumn(0).getString();
}

/// Refused with `code`, naming the file and saying `what`; the file is unchanged.
void refused_unchanged(const std::string& path, errc code, const std::string& what,
                       bool read_only = false) {
    const std::vector<char> before = file_bytes(path);
    auto opened = sqlite_journal_store::open({.path = path, .read_only = read_only});
    REQUIRE_FALSE(opened);
    INFO(opened.error().what());
    CHECK(opened.error() == code);
    CHECK_THAT(opened.error().message, Contains(path));
    CHECK_THAT(opened.error().message, Contains(what));
    CHECK(file_bytes(path) == before);
}

/// Holds the writer thread inside the handler of a first write until `release()`: what is
/// committed meanwhile queues up and goes into the next transaction, all of it.
class writer_gate {
public:
    explicit writer_gate(journal_store& store) : state_(std::make_shared<state>()) {
        store.async_commit(first_write("gate"), [s = state_](result<void> r) {
            s->ok = r.has_value();
            s->entered.count_down();
            s->open.wait();
        });
        state_->entered.wait();
    }
    ~writer_gate() { release(); }
    writer_gate(const writer_gate&) = delete;
    writer_gate& operator=(const writer_gate&) = delete;

    void release() {
        if (!released_) {
            released_ = true;
            state_->open.count_down();
        }
    }
    [[nodiscard]] bool ok() const { return state_->ok; }

private:
    // shared with the handler, which may still be leaving `open.wait()` when the gate goes
    struct state {
        std::latch entered{1};
        std::latch open{1};
        std::atomic<bool> ok{false};
    };
    std::shared_ptr<state> state_;
    bool released_ = false;
};

/// Queues `w` and returns its outcome to come.
std::future<result<void>> queued_commit(journal_store& store, journal_write w) {
    auto promise = std::make_shared<std::promise<result<void>>>();
    auto future = promise->get_future();
    store.async_commit(std::move(w),
                       [promise](result<void> r) { promise->set_value(std::move(r)); });
    return future;
}

journal_write exclusive_first(const std::string& id, const std::string& key) {
    auto w = first_write(id);
    w.head->correlation_key = key;
    w.head->exclusive = true;
    return w;
}

}  // namespace

TEST_CASE("sqlite journal store: a reopened file has every head and record",
          "[sqlite][journal][durability]") {
    temp_path file;
    auto a = first_write("a");
    a.head->correlation_key = "campaign-1";
    a.head->exclusive = true;
    a.head->wake_at = at_ms(60'000);
    a.record.output = {make_output("a", "a/reserve/f1/1")};
    a.record.data = R"({"budget":5})";
    auto a2 = next_write("a", 2);
    a2.record.released_through = 1;
    a2.record.snapshot = "state of a at 2";
    a2.head = *a.head;
    a2.head->version = 2;
    a2.head->status = saga_status::waiting;
    a2.head->updated_at = at_ms(20);
    auto b = first_write("b", saga_status::completed);

    std::vector<journal_record> journal_a;
    {
        auto store = open_journal_store(file.str());
        SAGA_JOURNAL_OK(store->commit(a));
        SAGA_JOURNAL_OK(store->commit(a2));
        SAGA_JOURNAL_OK(store->commit(b));
        journal_a = SAGA_JOURNAL_OK(store->journal("a"));
        REQUIRE(journal_a.size() == 2);
        CHECK(store->stats().commits == 3);
        CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version == 0);
        CHECK(sqlite::detail::journal_store_access::settings(*store).synchronous == 2);
        CHECK(sqlite::detail::journal_store_access::settings(*store).journal_mode == "wal");
    }

    CHECK(meta_value(file.str(), "schema_version") == "2");
    CHECK(meta_value(file.str(), "application") == "saga");

    auto store = open_journal_store(file.str());
    CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version == 2);
    CHECK(SAGA_JOURNAL_OK(store->head("a")) == *a2.head);
    CHECK(SAGA_JOURNAL_OK(store->journal("a")) == journal_a);
    CHECK(journal_a[0] == a.record);
    CHECK(journal_a[1] == a2.record);
    const auto loaded = SAGA_JOURNAL_OK(store->load("a"));
    REQUIRE(loaded.records.size() == 1);  // from the snapshot on
    CHECK(loaded.records[0] == a2.record);
    CHECK(loaded.data == a.record.data);  // older than the snapshot, still the newest
    CHECK(SAGA_JOURNAL_OK(store->due(at_ms(60'000), 10)) == std::vector<std::string>{"a"});
    CHECK(SAGA_JOURNAL_OK(store->in_status({saga_status::completed}, "", 10)) ==
          std::vector<std::string>{"b"});

    // the rules hold across the reopen
    SAGA_JOURNAL_FAILS(store->commit(next_write("a", 2)), errc::version_conflict);
    SAGA_JOURNAL_FAILS(store->commit(first_write("b")), errc::already_exists);
    SAGA_JOURNAL_FAILS(store->commit(exclusive_first("rival", "campaign-1")), errc::lock_held);
    SAGA_JOURNAL_OK(store->commit(next_write("a", 3)));
}

TEST_CASE("sqlite journal store: the sqlite3 shell reads the journal as JSON text",
          "[sqlite][journal][schema]") {
    temp_path file;
    auto w = first_write("order-42");
    w.head->wake_at = at_ms(5);
    w.record.output = {make_output("order-42", "order-42/reserve/f1/1")};
    {
        auto store = open_journal_store(file.str());
        SAGA_JOURNAL_OK(store->commit(w));
        SAGA_JOURNAL_OK(store->commit(next_write("order-42", 2)));
    }
    SQLite::Database db(file.str(), SQLite::OPEN_READONLY);
    SQLite::Statement q(db,
                        "SELECT version, at, events, output, released_through, data, snapshot, "
                        "json_extract(events, '$[1].t'), json_extract(events, '$[1].e'), "
                        "json_extract(output, '$[0].msg.message_id') "
                        "FROM journal WHERE saga_id = 'order-42' ORDER BY version");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getInt64() == 1);
    CHECK(q.getColumn(1).getInt64() == to_unix_micros(w.record.at));
    CHECK(q.getColumn(2).getString() == encode_events(w.record.events));
    CHECK(q.getColumn(3).getString() == encode_output(w.record.output));
    CHECK(q.getColumn(4).getInt64() == 0);
    CHECK(q.getColumn(5).isNull());
    CHECK(q.getColumn(6).isNull());
    CHECK(q.getColumn(7).getString() == "attempt_failed");
    CHECK(q.getColumn(8).getString() == w.record.events[1].error);
    CHECK(q.getColumn(9).getString() == "order-42/reserve/f1/1");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getInt64() == 2);
    CHECK(q.getColumn(3).isNull());  // no output: NULL, not "[]"
    CHECK_FALSE(q.executeStep());

    SQLite::Statement h(db,
                        "SELECT definition, definition_version, status, correlation_key, "
                        "exclusive, wake_at, version, created_at, updated_at FROM heads "
                        "WHERE id = 'order-42'");
    REQUIRE(h.executeStep());
    CHECK(h.getColumn(0).getString() == "publish");
    CHECK(h.getColumn(1).getInt64() == 3);
    CHECK(h.getColumn(2).getString() == "running");
    CHECK(h.getColumn(5).getInt64() == to_unix_micros(at_ms(5)));
    CHECK(h.getColumn(6).getInt64() == 1);

    // the queries the store makes are answered by the indexes meant for them (due and purge
    // name theirs: a query that cannot use the index it names fails to prepare)
    auto plan = [&](const std::string& sql) {
        SQLite::Statement p(db, "EXPLAIN QUERY PLAN " + sql);
        std::string all;
        while (p.executeStep()) all += p.getColumn(3).getString() + "\n";
        return all;
    };
    CHECK_THAT(plan("SELECT id FROM heads INDEXED BY heads_due WHERE wake_at IS NOT NULL AND "
                    "wake_at <= 5 AND status "
                    "NOT IN ('completed', 'compensated', 'cancelled') ORDER BY wake_at LIMIT 10"),
               Contains("heads_due"));
    CHECK_THAT(plan("SELECT id FROM heads WHERE status = 'running' AND id > '' ORDER BY id "
                    "LIMIT 10"),
               Contains("heads_status"));
    CHECK_THAT(plan("SELECT id FROM heads INDEXED BY heads_purge WHERE status IN ('completed', "
                    "'compensated', "
                    "'cancelled') AND updated_at < 5 ORDER BY updated_at LIMIT 10"),
               Contains("heads_purge"));
    CHECK_THAT(plan("SELECT version FROM journal WHERE saga_id = 'x' ORDER BY version DESC "
                    "LIMIT 1"),
               Contains("sqlite_autoindex_journal_1"));
}

TEST_CASE("sqlite journal store: times are kept to the microsecond", "[sqlite][journal]") {
    auto store = sqlite::test::fresh_journal_store();
    auto w = first_write("t");
    const time_point fine = at_ms(7) + std::chrono::microseconds{123} + std::chrono::nanoseconds{9};
    w.head->wake_at = fine;
    w.head->created_at = fine;
    w.record.at = fine;
    SAGA_JOURNAL_OK(store->commit(w));
    const time_point kept = at_ms(7) + std::chrono::microseconds{123};
    const auto h = SAGA_JOURNAL_OK(store->head("t"));
    CHECK(h.wake_at == kept);
    CHECK(h.created_at == kept);
    CHECK(SAGA_JOURNAL_OK(store->journal("t"))[0].at == kept);
    // the stored time is what due() and list() compare
    CHECK(SAGA_JOURNAL_OK(store->due(kept, 10)).size() == 1);
    CHECK(SAGA_JOURNAL_OK(store->due(kept - std::chrono::nanoseconds{1}, 10)).empty());
}

TEST_CASE("sqlite journal store: files that are not its own are refused, named and unchanged",
          "[sqlite][journal][open]") {
    temp_dir dir;
    SECTION("random bytes") {
        const std::string path = dir.file("random.db");
        std::ofstream(path, std::ios::binary) << std::string(8192, '\x5a');
        refused_unchanged(path, errc::store_failure, "not a SQLite database");
    }
    SECTION("a SQLite database of another application") {
        const std::string path = dir.file("other.db");
        {
            SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY)");
        }
        refused_unchanged(path, errc::store_failure, "not a saga store");
    }
    SECTION("a store of a newer schema version") {
        const std::string path = dir.file("newer.db");
        { open_journal_store(path); }
        {
            SQLite::Database db(path, SQLite::OPEN_READWRITE);
            db.exec("UPDATE saga_meta SET value = '3' WHERE key = 'schema_version'");
        }
        refused_unchanged(path, errc::invalid_state, "schema version 3");
        refused_unchanged(path, errc::invalid_state, "schema version 3", true);
    }
    SECTION(
        "a store of schema version 1 (sqlite_store's): refused read-only, migrated read-write") {
        // the migration itself: test_sqlite_v1_migration.cpp
        const std::string path = dir.file("v1.db");
        { auto v1 = saga::sqlite::test::open_store(path); }
        refused_unchanged(path, errc::invalid_state, "open it read-write once to migrate it", true);
        auto migrated = open_journal_store(path);
        CHECK(sqlite::detail::journal_store_access::settings(*migrated).opened_at_version == 1);
    }
    SECTION("and sqlite_store refuses a journal store's file as newer") {
        const std::string path = dir.file("v2.db");
        { open_journal_store(path); }
        const std::vector<char> before = file_bytes(path);
        auto opened = saga::sqlite::sqlite_store::open({.path = path});
        REQUIRE_FALSE(opened);
        CHECK(opened.error() == errc::invalid_state);
        CHECK_THAT(opened.error().message, Contains("schema version 2"));
        CHECK(file_bytes(path) == before);
    }
    SECTION("bad options") {
        CHECK(sqlite_journal_store::open({.path = ""}).error() == errc::invalid_argument);
        CHECK(sqlite_journal_store::open({.path = ":memory:"}).error() == errc::invalid_argument);
        CHECK(sqlite_journal_store::open({.path = dir.file("x.db"), .max_batch = 0}).error() ==
              errc::invalid_argument);
        CHECK_FALSE(fs::exists(dir.file("x.db")));
    }
}

TEST_CASE("sqlite journal store: a damaged page is refused on open",
          "[sqlite][journal][integrity]") {
    temp_path file;
    {
        auto store = open_journal_store(file.str());
        for (int i = 0; i < 200; ++i) {
            const std::string id = "s-" + std::to_string(i);
            SAGA_JOURNAL_OK(store->commit(first_write(id)));
            for (std::uint64_t v = 2; v <= 5; ++v)
                SAGA_JOURNAL_OK(store->commit(next_write(id, v)));
        }
    }
    REQUIRE_FALSE(fs::exists(file.str() + "-wal"));
    damage_page(file.str(), leaf_page_of(file.str(), "journal", 3));
    refused_unchanged(file.str(), errc::store_failure, "quick_check");
    refused_unchanged(file.str(), errc::store_failure, ".recover", true);
}

TEST_CASE("sqlite journal store: a damaged row is an error naming the saga, record and column",
          "[sqlite][journal]") {
    temp_path file;
    {
        auto store = open_journal_store(file.str());
        SAGA_JOURNAL_OK(store->commit(first_write("bad")));
        SAGA_JOURNAL_OK(store->commit(first_write("good")));
    }
    {
        SQLite::Database db(file.str(), SQLite::OPEN_READWRITE);
        db.exec("UPDATE journal SET events = '[{\"t\":\"saga_exploded\"}]' WHERE saga_id = 'bad'");
        db.exec("UPDATE heads SET status = 'sleeping' WHERE id = 'good'");
    }
    auto store = open_journal_store(file.str());
    const auto e = SAGA_JOURNAL_FAILS(store->load("bad"), errc::store_failure);
    CHECK_THAT(e.message, Contains(file.str()));
    CHECK_THAT(e.message, Contains("saga 'bad': record 1: the stored journal events: [0].t"));
    CHECK_THAT(e.message, Contains("saga_exploded"));
    SAGA_JOURNAL_FAILS(store->journal("bad"), errc::store_failure);
    SAGA_JOURNAL_OK(store->head("bad"));
    const auto s = SAGA_JOURNAL_FAILS(store->head("good"), errc::store_failure);
    CHECK_THAT(s.message, Contains("unknown status 'sleeping'"));
}

TEST_CASE("sqlite journal store: opened read-only it reads everything and writes nothing",
          "[sqlite][journal][read-only]") {
    temp_dir dir;
    const std::string path = dir.file("ro.db");
    {
        auto store = open_journal_store(path);
        SAGA_JOURNAL_OK(store->commit(first_write("a")));
        SAGA_JOURNAL_OK(store->commit(first_write("done", saga_status::completed)));
    }
    fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    const std::vector<char> before = file_bytes(path);
    {
        auto store = open_journal_store(path, {.read_only = true});
        CHECK(store->read_only());
        CHECK(SAGA_JOURNAL_OK(store->load("a")).records.size() == 1);
        CHECK(SAGA_JOURNAL_OK(store->list({})).size() == 2);
        const auto e = SAGA_JOURNAL_FAILS(store->commit(next_write("a", 2)), errc::invalid_state);
        CHECK_THAT(e.message, Contains("read-only"));
        SAGA_JOURNAL_FAILS(store->purge(at_ms(1'000'000), 10), errc::invalid_state);
        // a second store shares the lock, and nobody can take it exclusively meanwhile
        auto second = open_journal_store(path, {.read_only = true});
        CHECK_FALSE(sqlite::store_lock::exclusive(path));
    }
    CHECK(file_bytes(path) == before);
    CHECK(sqlite::store_lock::exclusive(path));
    SECTION("a missing file is not created") {
        auto opened =
            sqlite_journal_store::open({.path = dir.file("missing.db"), .read_only = true});
        REQUIRE_FALSE(opened);
        CHECK_FALSE(fs::exists(dir.file("missing.db")));
    }
}

TEST_CASE("sqlite journal store: an open store holds its lock, and waits for an exclusive one",
          "[sqlite][journal][lock]") {
    temp_path file;
    {
        auto store = open_journal_store(file.str());
        auto lock = sqlite::store_lock::exclusive(file.str());
        REQUIRE_FALSE(lock);
        CHECK(lock.error() == errc::store_busy);
        CHECK_THAT(lock.error().message, Contains("in use"));
    }
    auto lock = sqlite::store_lock::exclusive(file.str());
    REQUIRE(lock);
    auto opened = sqlite_journal_store::open(
        {.path = file.str(), .busy_timeout = std::chrono::milliseconds{50}});
    REQUIRE_FALSE(opened);
    CHECK(opened.error() == errc::store_busy);
}

TEST_CASE(
    "sqlite journal store: stats count committed transactions, row writes and the syncs of its "
    "own file, as the state store's do",
    "[sqlite][journal][stats]") {
    temp_path full_file;
    temp_path normal_file;
    auto full = open_journal_store(full_file.str(), {.sync = sqlite::synchronous::full});
    auto normal = open_journal_store(normal_file.str(), {.sync = sqlite::synchronous::normal});
    CHECK(full->stats().transactions == 0);
    CHECK(full->stats().row_writes == 0);
    const std::uint64_t full_syncs = full->stats().syncs;
    const std::uint64_t normal_syncs = normal->stats().syncs;

    // one write at a time: each a transaction of its own, each syncing the WAL at FULL
    constexpr std::uint64_t k = 6;
    for (std::uint64_t i = 0; i < k; ++i) {
        SAGA_JOURNAL_OK(full->commit(first_write("full-" + std::to_string(i))));  // head + record
    }
    CHECK(full->stats().transactions == k);
    CHECK(full->stats().row_writes == 2 * k);
    CHECK(full->stats().syncs >= full_syncs + k);
    CHECK(normal->stats().syncs == normal_syncs);  // the other file was not touched

    // a refused write commits an empty transaction and counts no rows
    SAGA_JOURNAL_FAILS(full->commit(first_write("full-0")), errc::already_exists);
    CHECK(full->stats().transactions == k + 1);
    CHECK(full->stats().row_writes == 2 * k);

    for (std::uint64_t i = 0; i < k; ++i) {
        SAGA_JOURNAL_OK(normal->commit(first_write("normal-" + std::to_string(i))));
    }
    CHECK(normal->stats().transactions == k);
    CHECK(normal->stats().row_writes == 2 * k);
    // WAL at NORMAL syncs at checkpoints only (none for these few pages)
    CHECK(normal->stats().syncs < normal_syncs + k);
}

TEST_CASE("sqlite journal store: many threads committing at once share transactions",
          "[sqlite][journal][group-commit]") {
    temp_path file;
    auto store = open_journal_store(file.str());
    constexpr int threads = 8;
    constexpr int sagas = 30;
    constexpr std::uint64_t records = 7;
    std::atomic<int> failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < sagas; ++i) {
                const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
                if (!store->commit(first_write(id))) ++failures;
                for (std::uint64_t v = 2; v <= records; ++v) {
                    auto w = next_write(id, v);
                    if (v == records) {
                        w.head = make_head(id, saga_status::completed);
                        w.head->version = v;
                    }
                    if (!store->commit(w)) ++failures;
                }
            }
        });
    }
    for (auto& th : pool) th.join();
    CHECK(failures == 0);
    const auto stats = store->stats();
    CHECK(stats.commits == threads * sagas * records);
    CHECK(stats.failed_batches == 0);
    CHECK(stats.batches <= stats.commits);
    // per saga: the head inserted, 7 records, the head updated once
    CHECK(stats.row_writes == threads * sagas * (1 + records + 1));
    head_filter done;
    done.statuses = {saga_status::completed};
    done.limit = 100'000;
    CHECK(SAGA_JOURNAL_OK(store->list(done)).size() == threads * sagas);
    CHECK(SAGA_JOURNAL_OK(store->journal("t7-29")).size() == records);
}

TEST_CASE(
    "sqlite journal store: writes queued behind a busy writer share one transaction and each "
    "learns its own outcome",
    "[sqlite][journal][group-commit]") {
    auto store = sqlite::test::fresh_journal_store();
    SAGA_JOURNAL_OK(store->commit(first_write("old")));
    SAGA_JOURNAL_OK(store->commit(exclusive_first("holder", "campaign-1")));

    std::vector<std::future<result<void>>> outcomes;
    {
        writer_gate gate(*store);
        REQUIRE(gate.ok());
        outcomes.push_back(queued_commit(*store, first_write("new-1")));
        outcomes.push_back(queued_commit(*store, next_write("old", 3)));    // a gap
        outcomes.push_back(queued_commit(*store, next_write("old", 2)));    // follows
        outcomes.push_back(queued_commit(*store, next_write("old", 2)));    // taken now
        outcomes.push_back(queued_commit(*store, first_write("old")));      // exists
        outcomes.push_back(queued_commit(*store, next_write("ghost", 2)));  // unknown
        outcomes.push_back(
            queued_commit(*store, exclusive_first("rival", "campaign-1")));  // locked
        outcomes.push_back(queued_commit(*store, first_write("new-2")));
        outcomes.push_back(
            queued_commit(*store, next_write("new-1", 2)));  // follows new-1, same batch
        gate.release();
    }
    std::vector<result<void>> r;
    for (auto& f : outcomes) r.push_back(f.get());
    CHECK(r[0].has_value());
    REQUIRE_FALSE(r[1]);
    CHECK(r[1].error() == errc::version_conflict);
    CHECK(r[1].error().message == "saga 'old': record 3 does not follow the store's newest, 1");
    CHECK(r[2].has_value());
    REQUIRE_FALSE(r[3]);
    CHECK(r[3].error() == errc::version_conflict);
    REQUIRE_FALSE(r[4]);
    CHECK(r[4].error() == errc::already_exists);
    CHECK(r[4].error().message == "saga 'old': already exists (at version 2)");
    REQUIRE_FALSE(r[5]);
    CHECK(r[5].error() == errc::not_found);
    REQUIRE_FALSE(r[6]);
    CHECK(r[6].error() == errc::lock_held);
    CHECK(r[6].error().message ==
          "saga 'rival': correlation key 'campaign-1' is locked by saga 'holder'");
    CHECK(r[7].has_value());
    CHECK(r[8].has_value());

    // one transaction for the nine (the gate's own was the one before)
    auto* sqlite = dynamic_cast<sqlite_journal_store*>(store.get());
    REQUIRE(sqlite != nullptr);
    CHECK(sqlite->stats().largest_batch == 9);
    CHECK(sqlite->stats().batches == 4);
    // only what committed is counted: 2 + 2 before, the gate's 2, then 2 + 1 + 2 + 1
    CHECK(sqlite->stats().row_writes == 12);
    CHECK(SAGA_JOURNAL_OK(store->journal("old")).size() == 2);
    CHECK(SAGA_JOURNAL_OK(store->journal("new-1")).size() == 2);
    CHECK(SAGA_JOURNAL_OK(store->journal("new-2")).size() == 1);
    SAGA_JOURNAL_FAILS(store->head("rival"), errc::not_found);
    SAGA_JOURNAL_FAILS(store->head("ghost"), errc::not_found);
}

TEST_CASE(
    "sqlite journal store: a transaction that cannot begin fails each of its callers, keeps what "
    "was committed and commits again afterwards",
    "[sqlite][journal][group-commit]") {
    temp_path file;
    auto store = open_journal_store(file.str(), {.busy_timeout = std::chrono::milliseconds{100}});
    SAGA_JOURNAL_OK(store->commit(first_write("kept")));

    std::vector<std::future<result<void>>> outcomes;
    SQLite::Database other(file.str(), SQLite::OPEN_READWRITE);
    {
        writer_gate gate(*store);
        REQUIRE(gate.ok());
        other.exec("BEGIN IMMEDIATE");  // another connection holds the write lock
        for (int i = 0; i < 5; ++i) {
            outcomes.push_back(queued_commit(*store, first_write("w-" + std::to_string(i))));
        }
        outcomes.push_back(queued_commit(*store, next_write("kept", 2)));
        gate.release();
        for (auto& f : outcomes) {
            auto r = f.get();
            REQUIRE_FALSE(r);
            INFO(r.error().message);
            CHECK(r.error() == errc::store_busy);
            CHECK(r.error().transient());
            CHECK_THAT(r.error().message, Contains(file.str()));
        }
        other.exec("ROLLBACK");
    }
    CHECK(store->stats().failed_batches == 1);
    CHECK(store->stats().largest_batch == 6);
    CHECK(SAGA_JOURNAL_OK(store->journal("kept")).size() == 1);
    SAGA_JOURNAL_FAILS(store->head("w-0"), errc::not_found);
    // the same writes, again: nothing of them was applied, so they all go in
    for (int i = 0; i < 5; ++i)
        SAGA_JOURNAL_OK(store->commit(first_write("w-" + std::to_string(i))));
    SAGA_JOURNAL_OK(store->commit(next_write("kept", 2)));
    CHECK(SAGA_JOURNAL_OK(store->journal("kept")).size() == 2);
}

TEST_CASE(
    "sqlite journal store: on a full disk each write fails clearly, nothing of it is applied, "
    "and the same store commits again once space is back",
    "[sqlite][journal][disk-full]") {
    temp_path file;
    auto store = open_journal_store(file.str());
    SAGA_JOURNAL_OK(store->commit(first_write("before")));
    const std::string big(64 * 1024, 'x');
    auto big_write = [&](int i) {
        auto w = first_write("full-" + std::to_string(i));
        w.record.data = "\"" + big + "\"";
        return w;
    };

    std::vector<std::future<result<void>>> outcomes;
    {
        writer_gate gate(*store);
        REQUIRE(gate.ok());
        // no page beyond the file's current size: every write that needs one fails
        sqlite::detail::journal_store_access::set_max_page_count(*store, 1);
        for (int i = 0; i < 5; ++i) outcomes.push_back(queued_commit(*store, big_write(i)));
        gate.release();
    }
    for (auto& f : outcomes) {
        auto r = f.get();
        REQUIRE_FALSE(r);
        INFO(r.error().message);
        CHECK(r.error() == errc::store_failure);
        CHECK_THAT(r.error().message, Contains(file.str()));
        CHECK_THAT(r.error().message, Contains("full"));
    }
    CHECK(SAGA_JOURNAL_OK(store->journal("before")).size() == 1);
    for (int i = 0; i < 5; ++i) {
        SAGA_JOURNAL_FAILS(store->head("full-" + std::to_string(i)), errc::not_found);
        CHECK(SAGA_JOURNAL_OK(store->journal("full-" + std::to_string(i))).empty());
    }

    sqlite::detail::journal_store_access::set_max_page_count(*store, 1'000'000'000);
    for (int i = 0; i < 5; ++i) SAGA_JOURNAL_OK(store->commit(big_write(i)));
    SAGA_JOURNAL_OK(store->commit(next_write("before", 2)));
    CHECK(SAGA_JOURNAL_OK(store->load("full-4")).data == "\"" + big + "\"");
}

TEST_CASE("sqlite journal store: a handler may commit again, and closing drains the queue",
          "[sqlite][journal][lifecycle]") {
    temp_path file;
    std::promise<result<void>> inner;
    std::vector<std::future<result<void>>> queued;
    {
        auto store = open_journal_store(file.str());
        store->async_commit(first_write("outer"), [&](result<void> r) {
            // on the writer thread
            inner.set_value(r ? store->commit(next_write("outer", 2)) : std::move(r));
        });
        CHECK(inner.get_future().get().has_value());
        for (int i = 0; i < 50; ++i)
            queued.push_back(queued_commit(*store, first_write(std::to_string(i))));
    }
    for (auto& f : queued) CHECK(f.get().has_value());
    auto store = open_journal_store(file.str());
    CHECK(SAGA_JOURNAL_OK(store->journal("outer")).size() == 2);
    CHECK(SAGA_JOURNAL_OK(store->list({})).size() == 51);
}

TEST_CASE("sqlite journal store: a head update may not take a key another saga holds",
          "[sqlite][journal][lock]") {
    auto store = sqlite::test::fresh_journal_store();
    SAGA_JOURNAL_OK(store->commit(exclusive_first("holder", "campaign-1")));
    auto w = first_write("later");
    w.head->correlation_key = "campaign-1";
    SAGA_JOURNAL_OK(store->commit(w));  // not exclusive: shares the key
    auto take = next_write("later", 2);
    take.head = *w.head;
    take.head->version = 2;
    take.head->exclusive = true;
    const auto e = SAGA_JOURNAL_FAILS(store->commit(take), errc::lock_held);
    CHECK_THAT(e.message, Contains("locked by saga 'holder'"));
    CHECK(SAGA_JOURNAL_OK(store->journal("later")).size() == 1);
    CHECK_FALSE(SAGA_JOURNAL_OK(store->head("later")).exclusive);
    // the definition and the key may change with a head too
    auto moved = next_write("later", 2);
    moved.head = *w.head;
    moved.head->version = 2;
    moved.head->definition = "republish";
    moved.head->correlation_key = "campaign-2";
    moved.head->exclusive = true;
    SAGA_JOURNAL_OK(store->commit(moved));
    CHECK(SAGA_JOURNAL_OK(store->head("later")) == *moved.head);
}
