#pragma once
/// @file json_limits.hpp
/// Bounded JSON: every place where JSON enters saga from outside (transport messages, admin
/// request bodies, signal and event payloads, data read back from a store) parses it here, so
/// a hostile or broken input is refused with an error that names the limit instead of
/// exhausting the stack or memory. Copying or destroying a deeply nested `nlohmann::json`
/// recurses once per level; 100,000 nested arrays (200 KB of text) overflow a thread's stack.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string_view>

#include <saga/error.hpp>

namespace saga {

/// Limits on one JSON text or value.
struct json_limits {
    /// the deepest nesting of arrays and objects accepted (the top-level value is depth 1)
    std::size_t max_depth = 64;
    /// the longest text accepted, in bytes
    std::size_t max_bytes = std::size_t{16} << 20;
};

/// Parses `text` as JSON within `limits`. Errors: `errc::limit_exceeded` naming `what` and the
/// limit (depth or size) that was passed, or `errc::invalid_argument` with the parser's reason.
[[nodiscard]] result<nlohmann::json> parse_json(std::string_view text, std::string_view what,
                                                const json_limits& limits = {});

/// Checks that a value already in memory nests no deeper than `limits.max_depth` (without
/// recursing, so it is safe on any value). `errc::limit_exceeded` naming `what`, or success.
[[nodiscard]] result<void> check_json_depth(const nlohmann::json& value, std::string_view what,
                                            const json_limits& limits = {});

}  // namespace saga
