#pragma once
/// @file sqlite_journal_store.hpp
/// The lean store of core v2 (`saga::journal_store`) on one SQLite file (WAL mode, schema
/// version 2): a `heads` row per instance and a `journal` row per transition, with group
/// commit. docs/sqlite.md, "Schema v2: the journal store", shows the schema and how to read a
/// journal with the sqlite3 shell.
///
/// ```cpp
/// auto store = saga::sqlite::sqlite_journal_store::open({.path = "sagas.db"});
/// if (!store) { std::cerr << store.error().what() << '\n'; return 1; }
/// ```

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <saga/clock.hpp>
#include <saga/error.hpp>
#include <saga/journal_store.hpp>
#include <saga/sqlite/store_lock.hpp>
#include <saga/sqlite/synchronous.hpp>

namespace saga::sqlite {

namespace detail {
struct journal_store_access;
}  // namespace detail

/// Options of `sqlite_journal_store::open` (the fields of `store_options`, same meanings).
struct journal_store_options {
    /// the database file; created (with its schema) if missing
    std::string path;
    /// `synchronous::full` (the default: a commit survives power loss) or `synchronous::normal`
    synchronous sync = synchronous::full;
    /// group commit: at most this many writes (and purges) per transaction; at least 1
    std::size_t max_batch = 1024;
    /// group commit: how long the writer waits for more writes before committing a batch that
    /// is not full; 0 commits whatever is queued at once (batches still form while the previous
    /// one is being written)
    duration max_delay{0};
    /// how long a connection waits for a lock held by another connection (another process on
    /// the same file) before failing with `errc::store_busy`
    duration busy_timeout = std::chrono::seconds{5};
    /// open the file for reading only: nothing in it is written, there is no writer thread,
    /// and `async_commit`/`purge` fail with `errc::invalid_state`. The file must exist and be a
    /// store of schema version 2
    bool read_only = false;
    /// run `PRAGMA quick_check` on open and refuse a file with a damaged page
    bool check_integrity = true;
};

/// Group-commit figures and what they cost (transactions, rows, syncs) since `open`, with the
/// same meaning as `store_stats`. Counted with relaxed atomics, always on.
struct journal_store_stats {
    /// writes committed successfully
    std::uint64_t commits = 0;
    /// transactions the writer ran (each one fsync at `synchronous::full`), failed ones included
    std::uint64_t batches = 0;
    /// the most writes and purges that shared one transaction
    std::uint64_t largest_batch = 0;
    /// transactions that could not begin or commit: every caller in them got the error
    std::uint64_t failed_batches = 0;
    /// times the writer closed its connection after a failed transaction and opened a fresh one
    std::uint64_t reconnects = 0;
    /// transactions the writer committed (`batches - failed_batches`)
    std::uint64_t transactions = 0;
    /// table rows inserted, updated or deleted by the writes and purges of committed
    /// transactions (heads and journal rows; index entries are not counted): SQLite's change
    /// count, per write or purge; one that was rolled back, alone or with its transaction,
    /// counts nothing
    std::uint64_t row_writes = 0;
    /// `xSync` calls, each one fsync or fdatasync, on the store's database file, its WAL and
    /// journal, by any connection of this process, since `open` (counted by a thin VFS over
    /// SQLite's default one, registered at the first `open` of either store; see docs/sqlite.md)
    std::uint64_t syncs = 0;
};

/// The SQLite journal store. Thread-safe.
///
/// `async_commit` checks and encodes the write on the caller's thread (`check_journal_write`,
/// the journal codec) and queues it; one writer thread commits what is queued in one
/// `BEGIN IMMEDIATE` transaction, each write in its own savepoint, so a write refused by its
/// checks (`version_conflict`, `already_exists`, `not_found`, `lock_held`) is rolled back alone
/// and only its caller hears of it. A transaction that fails (disk full, I/O error) fails each
/// of its callers with that error and applies nothing of theirs; the writer then opens a fresh
/// connection for the next one. Handlers run on the writer thread after the transaction
/// committed and must be quick; a commit issued from inside a handler runs at once on the
/// writer thread in a transaction of its own. Reads use a second connection (WAL).
///
/// The checks cost one primary-key seek per write: a record of version v > 1 is accepted only
/// when the newest record of its id has version v - 1; version 1 only for an id without a head.
/// Exclusive correlation keys are held by a partial unique index, so no other exclusive,
/// non-terminal head can take the key even from outside this library.
///
/// Opening, refusals, the lock file, the integrity check and read-only opening work as for
/// `sqlite_store` (docs/sqlite.md). A file of schema version 1 (`sqlite_store`'s) opened
/// read-write is migrated to version 2 in place, in one transaction: each instance becomes a
/// head and one journal record (a snapshot of its state, its data and its unreleased outbox
/// messages), the v1 history is kept as the table `history_v1`, and the other v1 tables go
/// (docs/sqlite.md, "Migrating a v1 file"). An instance that cannot be read fails the open
/// with `errc::store_failure` naming the file and the saga, and leaves the file at version 1.
/// Opened read-only, a version 1 file is refused with `errc::invalid_state`.
/// Errors carry the SQLite message and the file name: `SQLITE_BUSY` is `errc::store_busy`,
/// anything else `errc::store_failure`; a stored value that cannot be read back (a damaged
/// or edited row) is `errc::store_failure` naming the saga, the version and the column.
class sqlite_journal_store final : public journal_store {
public:
    /// Opens (creating if missing, migrating a schema version 1 file) the store at
    /// `options.path`. Errors as `sqlite_store::open`; `errc::store_failure` naming the saga
    /// for a version 1 file with an instance that cannot be migrated (the file is left at
    /// version 1); `errc::invalid_state` for a version 1 file opened read-only.
    [[nodiscard]] static result<std::shared_ptr<sqlite_journal_store>> open(
        journal_store_options options);

