#pragma once
// Group commit, shared by the SQLite stores: one writer thread with its own connection takes
// everything queued (up to max_batch, waiting up to max_delay for more) into one
// BEGIN IMMEDIATE ... COMMIT, each item in its own savepoint, so that an item whose checks fail
// is rolled back alone and only its caller hears of it. A transaction that fails fails every
// item in it; after any failure but a lock held elsewhere the connection is closed and the next
// batch opens a fresh one (disk full, I/O errors leave nothing behind). Private to saga::sqlite.

#include "sqlite_common.hpp"
#include "sync_counting_vfs.hpp"

#include <saga/error.hpp>
#include <saga/sqlite/synchronous.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace saga::sqlite::detail {

/// The statements that frame a batch.
struct transaction_statements {
    SQLite::Statement begin;
    SQLite::Statement commit;
    SQLite::Statement savepoint;
    SQLite::Statement release;
    SQLite::Statement rollback_to;

    explicit transaction_statements(SQLite::Database& db)
        : begin(db, "BEGIN IMMEDIATE"),
          commit(db, "COMMIT"),
          savepoint(db, "SAVEPOINT t"),
          release(db, "RELEASE t"),
          rollback_to(db, "ROLLBACK TO t") {}
};

/// The writer of a store: its queue, its thread's loop, its connection. `Item` is what a
/// caller queues; it has a `done` member callable with `result<void>` (may be empty). The
/// store derives from it, prepares its own statements in `prepare_writer` and writes an item
/// in `apply`; its destructor must call `drop_writer()` (statements go before the database).
template <class Item>
struct group_writer {
    // ---- set before the writer starts ----
    std::string path;
    synchronous sync = synchronous::full;
    int busy_ms = 0;
    std::size_t max_batch = 1;
    duration max_delay{0};

    // ---- the connection: used by open, then only by the writer thread ----
    std::unique_ptr<SQLite::Database> writer_db;
    std::unique_ptr<transaction_statements> txn;

    // ---- the queue ----
    std::mutex queue_mutex;
    std::condition_variable queue_cv;
    std::deque<Item> queue;
    bool stopping = false;
    std::thread::id writer_id;

    // ---- figures ----
    /// items that committed and `is_commit`
    std::atomic<std::uint64_t> commits{0};
    /// transactions run (failed ones included)
    std::atomic<std::uint64_t> batches{0};
    std::atomic<std::uint64_t> largest_batch{0};
    std::atomic<std::uint64_t> failed_batches{0};
    std::atomic<std::uint64_t> reconnects{0};
    /// transactions the writer committed (`batches - failed_batches`)
    std::atomic<std::uint64_t> transactions{0};
    /// rows inserted, updated or deleted by the items of committed transactions: SQLite's
    /// change count (`sqlite3_total_changes64`) around each item's savepoint, for the items that
    /// were not rolled back (an insert that conflicts and does nothing counts 0)
    std::atomic<std::uint64_t> row_writes{0};
    /// the syncs of this store's files (see sync_counting_vfs.hpp), and their count at open
    std::shared_ptr<sync_counter> file_syncs;
    std::uint64_t syncs_at_open = 0;

    // test access: `PRAGMA max_page_count` for the writer connection (0: none asked), applied by
    // the writer thread before its next transaction
    std::atomic<std::int64_t> page_limit{0};
    std::int64_t applied_page_limit = 0;

    group_writer() = default;
    group_writer(const group_writer&) = delete;
    group_writer& operator=(const group_writer&) = delete;
    virtual ~group_writer() = default;

    // ---- what the store does ----

    /// Prepares the store's statements on a (new) writer connection. Throws on failure.
    virtual void prepare_writer(SQLite::Database& db) = 0;
    /// Drops them (before the connection closes).
    virtual void release_writer() noexcept = 0;
    /// Writes `item` inside its savepoint: an error result rolls the savepoint back (only this
    /// caller hears of it); an exception (a failed statement) too, or fails the whole batch
    /// when SQLite rolled the transaction back.
    virtual result<void> apply(Item& item) = 0;
    /// What an item is, for a failure message ("commit of saga 'x'").
    [[nodiscard]] virtual std::string describe(const Item& item) const = 0;
    /// True when an item that committed counts in `commits`.
    [[nodiscard]] virtual bool is_commit(const Item& item) const noexcept = 0;
    /// After each transaction, before the handlers run: `n` items since `began`.
    virtual void batch_done(std::size_t n, std::chrono::steady_clock::time_point began) {
        static_cast<void>(n);
        static_cast<void>(began);
    }

