#pragma once
/// @file journal_codec.hpp
/// The text form of a journal record's events and released messages: compact JSON that the
/// sqlite3 shell and psql can read, written without building a JSON tree (it is on the path of
/// every commit) and read back through the bounded parser of json_limits.hpp.
///
/// Events are an array of objects with short keys; only fields that differ from their default
/// are written, and the type is its name (`to_string(event_type)`):
///
/// | key | field | | key | field |
/// |---|---|---|---|---|
/// | `t` | `type` (always) | | `s` | `status` (name; not `running`) |
/// | `u` | `unit` | | `n` | `name` |
/// | `d` | `dir` (`"compensation"`) | | `m` | `message_id` |
/// | `a` | `attempt` | | `who` | `who` |
/// | `due` | `due` (microseconds since the epoch) | | `why` | `why` |
/// | `e` | `error` | | `c` | `count` |
/// | `tr` | `transient` (`true`) | | `p` | `payload` (not null) |
/// | `unc` | `uncertain` (when set) | | `r` | `reply` (name; not `success`) |
///
/// ```json
/// [{"t":"attempt_started","u":"reserve_budget","a":1,"due":1767225600000000,"n":"budget"},
///  {"t":"attempt_failed","u":"reserve_budget","a":1,"e":"timeout","tr":true,"unc":true}]
/// ```
///
/// Released messages are an array of `{"to":destination,"topic":true,"msg":envelope}`, the
/// envelope as `encode(envelope)` writes it (`topic` only when true).
///
/// Times are integer microseconds since the Unix epoch (finer parts are dropped). Strings are
/// escaped as nlohmann's `dump` escapes them (`\"`, `\\`, `\n` ..., other control characters as
/// `\u00xx`, everything else as UTF-8); invalid UTF-8, in a string or in a payload, becomes
/// U+FFFD as with `dump(..., error_handler_t::replace)`, so encoding never fails.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/error.hpp>
#include <saga/events.hpp>
#include <saga/journal_store.hpp>
#include <saga/json_limits.hpp>

namespace saga {

/// The limits `decode_events` and `decode_output` apply by default: as deep as data a store
/// reads back may be (a payload of 64 levels from a transport inside a record's structure,
/// with room for the user's own data), yet shallow enough that copying a value cannot overflow
/// a stack.
inline constexpr json_limits journal_json_limits{.max_depth = 512,
                                                 .max_bytes = std::size_t{256} << 20};

/// The events of a journal record as JSON text (see the file comment). Never fails.
[[nodiscard]] std::string encode_events(std::span<const event> events);
/// Reads what `encode_events` wrote. Errors: `errc::limit_exceeded` past `limits`;
/// `errc::invalid_argument` for text that is not JSON or not events, naming the event and the
/// field (`"journal events: [2].a (attempt) must be an unsigned 32-bit integer"`), an unknown
/// event type or field included. Never throws.
[[nodiscard]] result<std::vector<event>> decode_events(
    std::string_view text, const json_limits& limits = journal_json_limits);

/// The messages of a journal record as JSON text (see the file comment). Never fails.
[[nodiscard]] std::string encode_output(std::span<const outbound_message> messages);
/// Reads what `encode_output` wrote; errors as `decode_events`, a malformed envelope with the
/// reason `decode(envelope)` would give. Never throws.
[[nodiscard]] result<std::vector<outbound_message>> decode_output(
    std::string_view text, const json_limits& limits = journal_json_limits);

/// `t` as integer microseconds since the Unix epoch, rounded down: how journal texts and
/// stores write times.
[[nodiscard]] std::int64_t to_unix_micros(time_point t) noexcept;
/// The time `micros` microseconds after the Unix epoch; nothing when `time_point` cannot hold
/// it (about 292 years either side of 1970 with nanosecond time points).
[[nodiscard]] std::optional<time_point> from_unix_micros(std::int64_t micros) noexcept;

}  // namespace saga
