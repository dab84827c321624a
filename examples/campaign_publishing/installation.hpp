#pragma once
/// @file installation.hpp
/// Replacing an installation (the saga store and the services' databases beside it) with a
/// fresh one, as `setup` and the demo do: only files that are what they should be, and only
/// when no process uses them.

#include <string_view>

#include <saga/error.hpp>

#include "simulation.hpp"

namespace campaign {

/// Deletes the installation at `paths`: the saga store, every service's database (each with its
/// `-wal`, `-shm` and `-journal` files) and the engine's log. Nothing at a path is fine.
/// Refuses, deleting nothing, with a message that names the file and what to do:
/// - the installation is in use: every campaign_publishing process (an orchestrator, services,
///   `serve`, a command that follows a run) holds the store's lock (`<store>.lock`, see
///   saga::sqlite::store_lock) while it runs (`errc::store_busy`);
/// - the store is not a saga store (a file that is not a SQLite database, another
///   application's database), or a service's file is not a service database (it has no
///   `replies` table);
/// - a file, or the directory, cannot be written (mode 0444, immutable, read-only mount).
/// `command` ("setup", "the demo") starts the message.
[[nodiscard]] saga::result<void> clear_installation(const data_paths& paths,
                                                    std::string_view command);

}  // namespace campaign
