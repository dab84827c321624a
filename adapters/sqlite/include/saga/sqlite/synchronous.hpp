#pragma once
/// @file synchronous.hpp
/// How hard the SQLite stores push a commit to the disk (`store_options::sync`,
/// `journal_store_options::sync`).

namespace saga::sqlite {

/// How hard a commit is pushed to the disk before its handler hears of it.
enum class synchronous {
    /// a committed transition survives power loss: the WAL is fsynced at every commit
    full,
    /// a committed transition survives a crash of the process, but the last commits may be lost
    /// on power loss or an OS crash (the WAL is fsynced at checkpoints only)
    normal,
};

}  // namespace saga::sqlite
