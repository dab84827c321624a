// The migration of a schema version 1 file (sqlite_store's) to version 2 by
// sqlite_journal_store::open, on fixtures/v1_in_flight.db: a file today's engine wrote with
// sagas in flight (make_v1_fixture.cpp, v1_fixture_sagas.hpp). After the migration an engine on
// core v2 finishes every saga from the journal alone; participants see the same idempotency
// keys. A row that cannot be read fails the open and leaves the file at version 1; a second
// open migrates nothing; read-only opening refuses a version 1 file.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <saga/engine.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/participant.hpp>
#include <saga/sqlite/detail/journal_schema.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>

#include "temp_store.hpp"
#include "v1_fixture_sagas.hpp"

using namespace saga;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using saga::sqlite::sqlite_journal_store;
using saga::sqlite::test::file_bytes;
using saga::sqlite::test::open_journal_store;
using saga::sqlite::test::temp_dir;
namespace fixture = saga::sqlite::test::v1_fixture;
namespace fs = std::filesystem;

namespace {

/// A copy of the fixture in `dir`.
std::string copy_of_fixture(const temp_dir& dir, const std::string& name = "v1.db") {
    const std::string path = dir.file(name);
    fs::copy_file(SAGA_V1_FIXTURE, path);
    return path;
}

/// What the file holds, read with plain SQLite.
struct file_view {
    std::string schema_version;
    std::set<std::string> tables;
    std::map<std::string, std::int64_t> rows;  // by table
};

file_view view_of(const std::string& path) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    file_view v;
    {
        SQLite::Statement q(db, "SELECT value FROM saga_meta WHERE key = 'schema_version'");
        REQUIRE(q.executeStep());
        v.schema_version = q.getColumn(0).getString();
    }
    {
        SQLite::Statement q(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
        while (q.executeStep()) {
            v.tables.insert(q.getColumn(0).getString());
        }
    }
    for (const std::string& t : v.tables) {
        SQLite::Statement q(db, "SELECT count(*) FROM \"" + t + "\"");
        REQUIRE(q.executeStep());
        v.rows[t] = q.getColumn(0).getInt64();
    }
    return v;
}

/// The v1 tables, as the fixture has them (the outbox's AUTOINCREMENT made sqlite_sequence).
const std::set<std::string> v1_tables{"saga_meta", "instances", "history",        "timers",
                                      "outbox",    "inbox",     "sqlite_sequence"};

/// A simulated service: answers its commands, applies each idempotency key once (the
/// participant answers repeats from its reply store) and records what it saw.
struct service {
    std::mutex mutex;
    /// idempotency key -> times the handler applied it
    std::map<std::string, int> applied;
    /// "type saga_id" -> the idempotency keys it came with
    std::map<std::string, std::set<std::string>> keys;

    void saw(const envelope& e) {
        std::lock_guard lock(mutex);
        ++applied[e.idempotency_key];
        keys[e.type + " " + e.saga_id].insert(e.idempotency_key);
    }
    std::set<std::string> keys_of(const std::string& type, const std::string& saga) {
        std::lock_guard lock(mutex);
        return keys[type + " " + saga];
    }
    int most_applied() {
        std::lock_guard lock(mutex);
        int most = 0;
        for (const auto& [key, n] : applied) most = std::max(most, n);
        return most;
    }
};

/// The idempotency key of the one message in the v1 outbox of `saga`.
std::string v1_outbox_key(const std::string& path, const std::string& saga) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement q(db,
                        "SELECT json_extract(message, '$.idempotency_key') FROM outbox "
                        "WHERE saga_id = ?1");
    q.bind(1, saga);
    REQUIRE(q.executeStep());
    std::string key = q.getColumn(0).getString();
    CHECK_FALSE(q.executeStep());
    return key;
}

