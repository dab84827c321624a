// The sync-counting VFS: every call is passed to the VFS that was the default when it was
// installed (unix on Linux); `xSync` is counted on the way. The wrapper's file object is the
// counting header followed by the real file's object (the pattern of SQLite's own shims, e.g.
// ext/misc/vfstrace.c), so the wrapper adds one indirect call per I/O operation and nothing else.
#include "sync_counting_vfs.hpp"

#include <sqlite3.h>

#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

namespace saga::sqlite::detail {
namespace {

constexpr const char* vfs_name = "saga_sync_counting";

std::atomic<std::uint64_t> all_syncs{0};

/// Database name -> its counter. Leaked on purpose: files may still close during static
/// destruction.
struct counter_registry {
    std::mutex mutex;
    std::unordered_map<std::string, std::weak_ptr<sync_counter>> counters;
};
counter_registry& registry() {
    static auto* r = new counter_registry;
    return *r;
}

std::shared_ptr<sync_counter> counter_for(const char* db_filename) {
    if (db_filename == nullptr || *db_filename == '\0') {
        return nullptr;
    }
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    std::weak_ptr<sync_counter>& slot = r.counters[db_filename];
    if (auto existing = slot.lock()) {
        return existing;
    }
    auto fresh = std::make_shared<sync_counter>();
    slot = fresh;
    // a new counter is rare (a file opened for the first time): drop the entries of files
    // that are gone, so the map does not grow with every store a process ever opened
    for (auto it = r.counters.begin(); it != r.counters.end();) {
        it = it->second.expired() ? r.counters.erase(it) : std::next(it);
    }
    return fresh;
}

sqlite3_vfs* base_vfs = nullptr;  // set once, before the counting VFS is registered
sqlite3_vfs counting_vfs{};

/// The counting header; the real file's object follows at `real_offset`.
struct counted_file {
    sqlite3_file base;                       // first: SQLite sees this
    std::shared_ptr<sync_counter>* counter;  // null for files of no database (temporary files)
};
constexpr std::size_t real_offset = (sizeof(counted_file) + 15) & ~std::size_t{15};

counted_file* counted(sqlite3_file* f) noexcept {
    return reinterpret_cast<counted_file*>(f);
}
sqlite3_file* real(sqlite3_file* f) noexcept {
    return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + real_offset);
}

// ---- the file methods: pass through, counting xSync ------------------------------------------

int file_close(sqlite3_file* f) {
    sqlite3_file* r = real(f);
    const int rc = r->pMethods->xClose(r);
    delete counted(f)->counter;
    counted(f)->counter = nullptr;
    return rc;
}
int file_read(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
    sqlite3_file* r = real(f);
    return r->pMethods->xRead(r, buf, amount, offset);
}
int file_write(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
    sqlite3_file* r = real(f);
    return r->pMethods->xWrite(r, buf, amount, offset);
}
int file_truncate(sqlite3_file* f, sqlite3_int64 size) {
    sqlite3_file* r = real(f);
    return r->pMethods->xTruncate(r, size);
}
int file_sync(sqlite3_file* f, int flags) {
    all_syncs.fetch_add(1, std::memory_order_relaxed);
    if (auto* c = counted(f)->counter; c != nullptr && *c) {
        (*c)->syncs.fetch_add(1, std::memory_order_relaxed);
    }
    sqlite3_file* r = real(f);
    return r->pMethods->xSync(r, flags);
}
int file_size(sqlite3_file* f, sqlite3_int64* size) {
    sqlite3_file* r = real(f);
    return r->pMethods->xFileSize(r, size);
}
int file_lock(sqlite3_file* f, int level) {
    sqlite3_file* r = real(f);
    return r->pMethods->xLock(r, level);
}
int file_unlock(sqlite3_file* f, int level) {
    sqlite3_file* r = real(f);
    return r->pMethods->xUnlock(r, level);
}
int file_check_reserved_lock(sqlite3_file* f, int* out) {
    sqlite3_file* r = real(f);
    return r->pMethods->xCheckReservedLock(r, out);
}
int file_control(sqlite3_file* f, int op, void* arg) {
    sqlite3_file* r = real(f);
    return r->pMethods->xFileControl(r, op, arg);
}
int file_sector_size(sqlite3_file* f) {
    sqlite3_file* r = real(f);
    return r->pMethods->xSectorSize(r);
}
int file_device_characteristics(sqlite3_file* f) {
    sqlite3_file* r = real(f);
    return r->pMethods->xDeviceCharacteristics(r);
}
int file_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
    sqlite3_file* r = real(f);
    return r->pMethods->xShmMap(r, region, size, extend, out);
}
int file_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    sqlite3_file* r = real(f);
    return r->pMethods->xShmLock(r, offset, n, flags);
}
void file_shm_barrier(sqlite3_file* f) {
    sqlite3_file* r = real(f);
    r->pMethods->xShmBarrier(r);
}
int file_shm_unmap(sqlite3_file* f, int delete_flag) {
    sqlite3_file* r = real(f);
    return r->pMethods->xShmUnmap(r, delete_flag);
}
int file_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
    sqlite3_file* r = real(f);
    return r->pMethods->xFetch(r, offset, amount, out);
}
int file_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
    sqlite3_file* r = real(f);
    return r->pMethods->xUnfetch(r, offset, p);
}

