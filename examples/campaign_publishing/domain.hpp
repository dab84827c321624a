#pragma once
/// @file domain.hpp
/// The campaign-publishing domain: the names every process agrees on (endpoints, topics, saga
/// names, event types), the campaign lifecycle, and the data the sagas carry.

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace campaign {

/// The ad networks a campaign can be published to.
inline constexpr std::array<std::string_view, 4> all_networks{"google", "instagram", "tiktok",
                                                              "snapchat"};

/// True if `name` is one of `all_networks`.
[[nodiscard]] bool is_network(std::string_view name);

/// Transport endpoints (queues). Each participant service consumes its own.
namespace endpoints {
inline constexpr std::string_view orchestrator = "campaign.orchestrator";
inline constexpr std::string_view campaigns = "campaigns";
inline constexpr std::string_view catalog = "catalog";
inline constexpr std::string_view billing = "billing";
inline constexpr std::string_view analytics = "analytics";
/// analytics' subscription to the event topics
inline constexpr std::string_view analytics_events = "analytics.events";
/// The endpoint of the Ad Network Integration service for `network` ("adnet.google", ...).
[[nodiscard]] std::string network(std::string_view network);
}  // namespace endpoints

/// Topics (publish/subscribe).
namespace topics {
/// `CampaignPublished`, `CampaignPaused`, ... from Campaign Management
inline constexpr std::string_view campaign_events = "campaign-events";
/// `AdPerformanceDataIngested` from Ad Network Integration
inline constexpr std::string_view ad_events = "ad-events";
}  // namespace topics

/// Saga (definition) names.
namespace sagas {
inline constexpr std::string_view publish = "publish_campaign";
inline constexpr std::string_view pause = "pause_campaign";
inline constexpr std::string_view finish = "finish_campaign";
inline constexpr std::string_view republish = "republish_campaign";
inline constexpr std::string_view ingest = "ingest_performance";
inline constexpr std::string_view refresh = "refresh_campaign_status";
/// Whether `definition` is one of the actions an operator starts on a campaign (publish, pause,
/// finish, republish), not a scheduled one.
[[nodiscard]] constexpr bool is_action(std::string_view definition) {
    return definition == publish || definition == pause || definition == finish ||
           definition == republish;
}
}  // namespace sagas

/// Signals and events the sagas wait for.
namespace signals {
/// the human approval of a publish: payload `{"approved": bool, "by": "...", "note": "..."}`
inline constexpr std::string_view approval = "approval";
/// The review result event of `network` ("AdReviewed.google"): payload
/// `{"ad_id": "...", "approved": bool, "reason": "..."}`.
[[nodiscard]] std::string ad_reviewed(std::string_view network);
}  // namespace signals

/// The publishing lifecycle of a campaign (owned by Campaign Management).
enum class campaign_status { draft, publishing, active, paused, finished };

/// "DRAFT", "PUBLISHING", "ACTIVE", "PAUSED", "FINISHED".
[[nodiscard]] std::string_view to_string(campaign_status s) noexcept;
/// Parses a status name; nullopt for an unknown name.
[[nodiscard]] std::optional<campaign_status> parse_campaign_status(std::string_view s) noexcept;

/// The outcome of one product in the feed phase.
struct product_result {
    std::string sku;
    /// "in_feed" or "rejected"
    std::string status;
    std::string error;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(product_result, sku, status, error)

/// The data of the four action sagas (publish, pause, finish, republish). Campaign details are
/// filled in from Campaign Management's reply to the first step; everything after comes from the
/// participants' replies and events.
struct campaign_action {
    std::string campaign_id;
    /// "publish", "pause", "finish" or "republish"
    std::string action;
    /// who asked for it (CLI user, "demo", ...)
    std::string requested_by;
    /// publish: wait for a human approval signal before going live
    bool require_approval = false;

    // ---- from Campaign Management
    std::string name;
    std::string merchant;
    std::vector<std::string> networks;
    std::vector<std::string> products;
    std::int64_t budget_cents = 0;
    std::string creative;
    /// the status before this action, restored by the compensation of the first step
    std::string previous_status;

    // ---- from the other participants
    std::string reservation_id;
    /// network -> ad id
    std::map<std::string, std::string> ads;
    /// network -> "approved" or "rejected: <reason>"
    std::map<std::string, std::string> reviews;
    /// per-product results of the feed phase
    std::vector<product_result> feed;
    std::string approved_by;

    /// True if the campaign is published to `network`.
    [[nodiscard]] bool targets(std::string_view network) const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(campaign_action, campaign_id, action, requested_by,
                                                require_approval, name, merchant, networks,
                                                products, budget_cents, creative, previous_status,
                                                reservation_id, ads, reviews, feed, approved_by)

/// The metrics one network reported for one ad in one ingestion tick.
struct ad_metrics {
    std::string network;
    std::string campaign_id;
    std::string ad_id;
    std::int64_t impressions = 0;
    std::int64_t clicks = 0;
    std::int64_t conversions = 0;
    std::int64_t spend_cents = 0;
    std::int64_t revenue_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ad_metrics, network, campaign_id, ad_id,
                                                impressions, clicks, conversions, spend_cents,
                                                revenue_cents)

/// The data of a performance-ingestion run (one per schedule tick).
struct ingestion_run {
    /// the tick's start, milliseconds since the Unix epoch
    std::int64_t as_of_ms = 0;
    /// network -> ads reported
    std::map<std::string, std::int64_t> reported;
    /// the day summarised (YYYY-MM-DD, UTC) and its campaign count
    std::string day;
    std::int64_t campaigns_summarised = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ingestion_run, as_of_ms, reported, day,
                                                campaigns_summarised)

/// The data of a status-refresh run (seed 003: DRAFT -> OPEN -> CLOSED -> INACTIVE by dates).
struct status_refresh {
    std::int64_t as_of_ms = 0;
    std::int64_t opened = 0;
    std::int64_t closed = 0;
    std::int64_t inactivated = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(status_refresh, as_of_ms, opened, closed,
                                                inactivated)

}  // namespace campaign
