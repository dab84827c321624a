#include "installation.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include <sys/stat.h>
#include <unistd.h>

#include <saga/sqlite/sqlite_store.hpp>
#include <saga/sqlite/store_lock.hpp>

#include "domain.hpp"

namespace campaign {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view remedy = "move it away, or give another --store";

/// Whether a file (or directory) may be written: a write permission bit and access(2) agree
/// (root passes access(2) whatever the bits say; an immutable file fails it).
bool writable(const fs::path& p) {
    struct ::stat st {};
    return ::stat(p.c_str(), &st) == 0 && (st.st_mode & 0222) != 0 &&
           ::access(p.c_str(), W_OK) == 0;
}

/// A service's database, or nothing, at `file`; else why not.
saga::result<void> check_service_file(const fs::path& file, std::string_view command) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(file, ec))) return saga::success();
    auto refuse = [&](std::string_view why) {
        return saga::error{saga::errc::store_failure,
                           fmt::format("{} refuses to replace {}: {}; nothing was deleted: {}",
                                       command, file.string(), why, remedy)};
    };
    if (!fs::is_regular_file(file, ec)) return refuse("not a file");
    if (!writable(file)) return refuse("the file is read-only");
    if (fs::file_size(file, ec) == 0) return saga::success();
    try {
        SQLite::Database db(file.string(), SQLite::OPEN_READONLY);
        if (!db.tableExists("replies")) {
            return refuse(
                "not a service database of campaign_publishing (it has no replies "
                "table)");
        }
    } catch (const SQLite::Exception& e) {
        return refuse(fmt::format("not a SQLite database ({})", e.what()));
    }
    return saga::success();
}

}  // namespace

saga::result<void> clear_installation(const data_paths& paths, std::string_view command) {
    const std::string store = paths.store.string();
    auto fail = [&](const saga::error& e) {
        return saga::error{e.code,
                           fmt::format("{} refuses to replace {}: {}", command, store, e.message)};
    };
    // held until the files are gone: no campaign_publishing process can open them meanwhile
    auto lock = saga::sqlite::store_lock::exclusive(store);
    if (!lock) {
        return fail(saga::error{lock.error().code,
                                lock.error().message +
                                    " (an orchestrator, `services`, `serve`, or a command that "
                                    "follows a run), or give another --store"});
    }
    fs::path dir = paths.store.parent_path();
    if (dir.empty()) dir = ".";
    if (!writable(dir)) {
        return saga::error{saga::errc::store_failure,
                           fmt::format("{} refuses to replace {}: its directory {} is read-only; "
                                       "nothing was deleted: give another --store",
                                       command, store, dir.string())};
    }
    std::vector<fs::path> services;
    for (auto s :
         {endpoints::campaigns, endpoints::catalog, endpoints::billing, endpoints::analytics})
        services.push_back(paths.service(s));
    for (auto n : all_networks) services.push_back(paths.service(endpoints::network(n)));
    for (const auto& file : services) {
        SAGA_TRY(check_service_file(file, command));
    }

    // the store last among the checks, first to go: it refuses what is not a saga store
    if (auto removed = saga::sqlite::sqlite_store::remove(lock.value()); !removed) {
        auto e = removed.error();
        e.message += " (--store)";
        return fail(e);
    }
    std::error_code ec;
    for (const auto& file : services) {
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
            auto f = file;
            f += suffix;
            fs::remove(f, ec);
            if (ec)
                return saga::error{
                    saga::errc::store_failure,
                    fmt::format("{}: cannot delete {}: {}", command, f.string(), ec.message())};
        }
    }
    auto log = paths.store;
    log += ".log";
    fs::remove(log, ec);
    return saga::success();
}

}  // namespace campaign
