#pragma once
/// @file sqlite_store.hpp
/// A durable `state_store` on one SQLite file (WAL mode), with group commit: the commits of
/// many callers share one transaction and one fsync.
///
/// ```cpp
/// auto store = saga::sqlite::sqlite_store::open({.path = "sagas.db"});
/// if (!store) { std::cerr << store.error().what() << '\n'; return 1; }
/// saga::engine engine(store.value(), transport);
/// ```

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <saga/clock.hpp>
#include <saga/error.hpp>
#include <saga/sqlite/store_lock.hpp>
#include <saga/sqlite/synchronous.hpp>
#include <saga/state_store.hpp>

namespace saga::sqlite {

namespace detail {
struct migration;
struct store_access;
}  // namespace detail

/// Options of `sqlite_store::open`.
struct store_options {
    /// the database file; created (with its schema) if missing
    std::string path;
    /// `synchronous::full` (the default) or `synchronous::normal`
    synchronous sync = synchronous::full;
    /// group commit: at most this many transitions (and outbox acknowledgements) per
    /// transaction; at least 1
    std::size_t max_batch = 1024;
    /// group commit: how long the writer waits for more transitions before committing a batch
    /// that is not full; 0 commits whatever is queued at once (batches still form while the
    /// previous one is being written)
    duration max_delay{0};
    /// how long a connection waits for a lock held by another connection (another process on
    /// the same file) before failing with `errc::store_busy`
    duration busy_timeout = std::chrono::seconds{5};
    /// open the file for reading only: nothing in it is written or migrated, there is no writer
    /// thread, and `async_commit`/`ack_outbox` fail with `errc::invalid_state`. For tools that
    /// only read (listings, checks), and for files that cannot be written (`chmod 0444`, a
    /// read-only mount). The file must exist and be a store of this schema version
    bool read_only = false;
    /// run `PRAGMA quick_check` on open and refuse a file with a damaged page (it reads the
    /// whole file once: about a second per GB, see docs/sqlite.md); off, damage shows only
    /// when a damaged page is read
    bool check_integrity = true;
};

/// Group-commit figures and what they cost (transactions, rows, syncs) since `open`. Counted with
/// relaxed atomics, always on.
struct store_stats {
    /// transitions committed successfully
    std::uint64_t commits = 0;
    /// transactions the writer ran (each one fsync at `synchronous::full`), failed ones included
    std::uint64_t batches = 0;
    /// the most transitions and acknowledgements that shared one transaction
    std::uint64_t largest_batch = 0;
    /// transactions that could not begin or commit: every caller in them got the error
    std::uint64_t failed_batches = 0;
    /// times the writer closed its connection after a failed transaction (disk full, I/O error)
    /// and opened a fresh one
    std::uint64_t reconnects = 0;
    /// transactions the writer committed (`batches - failed_batches`)
    std::uint64_t transactions = 0;
    /// rows inserted, updated or deleted by the transitions and acknowledgements of committed
    /// transactions (SQLite's change count, per transition: one that was rolled back, alone or
    /// with its transaction, counts nothing; an insert that conflicts and does nothing counts 0)
    std::uint64_t row_writes = 0;
    /// `xSync` calls, each one fsync or fdatasync, on the store's database file, its WAL and
    /// journal, by any connection of this process, since `open` (counted by a thin VFS over
    /// SQLite's default one, registered at the first `open`; see docs/sqlite.md)
    std::uint64_t syncs = 0;
};

/// The SQLite state store. Thread-safe.
///
/// `async_commit` queues the transition and returns; one writer thread, with its own
/// connection, commits what is queued in one `BEGIN IMMEDIATE` transaction, each transition in
/// its own savepoint: a transition that fails its checks (`version_conflict`, `already_exists`,
/// `duplicate_message`, `lock_held`) is rolled back alone and only its caller hears of it.
/// Handlers are called on the writer thread after the transaction committed; they must be quick
/// (post real work elsewhere). A commit issued from inside a handler runs at once on the writer
/// thread, in a transaction of its own, so `commit()` may be called there without deadlock.
/// Reads use a second connection and do not wait for the writer (WAL).
///
/// A transaction that fails for any reason but a lock held elsewhere (disk full, I/O error)
/// fails its callers, and the writer then closes its connection and opens a fresh one for the
/// next transaction, so nothing SQLite left behind (an open transaction or savepoint) outlives
/// the failure: once space is back, commits succeed again without reopening the store.
///
/// While open, the store holds its `store_lock` shared (`<path>.lock`), so that a tool can tell
/// that the store is in use (see `store_lock::exclusive` and `remove`).
///
/// Errors carry the SQLite message and the file name. `SQLITE_BUSY`/`SQLITE_LOCKED` (another
/// process holding the file past `busy_timeout`) is `errc::store_busy`; anything else is
/// `errc::store_failure`. Malformed transitions are `errc::invalid_argument` (as in
/// `inmemory::memory_store`), JSON that cannot be stored (invalid UTF-8) is `errc::bad_data`.
class sqlite_store final : public state_store {
public:
    /// Opens (creating if missing) the store at `options.path`, checks its integrity
    /// (`options.check_integrity`), and migrates an older schema forward in one transaction.
    /// Errors name the file and say what to do: `errc::store_failure` for a file that cannot be
    /// opened or written (read-only file or directory: open it with `read_only`), is not a
    /// SQLite database, is damaged (`PRAGMA quick_check` found a problem), or is a SQLite
    /// database of another application; `errc::invalid_state` for a store written by a newer
    /// schema version (or, read-only, an older one); `errc::store_busy` while another process
    /// deletes or replaces it (holds its `store_lock` exclusively); `errc::invalid_argument` for
    /// bad options. The file is not modified in any of these cases.
    [[nodiscard]] static result<std::shared_ptr<sqlite_store>> open(store_options options);