/// The method table for a real file of method version `version` (1 to 3): the wrapper offers
/// exactly what the real file offers, so SQLite's choices (WAL needs version 2, memory mapping
/// version 3) stay the same.
const sqlite3_io_methods* methods_for(int version) noexcept {
    static const sqlite3_io_methods tables[3] = {
        {1, file_close, file_read, file_write, file_truncate, file_sync, file_size, file_lock,
         file_unlock, file_check_reserved_lock, file_control, file_sector_size,
         file_device_characteristics, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr},
        {2, file_close, file_read, file_write, file_truncate, file_sync, file_size, file_lock,
         file_unlock, file_check_reserved_lock, file_control, file_sector_size,
         file_device_characteristics, file_shm_map, file_shm_lock, file_shm_barrier, file_shm_unmap,
         nullptr, nullptr},
        {3, file_close, file_read, file_write, file_truncate, file_sync, file_size, file_lock,
         file_unlock, file_check_reserved_lock, file_control, file_sector_size,
         file_device_characteristics, file_shm_map, file_shm_lock, file_shm_barrier, file_shm_unmap,
         file_fetch, file_unfetch},
    };
    const int v = version < 1 ? 1 : (version > 3 ? 3 : version);
    return &tables[v - 1];
}

// ---- the VFS methods: pass through, wrapping opened files --------------------------------------

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
    counted_file* c = counted(f);
    c->base.pMethods = nullptr;
    c->counter = nullptr;
    // the database, its journal and its WAL share the database's counter; SQLite guarantees
    // sqlite3_filename_database() on the names it passes to xOpen for these three kinds
    constexpr int database_files = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL;
    if (name != nullptr && (flags & database_files) != 0) {
        try {
            c->counter =
                new std::shared_ptr<sync_counter>(counter_for(sqlite3_filename_database(name)));
        } catch (...) {
            return SQLITE_NOMEM;
        }
    }
    sqlite3_file* r = real(f);
    const int rc = base_vfs->xOpen(base_vfs, name, r, flags, out_flags);
    if (r->pMethods != nullptr) {
        // SQLite calls xClose on any file whose pMethods is set, also after a failed open
        c->base.pMethods = methods_for(r->pMethods->iVersion);
    } else {
        delete c->counter;
        c->counter = nullptr;
    }
    return rc;
}
int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) {
    return base_vfs->xDelete(base_vfs, name, sync_dir);
}
int vfs_access(sqlite3_vfs*, const char* name, int flags, int* out) {
    return base_vfs->xAccess(base_vfs, name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
    return base_vfs->xFullPathname(base_vfs, name, size, out);
}
void* vfs_dl_open(sqlite3_vfs*, const char* name) {
    return base_vfs->xDlOpen(base_vfs, name);
}
void vfs_dl_error(sqlite3_vfs*, int size, char* out) {
    base_vfs->xDlError(base_vfs, size, out);
}
void (*vfs_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
    return base_vfs->xDlSym(base_vfs, handle, symbol);
}
void vfs_dl_close(sqlite3_vfs*, void* handle) {
    base_vfs->xDlClose(base_vfs, handle);
}
int vfs_randomness(sqlite3_vfs*, int size, char* out) {
    return base_vfs->xRandomness(base_vfs, size, out);
}
int vfs_sleep(sqlite3_vfs*, int microseconds) {
    return base_vfs->xSleep(base_vfs, microseconds);
}
int vfs_current_time(sqlite3_vfs*, double* out) {
    return base_vfs->xCurrentTime(base_vfs, out);
}
int vfs_get_last_error(sqlite3_vfs*, int size, char* out) {
    return base_vfs->xGetLastError != nullptr ? base_vfs->xGetLastError(base_vfs, size, out) : 0;
}
int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
    return base_vfs->xCurrentTimeInt64(base_vfs, out);
}
int vfs_set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr call) {
    return base_vfs->xSetSystemCall(base_vfs, name, call);
}
sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs*, const char* name) {
    return base_vfs->xGetSystemCall(base_vfs, name);
}
const char* vfs_next_system_call(sqlite3_vfs*, const char* name) {
    return base_vfs->xNextSystemCall(base_vfs, name);
}