    /// `xSync` calls on the store's files (database, WAL, journal) by any connection of this
    /// process since `open` (0 when the counting VFS could not be installed)
    [[nodiscard]] std::uint64_t syncs() const noexcept {
        return file_syncs ? file_syncs->syncs.load(std::memory_order_relaxed) - syncs_at_open : 0;
    }

    // ---- the writer ----

    /// Takes the connection that opened the file (configured and migrated) as the writer's.
    void adopt_writer(std::unique_ptr<SQLite::Database> db) {
        writer_db = std::move(db);
        txn = std::make_unique<transaction_statements>(*writer_db);
        prepare_writer(*writer_db);
    }
    /// Opens a fresh writer connection (the file exists and is migrated). Throws on failure.
    void connect_writer() {
        writer_db = std::make_unique<SQLite::Database>(path, write_flags, busy_ms);
        writer_db->exec(sync_pragma(sync));
        txn = std::make_unique<transaction_statements>(*writer_db);
        prepare_writer(*writer_db);
        applied_page_limit = 0;
    }
    /// Closes the writer connection (statements first).
    void drop_writer() noexcept {
        release_writer();
        txn.reset();
        writer_db.reset();
    }

    /// Queues `item` for the writer (or runs it at once on the writer thread); `item.done` is
    /// called whatever happens.
    void submit(Item item) {
        bool notify = false;
        {
            std::unique_lock lock(queue_mutex);
            if (std::this_thread::get_id() == writer_id) {
                // from a handler, on the writer thread: no transaction is open, run it now
                // (queueing it would deadlock a caller that waits for the outcome, e.g.
                // `commit()`)
                lock.unlock();
                std::vector<Item> one;
                one.push_back(std::move(item));
                run_batch(one);
                return;
            }
            if (stopping) {
                lock.unlock();
                if (item.done) {
                    item.done(
                        error{errc::shutting_down, about_file(path) + "the store is closing"});
                }
                return;
            }
            try {
                queue.push_back(std::move(item));  // strong guarantee: `item` is intact on failure
            } catch (const std::exception& e) {
                lock.unlock();
                if (item.done) {
                    item.done(other_error(path, "queue a commit", &e));
                }
                return;
            }
            notify = queue.size() == 1 || queue.size() == max_batch;
        }
        if (notify) {
            queue_cv.notify_one();
        }
    }

    /// Lets the writer finish what is queued and leave its loop.
    void stop() {
        {
            std::lock_guard lock(queue_mutex);
            stopping = true;
        }
        queue_cv.notify_one();
    }

    /// The writer thread's loop, until `stop()` and an empty queue.
    void run() {
        std::vector<Item> batch;
        batch.reserve(std::min<std::size_t>(max_batch, 4096));
        std::unique_lock lock(queue_mutex);
        writer_id = std::this_thread::get_id();
        for (;;) {
            queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
            if (queue.empty()) {
                break;  // stopping, and everything queued has its outcome
            }
            if (max_delay.count() > 0 && queue.size() < max_batch && !stopping) {
                queue_cv.wait_for(lock, max_delay,
                                  [&] { return stopping || queue.size() >= max_batch; });
            }
            const std::size_t n = std::min(queue.size(), max_batch);
            for (std::size_t i = 0; i < n; ++i) {
                batch.push_back(std::move(queue.front()));
                queue.pop_front();
            }
            lock.unlock();
            run_batch(batch);
            batch.clear();
            lock.lock();
        }
    }

    /// After a statement failed inside an item's savepoint: true when the savepoint could be
    /// rolled back and the batch goes on; false when the whole transaction is gone.
    bool recover_savepoint() noexcept {
        if (sqlite3_get_autocommit(writer_db->getHandle()) != 0) {
            return false;  // SQLite rolled the whole transaction back (I/O error, disk full, ...)
        }
        try {
            statement_use(txn->rollback_to)->exec();
            statement_use(txn->release)->exec();
            return true;
        } catch (...) {
            return false;
        }
    }

