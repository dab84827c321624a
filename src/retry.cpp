#include <saga/retry.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace saga {
namespace {
// splitmix64: a tiny, good mixer for deterministic jitter.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
}  // namespace

duration retry_policy::backoff(std::uint32_t attempt, std::uint64_t seed) const {
    // Zero stays zero: 0 * pow() overflowed to infinity would be NaN, and llround(NaN) garbage.
    if (initial_backoff.count() <= 0) return duration{0};
    const double base = static_cast<double>(initial_backoff.count()) *
                        std::pow(multiplier, static_cast<double>(attempt > 0 ? attempt - 1 : 0));
    const double capped = std::min(base, static_cast<double>(max_backoff.count()));
    const double unit =
        static_cast<double>(mix(seed ^ (std::uint64_t{attempt} << 32)) >> 11) * 0x1.0p-53;
    const double spread = capped * jitter * (2.0 * unit - 1.0);
    const double ms = std::clamp(capped + spread, 0.0, static_cast<double>(max_backoff.count()));
    return duration{static_cast<duration::rep>(std::llround(ms))};
}

result<void> retry_policy::validate() const {
    if (max_attempts == 0)
        return error{errc::invalid_definition, "retry max_attempts must be at least 1"};
    if (initial_backoff.count() < 0)
        return error{errc::invalid_definition, "retry initial_backoff must not be negative"};
    if (max_backoff < initial_backoff)
        return error{errc::invalid_definition,
                     "retry max_backoff must not be below initial_backoff"};
    if (!(multiplier >= 1.0))
        return error{errc::invalid_definition, "retry multiplier must be at least 1"};
    if (!(jitter >= 0.0 && jitter <= 1.0))
        return error{errc::invalid_definition, "retry jitter must be between 0 and 1"};
    return success();
}

}  // namespace saga
