#include <saga/json_limits.hpp>

#include <fmt/format.h>

#include <utility>
#include <vector>

namespace saga {
namespace {

/// Thrown from the parser callback to stop at the first level too deep; never leaves this file.
struct too_deep {};

}  // namespace

result<nlohmann::json> parse_json(std::string_view text, std::string_view what,
                                  const json_limits& limits) {
    if (text.size() > limits.max_bytes)
        return error{errc::limit_exceeded, fmt::format("{} is {} bytes, over the limit of {} bytes",
                                                       what, text.size(), limits.max_bytes)};
    // The callback sees the depth of every value as the parser (which itself does not recurse)
    // opens it; stopping there means the partial tree is never deeper than the limit.
    const auto max_depth = static_cast<int>(limits.max_depth);
    auto bound = [max_depth](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
        if ((event == nlohmann::json::parse_event_t::object_start ||
             event == nlohmann::json::parse_event_t::array_start) &&
            depth >= max_depth)
            throw too_deep{};
        return true;
    };
    try {
        return nlohmann::json::parse(text.begin(), text.end(), bound);
    } catch (const too_deep&) {
        return error{
            errc::limit_exceeded,
            fmt::format("{} nests deeper than the limit of {} levels", what, limits.max_depth)};
    } catch (const nlohmann::json::exception& e) {
        return error{errc::invalid_argument,
                     fmt::format("{} is not valid JSON: {}", what, e.what())};
    }
}

result<void> check_json_depth(const nlohmann::json& value, std::string_view what,
                              const json_limits& limits) {
    // Depth-first with an explicit stack of (value, depth).
    std::vector<std::pair<const nlohmann::json*, std::size_t>> stack{{&value, 1}};
    while (!stack.empty()) {
        auto [v, depth] = stack.back();
        stack.pop_back();
        if (!v->is_structured()) continue;
        if (depth > limits.max_depth)
            return error{
                errc::limit_exceeded,
                fmt::format("{} nests deeper than the limit of {} levels", what, limits.max_depth)};
        for (const auto& child : *v) stack.emplace_back(&child, depth + 1);
    }
    return success();
}

}  // namespace saga
