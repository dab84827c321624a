#pragma once
// Schema version 2: the journal store's (sqlite_journal_store). A new file gets it whole; a file
// of version 1 (sqlite_store's) is migrated to it in place (`migrate_from_v1`). Times are
// integer microseconds since the Unix epoch; events and output are the journal codec's JSON text
// (saga/journal_codec.hpp). docs/sqlite.md, "Schema v2: the journal store", describes it.
// Both tables keep their rowid: WITHOUT ROWID measured 2-3x slower to fill and 30-56% larger
// for rows of this size (docs/sqlite.md has the figures).

#include <string_view>

#include <saga/error.hpp>
#include <saga/sqlite/detail/schema.hpp>

namespace saga::sqlite::detail {

inline constexpr std::string_view schema_v2 = R"sql(
-- one row per instance: what recovery, listing and locking need without reading the journal
CREATE TABLE heads (
    id                 TEXT PRIMARY KEY NOT NULL,
    definition         TEXT NOT NULL,
    definition_version INTEGER NOT NULL,
    status             TEXT NOT NULL,
    correlation_key    TEXT NOT NULL,
    exclusive          INTEGER NOT NULL,
    wake_at            INTEGER,
    version            INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
-- due(): non-terminal instances with a wake-up time, earliest first
CREATE INDEX heads_due ON heads (wake_at)
    WHERE wake_at IS NOT NULL AND status NOT IN ('completed', 'compensated', 'cancelled');
-- in_status() and list() by status, in id order within a status
CREATE INDEX heads_status ON heads (status, id);
-- the correlation-key locks: at most one exclusive, non-terminal holder per key
CREATE UNIQUE INDEX heads_lock ON heads (correlation_key)
    WHERE exclusive = 1 AND correlation_key <> ''
      AND status NOT IN ('completed', 'compensated', 'cancelled');
-- list() by correlation key
CREATE INDEX heads_correlation_key ON heads (correlation_key) WHERE correlation_key <> '';
-- purge(): terminal instances by age
CREATE INDEX heads_purge ON heads (updated_at)
    WHERE status IN ('completed', 'compensated', 'cancelled');

-- one row per transition, never updated
CREATE TABLE journal (
    saga_id          TEXT NOT NULL,
    version          INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    events           TEXT NOT NULL,
    output           TEXT,
    released_through INTEGER NOT NULL,
    data             TEXT,
    snapshot         TEXT,
    PRIMARY KEY (saga_id, version)
);
)sql";

/// The code of the step to version 2 (a `migration_code`), run after `schema_v2` created the
/// new tables: on a file of version 1 it writes every instance of sqlite_store's tables as a
/// head and one journal record (legacy::migrate_v1: a snapshot of its state, its data and its
/// unreleased outbox messages as output; its timers as due times), drops instances, timers,
/// outbox and inbox, and renames history to history_v1. A new file (version 0) has nothing to
/// convert. An instance that cannot be read is an error naming it (docs/sqlite.md, "Migrating
/// a v1 file").
[[nodiscard]] result<void> migrate_from_v1(SQLite::Database& db, std::string_view path,
                                           int from_version);

}  // namespace saga::sqlite::detail
