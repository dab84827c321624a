#pragma once
// The rows of schema version 2 (schema_v2.hpp) as the journal store writes them: a
// `journal_write` checked and encoded (the journal codec's text, times in microseconds), and
// the statements that insert a head and a record. Shared by the store's writer thread
// (sqlite_journal_store.cpp) and the migration from schema version 1 (v1_migration.cpp), so a
// migrated instance is written exactly as a commit would write it. Private to saga::sqlite.

#include <saga/error.hpp>
#include <saga/journal_store.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <optional>
#include <string>

namespace saga::sqlite::detail {

/// An `instance_head` as its row's columns.
struct encoded_head {
    std::string id;
    std::string definition;
    std::int64_t definition_version = 0;
    std::string status;
    std::string correlation_key;
    bool exclusive = false;
    std::optional<std::int64_t> wake_at;
    std::int64_t version = 0;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

/// A `journal_write` as its rows' columns: what the writer thread only binds and steps.
struct encoded_write {
    std::string saga_id;
    std::int64_t version = 0;
    std::int64_t at = 0;
    std::string events;
    std::optional<std::string> output;
    std::int64_t released_through = 0;
    std::optional<std::string> data;
    std::optional<std::string> snapshot;
    std::optional<encoded_head> head;
};

/// `check_journal_write`, then the encoding (the journal codec never fails); the strings of
/// `w` are moved. `errc::invalid_argument` naming the saga for a write that contradicts itself
/// or a version past the column's range.
[[nodiscard]] result<encoded_write> encode_journal_write(journal_write& w);

/// The statements that write a new instance (its head and first record) and a record: the
/// writer thread's, and the migration's.
struct journal_row_statements {
    /// the newest record's version of ?1
    SQLite::Statement newest;
    // a uniqueness conflict is the id taken or the correlation key locked: nothing is written
    SQLite::Statement insert_head;
    SQLite::Statement head_exists;
    SQLite::Statement lock_holder;
    SQLite::Statement insert_record;

    explicit journal_row_statements(SQLite::Database& db);
};

/// The newest record's version of `id`, if it has any.
[[nodiscard]] std::optional<std::int64_t> newest_version(journal_row_statements& s,
                                                         const std::string& id);

/// Binds the ten head columns, in `heads`' order, to ?1 ... ?10.
void bind_head(SQLite::Statement& s, const encoded_head& h);

/// Inserts the head of a first write (`w.version == 1`, with its head): `errc::already_exists`
/// when the id is taken, `errc::lock_held` naming the holder when its correlation key is
/// locked; nothing is written then. Throws SQLite::Exception.
[[nodiscard]] result<void> insert_first_head(journal_row_statements& s, const encoded_write& w);

/// The refusal of head `h`, whose correlation key another saga holds.
[[nodiscard]] error lock_held_error(journal_row_statements& s, const encoded_head& h);

/// Inserts the record of `w`. Throws SQLite::Exception.
void insert_record(journal_row_statements& s, const encoded_write& w);

}  // namespace saga::sqlite::detail
