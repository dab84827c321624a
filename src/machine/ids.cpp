#include "ids.hpp"

#include <fmt/format.h>

#include <charconv>
#include <functional>

namespace saga::machine {

std::string item_key(std::string_view name, std::size_t index) {
    return fmt::format("{}[{}]", name, index);
}

std::string_view base_name(std::string_view unit) {
    const auto pos = unit.find('[');
    return pos == std::string_view::npos ? unit : unit.substr(0, pos);
}

std::optional<std::size_t> item_index(std::string_view unit) {
    const auto open = unit.find('[');
    if (open == std::string_view::npos || !unit.ends_with(']')) return std::nullopt;
    std::size_t i = 0;
    const auto* first = unit.data() + open + 1;
    const auto* last = unit.data() + unit.size() - 1;
    auto [ptr, ec] = std::from_chars(first, last, i);
    if (ec != std::errc{} || ptr != last || first == last) return std::nullopt;
    return i;
}

std::string idempotency_key(std::string_view saga_id, std::string_view unit, direction dir,
                            std::uint32_t forward_generation,
                            std::uint32_t compensation_generation) {
    auto k = forward_generation ? fmt::format("{}/{}~r{}", saga_id, unit, forward_generation)
                                : fmt::format("{}/{}", saga_id, unit);
    if (dir == direction::forward) return k;
    k += "/compensate";
    if (compensation_generation) k += fmt::format("~r{}", compensation_generation);
    return k;
}

namespace {
// "~r<n>" at the front of `s` -> n (and the rest), or 0 when `s` does not start with "~r".
std::optional<std::uint32_t> generation_prefix(std::string_view& s) {
    if (!s.starts_with("~r")) return 0;
    std::uint32_t g = 0;
    const auto* first = s.data() + 2;
    const auto* last = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(first, last, g);
    if (ec != std::errc{} || ptr == first || g == 0) return std::nullopt;
    s.remove_prefix(static_cast<std::size_t>(ptr - s.data()));
    return g;
}
}  // namespace

std::optional<key_parts> parse_idempotency_key(std::string_view key, std::string_view saga_id,
                                               std::string_view unit) {
    if (!key.starts_with(saga_id) || key.size() <= saga_id.size() || key[saga_id.size()] != '/')
        return std::nullopt;
    key.remove_prefix(saga_id.size() + 1);
    if (!key.starts_with(unit)) return std::nullopt;
    key.remove_prefix(unit.size());
    auto fg = generation_prefix(key);
    if (!fg) return std::nullopt;
    if (key.empty()) return key_parts{direction::forward, *fg};
    if (!key.starts_with("/compensate")) return std::nullopt;
    key.remove_prefix(11);
    auto cg = generation_prefix(key);
    if (!cg || !key.empty()) return std::nullopt;
    return key_parts{direction::compensation, *cg};
}

std::string message_id(std::string_view saga_id, std::string_view unit, direction dir,
                       std::uint32_t generation, std::uint32_t attempt) {
    return fmt::format("{}/{}/{}{}/{}", saga_id, unit, dir == direction::forward ? 'f' : 'c',
                       generation, attempt);
}

bool valid_step_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 100) return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

std::uint64_t jitter_seed(std::uint64_t seed, std::string_view saga_id, std::string_view unit,
                          direction dir) {
    // std::hash of a string_view is not specified to be stable across library versions, but a
    // replay runs the same binary; the seed only spreads backoffs.
    const std::hash<std::string_view> h;
    return seed ^ h(saga_id) ^ (h(unit) << 1) ^ (dir == direction::compensation ? 0x5bd1e995u : 0u);
}

}  // namespace saga::machine
