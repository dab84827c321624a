// The store's file: damaged pages found on open (PRAGMA quick_check), read-only opening, the
// lock that tells whether a store is in use, and deleting a store (sqlite_store::remove).
#include "contract/state_store_contract.hpp"

#include "temp_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <saga/sqlite/sqlite_store.hpp>
#include <saga/sqlite/store_lock.hpp>

using namespace saga;
using namespace saga::contract;
using saga::sqlite::sqlite_store;
using saga::sqlite::store_lock;
using saga::sqlite::store_options;
using saga::sqlite::test::damage_page;
using saga::sqlite::test::file_bytes;
using saga::sqlite::test::immutable_flag;
using saga::sqlite::test::leaf_page_of;
using saga::sqlite::test::open_store;
using saga::sqlite::test::temp_dir;
using saga::sqlite::test::temp_path;

namespace fs = std::filesystem;

namespace {

/// A closed store at `path` with `sagas` instances, each with `entries` history entries, a
/// timer and an outbox message (the -wal is checkpointed into the file when it closes).
void fill_store(const std::string& path, int sagas, int entries) {
    auto store = open_store(path);
    for (int i = 0; i < sagas; ++i) {
        const std::string id = "s-" + std::to_string(i);
        transition t = create(make_record(id));
        for (int k = 0; k < entries; ++k) {
            t.history.push_back(make_entry("step_completed", "step-" + std::to_string(k), 1,
                                           {{"note", "entry " + std::to_string(k) + " of " + id}}));
        }
        t.timers_set = {make_timer(id, "deadline", at_ms(5000 + i))};
        t.outbox = {make_outbox(id, "out-" + id)};
        t.inbox = {"in-" + id};
        SAGA_CONTRACT_OK(store->commit(t));
    }
}

/// The saga ids of a store made by fill_store.
std::vector<std::string> ids_in(const std::string& /*path*/, int sagas) {
    std::vector<std::string> ids;
    for (int i = 0; i < sagas; ++i) {
        ids.push_back("s-" + std::to_string(i));
    }
    return ids;
}

}  // namespace

TEST_CASE(
    "sqlite store: a store with a damaged page is refused on open, naming the file and "
    "what to do",
    "[sqlite][integrity]") {
    temp_path file;
    constexpr int sagas = 200;
    fill_store(file.str(), sagas, 10);
    REQUIRE_FALSE(fs::exists(file.str() + "-wal"));
    damage_page(file.str(), leaf_page_of(file.str(), "history", 3));
    const std::vector<char> damaged = file_bytes(file.str());

    SECTION("open runs PRAGMA quick_check and refuses the file") {
        for (const bool read_only : {false, true}) {
            auto opened = sqlite_store::open({.path = file.str(), .read_only = read_only});
            REQUIRE_FALSE(opened);
            INFO(opened.error().what());
            CHECK(opened.error() == errc::store_failure);
            CHECK(contains_text(opened.error().message, file.str()));
            CHECK(contains_text(opened.error().message, "damaged"));
            CHECK(contains_text(opened.error().message, "quick_check"));
            CHECK(contains_text(opened.error().message, "backup"));
            CHECK(contains_text(opened.error().message, ".recover"));
        }
        CHECK(file_bytes(file.str()) == damaged);
    }
    SECTION("without the check the store opens and lists, and the damage shows on reading") {
        // what every command saw before open checked: the instances read fine
        auto store = open_store(file.str(), {.check_integrity = false});
        CHECK(SAGA_CONTRACT_OK(store->list({})).size() == sagas);
        int unreadable = 0;
        std::string message;
        for (const auto& id : ids_in(file.str(), sagas)) {
            if (auto h = store->history(id); !h) {
                ++unreadable;
                message = h.error().message;
                CHECK(h.error() == errc::store_failure);
            }
        }
        INFO(message);
        CHECK(unreadable > 0);
        CHECK(contains_text(message, "malformed"));
    }
}

