#include <saga/sqlite/sqlite_journal_store.hpp>

#include <saga/journal_codec.hpp>
#include <saga/sqlite/detail/journal_schema.hpp>

#include "group_writer.hpp"
#include "journal_rows.hpp"
#include "schema_v2.hpp"
#include "sqlite_common.hpp"
#include "store_file.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <variant>

namespace saga::sqlite {

namespace {

using detail::about;
using detail::about_file;
using detail::bind_int;
using detail::bind_text;
using detail::column_text;
using detail::guarded;
using detail::other_error;
using detail::sqlite_error;
using detail::statement_use;
using detail::stored_value_error;
using detail::sync_pragma;
using detail::write_flags;

// a new file gets schema_v2 whole; a file of version 1 (sqlite_store's) is converted in place
constexpr detail::migration journal_migrations[] = {
    {2, detail::schema_v2, &detail::migrate_from_v1}};
static_assert(journal_migrations[0].version == sqlite_journal_store::schema_version);

// after "sqlite store 'path': written by schema version N, " (N < 1: a file no store of this
// library left behind)
constexpr std::string_view too_old =
    "older than 1, the oldest the journal store migrates; the file was not changed";

// ---- small helpers --------------------------------------------------------------------------

std::int64_t ceil_micros(time_point t) noexcept {
    return std::chrono::ceil<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::int64_t clamp_limit(std::size_t limit) noexcept {
    constexpr auto max = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    return static_cast<std::int64_t>(std::min(limit, max));
}

/// A time column read back; a value out of `time_point`'s range is a damaged row.
time_point column_time(const SQLite::Statement& s, int index, std::string_view owner) {
    const std::int64_t micros = s.getColumn(index).getInt64();
    const auto t = from_unix_micros(micros);
    if (!t) {
        throw stored_value_error(error{
            errc::store_failure, std::string(owner) + "the stored " + s.getColumn(index).getName() +
                                     " " + std::to_string(micros) + " is not a time"});
    }
    return *t;
}

/// What the journal codec found wrong in a stored column, as a damaged row.
[[noreturn]] void bad_column(const error& e, std::string_view owner) {
    const auto code = e == errc::limit_exceeded ? errc::limit_exceeded : errc::store_failure;
    throw stored_value_error(error{code, std::string(owner) + "the stored " + e.message});
}

std::optional<std::string> column_optional_text(const SQLite::Statement& s, int index) {
    const SQLite::Column c = s.getColumn(index);
    if (c.isNull()) {
        return std::nullopt;
    }
    return c.getString();
}

// ---- what the writer thread gets: a write checked and encoded on the caller's thread ----------

struct purge_request {
    std::int64_t older_than = 0;
    std::int64_t limit = 0;
    /// how many went; read by the caller once its handler ran
    std::shared_ptr<std::size_t> purged;
};

struct work_item {
    std::variant<detail::encoded_write, purge_request> what;
    journal_commit_handler done;
};

// ---- connections ------------------------------------------------------------------------------

constexpr const char* head_columns =
    "id, definition, definition_version, status, correlation_key, exclusive, wake_at, version, "
    "created_at, updated_at";
constexpr const char* record_columns =
    "version, at, events, output, released_through, data, snapshot";
// the terminal statuses, as the partial indexes name them (so that they answer the queries);
// due() and purge() name their index: without ANALYZE statistics the planner prefers
// heads_status for `status IN (...)` and then sorts every terminal head
#define SAGA_TERMINAL "('completed', 'compensated', 'cancelled')"

/// The writer thread's statements (the hot path).
struct writer_statements {
    SQLite::Database& db;
    // the head and record inserts, shared with the migration from schema version 1
    detail::journal_row_statements rows{db};
    // the columns a transition changes; indexes on the others are left alone
    SQLite::Statement update_head{
        db,
        "UPDATE OR IGNORE heads SET status = ?4, exclusive = ?6, wake_at = ?7, version = ?8, "
        "updated_at = ?10 WHERE id = ?1 AND definition = ?2 AND definition_version = ?3 AND "
        "correlation_key = ?5 AND created_at = ?9"};
    SQLite::Statement replace_head{
        db,
        "UPDATE OR IGNORE heads SET definition = ?2, definition_version = ?3, status = ?4, "
        "correlation_key = ?5, exclusive = ?6, wake_at = ?7, version = ?8, created_at = ?9, "
        "updated_at = ?10 WHERE id = ?1"};
    SQLite::Statement purgeable{
        db, "SELECT id FROM heads INDEXED BY heads_purge WHERE status IN " SAGA_TERMINAL
            " AND updated_at < ?1 ORDER BY updated_at LIMIT ?2"};
    SQLite::Statement delete_records{db, "DELETE FROM journal WHERE saga_id = ?1"};
    SQLite::Statement delete_head{db, "DELETE FROM heads WHERE id = ?1"};

    explicit writer_statements(SQLite::Database& database) : db(database) {}
};

/// The read connection and its cached statements.
struct reader_connection {
    SQLite::Database db;
    SQLite::Statement head{db, std::string("SELECT ") + head_columns + " FROM heads WHERE id = ?1"};
    SQLite::Statement snapshot{db,
                               "SELECT version FROM journal WHERE saga_id = ?1 AND snapshot IS "
                               "NOT NULL ORDER BY version DESC LIMIT 1"};
    SQLite::Statement records{db, std::string("SELECT ") + record_columns +
                                      " FROM journal WHERE saga_id = ?1 AND version >= ?2 "
                                      "ORDER BY version"};
    SQLite::Statement older_data{db,
                                 "SELECT data FROM journal WHERE saga_id = ?1 AND version < ?2 "
                                 "AND data IS NOT NULL ORDER BY version DESC LIMIT 1"};
    SQLite::Statement due{db,
                          "SELECT id FROM heads INDEXED BY heads_due WHERE wake_at IS NOT NULL "
                          "AND wake_at <= ?1 AND "
                          "status NOT IN " SAGA_TERMINAL " ORDER BY wake_at LIMIT ?2"};
    SQLite::Statement in_status{
        db, "SELECT id FROM heads WHERE status = ?1 AND id > ?2 ORDER BY id LIMIT ?3"};
    /// `list` statements by the shape of the filter (which fields are set)
    std::map<unsigned, SQLite::Statement> lists;

    reader_connection(const std::string& name, int busy_ms, int flags) : db(name, flags, busy_ms) {}
};

#undef SAGA_TERMINAL

instance_head read_head(const SQLite::Statement& s) {
    instance_head h;
    h.id = column_text(s, 0);
    const std::string owner = about(h.id);
    h.definition = column_text(s, 1);
    h.definition_version = static_cast<std::uint32_t>(s.getColumn(2).getInt64());
    const std::string status = column_text(s, 3);
    const std::optional<saga_status> parsed = parse_saga_status(status);
    if (!parsed) {
        throw stored_value_error(
            error{errc::store_failure, owner + "unknown status '" + status + "' in the file"});
    }
    h.status = *parsed;
    h.correlation_key = column_text(s, 4);
    h.exclusive = s.getColumn(5).getInt64() != 0;
    if (!s.getColumn(6).isNull()) {
        h.wake_at = column_time(s, 6, owner);
    }
    h.version = static_cast<std::uint64_t>(s.getColumn(7).getInt64());
    h.created_at = column_time(s, 8, owner);
    h.updated_at = column_time(s, 9, owner);
    return h;
}

/// A row of `record_columns`.
journal_record read_record(const SQLite::Statement& s, const std::string& saga_id) {
    journal_record r;
    r.saga_id = saga_id;
    r.version = static_cast<std::uint64_t>(s.getColumn(0).getInt64());
    const std::string owner = about(saga_id) + "record " + std::to_string(r.version) + ": ";
    r.at = column_time(s, 1, owner);
    {
        const SQLite::Column c = s.getColumn(2);
        auto events = decode_events({c.getText(), static_cast<std::size_t>(c.getBytes())});
        if (!events) {
            bad_column(events.error(), owner);
        }
        r.events = std::move(events).value();
    }
    if (const SQLite::Column c = s.getColumn(3); !c.isNull()) {
        auto output = decode_output({c.getText(), static_cast<std::size_t>(c.getBytes())});
        if (!output) {
            bad_column(output.error(), owner);
        }
        r.output = std::move(output).value();
    }
    r.released_through = static_cast<std::uint64_t>(s.getColumn(4).getInt64());
    r.data = column_optional_text(s, 5);
    r.snapshot = column_optional_text(s, 6);
    return r;
}

}  // namespace

// ---- the store --------------------------------------------------------------------------------

struct sqlite_journal_store::impl final : detail::group_writer<work_item> {
    // declared first, so released last: after every connection below is closed (the writer's
    // is closed by the destructor)
    std::optional<store_lock> file_lock;

