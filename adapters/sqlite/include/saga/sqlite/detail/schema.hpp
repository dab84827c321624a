#pragma once
/// @file schema.hpp
/// Internals of the SQLite store that its tests reach for: the schema migrations and the
/// settings a connection reports. Not part of the API (namespace saga::sqlite::detail).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <saga/error.hpp>
#include <saga/sqlite/sqlite_store.hpp>

namespace SQLite {
class Database;
}  // namespace SQLite

namespace saga::sqlite::detail {

/// The code of a migration step, for what SQL alone cannot do (reading rows and writing them
/// in another form). `from_version` is the file's schema version when the migration began (0
/// for a new file, which has nothing to convert); `path` names the file. An error, or a thrown
/// exception, rolls the whole migration back; the error's message should name what it could
/// not convert (a saga id), the caller adds the file and the versions.
using migration_code = result<void> (*)(SQLite::Database& db, std::string_view path,
                                        int from_version);

/// One forward step of the schema: running `sql`, then `code` (when set), on a store at the
/// previous version brings it to `version`, in the transaction of the whole migration.
/// Versions of a migration list increase by one; the store's own list starts at 1.
struct migration {
    int version = 0;
    std::string_view sql;
    migration_code code = nullptr;
};

/// The migrations of this library; the last one's version is `sqlite_store::schema_version`.
[[nodiscard]] std::span<const migration> builtin_migrations() noexcept;

/// `PRAGMA application_id` of a saga store ("saga" in ASCII).
inline constexpr std::int32_t application_id = 0x73616761;

/// What the writer connection reported after `open` configured it.
struct connection_settings {
    /// `PRAGMA synchronous`: 2 for FULL, 1 for NORMAL
    std::int64_t synchronous = -1;
    /// `PRAGMA journal_mode`: "wal"
    std::string journal_mode;
    /// the file's schema version before `open` migrated it (0 for a new file)
    int opened_at_version = 0;
};

/// Test access to a store's internals.
struct store_access {
    /// `sqlite_store::open` with another migration list (e.g. one with a version 2).
    [[nodiscard]] static result<std::shared_ptr<sqlite_store>> open(
        store_options options, std::span<const migration> migrations);
    [[nodiscard]] static connection_settings settings(const sqlite_store& store);
    /// Sets `PRAGMA max_page_count` of the writer connection before its next transaction (and
    /// again on every connection it opens later): commits that need more pages fail with
    /// "database or disk is full", as on a full disk. SQLite keeps the limit at or above the
    /// file's current size.
    static void set_max_page_count(sqlite_store& store, std::int64_t pages);
};

}  // namespace saga::sqlite::detail