    /// Deletes the saga store at `lock.store_path()` with its `-wal`, `-shm` and `-journal`
    /// files; `lock` must be held exclusively (`store_lock::exclusive`), so no process has the
    /// store open. Nothing at the path is success (nothing to do). Refused, deleting nothing,
    /// with a message that names the file and what to do (`errc::store_failure`): a file that
    /// is not a saga store (another application's database, not a database at all), a file
    /// that is read-only (no write permission, or immutable) or in a directory that cannot be
    /// written; `errc::invalid_argument` for a lock that is not exclusive. The lock file stays.
    [[nodiscard]] static result<void> remove(const store_lock& lock);

    /// Drains the queue (every queued commit gets its outcome), stops the writer thread and
    /// closes the file.
    ~sqlite_store() override;
    sqlite_store(const sqlite_store&) = delete;
    sqlite_store& operator=(const sqlite_store&) = delete;

    void async_commit(transition t, commit_handler done) override;
    [[nodiscard]] result<instance_record> load(std::string_view id) override;
    [[nodiscard]] result<std::vector<instance_record>> list(const list_filter& filter) override;
    [[nodiscard]] result<std::vector<history_entry>> history(std::string_view id) override;
    [[nodiscard]] result<std::vector<timer_record>> timers(
        std::optional<time_point> due_before = std::nullopt) override;
    [[nodiscard]] result<std::vector<outbox_record>> pending_outbox(std::size_t limit) override;
    /// Goes through the writer queue (so it shares transactions with commits) and waits.
    [[nodiscard]] result<void> ack_outbox(std::span<const std::string> message_ids) override;
    /// Records `saga_store_batch_size` and `saga_store_batch_seconds` (one fsync each) per batch.
    void set_metrics(std::shared_ptr<metrics_registry> metrics) override;
    [[nodiscard]] result<bool> inbox_contains(std::string_view saga_id,
                                              std::string_view message_id) override;

    /// Group-commit figures and their cost (transactions, rows, syncs) since `open`.
    [[nodiscard]] store_stats stats() const;
    /// The file this store was opened on.
    [[nodiscard]] const std::string& path() const noexcept;
    /// True when opened with `store_options::read_only`.
    [[nodiscard]] bool read_only() const noexcept;

    /// The schema version this library writes; files of an older version are migrated on open.
    static constexpr int schema_version = 1;

private:
    /// The store's state, shared with the writer thread (defined in sqlite_store.cpp).
    struct impl;
    friend struct detail::store_access;
    explicit sqlite_store(std::shared_ptr<impl> state);
    [[nodiscard]] static result<std::shared_ptr<sqlite_store>> open_(
        store_options options, std::span<const detail::migration> migrations);

    std::shared_ptr<impl> impl_;
    std::thread writer_;
};

}  // namespace saga::sqlite
