#pragma once
// Unit paths, message ids and idempotency keys: one codec, derived only from
// (saga id, unit, direction, generation, attempt), so a replay produces the same ids.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <saga/events.hpp>

namespace saga::machine {

/// "name[3]" for item 3 of for-each step "name".
[[nodiscard]] std::string item_key(std::string_view name, std::size_t index);
/// "name[3]" -> "name"; "name" -> "name".
[[nodiscard]] std::string_view base_name(std::string_view unit);
/// "name[3]" -> 3; "name" -> nothing.
[[nodiscard]] std::optional<std::size_t> item_index(std::string_view unit);

/// `<saga>/<unit>` (forward) or `<saga>/<unit>/compensate`, with `~r<generation>` after an
/// operator retry.
[[nodiscard]] std::string idempotency_key(std::string_view saga_id, std::string_view unit,
                                          direction dir, std::uint32_t forward_generation,
                                          std::uint32_t compensation_generation);

/// What an idempotency key says about the attempt it belongs to.
struct key_parts {
    direction dir = direction::forward;
    std::uint32_t generation = 0;
};
/// Parses what `idempotency_key` made (the unit is known from the envelope); nothing when
/// `key` was not made for `saga_id` and `unit`.
[[nodiscard]] std::optional<key_parts> parse_idempotency_key(std::string_view key,
                                                             std::string_view saga_id,
                                                             std::string_view unit);

/// `<saga>/<unit>/<f|c><generation>/<attempt>`: the message id of a command.
[[nodiscard]] std::string message_id(std::string_view saga_id, std::string_view unit, direction dir,
                                     std::uint32_t generation, std::uint32_t attempt);

/// Whether `name` is a valid step name: 1 to 100 of letters, digits, '_', '-', '.'; so no id
/// separator ('/', '[', ']', '|', '~') can appear in one.
[[nodiscard]] bool valid_step_name(std::string_view name) noexcept;

/// A seed for the deterministic jitter of `unit`'s retries in direction `dir`.
[[nodiscard]] std::uint64_t jitter_seed(std::uint64_t seed, std::string_view saga_id,
                                        std::string_view unit, direction dir);

}  // namespace saga::machine
