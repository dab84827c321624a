#include "store_file.hpp"

#include "sqlite_common.hpp"

#include <charconv>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

namespace saga::sqlite::detail {
namespace {

constexpr std::string_view meta_application_key = "application";
constexpr std::string_view meta_application_value = "saga";
constexpr std::string_view meta_version_key = "schema_version";

/// True when `path`'s directory cannot be written and neither `-wal` nor `-shm` exists: SQLite
/// cannot open a WAL-mode file there, and no writer can have it open (it would need those files).
bool unwritable_wal_dir(const std::string& path) {
    namespace fs = std::filesystem;
    fs::path dir = fs::path(path).parent_path();
    if (dir.empty()) {
        dir = ".";
    }
    std::error_code ec;
    return ::access(dir.c_str(), W_OK) != 0 && !fs::exists(path + "-wal", ec) &&
           !fs::exists(path + "-shm", ec);
}

/// `file:<path>?immutable=1`, the path percent-encoded where a URI needs it.
std::string immutable_uri(const std::string& path) {
    std::string uri = "file:";
    for (const char c : path) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '%' || c == '?' || c == '#' || byte < 0x20 || byte >= 0x7f) {
            constexpr char hex[] = "0123456789abcdef";
            uri += '%';
            uri += hex[byte >> 4];
            uri += hex[byte & 0xf];
        } else {
            uri += c;
        }
    }
    return uri + "?immutable=1";
}

error too_old(std::string_view path, int found, const schema_spec& schema) {
    return {errc::invalid_state, about_file(path) + "written by schema version " +
                                     std::to_string(found) + ", " + std::string(schema.too_old)};
}

/// Brings the file to the last version of `schema.migrations` in one transaction. Any failure
/// rolls the whole migration back.
result<void> migrate(SQLite::Database& db, std::string_view path, const schema_spec& schema) {
    const std::span<const migration> migrations = schema.migrations;
    const int latest = migrations.back().version;
    db.exec("BEGIN IMMEDIATE");
    try {
        // again, inside the write lock: another process may have migrated meanwhile
        auto state = inspect(db, path);
        if (!state) {
            db.exec("ROLLBACK");
            return state.error();
        }
        if (state.value().version > latest) {
            db.exec("ROLLBACK");
            return newer_schema(path, state.value().version, latest);
        }
        if (!state.value().fresh && state.value().version < schema.oldest_migratable) {
            db.exec("ROLLBACK");
            return too_old(path, state.value().version, schema);
        }
        if (state.value().fresh) {
            db.exec("CREATE TABLE saga_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)");
            SQLite::Statement marker(db, "INSERT INTO saga_meta (key, value) VALUES (?1, ?2)");
            marker.bind(1, std::string(meta_application_key));
            marker.bind(2, std::string(meta_application_value));
            marker.exec();
            marker.reset();
            marker.bind(1, std::string(meta_version_key));
            marker.bind(2, std::string("0"));
            marker.exec();
            db.exec("PRAGMA application_id = " + std::to_string(application_id));
        }
        for (const migration& m : migrations) {
            if (m.version <= state.value().version) {
                continue;
            }
            const std::string step = "migration to schema version " + std::to_string(m.version);
            const std::string left =
                "; the file was left at schema version " + std::to_string(state.value().version);
            result<void> ran = success();
            try {
                if (!m.sql.empty()) {
                    db.exec(std::string(m.sql));
                }
                if (m.code != nullptr) {
                    ran = m.code(db, path, state.value().version);
                }
            } catch (const SQLite::Exception& e) {
                // a failed statement may have ended the transaction already (a full disk)
                db.tryExec("ROLLBACK");
                error err = sqlite_error(path, step, e);
                err.message += left;
                return err;
            } catch (const std::exception& e) {
                db.tryExec("ROLLBACK");
                error err = other_error(path, step, &e);
                err.message += left;
                return err;
            }
            if (!ran) {
                db.tryExec("ROLLBACK");
                return error{ran.error().code,
                             about_file(path) + step + " failed: " + ran.error().message + left};
            }
        }
        SQLite::Statement set_version(db, "UPDATE saga_meta SET value = ?1 WHERE key = ?2");
        set_version.bind(1, std::to_string(latest));
        set_version.bind(2, std::string(meta_version_key));
        set_version.exec();
        db.exec("COMMIT");
    } catch (...) {
        db.tryExec("ROLLBACK");
        throw;
    }
    return success();
}

}  // namespace

