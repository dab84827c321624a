#include "domain.hpp"

#include <algorithm>

namespace campaign {

bool is_network(std::string_view name) {
    return std::find(all_networks.begin(), all_networks.end(), name) != all_networks.end();
}

std::string endpoints::network(std::string_view network) {
    return "adnet." + std::string(network);
}

std::string signals::ad_reviewed(std::string_view network) {
    return "AdReviewed." + std::string(network);
}

std::string_view to_string(campaign_status s) noexcept {
    switch (s) {
        case campaign_status::draft: return "DRAFT";
        case campaign_status::publishing: return "PUBLISHING";
        case campaign_status::active: return "ACTIVE";
        case campaign_status::paused: return "PAUSED";
        case campaign_status::finished: return "FINISHED";
    }
    return "DRAFT";
}

std::optional<campaign_status> parse_campaign_status(std::string_view s) noexcept {
    for (auto c : {campaign_status::draft, campaign_status::publishing, campaign_status::active,
                   campaign_status::paused, campaign_status::finished})
        if (to_string(c) == s) return c;
    return std::nullopt;
}

bool campaign_action::targets(std::string_view network) const {
    return std::find(networks.begin(), networks.end(), network) != networks.end();
}

}  // namespace campaign
