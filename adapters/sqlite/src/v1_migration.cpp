// The migration of a schema version 1 file (sqlite_store's) to version 2 (the journal store's),
// run inside the migration's transaction (store_file.cpp, `migrate`). It reads the v1 tables
// with its own SQL, not through sqlite_store (which is to go), as that store reads them: times
// in whole milliseconds, JSON columns within the same limits, outbox messages as envelopes.

#include <saga/envelope.hpp>
#include <saga/json_limits.hpp>
#include <saga/state_store.hpp>

#include "journal_rows.hpp"
#include "schema_v2.hpp"
#include "sqlite_common.hpp"

// saga_core's conversion of one instance (src/legacy/; CMakeLists.txt adds that include path)
#include "legacy/migrate_v1.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace saga::sqlite::detail {
namespace {

/// sqlite_store's limits on the JSON it reads back (its `stored_json_limits`).
constexpr json_limits v1_json_limits{.max_depth = 512, .max_bytes = std::size_t{256} << 20};

/// Column `index` as JSON; `what` names it in the message ("the stored state").
result<nlohmann::json> v1_json(const SQLite::Statement& s, int index, const std::string& id,
                               const std::string& what) {
    const SQLite::Column c = s.getColumn(index);
    auto j =
        parse_json({c.getText(), static_cast<std::size_t>(c.getBytes())}, what, v1_json_limits);
    if (!j) {
        const auto code =
            j.error() == errc::limit_exceeded ? errc::limit_exceeded : errc::store_failure;
        return error{code, about(id) + j.error().message};
    }
    return std::move(j).value();
}

/// A v1 time column: whole milliseconds since the Unix epoch.
result<time_point> v1_time(const SQLite::Statement& s, int index, const std::string& id,
                           const std::string& what) {
    using std::chrono::milliseconds;
    constexpr std::int64_t max_ms =
        std::chrono::duration_cast<milliseconds>(time_point::duration::max()).count();
    const std::int64_t ms = s.getColumn(index).getInt64();
    if (ms > max_ms || ms < -max_ms) {
        return error{errc::store_failure,
                     about(id) + what + " " + std::to_string(ms) + " is not a time"};
    }
    return time_point{std::chrono::duration_cast<time_point::duration>(milliseconds{ms})};
}

/// A row of `instances` (the columns of sqlite_store's `record_columns`).
result<instance_record> v1_instance(const SQLite::Statement& s) {
    instance_record r;
    r.id = column_text(s, 0);
    r.definition = column_text(s, 1);
    r.definition_version = static_cast<std::uint32_t>(s.getColumn(2).getInt64());
    r.version = static_cast<std::uint64_t>(s.getColumn(3).getInt64());
    const std::string status = column_text(s, 4);
    const std::optional<saga_status> parsed = parse_saga_status(status);
    if (!parsed) {
        return error{errc::store_failure, about(r.id) + "unknown status '" + status + "'"};
    }
    r.status = *parsed;
    r.correlation_key = column_text(s, 5);
    r.exclusive = s.getColumn(6).getInt64() != 0;
    SAGA_TRY(r.data, v1_json(s, 7, r.id, "the stored data"));
    SAGA_TRY(r.state, v1_json(s, 8, r.id, "the stored state"));
    SAGA_TRY(r.created_at, v1_time(s, 9, r.id, "the stored created_at"));
    SAGA_TRY(r.updated_at, v1_time(s, 10, r.id, "the stored updated_at"));
    return r;
}

using v1_timers = std::map<std::string, std::vector<timer_record>, std::less<>>;
using v1_outbox = std::map<std::string, std::vector<outbox_record>, std::less<>>;
using v1_inbox = std::map<std::string, std::vector<std::string>, std::less<>>;

/// Every durable timer, by saga.
result<v1_timers> read_v1_timers(SQLite::Database& db) {
    v1_timers out;
    SQLite::Statement s(db, "SELECT saga_id, id, due, payload FROM timers ORDER BY saga_id, due");
    while (s.executeStep()) {
        timer_record t;
        t.saga_id = column_text(s, 0);
        t.id = column_text(s, 1);
        SAGA_TRY(t.due, v1_time(s, 2, t.saga_id, "the due time of timer '" + t.id + "'"));
        SAGA_TRY(t.payload, v1_json(s, 3, t.saga_id, "the stored payload of timer '" + t.id + "'"));
        out[t.saga_id].push_back(std::move(t));
    }
    return out;
}

/// Every outbox message not yet released, by saga, oldest first (as `pending_outbox` reads
/// them: the stored JSON, then `from_json` of envelope.hpp).
result<v1_outbox> read_v1_outbox(SQLite::Database& db) {
    v1_outbox out;
    SQLite::Statement s(db,
                        "SELECT saga_id, destination, topic, message, message_id FROM outbox "
                        "ORDER BY seq");
    while (s.executeStep()) {
        outbox_record o;
        o.saga_id = column_text(s, 0);
        o.destination = column_text(s, 1);
        o.topic = s.getColumn(2).getInt64() != 0;
        const std::string message_id = column_text(s, 4);
        SAGA_TRY(const nlohmann::json message,
                 v1_json(s, 3, o.saga_id, "outbox message '" + message_id + "'"));
        try {
            o.message = message.get<envelope>();
        } catch (const std::exception& e) {
            return error{errc::store_failure, about(o.saga_id) + "outbox message '" + message_id +
                                                  "' is not an envelope: " + e.what()};
        }
        out[o.saga_id].push_back(std::move(o));
    }
    return out;
}

/// Every message id each saga consumed (the inbox, by saga).
v1_inbox read_v1_inbox(SQLite::Database& db) {
    v1_inbox out;
    SQLite::Statement s(db, "SELECT saga_id, message_id FROM inbox ORDER BY saga_id, message_id");
    while (s.executeStep()) out[column_text(s, 0)].push_back(column_text(s, 1));
    return out;
}

/// A larger page cache for the migration's one transaction, the connection's own again after
/// it: with the default (2 MiB) SQLite spills and frees dirty pages all along, and glibc then
/// hands the top of the heap back and asks for it again for every few instances (measured: a
/// first migration of 10,000 instances took 3.7-4.8 s instead of 1.1 s, in 15,000 `brk` calls).
class migration_cache {
public:
    explicit migration_cache(SQLite::Database& db)
        : db_(db), before_(query_int(db, "PRAGMA cache_size")) {
        db_.exec("PRAGMA cache_size = -65536");  // KiB: 64 MiB at most
    }
    ~migration_cache() { db_.tryExec("PRAGMA cache_size = " + std::to_string(before_)); }
    migration_cache(const migration_cache&) = delete;
    migration_cache& operator=(const migration_cache&) = delete;

private:
    SQLite::Database& db_;
    std::int64_t before_;
};

template <class Map>
std::span<const typename Map::mapped_type::value_type> rows_of(const Map& m,
                                                               const std::string& id) {
    auto it = m.find(id);
    if (it == m.end()) {
        return {};
    }
    return it->second;
}

}  // namespace