result<file_state> inspect(SQLite::Database& db, std::string_view path) {
    const std::int64_t app_id = query_int(db, "PRAGMA application_id");
    bool any_object = false;
    bool has_meta = false;
    {
        SQLite::Statement objects(db, "SELECT type, name FROM sqlite_master");
        while (objects.executeStep()) {
            any_object = true;
            has_meta = has_meta || (column_text(objects, 0) == "table" &&
                                    column_text(objects, 1) == "saga_meta");
        }
    }
    if (!any_object && app_id == 0) {
        return file_state{.fresh = true, .version = 0};
    }
    if (app_id != 0 && app_id != application_id) {
        char hex[16];
        std::snprintf(hex, sizeof hex, "0x%08llx",
                      static_cast<unsigned long long>(static_cast<std::uint32_t>(app_id)));
        return error{errc::store_failure, about_file(path) +
                                              "not a saga store: a SQLite database of another "
                                              "application (application id " +
                                              hex + ")"};
    }
    if (!has_meta) {
        return error{errc::store_failure,
                     about_file(path) +
                         (any_object ? "not a saga store: a SQLite database with tables but no "
                                       "saga_meta table"
                                     : "a damaged saga store: it has saga's application id but "
                                       "no schema")};
    }
    std::optional<std::string> application;
    std::optional<std::string> version_text;
    {
        SQLite::Statement meta(db, "SELECT key, value FROM saga_meta");
        while (meta.executeStep()) {
            const std::string key = column_text(meta, 0);
            if (key == meta_application_key) {
                application = column_text(meta, 1);
            } else if (key == meta_version_key) {
                version_text = column_text(meta, 1);
            }
        }
    }
    if (application != meta_application_value) {
        return error{errc::store_failure, about_file(path) +
                                              "not a saga store: its saga_meta table has no '" +
                                              std::string(meta_application_key) + "' = '" +
                                              std::string(meta_application_value) + "' marker"};
    }
    int version = -1;
    if (version_text) {
        const char* first = version_text->data();
        const char* last = first + version_text->size();
        const auto [end, ec] = std::from_chars(first, last, version);
        if (ec != std::errc{} || end != last || version < 0) {
            version = -1;
        }
    }
    if (version < 0) {
        return error{errc::store_failure,
                     about_file(path) + "malformed saga store: schema version '" +
                         version_text.value_or("(missing)") + "' in saga_meta"};
    }
    return file_state{.fresh = false, .version = version};
}

result<void> check_integrity(SQLite::Database& db, std::string_view path) {
    std::vector<std::string> found;
    SQLite::Statement check(db, "PRAGMA quick_check(5)");
    while (check.executeStep()) {
        found.push_back(column_text(check, 0));
    }
    if (found.size() == 1 && found.front() == "ok") {
        return success();
    }
    std::string msg = about_file(path) + "the file is damaged (PRAGMA quick_check found:";
    for (const std::string& line : found) {
        msg += " " + line + ";";
    }
    msg += ") ";
    msg += corrupt_remedy(path);
    return error{errc::store_failure, std::move(msg)};
}

error newer_schema(std::string_view path, int found, int latest) {
    return {errc::invalid_state, about_file(path) + "written by schema version " +
                                     std::to_string(found) + ", newer than this library's " +
                                     std::to_string(latest) +
                                     " (open it with a newer saga); the file was not changed"};
}

