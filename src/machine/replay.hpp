#pragma once
// Recovery: an instance's state from its journal, as a store's load returns it (the newest
// snapshot, then the records after it). Replaying is applying: the same `apply` that changed
// the state when each record was decided changes it again, so the result is that state exactly
// (tests/machine/test_replay.cpp checks it over thousands of random runs).

#include <span>
#include <string_view>

#include <saga/error.hpp>
#include <saga/journal_store.hpp>

#include "machine.hpp"

namespace saga::machine {

/// The state of instance `id` after `records`: the first record's snapshot when it has one,
/// then the events of every later record applied in order. `errc::bad_data` for a snapshot
/// that cannot be read.
[[nodiscard]] result<instance> replay(const compiled& def, std::string_view id,
                                      std::span<const journal_record> records);

}  // namespace saga::machine