/// Polls `condition` until it holds or `limit` (real time) has passed.
template <class Fn>
bool eventually(Fn condition, std::chrono::milliseconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return condition();
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

/// Stops the engine and joins the thread running it, also when a REQUIRE fails.
struct stop_and_join {
    engine& eng;
    std::thread& runner;
    stop_and_join(engine& e, std::thread& t) : eng(e), runner(t) {}
    stop_and_join(const stop_and_join&) = delete;
    stop_and_join& operator=(const stop_and_join&) = delete;
    ~stop_and_join() {
        eng.stop();
        if (runner.joinable()) runner.join();
    }
};

/// Opening must fail, naming the file and saying `what`.
error open_fails(const std::string& path, const std::string& what, bool read_only = false) {
    auto opened = sqlite_journal_store::open({.path = path, .read_only = read_only});
    REQUIRE_FALSE(opened);
    INFO(opened.error().what());
    CHECK_THAT(opened.error().message, Contains(path));
    CHECK_THAT(opened.error().message, Contains(what));
    return opened.error();
}

}  // namespace

TEST_CASE(
    "sqlite journal store: a v1 file with sagas in flight is migrated on open, and an engine on "
    "core v2 finishes every saga with the same idempotency keys",
    "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = copy_of_fixture(dir);
    const file_view before = view_of(path);
    REQUIRE(before.schema_version == "1");
    REQUIRE(before.rows.at("instances") == static_cast<std::int64_t>(fixture::instances.size()));
    const std::string unsent_key = v1_outbox_key(path, "unsent");
    CHECK(unsent_key == "unsent/reserve");

    auto store = open_journal_store(path);
    CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version == 1);

    // the file: heads, journal and history_v1; the other v1 tables are gone
    const file_view after = view_of(path);
    CHECK(after.schema_version == "2");
    CHECK(after.tables ==
          std::set<std::string>{"saga_meta", "heads", "journal", "history_v1", "sqlite_sequence"});
    CHECK(after.rows.at("heads") == before.rows.at("instances"));
    CHECK(after.rows.at("journal") == before.rows.at("instances"));
    CHECK(after.rows.at("history_v1") == before.rows.at("history"));

    // each instance: its head, and one record with a snapshot, the data and its output
    for (const fixture::instance& i : fixture::instances) {
        INFO(i.id << ": " << i.doing);
        auto head = store->head(i.id);
        REQUIRE(head);
        CHECK(head.value().status == i.status);
        CHECK(head.value().version == 1);
        CHECK(head.value().definition == "order");
        auto journal = store->journal(i.id);
        REQUIRE(journal);
        REQUIRE(journal.value().size() == 1);
        const journal_record& r = journal.value().front();
        CHECK(r.events.empty());
        CHECK(r.snapshot.has_value());
        CHECK(r.data.has_value());
        CHECK(r.released_through == 0);
        CHECK(r.output.size() == (i.id == "unsent" ? 1U : 0U));
        // a paused instance has nothing due until it is resumed
        CHECK(head.value().wake_at.has_value() ==
              (!is_terminal(i.status) && i.status != saga_status::paused));
    }
    {
        auto locked = store->head("locked");
        REQUIRE(locked);
        CHECK(locked.value().exclusive);
        CHECK(locked.value().correlation_key == fixture::locked_key);
        auto unsent = store->journal("unsent");
        REQUIRE(unsent);
        REQUIRE(unsent.value().front().output.size() == 1);
        CHECK(unsent.value().front().output.front().message.idempotency_key == unsent_key);
        CHECK(unsent.value().front().output.front().destination == "billing");
    }

    // an engine on core v2 on the migrated file, with the services answering
    auto clock = std::make_shared<virtual_clock>();
    auto transport = std::make_shared<inmemory::memory_transport>(clock);
    engine eng(std::shared_ptr<journal_store>(store), transport, {.clock = clock});
    REQUIRE(eng.add(fixture::order_saga()));
    service billing_state;
    service shipping_state;
    participant billing(transport, "billing");
    billing.on("reserve", [&](const envelope& e) {
        billing_state.saw(e);
        return participant_reply::success({{"id", fixture::reservation_for(e)}});
    });
    billing.on("release", [&](const envelope& e) {
        billing_state.saw(e);
        return participant_reply::success();
    });
    participant shipping(transport, "shipping");
    shipping.on("ship", [&](const envelope& e) {
        shipping_state.saw(e);
        return participant_reply::success({{"tracking", "T-" + e.saga_id}});
    });
    REQUIRE(billing.start(eng.get_executor()));
    REQUIRE(shipping.start(eng.get_executor()));
    // on worker threads: core v2's run_until_idle does not wait for a commit in flight on a
    // store that commits on its own thread (src/runtime holds no work for it), and start() waits
    // for its commit's handler on the engine's executor
    std::thread runner([&] { (void)eng.run(); });
    const stop_and_join stopper{eng, runner};
    auto status_of = [&](std::string_view id) {
        auto h = store->head(id);
        REQUIRE(h);
        return h.value().status;
    };

    // opening releases the output v1 could not send; nothing else is due yet
    CHECK(eventually([&] { return status_of("unsent") == saga_status::waiting; }));
    CHECK(billing_state.keys_of("reserve", "unsent") == std::set<std::string>{unsent_key});
    CHECK(status_of("sent") == saga_status::running);
    CHECK(status_of("retrying") == saga_status::running);
    CHECK(status_of("compensating") == saga_status::compensating);
    CHECK(status_of("paused") == saga_status::paused);

    // the correlation-key lock is held until its holder is terminal
    const start_options second{
        .id = "locked-2", .correlation_key = std::string(fixture::locked_key), .exclusive = true};
    {
        auto refused = eng.start("order", fixture::order{}, second);
        REQUIRE_FALSE(refused);
        CHECK(refused.error() == errc::lock_held);
    }
    REQUIRE(eng.signal("locked", "approval", {{"by", "test"}}));
    CHECK(eventually([&] { return status_of("locked") == saga_status::completed; }));
    REQUIRE(eng.start("order", fixture::order{}, second));

    // the rest: approvals (kept until each wait opens), the paused one resumed, and the clock
    // moved on, a second at a time, for the timeouts and the retry the v1 engine had armed
    for (const char* id : {"waiting", "sent", "retrying", "unsent", "locked-2"}) {
        REQUIRE(eng.signal(id, "approval", {{"by", "test"}}));
    }
    REQUIRE(eng.resume("paused", {.who = "test", .why = "after the migration"}));
    REQUIRE(eng.signal("paused", "approval", {{"by", "test"}}));
    auto all_terminal = [&] {
        for (const char* id :
             {"waiting", "sent", "retrying", "compensating", "paused", "unsent", "locked-2"})
            if (!is_terminal(status_of(id))) return false;
        return true;
    };
    for (int second_of = 0; second_of < 600 && !eventually(all_terminal, 20ms); ++second_of) {
        clock->advance(1s);
    }
    REQUIRE(all_terminal());

    for (const char* id :
         {"done", "waiting", "sent", "retrying", "paused", "locked", "unsent", "locked-2"}) {
        INFO(id);
        CHECK(status_of(id) == saga_status::completed);
        auto v = eng.query(id);
        REQUIRE(v);
        auto data = v.value().data_as<fixture::order>();
        REQUIRE(data);
        CHECK(data.value().validated == 1);  // the local step did not run again
        CHECK(data.value().undone == 0);
        CHECK(data.value().reservation == "billing:" + std::string(id) + "/reserve");
        CHECK(data.value().tracking == "T-" + std::string(id));
        CHECK(data.value().approved_by == (std::string(id) == "done" ? "generator" : "test"));
    }
    CHECK(status_of("compensating") == saga_status::compensated);
    {
        auto v = eng.query("compensating");
        REQUIRE(v);
        auto data = v.value().data_as<fixture::order>();
        REQUIRE(data);
        CHECK(data.value().undone == 1);
        CHECK(data.value().tracking.empty());
        CHECK(data.value().reservation == "billing:compensating/reserve");
    }

    // every command carried the idempotency key v1 gave it, and each was applied once
    for (const char* id : {"sent", "retrying", "unsent"}) {
        CHECK(billing_state.keys_of("reserve", id) ==
              std::set<std::string>{std::string(id) + "/reserve"});
    }
    for (const char* id : {"done", "waiting", "paused", "locked", "compensating"}) {
        CHECK(billing_state.keys_of("reserve", id).empty());  // reserved before the migration
    }
    CHECK(billing_state.keys_of("release", "compensating") ==
          std::set<std::string>{"compensating/reserve/compensate"});
    CHECK(shipping_state.keys_of("ship", "done").empty());
    CHECK(shipping_state.keys_of("ship", "waiting") == std::set<std::string>{"waiting/ship"});
    CHECK(billing_state.most_applied() == 1);
    CHECK(shipping_state.most_applied() == 1);

    // the history of a migrated instance starts at its migration record
    {
        auto h = eng.history("done");
        REQUIRE(h);
        REQUIRE(h.value().size() == 1);
        CHECK(h.value().front().event == "migrated");
        CHECK(h.value().front().version == 1);
        CHECK(h.value().front().detail == nlohmann::json{{"status", "completed"}});
    }
    {
        auto h = eng.history("waiting");
        REQUIRE(h);
        REQUIRE(h.value().size() >= 2);
        CHECK(h.value().front().event == "migrated");
        CHECK(h.value().front().detail == nlohmann::json{{"status", "waiting"}});
        CHECK(h.value().back().event == "saga_completed");
        std::vector<std::string> names;
        for (const auto& e : h.value()) names.push_back(e.event + ":" + e.step);
        CHECK(std::count(names.begin(), names.end(), "step_completed:approve") == 1);
        CHECK(std::count(names.begin(), names.end(), "step_completed:ship") == 1);
        CHECK(std::count(names.begin(), names.end(), "step_completed:reserve") == 0);
    }
}