result<opened_file> open_store_file(const file_options& options, const schema_spec& schema) {
    const std::string& path = options.path;
    const int latest = schema.migrations.back().version;
    const int busy_ms = to_int_ms(options.busy_timeout);
    opened_file f;

    std::string_view stage = "lock";
    // before the first connection: every file of the store is opened through it
    (void)install_sync_counting_vfs();
    auto count_syncs_of = [&f](SQLite::Database& db) noexcept {
        f.syncs = sync_counter_of(sqlite3_db_filename(db.getHandle(), "main"));
        f.syncs_at_open = f.syncs ? f.syncs->syncs.load(std::memory_order_relaxed) : 0;
    };
    try {
        // read-only, a lock file that cannot be created (a read-only directory) is no error:
        // nobody can delete the store there either
        SAGA_TRY(auto lock, store_lock::shared(path, options.busy_timeout, options.read_only));
        f.lock.emplace(std::move(lock));

        if (options.read_only) {
            stage = "open";
            std::error_code ec;
            if (!std::filesystem::exists(path, ec)) {
                return error{errc::store_failure,
                             about_file(path) +
                                 "no such file (a store opened read-only is not "
                                 "created; check the path)"};
            }
            f.read_name = path;
            auto opened = [&]() -> result<file_state> {
                try {
                    SQLite::Database db(path, read_only_flags, busy_ms);
                    return inspect(db, path);
                } catch (const SQLite::Exception& e) {
                    // SQLITE_CANTOPEN, or SQLITE_READONLY when the -shm cannot be made
                    const int primary = e.getErrorCode() & 0xff;
                    if ((primary != SQLITE_CANTOPEN && primary != SQLITE_READONLY) ||
                        !unwritable_wal_dir(path)) {
                        throw;
                    }
                }
                // WAL mode needs a -shm file, which this directory cannot hold; with no -wal
                // and no -shm there, no process can be writing the store: read it as immutable
                f.read_name = immutable_uri(path);
                SQLite::Database db(f.read_name, read_only_flags | SQLITE_OPEN_URI, busy_ms);
                return inspect(db, path);
            };
            SAGA_TRY(const file_state found, opened());
            f.read_flags =
                f.read_name == path ? read_only_flags : read_only_flags | SQLITE_OPEN_URI;
            {
                SQLite::Database db(f.read_name, f.read_flags, busy_ms);
                count_syncs_of(db);
                if (found.fresh) {
                    return error{errc::store_failure,
                                 about_file(path) +
                                     "not a saga store: the database is empty "
                                     "(a store opened read-only is not created)"};
                }
                if (found.version > latest) {
                    return newer_schema(path, found.version, latest);
                }
                if (found.version < schema.oldest_migratable) {
                    return too_old(path, found.version, schema);
                }
                if (found.version < latest) {
                    return error{errc::invalid_state,
                                 about_file(path) + "written by schema version " +
                                     std::to_string(found.version) +
                                     ", older than this "
                                     "library's " +
                                     std::to_string(latest) +
                                     ": open it read-write once to migrate it"};
                }
                f.settings.opened_at_version = found.version;
                if (options.check_integrity) {
                    stage = "check integrity";
                    SAGA_TRY(check_integrity(db, path));
                }
                f.settings.journal_mode = query_text(db, "PRAGMA journal_mode");
            }
            return f;
        }

        stage = "open";
        f.writer_db =
            std::make_unique<SQLite::Database>(path, write_flags | SQLITE_OPEN_CREATE, busy_ms);
        SQLite::Database& db = *f.writer_db;
        count_syncs_of(db);
        if (sqlite3_db_readonly(db.getHandle(), "main") == 1) {
            return error{errc::store_failure,
                         about_file(path) +
                             "the file is read-only (a store needs to write it; "
                             "open it with " +
                             std::string(options.options_name) + "::read_only to read it)"};
        }

        // recognise the file before changing anything in it
        stage = "read the schema";
        SAGA_TRY(const file_state found, inspect(db, path));
        if (found.version > latest) {
            return newer_schema(path, found.version, latest);
        }
        if (!found.fresh && found.version < schema.oldest_migratable) {
            return too_old(path, found.version, schema);
        }
        f.settings.opened_at_version = found.version;
        // A migration rewrites the tables: no other process may have the file open meanwhile
        // (a store of the older version would lose its tables under it). The shared lock
        // becomes exclusive for the migration, and shared again after it.
        const bool migrating = !found.fresh && found.version < latest;
        if (migrating) {
            stage = "lock the file for the migration";
            f.lock.reset();
            auto alone = store_lock::exclusive(path);
            if (!alone) {
                return error{alone.error().code,
                             alone.error().message + " (the file is at schema version " +
                                 std::to_string(found.version) + " and is migrated to " +
                                 std::to_string(latest) +
                                 " only while no other process has it open; it was not "
                                 "changed)"};
            }
            f.lock.emplace(std::move(alone).value());
        }
        if (options.check_integrity && !found.fresh) {
            stage = "check integrity";
            SAGA_TRY(check_integrity(db, path));
        }

        stage = "configure the connection";
        const std::string journal = query_text(db, "PRAGMA journal_mode = WAL");
        if (journal != "wal") {
            return error{
                errc::store_failure,
                about_file(path) + "cannot switch to WAL mode (journal mode is '" + journal + "')"};
        }
        db.exec(sync_pragma(options.sync));

        if (found.fresh || found.version < latest) {
            stage = "migrate the schema";
            SAGA_TRY(migrate(db, path, schema));
        }
        if (migrating) {
            stage = "lock";
            f.lock.reset();
            SAGA_TRY(auto shared_again, store_lock::shared(path, options.busy_timeout));
            f.lock.emplace(std::move(shared_again));
        }

        f.settings.synchronous = query_int(db, "PRAGMA synchronous");
        f.settings.journal_mode = query_text(db, "PRAGMA journal_mode");
        f.read_name = path;
        f.read_flags = write_flags;
        return f;
    } catch (const SQLite::Exception& e) {
        return sqlite_error(path, stage, e);
    } catch (const std::exception& e) {
        return other_error(path, stage, &e);
    }
}

}  // namespace saga::sqlite::detail