// the caller names the file in every message
result<void> migrate_from_v1(SQLite::Database& db, std::string_view /*path*/, int from_version) {
    if (from_version == 0) {
        return success();  // a new file: schema_v2 made it whole
    }
    SAGA_TRY(const v1_timers timers, read_v1_timers(db));
    SAGA_TRY(const v1_outbox pending, read_v1_outbox(db));
    const v1_inbox consumed = read_v1_inbox(db);
    const migration_cache cache(db);
    journal_row_statements rows(db);
    {
        SQLite::Statement instances(
            db,
            "SELECT id, definition, definition_version, version, status, correlation_key, "
            "exclusive, data, state, created_at, updated_at FROM instances ORDER BY id");
        while (instances.executeStep()) {
            SAGA_TRY(const instance_record rec, v1_instance(instances));
            auto converted = legacy::migrate_v1(
                rec, rows_of(timers, rec.id), rows_of(pending, rec.id), rows_of(consumed, rec.id));
            if (!converted) {
                // "saga 'id': its v1 state cannot be read: ..."
                return error{errc::store_failure, converted.error().message};
            }
            SAGA_TRY(encoded_write w, encode_journal_write(converted.value()));
            if (auto inserted = insert_first_head(rows, w); !inserted) {
                // v1 checked the lock in its commits as the heads_lock index does now, so two
                // holders of one key mean the file was edited by hand
                return error{errc::store_failure,
                             inserted.error().message +
                                 ": the v1 file has two exclusive, unfinished holders of one "
                                 "key; release the lock of one (engine::release_lock on "
                                 "sqlite_store) and open it again"};
            }
            insert_record(rows, w);
        }
    }
    // the v1 tables but history go (with their indexes); history stays for operators, as
    // history_v1, with its index history_saga (saga_id, seq)
    db.exec(
        "DROP TABLE instances; DROP TABLE timers; DROP TABLE outbox; DROP TABLE inbox; "
        "ALTER TABLE history RENAME TO history_v1;");
    return success();
}

}  // namespace saga::sqlite::detail