TEST_CASE("sqlite store: a store opened read-only reads everything and writes nothing",
          "[sqlite][read-only]") {
    temp_dir dir;
    const std::string path = dir.file("ro.db");
    fill_store(path, 5, 3);
    // Root ignores permission bits, so the guarantee under test is the read-only open itself:
    // the file's bytes stay the same, and nothing is committed. The immutable attribute (which
    // root cannot write through either) shows that reading needs no write access at all.
    auto read_everything = [&](const std::shared_ptr<sqlite_store>& store) {
        CHECK(store->read_only());
        CHECK(SAGA_CONTRACT_OK(store->list({})).size() == 5);
        CHECK(SAGA_CONTRACT_OK(store->load("s-2")).id == "s-2");
        CHECK(SAGA_CONTRACT_OK(store->history("s-2")).size() == 3);
        CHECK(SAGA_CONTRACT_OK(store->timers()).size() == 5);
        CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).size() == 5);
        CHECK(SAGA_CONTRACT_OK(store->inbox_contains("s-2", "in-s-2")));
        const error refused =
            SAGA_CONTRACT_FAILS(store->commit(create(make_record("new"))), errc::invalid_state);
        CHECK(contains_text(refused.message, "read-only"));
        const std::vector<std::string> ack{"out-s-1"};
        SAGA_CONTRACT_FAILS(store->ack_outbox(ack), errc::invalid_state);
        CHECK(store->stats().commits == 0);
    };

    SECTION("a file with mode 0444") {
        fs::permissions(path,
                        fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
        const std::vector<char> before = file_bytes(path);
        {
            auto store = open_store(path, {.read_only = true});
            read_everything(store);
        }
        CHECK(file_bytes(path) == before);
    }
    SECTION("an immutable file: read-only opens it, read-write says how to read it") {
        immutable_flag frozen(path);
        if (!frozen.ok()) {
            WARN("cannot set the immutable attribute here; skipped");
            return;
        }
        const std::vector<char> before = file_bytes(path);
        {
            auto store = open_store(path, {.read_only = true});
            read_everything(store);
        }
        auto rw = sqlite_store::open({.path = path});
        REQUIRE_FALSE(rw);
        INFO(rw.error().what());
        CHECK(contains_text(rw.error().message, path));
        CHECK(contains_text(rw.error().message, "read_only"));
        CHECK(file_bytes(path) == before);
    }
    SECTION("a directory that cannot be written (no -wal, no -shm: read as immutable)") {
        REQUIRE_FALSE(fs::exists(path + "-wal"));
        REQUIRE_FALSE(fs::exists(path + "-shm"));
        immutable_flag frozen(dir.path().string());
        if (!frozen.ok()) {
            WARN("cannot set the immutable attribute here; skipped");
            return;
        }
        const std::vector<char> before = file_bytes(path);
        {
            auto store = open_store(path, {.read_only = true});
            read_everything(store);
        }
        CHECK(file_bytes(path) == before);
        CHECK_FALSE(fs::exists(path + "-wal"));
    }
    SECTION("a missing file is not created") {
        const std::string missing = dir.file("missing.db");
        auto opened = sqlite_store::open({.path = missing, .read_only = true});
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(opened.error() == errc::store_failure);
        CHECK(contains_text(opened.error().message, missing));
        CHECK_FALSE(fs::exists(missing));
    }
    SECTION("an empty file is not a store") {
        const std::string empty = dir.file("empty.db");
        std::ofstream{empty};
        auto opened = sqlite_store::open({.path = empty, .read_only = true});
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(contains_text(opened.error().message, "not a saga store"));
        CHECK(fs::file_size(empty) == 0);
    }
}

TEST_CASE(
    "store_lock: every open store holds it shared, and exclusive fails while any process has "
    "the store open",
    "[sqlite][lock]") {
    temp_dir dir;
    const std::string path = dir.file("locked.db");
    fill_store(path, 1, 1);

    SECTION("a store open in this process") {
        {
            auto store = open_store(path);
            auto lock = store_lock::exclusive(path);
            REQUIRE_FALSE(lock);
            INFO(lock.error().what());
            CHECK(lock.error() == errc::store_busy);
            CHECK(contains_text(lock.error().message, path));
            CHECK(contains_text(lock.error().message, "in use"));
            // a second store (read-only too) shares the lock
            auto second = open_store(path, {.read_only = true});
            CHECK(second->read_only());
        }
        auto lock = store_lock::exclusive(path);
        REQUIRE(lock);
        CHECK(lock.value().is_exclusive());
        CHECK(fs::exists(store_lock::lock_path_of(path)));

        // while it is held, opening waits for it, then says why it gave up
        auto opened =
            sqlite_store::open({.path = path, .busy_timeout = std::chrono::milliseconds{50}});
        REQUIRE_FALSE(opened);
        INFO(opened.error().what());
        CHECK(opened.error() == errc::store_busy);
        CHECK(contains_text(opened.error().message, "deleting or replacing"));
    }
    SECTION("a store open in another process, until that process is killed") {
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            ::close(ready[0]);
            auto store = sqlite_store::open({.path = path});
            const char ok = store ? 'y' : 'n';
            (void)::write(ready[1], &ok, 1);
            for (;;) {
                ::pause();  // until SIGKILL
            }
        }
        ::close(ready[1]);
        char ok = 0;
        REQUIRE(::read(ready[0], &ok, 1) == 1);
        ::close(ready[0]);
        REQUIRE(ok == 'y');
        auto lock = store_lock::exclusive(path);
        CHECK_FALSE(lock);
        if (!lock) {
            CHECK(lock.error() == errc::store_busy);
        }
        ::kill(child, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        // the kernel dropped the dead process's lock: no stale lock is left behind
        CHECK(store_lock::exclusive(path));
    }
}