    journal_store_options options;
    detail::connection_settings settings;
    bool read_only = false;

    std::unique_ptr<writer_statements> writer;

    std::mutex reader_mutex;
    std::unique_ptr<reader_connection> reader;

    ~impl() override { drop_writer(); }

    void prepare_writer(SQLite::Database& db) override {
        writer = std::make_unique<writer_statements>(db);
    }
    void release_writer() noexcept override { writer.reset(); }
    result<void> apply(work_item& item) override {
        if (auto* w = std::get_if<detail::encoded_write>(&item.what)) {
            return apply(*w);
        }
        apply(std::get<purge_request>(item.what));
        return success();
    }
    [[nodiscard]] std::string describe(const work_item& item) const override {
        const auto* w = std::get_if<detail::encoded_write>(&item.what);
        return w != nullptr ? "commit of saga '" + w->saga_id + "'" : "purge";
    }
    [[nodiscard]] bool is_commit(const work_item& item) const noexcept override {
        return std::holds_alternative<detail::encoded_write>(item.what);
    }

    result<void> apply(detail::encoded_write& w);
    void apply(const purge_request& p);

    template <class T, class Fn>
    result<T> read(std::string_view op, Fn&& fn) noexcept {
        return guarded(path, op, [&]() -> result<T> {
            std::lock_guard lock(reader_mutex);
            return fn(*reader);
        });
    }
};

result<void> sqlite_journal_store::impl::apply(detail::encoded_write& w) {
    writer_statements& ws = *writer;
    if (w.version == 1) {
        SAGA_TRY(detail::insert_first_head(ws.rows, w));
    } else {
        const std::optional<std::int64_t> newest = detail::newest_version(ws.rows, w.saga_id);
        if (!newest) {
            return error{errc::not_found, about(w.saga_id) + "record " + std::to_string(w.version) +
                                              " for an unknown saga"};
        }
        if (*newest + 1 != w.version) {
            return error{errc::version_conflict,
                         about(w.saga_id) + "record " + std::to_string(w.version) +
                             " does not follow the store's newest, " + std::to_string(*newest)};
        }
        if (w.head) {
            int changed = 0;
            {
                statement_use s(ws.update_head);
                detail::bind_head(*s, *w.head);
                changed = s->exec();
            }
            if (changed == 0) {
                // the definition, correlation key or creation time changed too, or the new
                // head would take a correlation key another saga holds
                statement_use s(ws.replace_head);
                detail::bind_head(*s, *w.head);
                changed = s->exec();
            }
            if (changed == 0) {
                return detail::lock_held_error(ws.rows, *w.head);
            }
        }
    }
    detail::insert_record(ws.rows, w);
    return success();
}

void sqlite_journal_store::impl::apply(const purge_request& p) {
    std::vector<std::string> ids;
    {
        statement_use s(writer->purgeable);
        bind_int(*s, 1, p.older_than);
        bind_int(*s, 2, p.limit);
        while (s->executeStep()) {
            ids.push_back(column_text(*s, 0));
        }
    }
    for (const std::string& id : ids) {
        {
            statement_use s(writer->delete_records);
            bind_text(*s, 1, id);
            s->exec();
        }
        statement_use s(writer->delete_head);
        bind_text(*s, 1, id);
        s->exec();
    }
    *p.purged = ids.size();
}

// ---- opening ----------------------------------------------------------------------------------

sqlite_journal_store::sqlite_journal_store(std::shared_ptr<impl> state) : impl_(std::move(state)) {}

sqlite_journal_store::~sqlite_journal_store() {
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

result<std::shared_ptr<sqlite_journal_store>> sqlite_journal_store::open(
    journal_store_options options) {
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
    const int busy_ms = detail::to_int_ms(options.busy_timeout);

    SAGA_TRY(detail::opened_file file,
             detail::open_store_file(
                 {.path = path,
                  .sync = options.sync,
                  .busy_timeout = options.busy_timeout,
                  .read_only = options.read_only,
                  .check_integrity = options.check_integrity,
                  .options_name = "journal_store_options"},
                 {.migrations = journal_migrations, .oldest_migratable = 1, .too_old = too_old}));

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

        if (options.read_only) {
            stage = "open the read connection";
            state->reader =
                std::make_unique<reader_connection>(file.read_name, busy_ms, file.read_flags);
            return std::shared_ptr<sqlite_journal_store>(new sqlite_journal_store(state));
        }

        state->adopt_writer(std::move(file.writer_db));
        stage = "open the read connection";
        state->reader = std::make_unique<reader_connection>(path, busy_ms, write_flags);
        state->reader->db.exec(sync_pragma(options.sync));

        stage = "start the writer thread";
        std::shared_ptr<sqlite_journal_store> store(new sqlite_journal_store(state));
        store->writer_ = std::thread([state] { state->run(); });
        return store;
    } catch (const SQLite::Exception& e) {
        return sqlite_error(path, stage, e);
    } catch (const std::exception& e) {
        return other_error(path, stage, &e);
    }
}

// ---- the journal_store interface --------------------------------------------------------------

void sqlite_journal_store::async_commit(journal_write w, journal_commit_handler done) {
    std::optional<error> refused;
    if (impl_->read_only) {
        if (done) {
            done(detail::read_only_error(impl_->path, "journal_store_options"));
        }
        return;
    }
    try {
        auto encoded = detail::encode_journal_write(w);
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

result<std::size_t> sqlite_journal_store::purge(time_point older_than, std::size_t limit) {
    if (impl_->read_only) {
        return detail::read_only_error(impl_->path, "journal_store_options");
    }
    if (limit == 0) {
        return std::size_t{0};
    }
    return guarded(impl_->path, "purge", [&]() -> result<std::size_t> {
        // shared: the writer may still be inside set_value when get() returns
        auto promise = std::make_shared<std::promise<result<void>>>();
        auto future = promise->get_future();
        auto purged = std::make_shared<std::size_t>(0);
        impl_->submit(work_item{purge_request{.older_than = ceil_micros(older_than),
                                              .limit = clamp_limit(limit),
                                              .purged = purged},
                                [promise](result<void> r) { promise->set_value(std::move(r)); }});
        SAGA_TRY(future.get());
        return *purged;
    });
}

result<instance_head> sqlite_journal_store::head(std::string_view id) {
    return impl_->read<instance_head>("head", [&](reader_connection& c) -> result<instance_head> {
        const std::string key(id);
        statement_use s(c.head);
        bind_text(*s, 1, key);
        if (!s->executeStep()) {
            return error{errc::not_found, about(id) + "not found"};
        }
        return read_head(*s);
    });
}

result<loaded_instance> sqlite_journal_store::load(std::string_view id) {
    return impl_->read<loaded_instance>(
        "load", [&](reader_connection& c) -> result<loaded_instance> {
            const std::string key(id);
            loaded_instance out;
            {
                statement_use s(c.head);
                bind_text(*s, 1, key);
                if (!s->executeStep()) {
                    return error{errc::not_found, about(id) + "not found"};
                }
                out.head = read_head(*s);
            }
            std::int64_t from = 0;
            {
                statement_use s(c.snapshot);
                bind_text(*s, 1, key);
                if (s->executeStep()) {
                    from = s->getColumn(0).getInt64();
                }
            }
            {
                statement_use s(c.records);
                bind_text(*s, 1, key);
                bind_int(*s, 2, from);
                while (s->executeStep()) {
                    out.records.push_back(read_record(*s, key));
                }
            }
            for (auto r = out.records.rbegin(); r != out.records.rend() && !out.data; ++r) {
                out.data = r->data;
            }
            if (!out.data && from > 1) {
                statement_use s(c.older_data);
                bind_text(*s, 1, key);
                bind_int(*s, 2, from);
                if (s->executeStep()) {
                    out.data = column_text(*s, 0);
                }
            }
            return out;
        });
}

result<std::vector<journal_record>> sqlite_journal_store::journal(std::string_view id) {
    using records = std::vector<journal_record>;
    return impl_->read<records>("journal", [&](reader_connection& c) -> result<records> {
        const std::string key(id);
        statement_use s(c.records);
        bind_text(*s, 1, key);
        bind_int(*s, 2, 0);
        records out;
        while (s->executeStep()) {
            out.push_back(read_record(*s, key));
        }
        return out;
    });
}

result<std::vector<std::string>> sqlite_journal_store::due(time_point before, std::size_t limit) {
    using ids = std::vector<std::string>;
    return impl_->read<ids>("due", [&](reader_connection& c) -> result<ids> {
        statement_use s(c.due);
        bind_int(*s, 1, to_unix_micros(before));
        bind_int(*s, 2, clamp_limit(limit));
        ids out;
        while (s->executeStep()) {
            out.push_back(column_text(*s, 0));
        }
        return out;
    });
}

namespace {

/// Merges per-status lists, each in id order, into the first `limit` in id order.
template <class T, class Key>
std::vector<T> merge_by_id(std::vector<std::vector<T>> lists, std::size_t limit, Key key) {
    std::vector<T> out;
    for (auto& list : lists) {
        std::move(list.begin(), list.end(), std::back_inserter(out));
    }
    std::sort(out.begin(), out.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
    if (out.size() > limit) {
        out.resize(limit);
    }
    return out;
}

/// The statuses asked for, each once.
std::vector<saga_status> distinct(std::vector<saga_status> statuses) {
    std::sort(statuses.begin(), statuses.end());
    statuses.erase(std::unique(statuses.begin(), statuses.end()), statuses.end());
    return statuses;
}

}  // namespace

result<std::vector<std::string>> sqlite_journal_store::in_status(std::vector<saga_status> statuses,
                                                                 std::string_view after_id,
                                                                 std::size_t limit) {
    using ids = std::vector<std::string>;
    return impl_->read<ids>("in_status", [&](reader_connection& c) -> result<ids> {
        // one ordered index range per status (heads_status is (status, id)), merged: a page
        // costs `limit` rows per status however many instances there are
        const std::string after(after_id);
        std::vector<ids> lists;
        for (const saga_status st : distinct(std::move(statuses))) {
            const std::string name(to_string(st));
            statement_use s(c.in_status);
            bind_text(*s, 1, name);
            bind_text(*s, 2, after);
            bind_int(*s, 3, clamp_limit(limit));
            ids& list = lists.emplace_back();
            while (s->executeStep()) {
                list.push_back(column_text(*s, 0));
            }
        }
        return merge_by_id(
            std::move(lists), limit, [](const std::string& id) -> const auto& { return id; });
    });
}

result<std::vector<instance_head>> sqlite_journal_store::list(const head_filter& filter) {
    using heads = std::vector<instance_head>;
    return impl_->read<heads>("list", [&](reader_connection& c) -> result<heads> {
        enum : unsigned { definition = 1, key = 2, before = 4, status = 8 };
        const unsigned shape = (filter.definition.empty() ? 0U : definition) |
                               (filter.correlation_key.empty() ? 0U : key) |
                               (filter.updated_before ? before : 0U) |
                               (filter.statuses.empty() ? 0U : status);
        auto it = c.lists.find(shape);
        if (it == c.lists.end()) {
            std::string sql = std::string("SELECT ") + head_columns + " FROM heads WHERE id > ?1";
            if ((shape & status) != 0) {
                sql += " AND status = ?2";
            }
            if ((shape & definition) != 0) {
                sql += " AND definition = ?3";
            }
            if ((shape & key) != 0) {
                sql += " AND correlation_key = ?4 AND correlation_key <> ''";
            }
            if ((shape & before) != 0) {
                sql += " AND updated_at < ?5";
            }
            sql += " ORDER BY id LIMIT ?6";
            it = c.lists.try_emplace(shape, c.db, sql).first;
        }
        auto run = [&](const std::string* status_name) {
            statement_use s(it->second);
            bind_text(*s, 1, filter.after_id);
            if (status_name != nullptr) {
                bind_text(*s, 2, *status_name);
            }
            if ((shape & definition) != 0) {
                bind_text(*s, 3, filter.definition);
            }
            if ((shape & key) != 0) {
                bind_text(*s, 4, filter.correlation_key);
            }
            if ((shape & before) != 0) {
                // the stored time (whole microseconds) is before it
                bind_int(*s, 5, ceil_micros(*filter.updated_before));
            }
            bind_int(*s, 6, clamp_limit(filter.limit));
            heads out;
            while (s->executeStep()) {
                out.push_back(read_head(*s));
            }
            return out;
        };
        if ((shape & status) == 0) {
            return run(nullptr);
        }
        std::vector<heads> lists;
        for (const saga_status st : distinct(filter.statuses)) {
            const std::string name(to_string(st));
            lists.push_back(run(&name));
        }
        return merge_by_id(std::move(lists), filter.limit,
                           [](const instance_head& h) -> const std::string& { return h.id; });
    });
}

journal_store_stats sqlite_journal_store::stats() const {
    return {.commits = impl_->commits.load(std::memory_order_relaxed),
            .batches = impl_->batches.load(std::memory_order_relaxed),
            .largest_batch = impl_->largest_batch.load(std::memory_order_relaxed),
            .failed_batches = impl_->failed_batches.load(std::memory_order_relaxed),
            .reconnects = impl_->reconnects.load(std::memory_order_relaxed),
            .transactions = impl_->transactions.load(std::memory_order_relaxed),
            .row_writes = impl_->row_writes.load(std::memory_order_relaxed),
            .syncs = impl_->syncs()};
}

const std::string& sqlite_journal_store::path() const noexcept {
    return impl_->path;
}

bool sqlite_journal_store::read_only() const noexcept {
    return impl_->read_only;
}

// ---- test access ------------------------------------------------------------------------------

namespace detail {

connection_settings journal_store_access::settings(const sqlite_journal_store& store) {
    return store.impl_->settings;
}

void journal_store_access::set_max_page_count(sqlite_journal_store& store, std::int64_t pages) {
    store.impl_->page_limit.store(pages);
}

}  // namespace detail

}  // namespace saga::sqlite
