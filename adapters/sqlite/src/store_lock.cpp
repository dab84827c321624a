#include <saga/sqlite/store_lock.hpp>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "sqlite_common.hpp"

namespace saga::sqlite {

using detail::about_file;

namespace {

std::string reason(int err) {
    return std::system_category().message(err);
}

/// Opens (creating) the lock file; -1 with errno set on failure.
int open_lock_file(const std::string& lock_path) noexcept {
    int fd = -1;
    do {
        fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        // an existing lock file we may not write (a read-only store): a read descriptor locks too
        do {
            fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        } while (fd < 0 && errno == EINTR);
    }
    return fd;
}

/// flock without waiting: 0, or the errno (EWOULDBLOCK when someone holds a conflicting lock).
int try_flock(int fd, int operation) noexcept {
    int rc = 0;
    do {
        rc = ::flock(fd, operation | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    return rc == 0 ? 0 : errno;
}

}  // namespace

std::string store_lock::lock_path_of(const std::string& store_path) {
    std::error_code ec;
    std::filesystem::path resolved = std::filesystem::weakly_canonical(store_path, ec);
    if (ec || resolved.empty()) {
        resolved = store_path;
    }
    return resolved.string() + ".lock";
}

store_lock::store_lock(std::string store_path, int fd, bool exclusive) noexcept
    : store_path_(std::move(store_path)), fd_(fd), exclusive_(exclusive) {}

store_lock::store_lock(store_lock&& other) noexcept
    : store_path_(std::move(other.store_path_)),
      fd_(std::exchange(other.fd_, -1)),
      exclusive_(other.exclusive_) {}

store_lock& store_lock::operator=(store_lock&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            ::close(fd_);  // releases the lock
        }
        store_path_ = std::move(other.store_path_);
        fd_ = std::exchange(other.fd_, -1);
        exclusive_ = other.exclusive_;
    }
    return *this;
}

store_lock::~store_lock() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

result<store_lock> store_lock::exclusive(const std::string& store_path) {
    const std::string lock_path = lock_path_of(store_path);
    const int fd = open_lock_file(lock_path);
    if (fd < 0) {
        return error{errc::store_failure, about_file(store_path) + "cannot create its lock file '" +
                                              lock_path + "': " + reason(errno)};
    }
    if (const int err = try_flock(fd, LOCK_EX); err != 0) {
        ::close(fd);
        if (err == EWOULDBLOCK) {
            return error{errc::store_busy,
                         about_file(store_path) +
                             "in use by another process (one that has the store open holds its "
                             "lock file '" +
                             lock_path + "'); stop it first"};
        }
        return error{errc::store_failure,
                     about_file(store_path) + "cannot lock '" + lock_path + "': " + reason(err)};
    }
    return store_lock(store_path, fd, true);
}

result<store_lock> store_lock::shared(const std::string& store_path, duration wait,
                                      bool if_possible) {
    const std::string lock_path = lock_path_of(store_path);
    const int fd = open_lock_file(lock_path);
    if (fd < 0) {
        const int err = errno;
        if (if_possible) {
            return store_lock(store_path, -1, false);
        }
        return error{errc::store_failure, about_file(store_path) + "cannot create its lock file '" +
                                              lock_path + "': " + reason(err) +
                                              " (check that its directory exists and is writable)"};
    }
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
        const int err = try_flock(fd, LOCK_SH);
        if (err == 0) {
            return store_lock(store_path, fd, false);
        }
        if (err != EWOULDBLOCK) {
            ::close(fd);
            return error{errc::store_failure, about_file(store_path) + "cannot lock '" + lock_path +
                                                  "': " + reason(err)};
        }
        if (std::chrono::steady_clock::now() >= until) {
            ::close(fd);
            return error{errc::store_busy,
                         about_file(store_path) +
                             "another process is deleting or replacing the store (it holds the "
                             "lock file '" +
                             lock_path + "' exclusively); try again when it is done"};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
}

}  // namespace saga::sqlite