    /// One transaction of `batch`, then every item's handler.
    void run_batch(std::vector<Item>& batch) {
        const std::size_t n = batch.size();
        const auto began = std::chrono::steady_clock::now();
        std::vector<std::optional<error>> failures(n);
        std::optional<error> batch_error;
        std::uint64_t rows = 0;

        if (!txn) {
            // the last transaction failed and its connection was closed: start afresh
            try {
                connect_writer();
                reconnects.fetch_add(1, std::memory_order_relaxed);
            } catch (const std::exception& e) {
                drop_writer();
                batch_error =
                    failure_of(path, "reopen the connection after a failed transaction", e);
            }
        }
        if (!batch_error) {
            try {
                if (const auto limit = page_limit.load(); limit != applied_page_limit) {
                    writer_db->exec("PRAGMA max_page_count = " + std::to_string(limit));
                    applied_page_limit = limit;
                }
                statement_use(txn->begin)->exec();
            } catch (const std::exception& e) {
                batch_error = failure_of(path, "begin transaction", e);
            }
        }
        if (!batch_error) {
            for (std::size_t i = 0; i < n; ++i) {
                Item& item = batch[i];
                try {
                    const sqlite3_int64 changes_before =
                        sqlite3_total_changes64(writer_db->getHandle());
                    statement_use(txn->savepoint)->exec();
                    result<void> outcome = apply(item);
                    if (!outcome) {
                        statement_use(txn->rollback_to)->exec();
                        failures[i] = std::move(outcome).error();
                    }
                    statement_use(txn->release)->exec();
                    if (!failures[i]) {
                        // rows this item changed (a rolled-back savepoint does not undo the
                        // count, so a rolled-back item counts nothing)
                        rows += static_cast<std::uint64_t>(
                            sqlite3_total_changes64(writer_db->getHandle()) - changes_before);
                    }
                } catch (const std::exception& e) {
                    failures[i] = failure_of(path, describe(item), e);
                    if (!recover_savepoint()) {
                        batch_error = failures[i];
                        break;
                    }
                }
            }
        }
        if (!batch_error) {
            try {
                statement_use(txn->commit)->exec();
            } catch (const std::exception& e) {
                batch_error = failure_of(path, "commit", e);
            }
        }
        if (batch_error && writer_db) {
            if (sqlite3_get_autocommit(writer_db->getHandle()) == 0) {
                writer_db->tryExec("ROLLBACK");
            }
            // A lock held elsewhere leaves the connection as it was. Anything else (disk full,
            // an I/O error) may leave SQLite's transaction or savepoint state behind, or a
            // statement in an error state: close the connection, the next batch opens a fresh
            // one.
            if (*batch_error != errc::store_busy ||
                sqlite3_get_autocommit(writer_db->getHandle()) == 0) {
                drop_writer();
            }
        }

        std::uint64_t committed = 0;
        if (!batch_error) {
            for (std::size_t i = 0; i < n; ++i) {
                if (!failures[i] && is_commit(batch[i])) {
                    ++committed;
                }
            }
        }
        commits.fetch_add(committed, std::memory_order_relaxed);
        if (!batch_error) {
            transactions.fetch_add(1, std::memory_order_relaxed);
            row_writes.fetch_add(rows, std::memory_order_relaxed);
        }
        batches.fetch_add(1, std::memory_order_relaxed);
        try {
            batch_done(n, began);
        } catch (...) {  // NOLINT(bugprone-empty-catch): figures must not stop the writer
        }
        if (batch_error) {
            failed_batches.fetch_add(1, std::memory_order_relaxed);
        }
        std::uint64_t largest = largest_batch.load(std::memory_order_relaxed);
        while (n > largest &&
               !largest_batch.compare_exchange_weak(largest, n, std::memory_order_relaxed)) {
        }

        // outside every lock and transaction: a handler may commit again (see submit)
        for (std::size_t i = 0; i < n; ++i) {
            auto& done = batch[i].done;
            if (!done) {
                continue;
            }
            try {
                if (batch_error) {
                    done(*batch_error);
                } else if (failures[i]) {
                    done(std::move(*failures[i]));
                } else {
                    done(success());
                }
            } catch (...) {  // NOLINT(bugprone-empty-catch): a throwing handler must not stop
                             // the writer
            }
        }
    }
};

}  // namespace saga::sqlite::detail
