#pragma once
// The two tables telemetry keys on, in one place: the level each history entry is logged at
// (docs/operations.md, "Log lines"), and the saga-level events that end a saga or stop it for
// an operator. They are today's tables of src/telemetry.cpp, which keys them on history event
// names; the journal telemetry uses the same names for its log lines.

#include <optional>
#include <string_view>

#include <saga/events.hpp>
#include <saga/log.hpp>
#include <saga/status.hpp>

namespace saga::telemetry {

/// The level the history entry named `event` is logged at: error, warn or info as listed in
/// docs/operations.md, debug for every other name.
[[nodiscard]] log_level level_of(std::string_view event) noexcept;

/// The status a saga-level outcome event settles the saga in (completed, compensated, cancelled,
/// failed, compensation_failed); nothing for any other event.
[[nodiscard]] std::optional<saga_status> ending_of(event_type t) noexcept;
/// Same, by history event name.
[[nodiscard]] std::optional<saga_status> ending_of(std::string_view event) noexcept;

}  // namespace saga::telemetry