    /// Drains the queue (every queued write gets its outcome), stops the writer thread and
    /// closes the file.
    ~sqlite_journal_store() override;
    sqlite_journal_store(const sqlite_journal_store&) = delete;
    sqlite_journal_store& operator=(const sqlite_journal_store&) = delete;

    void async_commit(journal_write w, journal_commit_handler done) override;
    [[nodiscard]] result<loaded_instance> load(std::string_view id) override;
    [[nodiscard]] result<instance_head> head(std::string_view id) override;
    [[nodiscard]] result<std::vector<instance_head>> list(const head_filter& filter) override;
    [[nodiscard]] result<std::vector<journal_record>> journal(std::string_view id) override;
    [[nodiscard]] result<std::vector<std::string>> due(time_point before,
                                                       std::size_t limit) override;
    [[nodiscard]] result<std::vector<std::string>> in_status(std::vector<saga_status> statuses,
                                                             std::string_view after_id,
                                                             std::size_t limit) override;
    /// Goes through the writer queue (one savepoint in a shared transaction) and waits.
    [[nodiscard]] result<std::size_t> purge(time_point older_than, std::size_t limit) override;

    /// Group-commit figures since `open`.
    [[nodiscard]] journal_store_stats stats() const;
    /// The file this store was opened on.
    [[nodiscard]] const std::string& path() const noexcept;
    /// True when opened with `journal_store_options::read_only`.
    [[nodiscard]] bool read_only() const noexcept;

    /// The schema version this store reads and writes.
    static constexpr int schema_version = 2;

private:
    /// The store's state, shared with the writer thread (defined in sqlite_journal_store.cpp).
    struct impl;
    friend struct detail::journal_store_access;
    explicit sqlite_journal_store(std::shared_ptr<impl> state);

    std::shared_ptr<impl> impl_;
    std::thread writer_;
};

}  // namespace saga::sqlite