TEST_CASE("sqlite store: remove deletes a saga store nobody has open, and refuses anything else",
          "[sqlite][remove]") {
    temp_dir dir;
    const std::string path = dir.file("victim.db");

    auto refused = [&](const std::string& reason_part) {
        const std::vector<char> before = file_bytes(path);
        auto lock = store_lock::exclusive(path);
        REQUIRE(lock);
        auto r = sqlite_store::remove(lock.value());
        REQUIRE_FALSE(r);
        INFO(r.error().what());
        CHECK(r.error() == errc::store_failure);
        CHECK(contains_text(r.error().message, path));
        CHECK(contains_text(r.error().message, reason_part));
        CHECK(contains_text(r.error().message, "nothing was deleted"));
        CHECK(file_bytes(path) == before);
    };

    SECTION("a saga store, its -wal and -shm files") {
        fill_store(path, 3, 2);
        std::ofstream(path + "-wal") << "";  // as a killed process leaves them
        std::ofstream(path + "-shm") << "";
        {
            auto lock = store_lock::exclusive(path);
            REQUIRE(lock);
            REQUIRE(sqlite_store::remove(lock.value()));
        }
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
            CHECK_FALSE(fs::exists(path + suffix));
        }
        CHECK(fs::exists(store_lock::lock_path_of(path)));  // kept on purpose
    }
    SECTION("nothing there, or only a stale -wal") {
        std::ofstream(path + "-wal") << "stale";
        auto lock = store_lock::exclusive(path);
        REQUIRE(lock);
        CHECK(sqlite_store::remove(lock.value()));
        CHECK_FALSE(fs::exists(path + "-wal"));
    }
    SECTION("a file that is not a SQLite database") {
        std::ofstream(path) << "id,name\n1,spring sale\n";
        refused("not a SQLite database");
    }
    SECTION("a SQLite database of another application") {
        {
            SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("CREATE TABLE foo (id INTEGER PRIMARY KEY)");
        }
        refused("not a saga store");
    }
    SECTION("a read-only saga store (mode 0444)") {
        fill_store(path, 1, 1);
        fs::permissions(path,
                        fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
        refused("read-only");
    }
    SECTION("an immutable saga store") {
        fill_store(path, 1, 1);
        immutable_flag frozen(path);
        if (!frozen.ok()) {
            WARN("cannot set the immutable attribute here; skipped");
            return;
        }
        refused("read-only");
    }
    SECTION("a lock that is not exclusive") {
        fill_store(path, 1, 1);
        auto lock = store_lock::shared(path);
        REQUIRE(lock);
        auto r = sqlite_store::remove(lock.value());
        REQUIRE_FALSE(r);
        CHECK(r.error() == errc::invalid_argument);
        CHECK(fs::exists(path));
    }
}

// Not run by default: the cost of the integrity check on a store of 100,000 instances shaped
// like the campaign demo's (about 340 bytes of data, 950 of state and 34 history entries each).
// SAGA_BENCH_STORE names the file (kept between runs; made if missing).
TEST_CASE("sqlite store: the cost of PRAGMA quick_check on open, 100,000 instances",
          "[.benchmark][sqlite][integrity]") {
    const char* env = std::getenv("SAGA_BENCH_STORE");
    const std::string path = env != nullptr ? env : "/tmp/saga-bench-100k.db";
    constexpr int sagas = 100000;
    if (!fs::exists(path)) {
        auto store = open_store(path, {.sync = sqlite::synchronous::normal});
        const std::string padding(300, 'd');
        nlohmann::json state = {{"units", nlohmann::json::object()}};
        for (int k = 0; k < 14; ++k) {
            state["units"]["step-" + std::to_string(k)] = {
                {"a", 1}, {"s", "completed"}, {"t0", 1796167594550}, {"t1", 1796167594562}};
        }
        std::vector<std::future<result<void>>> pending;
        for (int i = 0; i < sagas; ++i) {
            const std::string id = "bench-" + std::to_string(i);
            instance_record r = make_record(id);
            r.status = saga_status::completed;
            r.data = {{"campaign", id}, {"padding", padding}};
            r.state = state;
            transition t = create(r);
            for (int k = 0; k < 34; ++k) {
                t.history.push_back(make_entry("step_completed", "step-" + std::to_string(k % 14),
                                               1, {{"duration_ms", k}}));
            }
            auto promise = std::make_shared<std::promise<result<void>>>();
            pending.push_back(promise->get_future());
            store->async_commit(
                std::move(t), [promise](result<void> res) { promise->set_value(std::move(res)); });
            if (pending.size() == 4096) {
                for (auto& f : pending) REQUIRE(f.get());
                pending.clear();
            }
        }
        for (auto& f : pending) REQUIRE(f.get());
    }
    auto median_open = [&](bool check) {
        std::vector<double> seconds;
        for (int run = 0; run < 3; ++run) {
            const auto began = std::chrono::steady_clock::now();
            auto store = open_store(path, {.check_integrity = check});
            seconds.push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
        }
        std::sort(seconds.begin(), seconds.end());
        return seconds[1];
    };
    const double with_check = median_open(true);
    const double without = median_open(false);
    WARN("file " << path << ": " << fs::file_size(path) / (1024 * 1024) << " MiB; open with "
                 << "quick_check " << with_check << " s, without " << without
                 << " s (medians of 3)");
    CHECK(with_check > 0);
}
