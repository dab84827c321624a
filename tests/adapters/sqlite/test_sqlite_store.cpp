// saga::sqlite beyond the contract: durability across reopen, group commit, failed batches,
// files that are not (or not yet, or no longer) ours, synchronous modes and migrations.
#include "contract/state_store_contract.hpp"

#include "skip_test.hpp"
#include "temp_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <saga/sqlite/detail/schema.hpp>
#include <saga/sqlite/sqlite_store.hpp>

using namespace saga;
using namespace saga::contract;
using saga::sqlite::sqlite_store;
using saga::sqlite::store_options;
using saga::sqlite::test::file_bytes;
using saga::sqlite::test::immutable_flag;
using saga::sqlite::test::open_store;
using saga::sqlite::test::temp_path;

namespace {

/// Outcomes of async commits, collected from the writer thread. The handlers share the state,
/// so it outlives a handler that is still returning when `wait()` does.
class outcomes {
public:
    explicit outcomes(std::size_t n) : state_(std::make_shared<state>(n)) {}

    commit_handler handler(std::size_t i) {
        return [s = state_, i](result<void> r) {
            {
                std::lock_guard lock(s->mutex);
                s->results[i] = std::move(r);
            }
            s->left.count_down();
        };
    }
    /// Waits for every handler, then gives the outcomes.
    std::vector<std::optional<result<void>>>& wait() {
        state_->left.wait();
        return state_->results;
    }

private:
    struct state {
        explicit state(std::size_t n) : results(n), left(static_cast<std::ptrdiff_t>(n)) {}
        std::mutex mutex;
        std::vector<std::optional<result<void>>> results;
        std::latch left;
    };
    std::shared_ptr<state> state_;
};

/// A handler that hands its outcome to a future (the promise is shared with the handler).
std::pair<commit_handler, std::future<result<void>>> future_handler() {
    auto promise = std::make_shared<std::promise<result<void>>>();
    auto future = promise->get_future();
    return {[promise](result<void> r) { promise->set_value(std::move(r)); }, std::move(future)};
}

/// Holds the write lock of a store's file from a second connection, as another process would.
class write_blocker {
public:
    explicit write_blocker(const std::string& path) : db_(path, SQLite::OPEN_READWRITE) {
        db_.exec("BEGIN EXCLUSIVE");
    }
    void release() {
        if (held_) {
            db_.exec("ROLLBACK");
            held_ = false;
        }
    }
    ~write_blocker() {
        if (held_) {
            db_.tryExec("ROLLBACK");
        }
    }

private:
    SQLite::Database db_;
    bool held_ = true;
};

std::string meta_value(const std::string& path, const std::string& key) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement s(db, "SELECT value FROM saga_meta WHERE key = ?1");
    s.bind(1, key);
    return s.executeStep() ? s.getColumn(0).getString() : std::string("(none)");
}

bool has_table(const std::string& path, const std::string& table) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    return db.tableExists(table);
}

/// `open` fails with `code`, names the file and leaves its bytes as they were.
void open_fails_and_changes_nothing(const std::string& path, errc code,
                                    const std::string& reason_part) {
    const std::vector<char> before = file_bytes(path);
    REQUIRE_FALSE(before.empty());
    auto opened = sqlite_store::open({.path = path});
    REQUIRE_FALSE(opened);
    INFO(opened.error().what());
    CHECK(opened.error() == code);
    CHECK(contains_text(opened.error().message, path));
    CHECK(contains_text(opened.error().message, reason_part));
    CHECK(file_bytes(path) == before);
}

instance_record exclusive_record(std::string id, std::string key) {
    instance_record r = make_record(std::move(id));
    r.correlation_key = std::move(key);
    r.exclusive = true;
    return r;
}

}  // namespace

