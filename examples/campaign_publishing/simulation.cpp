#include "simulation.hpp"

#include "domain.hpp"

namespace campaign {

std::vector<network_profile> simulation::default_networks() {
    using std::chrono::milliseconds;
    return {
        {.name = "google",
         .latency = milliseconds{3},
         .rate_per_second = 400,
         .burst = 40,
         .failure_factor = 0.5,
         .ad_prefix = "G-AD-",
         .rejected_words = {"guaranteed"},
         .manual_review_words = {}},
        {.name = "instagram",
         .latency = milliseconds{5},
         .rate_per_second = 200,
         .burst = 20,
         .failure_factor = 1.0,
         .ad_prefix = "ig_",
         .rejected_words = {"giveaway"},
         .manual_review_words = {}},
        {.name = "tiktok",
         .latency = milliseconds{8},
         .rate_per_second = 100,
         .burst = 10,
         .failure_factor = 1.5,
         .ad_prefix = "tt-",
         .rejected_words = {"miracle", "guaranteed"},
         .manual_review_words = {}},
        {.name = "snapchat",
         .latency = milliseconds{6},
         .rate_per_second = 150,
         .burst = 15,
         .failure_factor = 1.2,
         .ad_prefix = "snap:",
         .rejected_words = {},
         .manual_review_words = {"wine", "beer"}},
    };
}

const network_profile* simulation::network(std::string_view name) const {
    for (const auto& n : networks)
        if (n.name == name) return &n;
    return nullptr;
}

std::uint64_t mix(std::uint64_t seed, std::string_view what) {
    std::uint64_t h = 14695981039346656037ull ^ seed;
    for (unsigned char c : what) {
        h ^= c;
        h *= 1099511628211ull;
    }
    // splitmix64 finaliser: spreads the bits of the FNV hash
    h += 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

double chance(std::uint64_t seed, std::string_view what) {
    return static_cast<double>(mix(seed, what) >> 11) * 0x1.0p-53;
}

std::filesystem::path data_paths::service(std::string_view service) const {
    auto p = store;
    p.replace_extension();
    p += ".";
    p += std::string(service);
    p += ".db";
    return p;
}

}  // namespace campaign
