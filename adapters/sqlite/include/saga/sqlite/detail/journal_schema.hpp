#pragma once
/// @file journal_schema.hpp
/// Internals of the SQLite journal store that its tests reach for. Not part of the API
/// (namespace saga::sqlite::detail).

#include <cstdint>

#include <saga/sqlite/detail/schema.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>

namespace saga::sqlite::detail {

/// Test access to a journal store's internals.
struct journal_store_access {
    /// What the writer connection reported after `open` (synchronous, journal mode, the
    /// file's schema version before it was opened).
    [[nodiscard]] static connection_settings settings(const sqlite_journal_store& store);
    /// As `store_access::set_max_page_count`: writes that need more pages than `pages` fail
    /// with "database or disk is full", as on a full disk.
    static void set_max_page_count(sqlite_journal_store& store, std::int64_t pages);
};

}  // namespace saga::sqlite::detail