TEST_CASE(
    "sqlite store: a reopened store has every record, history entry, timer, outbox "
    "message and inbox id",
    "[sqlite][durability]") {
    temp_path file;
    transition a = create(exclusive_record("durable-a", "campaign-1"));
    a.record.data = {{"campaign", "spring"}, {"budget", 1250.5}};
    a.history = {make_entry("saga_started", "", 0, {{"by", "test"}}, at_ms(1000))};
    a.timers_set = {make_timer("durable-a", "deadline", at_ms(60000), {{"kind", "deadline"}})};
    a.outbox = {make_outbox("durable-a", "out-1"), make_outbox("durable-a", "out-2", "news", true)};
    a.inbox = {"in-1"};
    transition a2 = next(a.record);
    a2.record.status = saga_status::waiting;
    a2.history = {make_entry("step_completed", "reserve", 1, {{"reservation", "r-1"}})};
    a2.timers_set = {make_timer("durable-a", "retry", at_ms(5000))};
    a2.outbox = {make_outbox("durable-a", "out-3")};
    a2.inbox = {"in-2"};
    transition b = create(make_record("durable-b"));
    b.history = {make_entry("saga_started")};

    std::vector<instance_record> records;
    std::vector<history_entry> history_a;
    std::vector<timer_record> timers;
    std::vector<outbox_record> outbox;
    {
        auto store = open_store(file.str());
        SAGA_CONTRACT_OK(store->commit(a));
        SAGA_CONTRACT_OK(store->commit(a2));
        SAGA_CONTRACT_OK(store->commit(b));
        const std::vector<std::string> acked{"out-2"};
        SAGA_CONTRACT_OK(store->ack_outbox(acked));

        records = SAGA_CONTRACT_OK(store->list({}));
        history_a = SAGA_CONTRACT_OK(store->history("durable-a"));
        timers = SAGA_CONTRACT_OK(store->timers());
        outbox = SAGA_CONTRACT_OK(store->pending_outbox(100));
        REQUIRE(records.size() == 2);
        REQUIRE(history_a.size() == 2);
        REQUIRE(timers.size() == 2);
        REQUIRE(ids_of(outbox) == std::vector<std::string>{"out-1", "out-3"});
    }

    // the file says what it is
    CHECK(meta_value(file.str(), "schema_version") == "1");
    CHECK(meta_value(file.str(), "application") == "saga");
    {
        SQLite::Database db(file.str(), SQLite::OPEN_READONLY);
        CHECK(db.execAndGet("PRAGMA application_id").getInt() == sqlite::detail::application_id);
        CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
    }

    auto store = open_store(file.str());
    CHECK(sqlite::detail::store_access::settings(*store).opened_at_version == 1);
    CHECK(SAGA_CONTRACT_OK(store->list({})) == records);
    CHECK(SAGA_CONTRACT_OK(store->load("durable-a")) == a2.record);
    CHECK(SAGA_CONTRACT_OK(store->history("durable-a")) == history_a);
    CHECK(SAGA_CONTRACT_OK(store->history("durable-b")).size() == 1);
    CHECK(SAGA_CONTRACT_OK(store->timers()) == timers);
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)) == outbox);
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("durable-a", "in-1")));
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("durable-a", "in-2")));
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("durable-b", "in-1")));

    // the rules hold across the reopen: versions, the inbox, the lock, outbox order
    SAGA_CONTRACT_FAILS(store->commit(next(a.record)), errc::version_conflict);
    transition again = next(a2.record);
    again.inbox = {"in-1"};
    SAGA_CONTRACT_FAILS(store->commit(again), errc::duplicate_message);
    SAGA_CONTRACT_FAILS(store->commit(create(exclusive_record("rival", "campaign-1"))),
                        errc::lock_held);
    transition b2 = next(b.record);
    b2.outbox = {make_outbox("durable-b", "out-4")};
    SAGA_CONTRACT_OK(store->commit(b2));
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(100))) ==
          std::vector<std::string>{"out-1", "out-3", "out-4"});
}