TEST_CASE(
    "sqlite journal store: the message ids v1 consumed are carried over, so a repeated signal "
    "stays a repeat",
    "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = copy_of_fixture(dir);
    std::string v1_reply_id;
    {
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(db.exec("INSERT INTO inbox (saga_id, message_id) VALUES ('waiting', 'signal-7')") ==
              1);
        SQLite::Statement q(db,
                            "SELECT message_id FROM inbox WHERE saga_id = 'waiting' AND "
                            "message_id <> 'signal-7'");
        REQUIRE(q.executeStep());
        v1_reply_id = q.getColumn(0).getString();
    }
    auto store = open_journal_store(path);
    auto journal = store->journal("waiting");
    REQUIRE(journal);
    REQUIRE(journal.value().size() == 1);
    const auto snapshot = nlohmann::json::parse(journal.value().front().snapshot.value());
    const auto consumed = snapshot.at("consumed").get<std::set<std::string>>();
    CHECK(consumed == std::set<std::string>{"signal-7", v1_reply_id});
    // another saga's ids stay its own
    auto other = store->journal("done");
    REQUIRE(other);
    CHECK_FALSE(nlohmann::json::parse(other.value().front().snapshot.value())
                    .value("consumed", std::set<std::string>{})
                    .contains("signal-7"));
}