bool install() noexcept {
    if (sqlite3_initialize() != SQLITE_OK) {
        return false;
    }
    sqlite3_vfs* current = sqlite3_vfs_find(nullptr);
    if (current == nullptr) {
        return false;
    }
    base_vfs = current;
    sqlite3_vfs& v = counting_vfs;
    v.iVersion = current->iVersion < 3 ? current->iVersion : 3;
    v.szOsFile = static_cast<int>(real_offset) + current->szOsFile;
    v.mxPathname = current->mxPathname;
    v.zName = vfs_name;
    v.pAppData = nullptr;
    v.xOpen = vfs_open;
    v.xDelete = vfs_delete;
    v.xAccess = vfs_access;
    v.xFullPathname = vfs_full_pathname;
    v.xDlOpen = current->xDlOpen != nullptr ? vfs_dl_open : nullptr;
    v.xDlError = current->xDlError != nullptr ? vfs_dl_error : nullptr;
    v.xDlSym = current->xDlSym != nullptr ? vfs_dl_sym : nullptr;
    v.xDlClose = current->xDlClose != nullptr ? vfs_dl_close : nullptr;
    v.xRandomness = vfs_randomness;
    v.xSleep = vfs_sleep;
    v.xCurrentTime = vfs_current_time;
    v.xGetLastError = vfs_get_last_error;
    if (v.iVersion >= 2) {
        v.xCurrentTimeInt64 =
            current->xCurrentTimeInt64 != nullptr ? vfs_current_time_int64 : nullptr;
    }
    if (v.iVersion >= 3) {
        v.xSetSystemCall = current->xSetSystemCall != nullptr ? vfs_set_system_call : nullptr;
        v.xGetSystemCall = current->xGetSystemCall != nullptr ? vfs_get_system_call : nullptr;
        v.xNextSystemCall = current->xNextSystemCall != nullptr ? vfs_next_system_call : nullptr;
    }
    return sqlite3_vfs_register(&counting_vfs, 1) == SQLITE_OK;
}

}  // namespace

bool install_sync_counting_vfs() noexcept {
    static const bool installed = install();
    return installed;
}

std::shared_ptr<sync_counter> sync_counter_of(const char* db_filename) noexcept {
    try {
        return counter_for(db_filename);
    } catch (...) {
        return nullptr;
    }
}

std::uint64_t total_syncs() noexcept {
    return all_syncs.load(std::memory_order_relaxed);
}

}  // namespace saga::sqlite::detail