TEST_CASE(
    "sqlite store: commits queued behind a busy writer share a transaction and each "
    "caller gets its own outcome",
    "[sqlite][group-commit]") {
    temp_path file;
    auto store = open_store(file.str(), {.busy_timeout = std::chrono::seconds{60}});

    const instance_record base = make_record("base");
    SAGA_CONTRACT_OK(store->commit(create(base)));
    SAGA_CONTRACT_OK(store->commit(create(exclusive_record("holder", "campaign-1"))));
    transition consumer = create(make_record("consumer"));
    consumer.inbox = {"m-1"};
    SAGA_CONTRACT_OK(store->commit(consumer));
    const sqlite::store_stats before = store->stats();

    // another connection holds the write lock: the writer waits in BEGIN, commits pile up
    write_blocker blocker(file.str());

    std::vector<transition> batch;
    std::vector<std::optional<errc>> expected;
    auto add = [&](transition t, std::optional<errc> fails_with = std::nullopt) {
        batch.push_back(std::move(t));
        expected.push_back(fails_with);
    };
    transition to2 = next(base);
    to2.history = {make_entry("to-2")};
    add(to2);                                 // base 1 -> 2
    add(next(base), errc::version_conflict);  // base 1 -> 2 again: too late
    add(next(to2.record));                    // base 2 -> 3: sees its batch-mate
    add(create(make_record("fresh")));        // a create
    add(create(make_record("fresh")), errc::already_exists);
    add(create(exclusive_record("rival", "campaign-1")), errc::lock_held);
    transition dup = next(consumer.record);
    dup.inbox = {"m-2", "m-1"};
    dup.outbox = {make_outbox("consumer", "dup-out")};
    add(dup, errc::duplicate_message);
    transition fine = next(consumer.record);
    fine.inbox = {"m-2"};
    fine.outbox = {make_outbox("consumer", "fine-out")};
    add(fine);
    for (int i = 0; i < 40; ++i) {
        transition t = create(make_record("bulk-" + std::to_string(i)));
        t.history = {make_entry("saga_started")};
        t.timers_set = {make_timer("", "deadline", at_ms(i))};
        add(t);
    }

    outcomes results(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        store->async_commit(batch[i], results.handler(i));
    }
    blocker.release();
    auto& got = results.wait();

    std::uint64_t succeeded = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        INFO("transition " << i << " of saga " << batch[i].record.id);
        REQUIRE(got[i].has_value());
        if (expected[i]) {
            REQUIRE_FALSE(*got[i]);
            CHECK(got[i]->error() == *expected[i]);
        } else {
            CHECK(*got[i]);
            ++succeeded;
        }
    }

    const sqlite::store_stats after = store->stats();
    const std::uint64_t commits = after.commits - before.commits;
    const std::uint64_t batches = after.batches - before.batches;
    CHECK(commits == succeeded);
    // the writer took the first transition (or more) before it blocked; the rest waited
    CHECK(batches <= 2);
    CHECK(batches < commits);
    CHECK(after.largest_batch * 2 >= batch.size());
    CHECK(after.failed_batches == before.failed_batches);

    // each failure was undone alone; its batch-mates are all there
    const instance_record at3 = SAGA_CONTRACT_OK(store->load("base"));
    CHECK(at3.version == 3);
    CHECK(SAGA_CONTRACT_OK(store->history("base")).size() == 1);
    SAGA_CONTRACT_FAILS(store->load("rival"), errc::not_found);
    CHECK(SAGA_CONTRACT_OK(store->load("consumer")).version == 2);
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("consumer", "m-2")));
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(100))) ==
          std::vector<std::string>{"fine-out"});
    CHECK(SAGA_CONTRACT_OK(store->list({})).size() == 4 + 40);
    CHECK(SAGA_CONTRACT_OK(store->timers()).size() == 40);
}

