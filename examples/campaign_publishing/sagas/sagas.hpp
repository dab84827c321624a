#pragma once
/// @file sagas.hpp
/// The saga definitions of campaign publishing: the four actions on a campaign (publish, pause,
/// finish, republish), the scheduled performance ingestion and the scheduled status refresh.

#include <saga/saga.hpp>

#include "../domain.hpp"
#include "../simulation.hpp"

namespace campaign {

/// publish: validate (-> PUBLISHING), reserve budget, ensure the feed, submit to the networks
/// and wait for their reviews, optionally wait for a human approval, put the ads live, activate,
/// announce `CampaignPublished` (the pivot).
[[nodiscard]] saga::result<saga::definition<campaign_action>> publish_definition(
    const simulation& sim);
/// pause: validate (ACTIVE), pause the ads, mark PAUSED (the pivot), announce `CampaignPaused`.
[[nodiscard]] saga::result<saga::definition<campaign_action>> pause_definition();
/// finish: validate (ACTIVE or PAUSED), end the ads, settle the budget, mark FINISHED (the
/// pivot), announce `CampaignFinished`.
[[nodiscard]] saga::result<saga::definition<campaign_action>> finish_definition();
/// republish: validate (-> PUBLISHING), ensure the feed, resubmit the ads and wait for their
/// reviews, put them live, activate, announce `CampaignRepublished` (the pivot).
[[nodiscard]] saga::result<saga::definition<campaign_action>> republish_definition(
    const simulation& sim);
/// Performance ingestion (seed 002): fetch every network's report (each publishes
/// `AdPerformanceDataIngested`), then have Analytics summarise the day.
[[nodiscard]] saga::result<saga::definition<ingestion_run>> ingestion_definition();
/// Status refresh (seed 003): DRAFT -> OPEN -> CLOSED -> INACTIVE by the campaigns' dates.
[[nodiscard]] saga::result<saga::definition<status_refresh>> refresh_definition();

/// Adds `network`'s branch to the submit phase of publish: create the ad (undo: withdraw it),
/// then wait for its `AdReviewed.<network>` event.
void submit_branch(saga::parallel_builder<campaign_action>& p, const std::string& network,
                   const simulation& sim);

/// Registers every definition with `engine`, and sets each network endpoint's rate limit and
/// circuit breaker.
[[nodiscard]] saga::result<void> register_sagas(saga::engine& engine, const simulation& sim);

/// The definition name of `action` ("publish" -> "publish_campaign"), or empty if unknown.
[[nodiscard]] std::string_view definition_of(std::string_view action);

}  // namespace campaign