TEST_CASE("sqlite journal store: opening a migrated file again migrates nothing",
          "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = copy_of_fixture(dir);
    std::map<std::string, std::vector<journal_record>> journals;
    {
        auto store = open_journal_store(path);
        for (const fixture::instance& i : fixture::instances) {
            auto j = store->journal(i.id);
            REQUIRE(j);
            journals[std::string(i.id)] = j.value();
        }
    }
    const file_view first = view_of(path);
    auto store = open_journal_store(path);
    CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version == 2);
    for (const auto& [id, records] : journals) {
        auto j = store->journal(id);
        REQUIRE(j);
        CHECK(j.value() == records);
    }
    store.reset();
    const file_view second = view_of(path);
    CHECK(second.tables == first.tables);
    CHECK(second.rows == first.rows);
}

TEST_CASE(
    "sqlite journal store: a v1 file with a row that cannot be migrated fails to open, naming "
    "the file and the saga, and stays at v1",
    "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = copy_of_fixture(dir);
    const file_view before = view_of(path);
    std::string saga;
    std::string what;
    SECTION("a state that is not JSON") {
        saga = "waiting";
        what = "the stored state is not valid JSON";
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(db.exec("UPDATE instances SET state = '{\"units\": {' WHERE id = 'waiting'") == 1);
    }
    SECTION("a state that is JSON but no v1 state") {
        saga = "retrying";
        what = "its v1 state cannot be read";
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(
            db.exec(
                "UPDATE instances SET state = '{\"units\": {\"reserve\": {\"s\": \"exploded\"}}}' "
                "WHERE id = 'retrying'") == 1);
    }
    SECTION("data that is not JSON") {
        saga = "paused";
        what = "the stored data is not valid JSON";
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(db.exec("UPDATE instances SET data = 'not json' WHERE id = 'paused'") == 1);
    }
    SECTION("an outbox message that is no envelope") {
        saga = "unsent";
        what = "is not an envelope";
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(db.exec("UPDATE outbox SET message = '{\"kind\": 42}' WHERE saga_id = 'unsent'") ==
              1);
    }
    SECTION("an unknown status") {
        saga = "done";
        what = "unknown status 'finished'";
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(db.exec("UPDATE instances SET status = 'finished' WHERE id = 'done'") == 1);
    }
    REQUIRE_FALSE(saga.empty());
    const error e = open_fails(path, "saga '" + saga + "'");
    CHECK(e == errc::store_failure);
    CHECK_THAT(e.message, Contains(what));
    CHECK_THAT(e.message, Contains("migration to schema version 2"));
    CHECK_THAT(e.message, Contains("the file was left at schema version 1"));

    // nothing of the migration is left: the v1 tables and their rows as they were
    const file_view after = view_of(path);
    CHECK(after.schema_version == "1");
    CHECK(after.tables == v1_tables);
    CHECK(after.rows == before.rows);
    // and it fails the same way again
    CHECK(open_fails(path, "saga '" + saga + "'") == errc::store_failure);
}