TEST_CASE("sqlite store: many threads committing at once share transactions",
          "[sqlite][group-commit]") {
    temp_path file;
    auto store = open_store(file.str(), {.busy_timeout = std::chrono::seconds{60}});
    constexpr std::size_t thread_count = 16;
    constexpr std::uint64_t per_thread = 25;

    std::mutex problems_mutex;
    std::vector<std::string> problems;
    auto problem = [&](std::string what) {
        std::lock_guard lock(problems_mutex);
        problems.push_back(std::move(what));
    };

    // every thread's first commit is queued while another connection holds the write lock, so
    // at least those share a transaction whatever the timing
    std::optional<write_blocker> blocker(std::in_place, file.str());
    std::latch queued(static_cast<std::ptrdiff_t>(thread_count));
    auto work = [&](std::size_t i) {
        instance_record r = make_record("thread-" + std::to_string(i));
        transition first = create(r);
        auto [first_done, first_outcome] = future_handler();
        store->async_commit(first, std::move(first_done));
        queued.count_down();
        if (auto o = first_outcome.get(); !o) {
            problem(r.id + " create: " + o.error().what());
            return;
        }
        r = first.record;
        for (std::uint64_t n = 2; n <= per_thread; ++n) {
            transition t = next(r);
            t.record.data = {{"n", n}};
            t.history = {make_entry("step")};
            if (auto o = store->commit(t); !o) {
                problem(r.id + " commit " + std::to_string(n) + ": " + o.error().what());
                return;
            }
            r = t.record;
        }
    };
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < thread_count; ++i) {
        threads.emplace_back(work, i);
    }
    queued.wait();
    blocker.reset();
    for (auto& t : threads) {
        t.join();
    }
    REQUIRE(problems == std::vector<std::string>{});

    const sqlite::store_stats stats = store->stats();
    CHECK(stats.commits == thread_count * per_thread);
    CHECK(stats.batches < stats.commits);
    CHECK(stats.largest_batch >= thread_count / 2);
    CHECK(stats.failed_batches == 0);
    for (std::size_t i = 0; i < thread_count; ++i) {
        const std::string id = "thread-" + std::to_string(i);
        CHECK(SAGA_CONTRACT_OK(store->load(id)).version == per_thread);
        CHECK(SAGA_CONTRACT_OK(store->history(id)).size() == per_thread - 1);
    }
}

TEST_CASE(
    "sqlite store: a batch that cannot take the write lock fails every caller in it "
    "with store_busy, loses nothing, and a retry succeeds",
    "[sqlite][failure]") {
    temp_path file;
    auto store = open_store(file.str(), {.busy_timeout = std::chrono::milliseconds{50}});
    const instance_record base = make_record("busy-base");
    transition start = create(base);
    start.outbox = {make_outbox("busy-base", "kept")};
    SAGA_CONTRACT_OK(store->commit(start));
    const sqlite::store_stats before = store->stats();

    std::vector<transition> batch;
    transition update = next(base);
    update.history = {make_entry("step_completed")};
    update.inbox = {"reply-1"};
    batch.push_back(update);
    for (int i = 0; i < 9; ++i) {
        transition t = create(make_record("busy-" + std::to_string(i)));
        t.outbox = {make_outbox("busy-" + std::to_string(i), "busy-out-" + std::to_string(i))};
        batch.push_back(t);
    }

    {
        write_blocker blocker(file.str());
        outcomes results(batch.size());
        for (std::size_t i = 0; i < batch.size(); ++i) {
            store->async_commit(batch[i], results.handler(i));
        }
        for (auto& outcome : results.wait()) {
            REQUIRE(outcome.has_value());
            REQUIRE_FALSE(*outcome);
            const error& e = outcome->error();
            INFO(e.what());
            CHECK(e == errc::store_busy);
            CHECK(e.transient());
            CHECK(contains_text(e.message, file.str()));
            CHECK(contains_text(e.message, "database is locked"));
        }
        // an acknowledgement queued behind the lock fails the same way
        const std::vector<std::string> ack{"kept"};
        SAGA_CONTRACT_FAILS(store->ack_outbox(ack), errc::store_busy);

        // readers are not blocked by the lock (WAL), and nothing of the batch is visible
        CHECK(SAGA_CONTRACT_OK(store->load("busy-base")) == base);
        CHECK(SAGA_CONTRACT_OK(store->list({})).size() == 1);
    }
    const sqlite::store_stats failed = store->stats();
    CHECK(failed.commits == before.commits);
    CHECK(failed.failed_batches > before.failed_batches);
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(100))) == std::vector<std::string>{"kept"});
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("busy-base", "reply-1")));

    // the lock is gone: the very same transitions commit
    outcomes retry(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        store->async_commit(batch[i], retry.handler(i));
    }
    for (auto& outcome : retry.wait()) {
        REQUIRE(outcome.has_value());
        CHECK(*outcome);
    }
    CHECK(store->stats().commits == before.commits + batch.size());
    CHECK(SAGA_CONTRACT_OK(store->load("busy-base")) == update.record);
    CHECK(SAGA_CONTRACT_OK(store->list({})).size() == 10);
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).size() == 10);
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("busy-base", "reply-1")));
}

