#include <saga/status.hpp>

#include <array>
#include <utility>

namespace saga {
namespace {
constexpr std::array<std::pair<saga_status, std::string_view>, 9> saga_names{{
    {saga_status::running, "running"},
    {saga_status::waiting, "waiting"},
    {saga_status::compensating, "compensating"},
    {saga_status::completed, "completed"},
    {saga_status::compensated, "compensated"},
    {saga_status::failed, "failed"},
    {saga_status::compensation_failed, "compensation_failed"},
    {saga_status::cancelled, "cancelled"},
    {saga_status::paused, "paused"},
}};
constexpr std::array<std::pair<step_status, std::string_view>, 10> step_names{{
    {step_status::pending, "pending"},
    {step_status::running, "running"},
    {step_status::retrying, "retrying"},
    {step_status::waiting, "waiting"},
    {step_status::completed, "completed"},
    {step_status::failed, "failed"},
    {step_status::skipped, "skipped"},
    {step_status::compensating, "compensating"},
    {step_status::compensated, "compensated"},
    {step_status::compensation_failed, "compensation_failed"},
}};
}  // namespace

std::string_view to_string(saga_status s) noexcept {
    for (auto& [v, n] : saga_names)
        if (v == s) return n;
    return "unknown";
}
std::string_view to_string(step_status s) noexcept {
    for (auto& [v, n] : step_names)
        if (v == s) return n;
    return "unknown";
}
std::optional<saga_status> parse_saga_status(std::string_view s) noexcept {
    for (auto& [v, n] : saga_names)
        if (n == s) return v;
    return std::nullopt;
}
std::optional<step_status> parse_step_status(std::string_view s) noexcept {
    for (auto& [v, n] : step_names)
        if (n == s) return v;
    return std::nullopt;
}

}  // namespace saga
