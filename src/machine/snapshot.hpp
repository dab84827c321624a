#pragma once
// The machine's state as text, for journal snapshots (a record that carries the whole state, so
// loading starts there) and for instances migrated from schema v1. Rare: not on the hot path.

#include <string>
#include <string_view>

#include <saga/error.hpp>

#include "instance.hpp"

namespace saga::machine {

[[nodiscard]] std::string encode_snapshot(const instance& s);
/// `errc::bad_data` naming what is wrong, or the state.
[[nodiscard]] result<instance> decode_snapshot(std::string_view text);

}  // namespace saga::machine