TEST_CASE("sqlite store: closing drains the queue and every handler hears its outcome",
          "[sqlite][lifecycle]") {
    temp_path file;
    constexpr std::size_t count = 200;
    std::atomic<std::size_t> heard{0};
    std::atomic<std::size_t> failed{0};
    {
        auto store = open_store(file.str());
        for (std::size_t i = 0; i < count; ++i) {
            store->async_commit(create(make_record("drain-" + std::to_string(i))),
                                [&](result<void> r) {
                                    if (!r) {
                                        ++failed;
                                    }
                                    ++heard;
                                });
        }
    }  // the destructor waits for the writer to finish the queue
    CHECK(heard == count);
    CHECK(failed == 0);
    auto store = open_store(file.str());
    CHECK(SAGA_CONTRACT_OK(store->list({})).size() == count);
}

TEST_CASE("sqlite store: a handler may commit again, even synchronously", "[sqlite][lifecycle]") {
    temp_path file;
    auto store = open_store(file.str());
    const instance_record r = make_record("chained");
    auto [inner_done, inner] = future_handler();
    auto [outer_done, outer] = future_handler();
    store->async_commit(create(r), [&store, &r, inner_done = inner_done,
                                    outer_done = outer_done](result<void> first) {
        // on the writer thread: commit() would wait forever if this were only queued
        inner_done(store->commit(next(r)));
        outer_done(first);
    });
    SAGA_CONTRACT_OK(outer.get());
    SAGA_CONTRACT_OK(inner.get());
    CHECK(SAGA_CONTRACT_OK(store->load("chained")).version == 2);
}

TEST_CASE("sqlite store: JSON that cannot be stored is bad_data and applies nothing",
          "[sqlite][failure]") {
    temp_path file;
    auto store = open_store(file.str());
    instance_record r = make_record("bad-utf8");
    r.data = {{"name", std::string("\xff\xfe", 2)}};
    const error e = SAGA_CONTRACT_FAILS(store->commit(create(r)), errc::bad_data);
    CHECK(contains_text(e.message, "bad-utf8"));
    SAGA_CONTRACT_FAILS(store->load("bad-utf8"), errc::not_found);
}

