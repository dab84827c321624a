#include <saga/sqlite/sqlite_store.hpp>

#include <saga/json_limits.hpp>
#include <saga/sqlite/detail/schema.hpp>

#include "group_writer.hpp"
#include "sqlite_common.hpp"
#include "store_file.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <variant>

#include <sys/stat.h>
#include <unistd.h>

namespace saga::sqlite {

// ---- schema ---------------------------------------------------------------------------------

namespace detail {
namespace {

// saga_meta itself is created by `open` (it is how versions are told apart); each migration
// brings the rest of the schema from the previous version to its own.
constexpr std::string_view schema_v1 = R"sql(
CREATE TABLE instances (
    id                 TEXT PRIMARY KEY NOT NULL,
    definition         TEXT NOT NULL,
    definition_version INTEGER NOT NULL,
    version            INTEGER NOT NULL,
    status             TEXT NOT NULL,
    correlation_key    TEXT NOT NULL,
    exclusive          INTEGER NOT NULL,
    data               TEXT NOT NULL,
    state              TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX instances_status ON instances (status);
CREATE INDEX instances_correlation_key ON instances (correlation_key);
CREATE INDEX instances_updated_at ON instances (updated_at);
-- the holders of correlation-key locks: exclusive and not terminal
CREATE INDEX instances_lock ON instances (correlation_key)
    WHERE exclusive = 1 AND status NOT IN ('completed', 'compensated', 'cancelled');

CREATE TABLE history (
    seq     INTEGER PRIMARY KEY,
    saga_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    event   TEXT NOT NULL,
    step    TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX history_saga ON history (saga_id, seq);

CREATE TABLE timers (
    saga_id TEXT NOT NULL,
    id      TEXT NOT NULL,
    due     INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (saga_id, id)
);
CREATE INDEX timers_due ON timers (due, saga_id, id);

CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL UNIQUE,
    saga_id     TEXT NOT NULL,
    destination TEXT NOT NULL,
    topic       INTEGER NOT NULL,
    message     TEXT NOT NULL
);

CREATE TABLE inbox (
    saga_id    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (saga_id, message_id)
) WITHOUT ROWID;
)sql";

constexpr migration builtin[] = {{1, schema_v1}};
static_assert(builtin[std::size(builtin) - 1].version == sqlite_store::schema_version,
              "the last builtin migration must be sqlite_store::schema_version");

}  // namespace

std::span<const migration> builtin_migrations() noexcept {
    return builtin;
}

}  // namespace detail

namespace {

using detail::about;
using detail::about_file;
using detail::bind_int;
using detail::bind_text;
using detail::column_text;
using detail::guarded;
using detail::other_error;
using detail::read_only_flags;
using detail::sqlite_error;
using detail::statement_use;
using detail::stored_value_error;
using detail::sync_pragma;
using detail::write_flags;

// ---- small helpers --------------------------------------------------------------------------

bool holds_lock(const instance_record& r) noexcept {
    return r.exclusive && !r.correlation_key.empty() && !is_terminal(r.status);
}

std::int64_t to_ms(time_point t) noexcept {
    return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
std::int64_t to_ms_ceil(time_point t) noexcept {
    return std::chrono::ceil<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
time_point from_ms(std::int64_t ms) noexcept {
    return time_point{
        std::chrono::duration_cast<time_point::duration>(std::chrono::milliseconds{ms})};
}

/// Limits on JSON read back from the file: generous, since what the engine writes can nest a
/// little deeper than the 64 levels its inputs may have (a reply payload inside the instance
/// state), yet shallow enough that copying a value cannot overflow a stack. A file edited or
/// corrupted past them is an error naming the saga and the column, never a crash.
constexpr json_limits stored_json_limits{.max_depth = 512, .max_bytes = std::size_t{256} << 20};

/// Column `index` as JSON; throws `stored_value_error` (`errc::limit_exceeded` past the limits,
/// else `errc::store_failure`) with `owner` ("saga 'id': ") and the column's name.
nlohmann::json column_json(const SQLite::Statement& s, int index, std::string_view owner) {
    const SQLite::Column c = s.getColumn(index);
    const char* text = c.getText();
    const auto size = static_cast<std::size_t>(c.getBytes());
    auto j = parse_json({text, size}, std::string("the stored ") + c.getName(), stored_json_limits);
    if (!j) {
        const auto code =
            j.error() == errc::limit_exceeded ? errc::limit_exceeded : errc::store_failure;
        throw stored_value_error(error{code, std::string(owner) + j.error().message});
    }
    return std::move(j).value();
}

// ---- what the writer thread gets: a transition checked and encoded on the caller's thread -----

struct encoded_history {
    std::int64_t version = 0;
    std::int64_t at = 0;
    std::string event;
    std::string step;
    std::int64_t attempt = 0;
    std::string detail;
};

struct encoded_timer {
    std::string id;
    std::int64_t due = 0;
    std::string payload;
};

struct encoded_outbox {
    std::string message_id;
    std::string saga_id;
    std::string destination;
    bool topic = false;
    std::string message;
};

/// A transition with its JSON already serialised: the writer thread only binds and steps.
struct encoded_transition {
    std::string id;
    std::string definition;
    std::int64_t definition_version = 0;
    std::int64_t version = 0;
    std::int64_t expected_version = 0;
    std::string status;
    std::string correlation_key;
    bool exclusive = false;
    bool holds_lock = false;
    std::string data;
    std::string state;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
    std::vector<encoded_history> history;
    std::vector<encoded_timer> timers_set;
    std::vector<std::string> timers_cleared;
    std::vector<encoded_outbox> outbox;
    std::vector<std::string> inbox;
};

struct ack_request {
    std::vector<std::string> message_ids;
};

struct work_item {
    std::variant<encoded_transition, ack_request> what;
    commit_handler done;
};

/// JSON text of `j`; `errc::bad_data` when it cannot be serialised (invalid UTF-8). `what`
/// and `name` say which JSON it is, for the message.
result<std::string> dump(const nlohmann::json& j, std::string_view id, std::string_view what,
                         std::string_view name = {}) {
    try {
        return j.dump();
    } catch (const nlohmann::json::exception& e) {
        std::string msg = about(id) + "cannot store " + std::string(what);
        if (!name.empty()) {
            msg += " '" + std::string(name) + "'";
        }
        return error{errc::bad_data, msg + " as JSON: " + e.what()};
    }
}

/// The checks of memory_store that need no stored state (same messages), then the encoding.
result<encoded_transition> encode(transition& t) {
    instance_record& r = t.record;
    SAGA_TRY(check_transition(t));

    encoded_transition e;
    SAGA_TRY(e.data, dump(r.data, r.id, "the data"));
    SAGA_TRY(e.state, dump(r.state, r.id, "the state"));
    e.history.reserve(t.history.size());
    for (history_entry& h : t.history) {
        encoded_history& eh = e.history.emplace_back();
        SAGA_TRY(eh.detail, dump(h.detail, r.id, "the detail of history entry", h.event));
        eh.version = static_cast<std::int64_t>(h.version == 0 ? r.version : h.version);
        eh.at = to_ms(h.at);
        eh.event = std::move(h.event);
        eh.step = std::move(h.step);
        eh.attempt = h.attempt;
    }
    e.timers_set.reserve(t.timers_set.size());
    for (timer_record& timer : t.timers_set) {
        encoded_timer& et = e.timers_set.emplace_back();
        SAGA_TRY(et.payload, dump(timer.payload, r.id, "the payload of timer", timer.id));
        et.id = std::move(timer.id);
        et.due = to_ms(timer.due);
    }
    e.timers_cleared = std::move(t.timers_cleared);
    e.outbox.reserve(t.outbox.size());
    for (outbox_record& o : t.outbox) {
        encoded_outbox& eo = e.outbox.emplace_back();
        SAGA_TRY(eo.message,
                 dump(nlohmann::json(o.message), r.id, "outbox message", o.message.message_id));
        eo.message_id = std::move(o.message.message_id);
        eo.saga_id = std::move(o.saga_id);
        eo.destination = std::move(o.destination);
        eo.topic = o.topic;
    }
    e.inbox = std::move(t.inbox);

    e.holds_lock = holds_lock(r);
    e.definition = std::move(r.definition);
    e.definition_version = r.definition_version;
    e.version = static_cast<std::int64_t>(r.version);
    e.expected_version = static_cast<std::int64_t>(t.expected_version);
    e.status = std::string(to_string(r.status));
    e.correlation_key = std::move(r.correlation_key);
    e.exclusive = r.exclusive;
    e.created_at = to_ms(r.created_at);
    e.updated_at = to_ms(r.updated_at);
    e.id = std::move(r.id);
    return e;
}

// ---- connections ------------------------------------------------------------------------------

constexpr const char* record_columns =
    "id, definition, definition_version, version, status, correlation_key, exclusive, data, "
    "state, created_at, updated_at";

/// The writer thread's connection and its cached statements (the hot path).
/// (The statements that frame a transaction are the group writer's.)
struct writer_connection {
    SQLite::Database& db;
    SQLite::Statement insert_instance{
        db,
        "INSERT INTO instances (id, definition, definition_version, version, status, "
        "correlation_key, exclusive, data, state, created_at, updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING"};
    SQLite::Statement update_instance{
        db,
        "UPDATE instances SET definition = ?2, definition_version = ?3, version = ?4, "
        "status = ?5, correlation_key = ?6, exclusive = ?7, data = ?8, state = ?9, "
        "created_at = ?10, updated_at = ?11 WHERE id = ?1 AND version = ?12"};
    SQLite::Statement select_version{db, "SELECT version FROM instances WHERE id = ?1"};
    SQLite::Statement insert_inbox{
        db, "INSERT INTO inbox (saga_id, message_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING"};
    // same condition as the partial index instances_lock, so that index answers it
    SQLite::Statement lock_holder{
        db,
        "SELECT id FROM instances WHERE correlation_key = ?1 AND exclusive = 1 AND status NOT IN "
        "('completed', 'compensated', 'cancelled') AND id <> ?2 ORDER BY id LIMIT 1"};
    SQLite::Statement insert_history{
        db,
        "INSERT INTO history (saga_id, version, at, event, step, attempt, detail) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"};
    SQLite::Statement upsert_timer{
        db,
        "INSERT INTO timers (saga_id, id, due, payload) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (saga_id, id) DO UPDATE SET due = excluded.due, payload = excluded.payload"};
    SQLite::Statement delete_timer{db, "DELETE FROM timers WHERE saga_id = ?1 AND id = ?2"};
    SQLite::Statement insert_outbox{
        db,
        "INSERT INTO outbox (message_id, saga_id, destination, topic, message) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id) DO NOTHING"};
    SQLite::Statement delete_outbox{db, "DELETE FROM outbox WHERE message_id = ?1"};

    explicit writer_connection(SQLite::Database& database) : db(database) {}
};

/// The read connection and its cached statements.
struct reader_connection {
    SQLite::Database db;
    SQLite::Statement load;
    SQLite::Statement history;
    SQLite::Statement timers;
    SQLite::Statement outbox;
    SQLite::Statement inbox;
    /// `list` statements by the shape of the filter (which fields are set)
    std::map<unsigned, SQLite::Statement> lists;

    reader_connection(const std::string& path, int busy_ms, int flags)
        : db(path, flags, busy_ms),
          load(db, std::string("SELECT ") + record_columns + " FROM instances WHERE id = ?1"),
          history(db,
                  "SELECT version, at, event, step, attempt, detail FROM history "
                  "WHERE saga_id = ?1 ORDER BY seq"),
          timers(db,
                 "SELECT saga_id, id, due, payload FROM timers WHERE due <= ?1 "
                 "ORDER BY due, saga_id, id"),
          outbox(db,
                 "SELECT saga_id, destination, topic, message FROM outbox ORDER BY seq LIMIT ?1"),
          inbox(db, "SELECT 1 FROM inbox WHERE saga_id = ?1 AND message_id = ?2") {}
};

instance_record read_record(const SQLite::Statement& s) {
    instance_record r;
    r.id = column_text(s, 0);
    r.definition = column_text(s, 1);
    r.definition_version = static_cast<std::uint32_t>(s.getColumn(2).getInt64());
    r.version = static_cast<std::uint64_t>(s.getColumn(3).getInt64());
    const std::string status = column_text(s, 4);
    const std::optional<saga_status> parsed = parse_saga_status(status);
    if (!parsed) {
        throw std::runtime_error(about(r.id) + "unknown status '" + status + "' in the file");
    }
    r.status = *parsed;
    r.correlation_key = column_text(s, 5);
    r.exclusive = s.getColumn(6).getInt64() != 0;
    r.data = column_json(s, 7, about(r.id));
    r.state = column_json(s, 8, about(r.id));
    r.created_at = from_ms(s.getColumn(9).getInt64());
    r.updated_at = from_ms(s.getColumn(10).getInt64());
    return r;
}

}  // namespace

// ---- the store --------------------------------------------------------------------------------

struct sqlite_store::impl final : detail::group_writer<work_item> {
    // declared first, so released last: after every connection below is closed (the writer's
    // is closed by the destructor)
    std::optional<store_lock> file_lock;

    store_options options;
    detail::connection_settings settings;
    bool read_only = false;
    /// read-only: what the read connection opens (the path, or an immutable URI)
    std::string read_name;

    std::unique_ptr<writer_connection> writer;

    std::mutex reader_mutex;
    std::unique_ptr<reader_connection> reader;

    std::mutex metrics_mutex;
    std::shared_ptr<metrics_registry> metrics;

    ~impl() override { drop_writer(); }

    void prepare_writer(SQLite::Database& db) override {
        writer = std::make_unique<writer_connection>(db);
    }
    void release_writer() noexcept override { writer.reset(); }
    result<void> apply(work_item& item) override {
        if (auto* t = std::get_if<encoded_transition>(&item.what)) {
            return apply(*t);
        }
        apply(std::get<ack_request>(item.what));
        return success();
    }
    [[nodiscard]] std::string describe(const work_item& item) const override {
        const auto* t = std::get_if<encoded_transition>(&item.what);
        return t != nullptr ? "commit of saga '" + t->id + "'" : "ack_outbox";
    }
    [[nodiscard]] bool is_commit(const work_item& item) const noexcept override {
        return std::holds_alternative<encoded_transition>(item.what);
    }
    void batch_done(std::size_t n, std::chrono::steady_clock::time_point began) override {
        if (auto m = [&] {
                std::lock_guard lock(metrics_mutex);
                return metrics;
            }()) {
            m->observe("saga_store_batch_size", {}, static_cast<double>(n));
            m->observe(
                "saga_store_batch_seconds", {},
                std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
        }
    }

    result<void> apply(encoded_transition& t);
    void apply(const ack_request& a);

    template <class T, class Fn>
    result<T> read(std::string_view op, Fn&& fn) noexcept {
        return guarded(path, op, [&]() -> result<T> {
            std::lock_guard lock(reader_mutex);
            return fn(*reader);
        });
    }
};

result<void> sqlite_store::impl::apply(encoded_transition& t) {
    writer_connection& w = *writer;
    auto stored_version = [&]() -> std::optional<std::int64_t> {
        statement_use s(w.select_version);
        bind_text(*s, 1, t.id);
        if (!s->executeStep()) {
            return std::nullopt;
        }
        return s->getColumn(0).getInt64();
    };
    auto bind_record = [&t](SQLite::Statement& s) {
        bind_text(s, 1, t.id);
        bind_text(s, 2, t.definition);
        bind_int(s, 3, t.definition_version);
        bind_int(s, 4, t.version);
        bind_text(s, 5, t.status);
        bind_text(s, 6, t.correlation_key);
        bind_int(s, 7, t.exclusive ? 1 : 0);
        bind_text(s, 8, t.data);
        bind_text(s, 9, t.state);
        bind_int(s, 10, t.created_at);
        bind_int(s, 11, t.updated_at);
    };

    // the record: the write is the check (the savepoint undoes it if a later check fails)
    if (t.expected_version == 0) {
        int changed = 0;
        {
            statement_use s(w.insert_instance);
            bind_record(*s);
            changed = s->exec();
        }
        if (changed == 0) {
            const auto v = stored_version();
            return error{errc::already_exists, about(t.id) + "already exists (at version " +
                                                   std::to_string(v.value_or(0)) + ")"};
        }
    } else {
        int changed = 0;
        {
            statement_use s(w.update_instance);
            bind_record(*s);
            bind_int(*s, 12, t.expected_version);
            changed = s->exec();
        }
        if (changed == 0) {
            const auto v = stored_version();
            return error{errc::version_conflict,
                         about(t.id) + "expected version " + std::to_string(t.expected_version) +
                             (v ? " but the store has " + std::to_string(*v)
                                : std::string(" but the store has no such saga"))};
        }
    }

    for (std::size_t k = 0; k < t.inbox.size(); ++k) {
        const std::string& message_id = t.inbox[k];
        int changed = 0;
        {
            statement_use s(w.insert_inbox);
            bind_text(*s, 1, t.id);
            bind_text(*s, 2, message_id);
            changed = s->exec();
        }
        const auto first = t.inbox.begin();
        const auto here = first + static_cast<std::ptrdiff_t>(k);
        if (changed == 0 && std::find(first, here, message_id) == here) {
            return error{errc::duplicate_message,
                         about(t.id) + "message '" + message_id + "' was already consumed"};
        }
    }

    if (t.holds_lock) {
        statement_use s(w.lock_holder);
        bind_text(*s, 1, t.correlation_key);
        bind_text(*s, 2, t.id);
        if (s->executeStep()) {
            return error{errc::lock_held, about(t.id) + "correlation key '" + t.correlation_key +
                                              "' is locked by saga '" + column_text(*s, 0) + "'"};
        }
    }

    for (const encoded_history& h : t.history) {
        statement_use s(w.insert_history);
        bind_text(*s, 1, t.id);
        bind_int(*s, 2, h.version);
        bind_int(*s, 3, h.at);
        bind_text(*s, 4, h.event);
        bind_text(*s, 5, h.step);
        bind_int(*s, 6, h.attempt);
        bind_text(*s, 7, h.detail);
        s->exec();
    }
    for (const encoded_timer& timer : t.timers_set) {
        statement_use s(w.upsert_timer);
        bind_text(*s, 1, t.id);
        bind_text(*s, 2, timer.id);
        bind_int(*s, 3, timer.due);
        bind_text(*s, 4, timer.payload);
        s->exec();
    }
    for (const std::string& id : t.timers_cleared) {
        statement_use s(w.delete_timer);
        bind_text(*s, 1, t.id);
        bind_text(*s, 2, id);
        s->exec();
    }
    for (const encoded_outbox& o : t.outbox) {
        statement_use s(w.insert_outbox);
        bind_text(*s, 1, o.message_id);
        bind_text(*s, 2, o.saga_id);
        bind_text(*s, 3, o.destination);
        bind_int(*s, 4, o.topic ? 1 : 0);
        bind_text(*s, 5, o.message);
        s->exec();  // a message id already queued keeps its first copy
    }
    return success();
}

void sqlite_store::impl::apply(const ack_request& a) {
    for (const std::string& message_id : a.message_ids) {
        statement_use s(writer->delete_outbox);
        bind_text(*s, 1, message_id);
        s->exec();
    }
}

// ---- opening ----------------------------------------------------------------------------------

sqlite_store::sqlite_store(std::shared_ptr<impl> state) : impl_(std::move(state)) {}

sqlite_store::~sqlite_store() {
    impl_->stop();
    if (writer_.joinable()) {
        if (writer_.get_id() == std::this_thread::get_id()) {
            // the last reference went away inside a handler: the thread owns the state and
            // finishes the queue on its own
            writer_.detach();
        } else {
            writer_.join();
        }
    }
}

result<std::shared_ptr<sqlite_store>> sqlite_store::open(store_options options) {
    return open_(std::move(options), detail::builtin_migrations());
}

result<std::shared_ptr<sqlite_store>> sqlite_store::open_(
    store_options options, std::span<const detail::migration> migrations) {
    const std::string path = options.path;
    if (path.empty() || path == ":memory:" || path.starts_with("file:")) {
        return error{errc::invalid_argument, about_file(path) +
                                                 "the path must name a file (the writer and reader "
                                                 "connections share it)"};
    }
    if (options.max_batch == 0) {
        return error{errc::invalid_argument, about_file(path) + "max_batch must be at least 1"};
    }
    if (options.max_delay.count() < 0 || options.busy_timeout.count() < 0) {
        return error{errc::invalid_argument,
                     about_file(path) + "max_delay and busy_timeout must not be negative"};
    }
    if (migrations.empty()) {
        return error{errc::invalid_argument, about_file(path) + "no schema migrations"};
    }
    for (std::size_t i = 0; i < migrations.size(); ++i) {
        if (migrations[i].version != static_cast<int>(i) + 1) {
            return error{errc::invalid_argument, about_file(path) + "schema migration " +
                                                     std::to_string(i) + " has version " +
                                                     std::to_string(migrations[i].version) +
                                                     "; versions must be 1, 2, 3, ..."};
        }
    }
    const int busy_ms = detail::to_int_ms(options.busy_timeout);

    SAGA_TRY(detail::opened_file file,
             detail::open_store_file({.path = path,
                                      .sync = options.sync,
                                      .busy_timeout = options.busy_timeout,
                                      .read_only = options.read_only,
                                      .check_integrity = options.check_integrity,
                                      .options_name = "store_options"},
                                     {.migrations = migrations}));

    std::string_view stage = "prepare statements";
    try {
        auto state = std::make_shared<impl>();
        state->file_lock = std::move(file.lock);
        state->path = path;
        state->sync = options.sync;
        state->busy_ms = busy_ms;
        state->max_batch = options.max_batch;
        state->max_delay = options.max_delay;
        state->options = options;
        state->read_only = options.read_only;
        state->settings = file.settings;
        state->file_syncs = std::move(file.syncs);
        state->syncs_at_open = file.syncs_at_open;
        state->read_name = file.read_name;

        if (options.read_only) {
            stage = "open the read connection";
            state->reader =
                std::make_unique<reader_connection>(file.read_name, busy_ms, file.read_flags);
            return std::shared_ptr<sqlite_store>(new sqlite_store(state));
        }

        state->adopt_writer(std::move(file.writer_db));
        stage = "open the read connection";
        state->reader = std::make_unique<reader_connection>(path, busy_ms, write_flags);
        state->reader->db.exec(sync_pragma(options.sync));

        stage = "start the writer thread";
        std::shared_ptr<sqlite_store> store(new sqlite_store(state));
        store->writer_ = std::thread([state] { state->run(); });
        return store;
    } catch (const SQLite::Exception& e) {
        return sqlite_error(path, stage, e);
    } catch (const std::exception& e) {
        return other_error(path, stage, &e);
    }
}

result<void> sqlite_store::remove(const store_lock& lock) {
    const std::string& path = lock.store_path();
    if (!lock.is_exclusive() || !lock.held()) {
        return error{errc::invalid_argument, about_file(path) +
                                                 "remove needs the store's lock held exclusively "
                                                 "(store_lock::exclusive)"};
    }
    namespace fs = std::filesystem;
    const std::string keep = "; nothing was deleted: move it away, or choose another path";
    return guarded(path, "remove", [&]() -> result<void> {
        std::error_code ec;
        const fs::file_status status = fs::symlink_status(path, ec);
        const bool present = !ec && fs::exists(status);
        if (present) {
            if (!fs::is_regular_file(fs::status(path, ec)) || ec) {
                return error{
                    errc::store_failure,
                    about_file(path) + "not a file (a directory or a special file)" + keep};
            }
            struct ::stat st {};
            const bool writable = ::stat(path.c_str(), &st) == 0 && (st.st_mode & 0222) != 0 &&
                                  ::access(path.c_str(), W_OK) == 0;
            if (!writable) {
                return error{errc::store_failure,
                             about_file(path) +
                                 "the file is read-only; nothing was deleted: make it writable "
                                 "(chmod u+w) if it is to be replaced, or choose another path"};
            }
            fs::path dir = fs::path(path).parent_path();
            if (dir.empty()) {
                dir = ".";
            }
            struct ::stat dst {};
            const bool dir_writable = ::stat(dir.c_str(), &dst) == 0 && (dst.st_mode & 0222) != 0 &&
                                      ::access(dir.c_str(), W_OK | X_OK) == 0;
            if (!dir_writable) {
                return error{errc::store_failure, about_file(path) + "its directory '" +
                                                      dir.string() +
                                                      "' is read-only; nothing was deleted"};
            }
            if (st.st_size > 0) {
                // recognise the file (read only, and closed before anything is deleted)
                SQLite::Database db(path, read_only_flags, 0);
                auto found = [&]() -> result<detail::file_state> {
                    try {
                        return detail::inspect(db, path);
                    } catch (const SQLite::Exception& e) {
                        error err = sqlite_error(path, "read the schema", e);
                        return error{errc::store_failure, err.message};
                    }
                }();
                if (!found) {
                    return error{errc::store_failure, found.error().message + keep};
                }
            }
            if (!fs::remove(path, ec) || ec) {
                return error{errc::store_failure,
                             about_file(path) + "cannot delete it: " + ec.message()};
            }
        }
        // the files SQLite keeps beside it (also when the store itself is gone: a stale -wal
        // must not meet a new database of the same name)
        for (const char* suffix : {"-wal", "-shm", "-journal"}) {
            fs::remove(path + suffix, ec);
            if (ec) {
                return error{errc::store_failure, about_file(path) + "cannot delete '" + path +
                                                      suffix + "': " + ec.message()};
            }
        }
        return success();
    });
}

// ---- the state_store interface ----------------------------------------------------------------

namespace {
error read_only_error(std::string_view path) {
    return detail::read_only_error(path, "store_options");
}
}  // namespace

void sqlite_store::async_commit(transition t, commit_handler done) {
    std::optional<error> refused;
    if (impl_->read_only) {
        if (done) {
            done(read_only_error(impl_->path));
        }
        return;
    }
    try {
        auto encoded = encode(t);
        if (encoded) {
            impl_->submit(work_item{std::move(encoded).value(), std::move(done)});
            return;
        }
        refused = std::move(encoded).error();
    } catch (const std::exception& e) {
        refused = other_error(impl_->path, "commit", &e);
    } catch (...) {
        refused = other_error(impl_->path, "commit", nullptr);
    }
    if (done) {
        done(std::move(*refused));
    }
}

result<void> sqlite_store::ack_outbox(std::span<const std::string> message_ids) {
    if (message_ids.empty()) {
        return success();
    }
    if (impl_->read_only) {
        return read_only_error(impl_->path);
    }
    return guarded(impl_->path, "ack_outbox", [&]() -> result<void> {
        // shared: the writer may still be inside set_value when get() returns
        auto promise = std::make_shared<std::promise<result<void>>>();
        auto future = promise->get_future();
        impl_->submit(work_item{ack_request{{message_ids.begin(), message_ids.end()}},
                                [promise](result<void> r) { promise->set_value(std::move(r)); }});
        return future.get();
    });
}

result<instance_record> sqlite_store::load(std::string_view id) {
    return impl_->read<instance_record>(
        "load", [&](reader_connection& c) -> result<instance_record> {
            const std::string key(id);
            statement_use s(c.load);
            bind_text(*s, 1, key);
            if (!s->executeStep()) {
                return error{errc::not_found, about(id) + "not found"};
            }
            return read_record(*s);
        });
}

result<std::vector<instance_record>> sqlite_store::list(const list_filter& filter) {
    using records = std::vector<instance_record>;
    return impl_->read<records>("list", [&](reader_connection& c) -> result<records> {
        enum : unsigned { definition = 1, key = 2, after = 4, before = 8, statuses = 16 };
        const unsigned shape =
            (filter.definition.empty() ? 0U : definition) |
            (filter.correlation_key.empty() ? 0U : key) | (filter.updated_after ? after : 0U) |
            (filter.updated_before ? before : 0U) | (filter.statuses.empty() ? 0U : statuses);
        auto it = c.lists.find(shape);
        if (it == c.lists.end()) {
            std::string sql =
                std::string("SELECT ") + record_columns + " FROM instances WHERE id > ?1";
            if ((shape & definition) != 0) {
                sql += " AND definition = ?2";
            }
            if ((shape & key) != 0) {
                sql += " AND correlation_key = ?3";
            }
            if ((shape & after) != 0) {
                sql += " AND updated_at >= ?4";
            }
            if ((shape & before) != 0) {
                sql += " AND updated_at <= ?5";
            }
            if ((shape & statuses) != 0) {
                sql += " AND status IN (SELECT value FROM json_each(?6))";
            }
            sql += " ORDER BY id LIMIT ?7";
            it = c.lists.try_emplace(shape, c.db, sql).first;
        }

        std::string status_json;
        if ((shape & statuses) != 0) {
            nlohmann::json names = nlohmann::json::array();
            for (const saga_status st : filter.statuses) {
                names.push_back(to_string(st));
            }
            status_json = names.dump();
        }
        statement_use s(it->second);
        bind_text(*s, 1, filter.after_id);
        if ((shape & definition) != 0) {
            bind_text(*s, 2, filter.definition);
        }
        if ((shape & key) != 0) {
            bind_text(*s, 3, filter.correlation_key);
        }
        if ((shape & after) != 0) {
            bind_int(*s, 4, to_ms_ceil(*filter.updated_after));
        }
        if ((shape & before) != 0) {
            bind_int(*s, 5, to_ms(*filter.updated_before));
        }
        if ((shape & statuses) != 0) {
            bind_text(*s, 6, status_json);
        }
        constexpr auto max_limit =
            static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
        bind_int(*s, 7, static_cast<std::int64_t>(std::min(filter.limit, max_limit)));
        records out;
        while (s->executeStep()) {
            out.push_back(read_record(*s));
        }
        return out;
    });
}

result<std::vector<history_entry>> sqlite_store::history(std::string_view id) {
    using entries = std::vector<history_entry>;
    return impl_->read<entries>("history", [&](reader_connection& c) -> result<entries> {
        const std::string key(id);
        statement_use s(c.history);
        bind_text(*s, 1, key);
        entries out;
        while (s->executeStep()) {
            history_entry& e = out.emplace_back();
            e.saga_id = key;
            e.version = static_cast<std::uint64_t>(s->getColumn(0).getInt64());
            e.at = from_ms(s->getColumn(1).getInt64());
            e.event = column_text(*s, 2);
            e.step = column_text(*s, 3);
            e.attempt = static_cast<std::uint32_t>(s->getColumn(4).getInt64());
            e.detail = column_json(*s, 5, about(key));
        }
        return out;
    });
}

result<std::vector<timer_record>> sqlite_store::timers(std::optional<time_point> due_before) {
    using timer_list = std::vector<timer_record>;
    return impl_->read<timer_list>("timers", [&](reader_connection& c) -> result<timer_list> {
        statement_use s(c.timers);
        bind_int(*s, 1, due_before ? to_ms(*due_before) : std::numeric_limits<std::int64_t>::max());
        timer_list out;
        while (s->executeStep()) {
            timer_record& t = out.emplace_back();
            t.saga_id = column_text(*s, 0);
            t.id = column_text(*s, 1);
            t.due = from_ms(s->getColumn(2).getInt64());
            t.payload = column_json(*s, 3, about(t.saga_id));
        }
        return out;
    });
}

result<std::vector<outbox_record>> sqlite_store::pending_outbox(std::size_t limit) {
    using messages = std::vector<outbox_record>;
    return impl_->read<messages>("pending_outbox", [&](reader_connection& c) -> result<messages> {
        constexpr auto max_limit =
            static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
        statement_use s(c.outbox);
        bind_int(*s, 1, static_cast<std::int64_t>(std::min(limit, max_limit)));
        messages out;
        while (s->executeStep()) {
            outbox_record& o = out.emplace_back();
            o.saga_id = column_text(*s, 0);
            o.destination = column_text(*s, 1);
            o.topic = s->getColumn(2).getInt64() != 0;
            o.message = column_json(*s, 3, about(o.saga_id)).get<envelope>();
        }
        return out;
    });
}

result<bool> sqlite_store::inbox_contains(std::string_view saga_id, std::string_view message_id) {
    return impl_->read<bool>("inbox_contains", [&](reader_connection& c) -> result<bool> {
        const std::string saga(saga_id);
        const std::string message(message_id);
        statement_use s(c.inbox);
        bind_text(*s, 1, saga);
        bind_text(*s, 2, message);
        return s->executeStep();
    });
}

store_stats sqlite_store::stats() const {
    return {.commits = impl_->commits.load(std::memory_order_relaxed),
            .batches = impl_->batches.load(std::memory_order_relaxed),
            .largest_batch = impl_->largest_batch.load(std::memory_order_relaxed),
            .failed_batches = impl_->failed_batches.load(std::memory_order_relaxed),
            .reconnects = impl_->reconnects.load(std::memory_order_relaxed),
            .transactions = impl_->transactions.load(std::memory_order_relaxed),
            .row_writes = impl_->row_writes.load(std::memory_order_relaxed),
            .syncs = impl_->syncs()};
}

const std::string& sqlite_store::path() const noexcept {
    return impl_->path;
}

bool sqlite_store::read_only() const noexcept {
    return impl_->read_only;
}

// ---- test access ------------------------------------------------------------------------------

namespace detail {

result<std::shared_ptr<sqlite_store>> store_access::open(store_options options,
                                                         std::span<const migration> migrations) {
    return sqlite_store::open_(std::move(options), migrations);
}

connection_settings store_access::settings(const sqlite_store& store) {
    return store.impl_->settings;
}

void store_access::set_max_page_count(sqlite_store& store, std::int64_t pages) {
    store.impl_->page_limit.store(pages);
}

}  // namespace detail

void sqlite_store::set_metrics(std::shared_ptr<metrics_registry> metrics) {
    if (metrics) {
        metrics->describe("saga_store_batch_size", metric_type::histogram,
                          "Transitions per store transaction (group commit)",
                          {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
        metrics->describe("saga_store_batch_seconds", metric_type::histogram,
                          "Time to write and sync one store transaction");
    }
    std::lock_guard lock(impl_->metrics_mutex);
    impl_->metrics = std::move(metrics);
}

}  // namespace saga::sqlite
