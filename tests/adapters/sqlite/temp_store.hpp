#pragma once
/// @file temp_store.hpp
/// Temporary database files for the SQLite store tests, and the immutable attribute.

#include <catch2/catch.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <saga/journal_store.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>
#include <saga/sqlite/sqlite_store.hpp>
#include <saga/state_store.hpp>

namespace saga::sqlite::test {

/// A unique path under the temp directory; the file and its -wal, -shm, -journal and .lock siblings
/// are removed when this goes (and before, in case an earlier run left them).
class temp_path {
public:
    temp_path() : path_(unique_name()) { remove_files(); }
    ~temp_path() { remove_files(); }
    temp_path(const temp_path&) = delete;
    temp_path& operator=(const temp_path&) = delete;

    [[nodiscard]] const std::string& str() const noexcept { return path_; }

    void remove_files() const noexcept {
        for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"}) {
            std::error_code ec;
            std::filesystem::remove(path_ + suffix, ec);
        }
    }

private:
    static std::string unique_name() {
        static std::atomic<unsigned> counter{0};
        std::random_device random;
        const std::string name = "saga-sqlite-test-" + std::to_string(::getpid()) + "-" +
                                 std::to_string(counter++) + "-" + std::to_string(random()) + ".db";
        return (std::filesystem::temp_directory_path() / name).string();
    }

    std::string path_;
};

/// A fresh directory under the temp directory, removed (with its content) at the end.
class temp_dir {
public:
    temp_dir()
        : path_(std::filesystem::temp_directory_path() /
                ("saga-sqlite-dir-" + std::to_string(::getpid()) + "-" +
                 std::to_string(std::random_device{}()))) {
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] std::string file(const std::string& name) const {
        return (path_ / name).string();
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

/// The number of a leaf page of table `table` (from SQLite's dbstat table).
inline std::int64_t leaf_page_of(const std::string& path, const std::string& table, int which = 0) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement q(db,
                        "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' "
                        "ORDER BY pageno LIMIT 1 OFFSET ?2");
    q.bind(1, table);
    q.bind(2, which);
    REQUIRE(q.executeStep());
    return q.getColumn(0).getInt64();
}

/// Overwrites 64 bytes of page `page` (4096-byte pages), past its 8-byte header: the cell
/// pointers of a leaf page, so that its cells point to nonsense, as a torn or rotten write does.
inline void damage_page(const std::string& path, std::int64_t page) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    f.seekp((page - 1) * 4096 + 8);
    const std::string junk(64, '\xa5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    REQUIRE(f);
}

/// Opens a store on `path`, requiring success.
inline std::shared_ptr<sqlite_store> open_store(const std::string& path,
                                                store_options options = {}) {
    options.path = path;
    auto opened = sqlite_store::open(std::move(options));
    INFO((opened ? std::string("opened") : opened.error().what()));
    REQUIRE(opened);
    return std::move(opened).value();
}

/// A fresh store on a fresh file, as a `state_store`; the files go with the last reference.
inline std::shared_ptr<state_store> fresh_store(store_options options = {}) {
    auto path = std::make_shared<temp_path>();
    std::shared_ptr<sqlite_store> store = open_store(path->str(), std::move(options));
    state_store* raw = store.get();
    return {raw, [store = std::move(store), path = std::move(path)](state_store*) mutable {
                store.reset();  // closes the file first
                path.reset();
            }};
}

/// Opens a journal store on `path`, requiring success.
inline std::shared_ptr<sqlite_journal_store> open_journal_store(
    const std::string& path, journal_store_options options = {}) {
    options.path = path;
    auto opened = sqlite_journal_store::open(std::move(options));
    INFO((opened ? std::string("opened") : opened.error().what()));
    REQUIRE(opened);
    return std::move(opened).value();
}

/// A fresh journal store on a fresh file, as a `journal_store`; the files go with the last
/// reference.
inline std::shared_ptr<journal_store> fresh_journal_store(journal_store_options options = {}) {
    auto path = std::make_shared<temp_path>();
    std::shared_ptr<sqlite_journal_store> store =
        open_journal_store(path->str(), std::move(options));
    journal_store* raw = store.get();
    return {raw, [store = std::move(store), path = std::move(path)](journal_store*) mutable {
                store.reset();  // closes the file first
                path.reset();
            }};
}

/// Sets the immutable attribute of a file or directory (which even root cannot write through)
/// for its lifetime. `ok()` is false where the file system or the capabilities do not allow it.
class immutable_flag {
public:
    explicit immutable_flag(const std::string& path) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
        int flags = 0;
        if (fd_ >= 0 && ::ioctl(fd_, FS_IOC_GETFLAGS, &flags) == 0) {
            flags |= FS_IMMUTABLE_FL;
            ok_ = ::ioctl(fd_, FS_IOC_SETFLAGS, &flags) == 0;
        }
    }
    ~immutable_flag() {
        int flags = 0;
        if (ok_ && ::ioctl(fd_, FS_IOC_GETFLAGS, &flags) == 0) {
            flags &= ~FS_IMMUTABLE_FL;
            ::ioctl(fd_, FS_IOC_SETFLAGS, &flags);
        }
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    immutable_flag(const immutable_flag&) = delete;
    immutable_flag& operator=(const immutable_flag&) = delete;
    [[nodiscard]] bool ok() const noexcept { return ok_; }

private:
    int fd_ = -1;
    bool ok_ = false;
};

/// The bytes of a file.
inline std::vector<char> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace saga::sqlite::test
