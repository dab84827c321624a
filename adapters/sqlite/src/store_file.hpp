#pragma once
// Opening a saga store file, shared by the SQLite stores: the lock file, recognising the file
// (a saga store? which schema version?), the integrity check, WAL and synchronous settings,
// migrations, and read-only opening (immutable where no -wal/-shm can exist). Private to
// saga::sqlite.

#include <saga/clock.hpp>
#include <saga/error.hpp>
#include <saga/sqlite/detail/schema.hpp>
#include <saga/sqlite/store_lock.hpp>
#include <saga/sqlite/synchronous.hpp>

#include "sync_counting_vfs.hpp"

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace saga::sqlite::detail {

/// What `inspect` found in a file.
struct file_state {
    /// no schema at all: a new (or empty) file
    bool fresh = false;
    int version = 0;
};

/// Reads, without writing anything, whether the file is a saga store and at which version.
/// Throws SQLite::Exception for a file SQLite cannot read (not a database, corrupt).
[[nodiscard]] result<file_state> inspect(SQLite::Database& db, std::string_view path);

/// `PRAGMA quick_check`; a damaged file is `errc::store_failure` naming what was found and
/// what to do.
[[nodiscard]] result<void> check_integrity(SQLite::Database& db, std::string_view path);

/// The refusal of a file written by a newer schema version than `latest`.
[[nodiscard]] error newer_schema(std::string_view path, int found, int latest);

/// How a store opens its file.
struct file_options {
    std::string path;
    synchronous sync = synchronous::full;
    duration busy_timeout{};
    bool read_only = false;
    bool check_integrity = true;
    /// the options struct's name, for messages ("store_options")
    std::string_view options_name = "store_options";
};

/// The schema a store reads and writes.
struct schema_spec {
    /// the forward steps; the last one's version is the store's schema version. A new file
    /// gets every step, an older one the steps above its version
    std::span<const migration> migrations;
    /// a (not new) file of an older version than this is refused, not migrated, with
    /// `errc::invalid_state`: "sqlite store 'path': written by schema version N, " `too_old`
    int oldest_migratable = 0;
    std::string_view too_old;
};

/// A store file opened, recognised, checked and (read-write) migrated and configured.
struct opened_file {
    /// the store's lock, held shared (not held for a read-only store where it cannot be made)
    std::optional<store_lock> lock;
    /// read-write: the connection that opened and migrated the file (WAL, `sync` applied)
    std::unique_ptr<SQLite::Database> writer_db;
    /// what a read connection opens (the path, or an immutable URI) and with which flags
    std::string read_name;
    int read_flags = 0;
    connection_settings settings;
    /// the syncs of the file (see sync_counting_vfs.hpp; null when the counting VFS is not in
    /// place), and their count when it was opened
    std::shared_ptr<sync_counter> syncs;
    std::uint64_t syncs_at_open = 0;
};

/// Opens the store file as `sqlite_store::open` describes (every refusal names the file and
/// leaves it unchanged); the caller prepares its statements and its read connection on the
/// result.
[[nodiscard]] result<opened_file> open_store_file(const file_options& options,
                                                  const schema_spec& schema);

}  // namespace saga::sqlite::detail