TEST_CASE("sqlite journal store: a v1 file opened read-only is refused and left unchanged",
          "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = copy_of_fixture(dir);
    const std::vector<char> bytes = file_bytes(path);
    CHECK(open_fails(path, "open it read-write once to migrate it", true) == errc::invalid_state);
    CHECK(file_bytes(path) == bytes);
    CHECK(view_of(path).schema_version == "1");
}

TEST_CASE(
    "sqlite journal store: a v1 file that another process has open is not migrated until it "
    "is closed",
    "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = copy_of_fixture(dir);
    const std::vector<char> bytes = file_bytes(path);
    {
        // what an engine on sqlite_store holds while it runs (here in this process: the lock
        // is per open file, so it counts as another holder all the same)
        auto v1_engine = sqlite::store_lock::shared(path);
        REQUIRE(v1_engine);
        const error e = open_fails(path, "in use by another process");
        CHECK(e == errc::store_busy);
        CHECK_THAT(e.message, Contains("only while no other process has it open"));
        CHECK(file_bytes(path) == bytes);
    }
    auto store = open_journal_store(path);
    CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version == 1);
    // and the migrated store holds the lock shared again, as every open store does
    auto other = sqlite::store_lock::exclusive(path);
    REQUIRE_FALSE(other);
    CHECK(other.error() == errc::store_busy);
    auto reader = sqlite_journal_store::open({.path = path, .read_only = true});
    CHECK(reader);
}

TEST_CASE("sqlite journal store: a new file still gets schema version 2 whole",
          "[sqlite][migration]") {
    temp_dir dir;
    const std::string path = dir.file("new.db");
    {
        auto store = open_journal_store(path);
        CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version == 0);
    }
    const file_view v = view_of(path);
    CHECK(v.schema_version == "2");
    CHECK(v.tables == std::set<std::string>{"saga_meta", "heads", "journal"});
}

// ---- what it costs ------------------------------------------------------------------------

