#pragma once
/// @file store_lock.hpp
/// Who has a store open: an advisory lock (flock(2)) on a lock file beside the store,
/// `<store>.lock`. Every open `sqlite_store` holds it shared for as long as it is open; a tool
/// that must be alone with the file (to delete or replace it) takes it exclusively, and fails at
/// once while any process (this one included) has the store open.
///
/// ```cpp
/// auto lock = saga::sqlite::store_lock::exclusive("sagas.db");
/// if (!lock) { /* errc::store_busy: "... is in use by another process ..." */ }
/// if (auto r = saga::sqlite::sqlite_store::remove(lock.value()); !r) { /* not a store */ }
/// ```
///
/// Why a lock file: the kernel drops a flock when its holder exits, however it dies (SIGKILL
/// included), so a crashed process never leaves a stale lock; SQLite's own locks on the
/// database, `-wal` and `-shm` files cannot be tested from outside (an idle connection holds
/// none that a test could see reliably) and must not be touched by another descriptor of the
/// same process (closing it would drop SQLite's POSIX locks). The lock file is never deleted:
/// a process that still holds the old one would not see a new one.

#include <chrono>
#include <string>

#include <saga/clock.hpp>
#include <saga/error.hpp>

namespace saga::sqlite {

/// A held `store_lock`, shared or exclusive. Move-only; released when destroyed.
class store_lock {
public:
    /// The lock file of the store at `store_path`: `<store_path>.lock` beside it, symbolic links
    /// resolved (as SQLite resolves them for its own files).
    [[nodiscard]] static std::string lock_path_of(const std::string& store_path);

    /// Takes the lock exclusively, without waiting. `errc::store_busy` while any process (this
    /// one included) has the store open, naming the store and the lock file;
    /// `errc::store_failure` when the lock file cannot be created (its directory does not
    /// exist, or cannot be written).
    [[nodiscard]] static result<store_lock> exclusive(const std::string& store_path);

    /// Takes the lock shared, as every open store does, waiting up to `wait` while a process
    /// holds it exclusively (`errc::store_busy` after that). For a process that uses files that
    /// belong with a store without opening the store itself. With `if_possible`, a lock file
    /// that cannot be created (a read-only directory) is no error: the lock is then not held
    /// (`held()` is false), and nobody can delete the store there either.
    [[nodiscard]] static result<store_lock> shared(const std::string& store_path,
                                                   duration wait = std::chrono::seconds{5},
                                                   bool if_possible = false);

    store_lock(store_lock&& other) noexcept;
    store_lock& operator=(store_lock&& other) noexcept;
    store_lock(const store_lock&) = delete;
    store_lock& operator=(const store_lock&) = delete;
    ~store_lock();

    /// The store this lock is about.
    [[nodiscard]] const std::string& store_path() const noexcept { return store_path_; }
    /// True when the lock is held exclusively.
    [[nodiscard]] bool is_exclusive() const noexcept { return exclusive_; }
    /// False for a shared lock taken `if_possible` where the lock file could not be created.
    [[nodiscard]] bool held() const noexcept { return fd_ >= 0; }

private:
    store_lock(std::string store_path, int fd, bool exclusive) noexcept;
    std::string store_path_;
    int fd_ = -1;
    bool exclusive_ = false;
};

}  // namespace saga::sqlite
