#include "sqlite_common.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace saga::sqlite::detail {

std::string about(std::string_view id) {
    std::string s = "saga '";
    s.append(id);
    s.append("': ");
    return s;
}

std::string about_file(std::string_view path) {
    std::string s = "sqlite store '";
    s.append(path);
    s.append("': ");
    return s;
}

std::string corrupt_remedy(std::string_view path) {
    std::string s =
        "restore the file from a backup, or save what can still be read with `sqlite3 '";
    s.append(path);
    s.append("' .recover | sqlite3 recovered.db`");
    return s;
}

error sqlite_error(std::string_view path, std::string_view op, const SQLite::Exception& e) {
    const int primary = e.getErrorCode() & 0xff;
    const bool busy = primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
    std::string msg = about_file(path);
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
        msg.append("the file is not a SQLite database or is corrupt (");
        msg.append(op);
        msg.append(": ");
        msg.append(e.what());
        msg.append(primary == SQLITE_CORRUPT ? "); " : ")");
        if (primary == SQLITE_CORRUPT) {
            msg.append(corrupt_remedy(path));
        }
        return {errc::store_failure, std::move(msg)};
    }
    msg.append(op);
    msg.append(" failed: ");
    msg.append(e.what());
    if (primary == SQLITE_CANTOPEN) {
        msg.append(" (check that the file and its directory exist and are writable)");
    }
    return {busy ? errc::store_busy : errc::store_failure, std::move(msg)};
}

error other_error(std::string_view path, std::string_view op, const std::exception* e) noexcept {
    try {
        std::string msg = about_file(path);
        msg.append(op);
        msg.append(" failed: ");
        msg.append(e != nullptr ? e->what() : "unknown exception");
        return {errc::store_failure, std::move(msg)};
    } catch (...) {
        return error{errc::store_failure};
    }
}

error failure_of(std::string_view path, std::string_view op, const std::exception& e) {
    if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
        return sqlite_error(path, op, *se);
    }
    return other_error(path, op, &e);
}

std::int64_t query_int(SQLite::Database& db, const char* sql) {
    SQLite::Statement s(db, sql);
    if (!s.executeStep()) {
        throw std::runtime_error(std::string("no result from '") + sql + "'");
    }
    return s.getColumn(0).getInt64();
}

std::string query_text(SQLite::Database& db, const char* sql) {
    SQLite::Statement s(db, sql);
    if (!s.executeStep()) {
        throw std::runtime_error(std::string("no result from '") + sql + "'");
    }
    return s.getColumn(0).getString();
}

int to_int_ms(duration d) noexcept {
    return static_cast<int>(
        std::clamp<duration::rep>(d.count(), 0, std::numeric_limits<int>::max()));
}

const char* sync_pragma(synchronous sync) noexcept {
    return sync == synchronous::full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
}

error read_only_error(std::string_view path, std::string_view options) {
    return {errc::invalid_state, about_file(path) + "opened read-only (" + std::string(options) +
                                     "::read_only): it cannot be written"};
}

}  // namespace saga::sqlite::detail