TEST_CASE("sqlite store: a file that is not a saga store is refused, named, and left unchanged",
          "[sqlite][open]") {
    temp_path file;

    SECTION("random bytes") {
        std::mt19937 random(42);
        std::vector<char> bytes(8192);
        for (char& c : bytes) {
            c = static_cast<char>(random() & 0xff);
        }
        std::ofstream(file.str(), std::ios::binary)
            .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        open_fails_and_changes_nothing(file.str(), errc::store_failure,
                                       "not a SQLite database or is corrupt");
    }
    SECTION("a text file") {
        std::ofstream(file.str()) << "id,name\n1,spring sale\n";
        open_fails_and_changes_nothing(file.str(), errc::store_failure,
                                       "not a SQLite database or is corrupt");
    }
    SECTION("a SQLite database that is truncated") {
        {
            auto store = open_store(file.str());
            for (int i = 0; i < 50; ++i) {
                SAGA_CONTRACT_OK(store->commit(create(make_record("t-" + std::to_string(i)))));
            }
        }
        std::filesystem::resize_file(file.str(), 100);  // the header alone
        open_fails_and_changes_nothing(file.str(), errc::store_failure, "corrupt");
    }
    SECTION("a SQLite database of another application") {
        {
            SQLite::Database db(file.str(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)");
            db.exec("INSERT INTO foo (name) VALUES ('bar')");
        }
        open_fails_and_changes_nothing(file.str(), errc::store_failure, "not a saga store");
        CHECK_FALSE(std::filesystem::exists(file.str() + "-wal"));
    }
    SECTION("a SQLite database of another application with its own application id") {
        {
            SQLite::Database db(file.str(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("PRAGMA application_id = 42");
            db.exec("CREATE TABLE saga_meta (key TEXT, value TEXT)");
        }
        open_fails_and_changes_nothing(file.str(), errc::store_failure, "0x0000002a");
    }
    SECTION("a saga_meta table without the saga marker") {
        {
            SQLite::Database db(file.str(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("CREATE TABLE saga_meta (key TEXT PRIMARY KEY, value TEXT)");
            db.exec("INSERT INTO saga_meta VALUES ('schema_version', '1')");
        }
        open_fails_and_changes_nothing(file.str(), errc::store_failure, "marker");
    }
    SECTION("a store written by a newer schema version") {
        {
            auto store = open_store(file.str());
            SAGA_CONTRACT_OK(store->commit(create(make_record("from-the-future"))));
        }
        {
            SQLite::Database db(file.str(), SQLite::OPEN_READWRITE);
            db.exec("UPDATE saga_meta SET value = '7' WHERE key = 'schema_version'");
        }
        open_fails_and_changes_nothing(file.str(), errc::invalid_state, "schema version 7");
        CHECK(meta_value(file.str(), "schema_version") == "7");
    }
}

TEST_CASE("sqlite store: a file or directory that cannot be written is a clear error",
          "[sqlite][open]") {
    SECTION("a directory that does not exist") {
        const std::string path =
            (std::filesystem::temp_directory_path() / "saga-no-such-dir" / "x" / "s.db").string();
        auto opened = sqlite_store::open({.path = path});
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(opened.error() == errc::store_failure);
        CHECK(contains_text(opened.error().message, path));
    }
    SECTION("a directory where a file should be") {
        const std::string path = std::filesystem::temp_directory_path().string();
        auto opened = sqlite_store::open({.path = path});
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(opened.error() == errc::store_failure);
        CHECK(contains_text(opened.error().message, path));
    }
    SECTION("a read-only (immutable) store file") {
        temp_path file;
        {
            auto store = open_store(file.str());
            SAGA_CONTRACT_OK(store->commit(create(make_record("frozen"))));
        }
        immutable_flag frozen(file.str());
        if (!frozen.ok()) {
            SAGA_SKIP_TEST("cannot set the immutable attribute here");
        }
        const std::vector<char> before = file_bytes(file.str());
        auto opened = sqlite_store::open({.path = file.str()});
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(opened.error() == errc::store_failure);
        CHECK(contains_text(opened.error().message, file.str()));
        CHECK(contains_text(opened.error().message, "read-only"));
        CHECK(file_bytes(file.str()) == before);
    }
    SECTION("a read-only (immutable) directory") {
        const std::filesystem::path dir =
            std::filesystem::temp_directory_path() / ("saga-ro-dir-" + std::to_string(::getpid()) +
                                                      "-" + std::to_string(std::random_device{}()));
        std::filesystem::create_directory(dir);
        const std::string existing = (dir / "existing.db").string();
        {
            auto store = open_store(existing);
            SAGA_CONTRACT_OK(store->commit(create(make_record("in-a-frozen-dir"))));
        }
        {
            immutable_flag frozen(dir.string());
            if (frozen.ok()) {
                for (const std::string& path : {(dir / "new.db").string(), existing}) {
                    auto opened = sqlite_store::open({.path = path});
                    REQUIRE_FALSE(opened);
                    INFO(opened.error().what());
                    CHECK(opened.error() == errc::store_failure);
                    CHECK(contains_text(opened.error().message, path));
                }
            } else {
                std::filesystem::remove_all(dir);
                SAGA_SKIP_TEST("cannot set the immutable attribute here");
            }
        }
        std::filesystem::remove_all(dir);
    }
}

TEST_CASE("sqlite store: synchronous FULL and NORMAL both work and read back",
          "[sqlite][durability]") {
    temp_path file;
    auto [mode, pragma] = GENERATE(table<sqlite::synchronous, std::int64_t>(
        {{sqlite::synchronous::full, 2}, {sqlite::synchronous::normal, 1}}));
    {
        auto store = open_store(file.str(), {.sync = mode});
        const auto settings = sqlite::detail::store_access::settings(*store);
        CHECK(settings.synchronous == pragma);
        CHECK(settings.journal_mode == "wal");
        transition t = create(make_record("synced"));
        t.history = {make_entry("saga_started")};
        SAGA_CONTRACT_OK(store->commit(t));
        SAGA_CONTRACT_OK(store->commit(next(t.record)));
    }
    auto store = open_store(file.str(), {.sync = mode});
    CHECK(SAGA_CONTRACT_OK(store->load("synced")).version == 2);
}

TEST_CASE("sqlite store: options are checked", "[sqlite][open]") {
    temp_path file;
    SAGA_CONTRACT_FAILS(sqlite_store::open({.path = ""}), errc::invalid_argument);
    SAGA_CONTRACT_FAILS(sqlite_store::open({.path = ":memory:"}), errc::invalid_argument);
    SAGA_CONTRACT_FAILS(sqlite_store::open({.path = file.str(), .max_batch = 0}),
                        errc::invalid_argument);
    SAGA_CONTRACT_FAILS(
        sqlite_store::open({.path = file.str(), .max_delay = std::chrono::milliseconds{-1}}),
        errc::invalid_argument);
    CHECK_FALSE(std::filesystem::exists(file.str()));
}

TEST_CASE("sqlite store: max_batch and max_delay shape the batches", "[sqlite][group-commit]") {
    temp_path file;
    SECTION("max_batch caps a batch") {
        auto store = open_store(file.str(), {.max_batch = 4});
        outcomes results(30);
        {
            write_blocker blocker(file.str());
            for (std::size_t i = 0; i < 30; ++i) {
                store->async_commit(create(make_record("cap-" + std::to_string(i))),
                                    results.handler(i));
            }
            // (the blocker is released here; the default 5 s busy timeout is plenty)
        }
        for (auto& outcome : results.wait()) {
            REQUIRE(outcome.has_value());
            CHECK(*outcome);
        }
        CHECK(store->stats().largest_batch == 4);
        CHECK(store->stats().batches >= 8);
    }
    SECTION("max_delay gathers commits that arrive one by one") {
        auto store =
            open_store(file.str(), {.max_batch = 8, .max_delay = std::chrono::seconds{30}});
        // a full batch does not wait for the delay
        outcomes results(8);
        for (std::size_t i = 0; i < 8; ++i) {
            store->async_commit(create(make_record("delay-" + std::to_string(i))),
                                results.handler(i));
        }
        for (auto& outcome : results.wait()) {
            REQUIRE(outcome.has_value());
            CHECK(*outcome);
        }
        CHECK(store->stats().batches == 1);
        CHECK(store->stats().largest_batch == 8);
    }
}

TEST_CASE("sqlite store: schema migrations run forward in one transaction", "[sqlite][migration]") {
    using sqlite::detail::migration;
    using sqlite::detail::store_access;
    temp_path file;
    const auto builtin = sqlite::detail::builtin_migrations();
    REQUIRE(builtin.size() == static_cast<std::size_t>(sqlite_store::schema_version));

    SECTION("a version 0 store (saga_meta only) is brought to version 1") {
        {
            SQLite::Database db(file.str(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("CREATE TABLE saga_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)");
            db.exec(
                "INSERT INTO saga_meta VALUES ('application', 'saga'), ('schema_version', '0')");
            db.exec("PRAGMA application_id = " + std::to_string(sqlite::detail::application_id));
        }
        auto store = open_store(file.str());
        CHECK(store_access::settings(*store).opened_at_version == 0);
        SAGA_CONTRACT_OK(store->commit(create(make_record("migrated"))));
        CHECK(SAGA_CONTRACT_OK(store->load("migrated")).version == 1);
        CHECK(meta_value(file.str(), "schema_version") == "1");
        CHECK(has_table(file.str(), "instances"));
        CHECK(has_table(file.str(), "inbox"));
    }

    // a version 2 that exists only in this test
    const std::vector<migration> with_v2{builtin[0],
                                         {2,
                                          "CREATE TABLE notes (saga_id TEXT, note TEXT);"
                                          "ALTER TABLE instances ADD COLUMN note TEXT;"}};

    SECTION("a version 1 store migrates to version 2 and keeps its data") {
        {
            auto store = open_store(file.str());
            transition t = create(make_record("old"));
            t.history = {make_entry("saga_started")};
            t.outbox = {make_outbox("old", "old-out")};
            SAGA_CONTRACT_OK(store->commit(t));
        }
        {
            auto opened = store_access::open({.path = file.str()}, with_v2);
            INFO((opened ? std::string("opened") : opened.error().what()));
            REQUIRE(opened);
            auto store = std::move(opened).value();
            CHECK(store_access::settings(*store).opened_at_version == 1);
            CHECK(SAGA_CONTRACT_OK(store->load("old")).version == 1);
            CHECK(SAGA_CONTRACT_OK(store->history("old")).size() == 1);
            CHECK(SAGA_CONTRACT_OK(store->pending_outbox(10)).size() == 1);
            SAGA_CONTRACT_OK(store->commit(next(make_record("old"))));  // the hot path still works
        }
        CHECK(meta_value(file.str(), "schema_version") == "2");
        CHECK(has_table(file.str(), "notes"));

        // this library only knows version 1 now: newer, refused, unchanged
        open_fails_and_changes_nothing(file.str(), errc::invalid_state, "schema version 2");
        // and reopening at version 2 migrates nothing
        auto again = store_access::open({.path = file.str()}, with_v2);
        REQUIRE(again);
        CHECK(store_access::settings(*again.value()).opened_at_version == 2);
    }

    SECTION("a failing migration rolls back every step of the open") {
        open_store(file.str());  // version 1, then closed
        const std::vector<migration> broken{
            builtin[0], with_v2[1], {3, "CREATE TABLE more (x); THIS IS NOT SQL;"}};
        auto opened = store_access::open({.path = file.str()}, broken);
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(opened.error() == errc::store_failure);
        CHECK(contains_text(opened.error().message, file.str()));
        CHECK(contains_text(opened.error().message, "schema version 3"));
        CHECK(meta_value(file.str(), "schema_version") == "1");
        CHECK_FALSE(has_table(file.str(), "notes"));
        CHECK_FALSE(has_table(file.str(), "more"));
        open_store(file.str());  // still a good version 1 store
    }

    SECTION("a migration list must count 1, 2, 3, ...") {
        const std::vector<migration> gap{builtin[0], {3, "SELECT 1;"}};
        SAGA_CONTRACT_FAILS(store_access::open({.path = file.str()}, gap), errc::invalid_argument);
        SAGA_CONTRACT_FAILS(store_access::open({.path = file.str()}, {}), errc::invalid_argument);
    }
}

// ---- a benchmark, not run by default: adapter_sqlite "[benchmark]" ---------------------------

TEST_CASE("sqlite store: commit throughput, one caller vs many", "[.benchmark][sqlite]") {
    using clock_type = std::chrono::steady_clock;
    auto run = [](std::size_t callers, std::size_t per_caller, sqlite::synchronous sync) {
        temp_path file;
        auto store = open_store(file.str(), {.sync = sync});
        std::latch start(static_cast<std::ptrdiff_t>(callers) + 1);
        std::atomic<std::size_t> failures{0};
        auto work = [&](std::size_t c) {
            start.arrive_and_wait();
            instance_record r = make_record("bench-" + std::to_string(c));
            r.data = {{"campaign", "spring"}, {"budget", 1250.5}, {"lines", {1, 2, 3}}};
            r.state = {{"steps", {{"reserve", {{"status", "completed"}, {"attempt", 1}}}}}};
            for (std::size_t n = 0; n < per_caller; ++n) {
                transition t = n == 0 ? create(r) : next(r);
                t.history = {make_entry("step_completed", "reserve", 1)};
                if (!store->commit(t)) {
                    ++failures;
                }
                r = t.record;
            }
        };
        std::vector<std::thread> threads;
        for (std::size_t c = 0; c < callers; ++c) {
            threads.emplace_back(work, c);
        }
        const auto t0 = clock_type::now();
        start.arrive_and_wait();
        for (auto& t : threads) {
            t.join();
        }
        const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
        const auto stats = store->stats();
        const auto total = callers * per_caller;
        std::printf(
            "%-6s %3zu caller(s) x %5zu: %8.0f commits/s  (%zu commits in %.2f s; "
            "%llu batches, mean %.1f, largest %llu, failed %llu)\n",
            sync == sqlite::synchronous::full ? "FULL" : "NORMAL", callers, per_caller,
            static_cast<double>(total) / seconds, total, seconds,
            static_cast<unsigned long long>(stats.batches),
            static_cast<double>(stats.commits) / static_cast<double>(stats.batches),
            static_cast<unsigned long long>(stats.largest_batch),
            static_cast<unsigned long long>(stats.failed_batches));
        CHECK(failures == 0);
    };
    run(1, 2000, sqlite::synchronous::full);
    run(64, 500, sqlite::synchronous::full);
    run(1, 2000, sqlite::synchronous::normal);
    run(64, 300, sqlite::synchronous::normal);
}