namespace {

/// Makes a v1 file of `copies` x 8 instances from the fixture's rows (each copy with its own
/// ids, correlation keys, message ids and history), with plain SQL.
void grow_fixture(const std::string& path, int copies) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("BEGIN");
    const std::string numbers =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < " +
        std::to_string(copies) + ") ";
    db.exec(numbers +
            "INSERT INTO instances SELECT id || '-' || i, definition, definition_version, "
            "version, status, CASE WHEN correlation_key = '' THEN '' ELSE correlation_key || "
            "'-' || i END, exclusive, data, state, created_at, updated_at FROM instances, n");
    db.exec(numbers +
            "INSERT INTO history (saga_id, version, at, event, step, attempt, detail) SELECT "
            "saga_id || '-' || i, version, at, event, step, attempt, detail FROM history, n "
            "ORDER BY i, seq");
    db.exec(numbers +
            "INSERT INTO timers SELECT saga_id || '-' || i, id, due, payload FROM timers, n");
    db.exec(numbers +
            "INSERT INTO outbox (message_id, saga_id, destination, topic, message) SELECT "
            "message_id || '-' || i, saga_id || '-' || i, destination, topic, json_set(message, "
            "'$.message_id', message_id || '-' || i, '$.saga_id', saga_id || '-' || i, "
            "'$.idempotency_key', saga_id || '-' || i || '/reserve') FROM outbox, n");
    db.exec(numbers + "INSERT INTO inbox SELECT saga_id || '-' || i, message_id FROM inbox, n");
    for (const char* table : {"history", "timers", "outbox", "inbox"}) {
        db.exec(std::string("DELETE FROM ") + table + " WHERE saga_id NOT LIKE '%-%'");
    }
    db.exec("DELETE FROM instances WHERE id NOT LIKE '%-%'");
    db.exec("COMMIT");
    db.exec("VACUUM");
}

}  // namespace

TEST_CASE("sqlite journal store: migrating a v1 file of 10,000 instances",
          "[.][benchmark][migration]") {
    temp_dir dir;
    const std::string seed = copy_of_fixture(dir, "seed.db");
    grow_fixture(seed, 1250);
    const file_view v1 = view_of(seed);
    REQUIRE(v1.rows.at("instances") == 10000);
    const auto v1_bytes = fs::file_size(seed);

    for (const bool check : {true, false}) {
        std::vector<double> ms;
        std::uintmax_t v2_bytes = 0;
        std::int64_t free_bytes = 0;
        for (int run = 0; run < 3; ++run) {
            const std::string path = dir.file("run-" + std::to_string(run) + ".db");
            fs::copy_file(seed, path, fs::copy_options::overwrite_existing);
            ::sync();  // the copy on disk, as a store file is: its writeback is not timed
            const auto t0 = std::chrono::steady_clock::now();
            {
                auto store = open_journal_store(path, {.check_integrity = check});
                CHECK(sqlite::detail::journal_store_access::settings(*store).opened_at_version ==
                      1);
            }
            ms.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count());
            const file_view v2 = view_of(path);
            CHECK(v2.rows.at("heads") == 10000);
            CHECK(v2.rows.at("history_v1") == v1.rows.at("history"));
            v2_bytes = fs::file_size(path) +
                       (fs::exists(path + "-wal") ? fs::file_size(path + "-wal") : 0);
            {
                SQLite::Database db(path, SQLite::OPEN_READONLY);
                free_bytes = db.execAndGet("PRAGMA freelist_count").getInt64() *
                             db.execAndGet("PRAGMA page_size").getInt64();
            }
            fs::remove(path);
        }
        const std::vector<double> runs = ms;
        std::sort(ms.begin(), ms.end());
        std::printf(
            "migration of 10,000 instances (%lld history rows, %ju bytes at v1), integrity check "
            "%s: median %.0f ms (runs %.0f, %.0f, %.0f); %ju bytes at v2 (file and -wal), %lld of "
            "them free pages\n",
            static_cast<long long>(v1.rows.at("history")), static_cast<std::uintmax_t>(v1_bytes),
            check ? "on" : "off", ms[1], runs[0], runs[1], runs[2], v2_bytes,
            static_cast<long long>(free_bytes));
    }
}
