#pragma once
// What the SQLite stores (sqlite_store.cpp, sqlite_journal_store.cpp) share below their files:
// error messages, exception fences, cached statements, small queries. Private to saga::sqlite.

#include <saga/clock.hpp>
#include <saga/error.hpp>
#include <saga/sqlite/synchronous.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace saga::sqlite::detail {

/// "saga 'id': ", the start of every message about one saga (as in memory_store).
[[nodiscard]] std::string about(std::string_view id);
/// "sqlite store 'path': ", the start of every message about the file.
[[nodiscard]] std::string about_file(std::string_view path);
/// What to do about a damaged store.
[[nodiscard]] std::string corrupt_remedy(std::string_view path);

/// The error for a failed SQLite call: busy/locked is `store_busy` (retryable), anything else
/// `store_failure`; the message names the file, what was being done and SQLite's reason.
[[nodiscard]] error sqlite_error(std::string_view path, std::string_view op,
                                 const SQLite::Exception& e);
/// The error for anything else that was thrown (allocation, a corrupt JSON column, ...).
[[nodiscard]] error other_error(std::string_view path, std::string_view op,
                                const std::exception* e) noexcept;
/// `sqlite_error` for a SQLite exception, `other_error` for any other.
[[nodiscard]] error failure_of(std::string_view path, std::string_view op, const std::exception& e);

/// A stored value that cannot be read back (not JSON, past its limits, not what the schema
/// says), thrown while reading a row and turned into its error by `guarded` (elsewhere it is a
/// runtime_error).
struct stored_value_error : std::runtime_error {
    explicit stored_value_error(error e) : std::runtime_error(e.message), err(std::move(e)) {}
    error err;
};

/// Runs `fn`, turning every exception into an error: nothing escapes the library.
template <class Fn>
auto guarded(std::string_view path, std::string_view op, Fn&& fn) noexcept -> decltype(fn()) {
    try {
        return fn();
    } catch (const stored_value_error& e) {
        try {
            return error{e.err.code,
                         about_file(path) + std::string(op) + " failed: " + e.err.message};
        } catch (...) {
            return error{e.err.code};
        }
    } catch (const SQLite::Exception& e) {
        try {
            return sqlite_error(path, op, e);
        } catch (...) {
            return error{errc::store_failure};
        }
    } catch (const std::exception& e) {
        return other_error(path, op, &e);
    } catch (...) {
        return other_error(path, op, nullptr);
    }
}

/// A cached statement in use: reset before (so it can be stepped again) and after (so a read
/// does not keep its snapshot, and bound pointers do not outlive the call).
class statement_use {
public:
    explicit statement_use(SQLite::Statement& s) noexcept : s_(s) { s_.tryReset(); }
    ~statement_use() {
        s_.tryReset();
        try {
            s_.clearBindings();
        } catch (...) {  // NOLINT(bugprone-empty-catch): cannot fail on a prepared statement
        }
    }
    statement_use(const statement_use&) = delete;
    statement_use& operator=(const statement_use&) = delete;

    SQLite::Statement* operator->() const noexcept { return &s_; }
    SQLite::Statement& operator*() const noexcept { return s_; }

private:
    SQLite::Statement& s_;
};

/// Binds `text` as TEXT without copying; it must outlive the statement's use.
inline void bind_text(SQLite::Statement& s, int index, const std::string& text) {
    s.bindNoCopy(index, text);
}

inline void bind_int(SQLite::Statement& s, int index, std::int64_t value) {
    s.bind(index, value);
}

[[nodiscard]] inline std::string column_text(const SQLite::Statement& s, int index) {
    return s.getColumn(index).getString();
}

[[nodiscard]] std::int64_t query_int(SQLite::Database& db, const char* sql);
[[nodiscard]] std::string query_text(SQLite::Database& db, const char* sql);

/// A duration as whole milliseconds for SQLite's busy timeout, clamped to `int`.
[[nodiscard]] int to_int_ms(duration d) noexcept;

inline constexpr int write_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
inline constexpr int read_only_flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;

[[nodiscard]] const char* sync_pragma(synchronous sync) noexcept;

/// The error of a write to a store opened read-only; `options` names the options struct.
[[nodiscard]] error read_only_error(std::string_view path, std::string_view options);

}  // namespace saga::sqlite::detail
