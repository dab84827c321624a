#pragma once
/// @file sync_counting_vfs.hpp
/// A thin SQLite VFS over the default one (unix) that counts `xSync` calls, each one fsync or
/// fdatasync, per database file. Private to saga::sqlite: both stores' `stats().syncs` read it
/// (store_file.cpp installs it and takes the counter at open; group_writer.hpp keeps it).

#include <atomic>
#include <cstdint>
#include <memory>

namespace saga::sqlite::detail {

/// The syncs of one database file and its companions (its WAL and rollback journal), by every
/// connection of this process.
struct sync_counter {
    std::atomic<std::uint64_t> syncs{0};
};

/// Registers the counting VFS as SQLite's default, wrapping the default that was in place (once
/// per process; later calls do nothing). Connections opened afterwards without naming a VFS go
/// through it. False when SQLite refused it (the store then counts no syncs).
bool install_sync_counting_vfs() noexcept;

/// The counter of the database file `db_filename`, as `sqlite3_db_filename(db, "main")` names it
/// for a connection opened through the counting VFS. Alive as long as a file of that database
/// is open through the VFS or a caller holds the counter; a later open of the same name after
/// both are gone starts a fresh counter. Null for an empty name or when out of memory.
std::shared_ptr<sync_counter> sync_counter_of(const char* db_filename) noexcept;

/// Every `xSync` through the counting VFS in this process, temporary files included.
std::uint64_t total_syncs() noexcept;

}  // namespace saga::sqlite::detail
