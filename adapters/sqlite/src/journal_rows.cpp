#include "journal_rows.hpp"

#include <saga/journal_codec.hpp>

#include "sqlite_common.hpp"

#include <limits>
#include <utility>

namespace saga::sqlite::detail {
namespace {

encoded_head encode_head(instance_head& h) {
    encoded_head e;
    e.id = std::move(h.id);
    e.definition = std::move(h.definition);
    e.definition_version = h.definition_version;
    e.status = std::string(to_string(h.status));
    e.correlation_key = std::move(h.correlation_key);
    e.exclusive = h.exclusive;
    if (h.wake_at) {
        e.wake_at = to_unix_micros(*h.wake_at);
    }
    e.version = static_cast<std::int64_t>(h.version);
    e.created_at = to_unix_micros(h.created_at);
    e.updated_at = to_unix_micros(h.updated_at);
    return e;
}

void bind_optional_text(SQLite::Statement& s, int index, const std::optional<std::string>& text) {
    if (text) {
        bind_text(s, index, *text);
    } else {
        s.bind(index);
    }
}

}  // namespace

result<encoded_write> encode_journal_write(journal_write& w) {
    SAGA_TRY(check_journal_write(w));
    journal_record& r = w.record;
    constexpr auto max_version =
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (r.version > max_version) {
        return error{errc::invalid_argument, about(r.saga_id) + "record version " +
                                                 std::to_string(r.version) + " is too large"};
    }
    encoded_write e;
    e.events = encode_events(r.events);
    if (!r.output.empty()) {
        e.output = encode_output(r.output);
    }
    e.version = static_cast<std::int64_t>(r.version);
    e.at = to_unix_micros(r.at);
    e.released_through = static_cast<std::int64_t>(r.released_through);
    e.data = std::move(r.data);
    e.snapshot = std::move(r.snapshot);
    if (w.head) {
        e.head = encode_head(*w.head);
    }
    e.saga_id = std::move(r.saga_id);
    return e;
}

// the terminal statuses, as the partial index heads_lock names them (so that it answers)
journal_row_statements::journal_row_statements(SQLite::Database& db)
    : newest(db, "SELECT version FROM journal WHERE saga_id = ?1 ORDER BY version DESC LIMIT 1"),
      insert_head(db,
                  "INSERT INTO heads (id, definition, definition_version, status, "
                  "correlation_key, exclusive, wake_at, version, created_at, updated_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING"),
      head_exists(db, "SELECT version FROM heads WHERE id = ?1"),
      lock_holder(db,
                  "SELECT id FROM heads WHERE correlation_key = ?1 AND exclusive = 1 AND "
                  "correlation_key <> '' AND status NOT IN ('completed', 'compensated', "
                  "'cancelled') AND id <> ?2 LIMIT 1"),
      insert_record(db,
                    "INSERT INTO journal (saga_id, version, at, events, output, "
                    "released_through, data, snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)") {}

std::optional<std::int64_t> newest_version(journal_row_statements& s, const std::string& id) {
    statement_use q(s.newest);
    bind_text(*q, 1, id);
    if (!q->executeStep()) {
        return std::nullopt;
    }
    return q->getColumn(0).getInt64();
}

void bind_head(SQLite::Statement& s, const encoded_head& h) {
    bind_text(s, 1, h.id);
    bind_text(s, 2, h.definition);
    bind_int(s, 3, h.definition_version);
    bind_text(s, 4, h.status);
    bind_text(s, 5, h.correlation_key);
    bind_int(s, 6, h.exclusive ? 1 : 0);
    if (h.wake_at) {
        bind_int(s, 7, *h.wake_at);
    } else {
        s.bind(7);  // NULL: nothing due
    }
    bind_int(s, 8, h.version);
    bind_int(s, 9, h.created_at);
    bind_int(s, 10, h.updated_at);
}

error lock_held_error(journal_row_statements& s, const encoded_head& h) {
    statement_use q(s.lock_holder);
    bind_text(*q, 1, h.correlation_key);
    bind_text(*q, 2, h.id);
    const std::string holder = q->executeStep() ? column_text(*q, 0) : std::string("?");
    return {errc::lock_held, about(h.id) + "correlation key '" + h.correlation_key +
                                 "' is locked by saga '" + holder + "'"};
}

result<void> insert_first_head(journal_row_statements& s, const encoded_write& w) {
    int changed = 0;
    {
        statement_use q(s.insert_head);
        bind_head(*q, *w.head);
        changed = q->exec();
    }
    if (changed != 0) {
        return success();
    }
    bool exists = false;
    {
        statement_use q(s.head_exists);
        bind_text(*q, 1, w.saga_id);
        exists = q->executeStep();
    }
    if (exists) {
        return error{errc::already_exists,
                     about(w.saga_id) + "already exists (at version " +
                         std::to_string(newest_version(s, w.saga_id).value_or(0)) + ")"};
    }
    return lock_held_error(s, *w.head);
}

void insert_record(journal_row_statements& s, const encoded_write& w) {
    statement_use q(s.insert_record);
    bind_text(*q, 1, w.saga_id);
    bind_int(*q, 2, w.version);
    bind_int(*q, 3, w.at);
    bind_text(*q, 4, w.events);
    bind_optional_text(*q, 5, w.output);
    bind_int(*q, 6, w.released_through);
    bind_optional_text(*q, 7, w.data);
    bind_optional_text(*q, 8, w.snapshot);
    q->exec();
}

}  // namespace saga::sqlite::detail
