#pragma once
// Schema v1 -> journal: an instance as today's engine stores it (record with the JSON execution
// state, its timers, its unreleased outbox messages) becomes the first journal write of the same
// instance in a journal store: a head and one record carrying a snapshot of the typed state,
// the data and the messages still to release. Used by the SQLite v1 -> v2 migration.

#include <span>
#include <string>

#include <saga/journal_store.hpp>
#include <saga/state_store.hpp>

namespace saga::legacy {

/// The journal write that continues `rec` where it stands. `timers` and `pending` are those of
/// `rec.id` (others are ignored); `consumed` are the message ids v1's inbox holds for `rec.id`.
/// `errc::bad_data` if the record's state cannot be read.
[[nodiscard]] result<journal_write> migrate_v1(const instance_record& rec,
                                               std::span<const timer_record> timers,
                                               std::span<const outbox_record> pending,
                                               std::span<const std::string> consumed = {});

}  // namespace saga::legacy
