#pragma once
// Pieces shared by the campaign action sagas: retry policies, command builders and the steps
// that publish and republish have in common.
#include <fmt/format.h>

#include <span>

#include "sagas.hpp"

namespace campaign::detail {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// Calls to our own services: a few quick retries.
inline const saga::retry_policy service_retry = saga::retry_policy::exponential(8, 20ms, 500ms);
/// Calls to the ad networks: more patience (rate limits, open circuits), exponential backoff.
inline const saga::retry_policy network_retry = saga::retry_policy::exponential(12, 50ms, 1s);
/// Compensations never give up on a transient failure: an undo must happen.
inline const saga::retry_policy undo_retry = saga::retry_policy::forever(50ms, 1s);
/// The timeout of each remote attempt (a lost command is sent again, same idempotency key).
inline constexpr saga::duration step_timeout = 1500ms;

/// The status the compensation of a status change puts back (found by the forward key).
inline saga::command revert_status(const campaign_action& a) {
    return {"revert_status", {{"campaign", a.campaign_id}}};
}

/// The ad-side undo of enable / pause / end / update (found by the forward key).
inline saga::command restore_ad(const campaign_action& a) {
    return {"restore_ad", {{"campaign", a.campaign_id}}};
}

/// A status change of the campaign, allowed from `allowed`.
inline auto set_status(std::vector<std::string> allowed, std::string to) {
    return [allowed = std::move(allowed), to = std::move(to)](const campaign_action& a) {
        return saga::command{"set_status",
                             {{"campaign", a.campaign_id}, {"allowed", allowed}, {"to", to}}};
    };
}

/// Starts an action: checks the campaign's status and moves it to `to` (if not empty).
inline auto begin_action(std::string action, std::vector<std::string> allowed, std::string to) {
    return [action = std::move(action), allowed = std::move(allowed),
            to = std::move(to)](const campaign_action& a) {
        return saga::command{
            "begin_action",
            {{"campaign", a.campaign_id}, {"action", action}, {"allowed", allowed}, {"to", to}}};
    };
}

/// Copies the campaign details of Campaign Management's reply into the saga data.
inline void take_campaign(campaign_action& a, const json& r) {
    const auto& c = r.at("campaign");
    a.name = c.value("name", "");
    a.merchant = c.value("merchant", "");
    a.networks = c.value("networks", std::vector<std::string>{});
    a.products = c.value("products", std::vector<std::string>{});
    a.budget_cents = c.value("budget_cents", std::int64_t{0});
    a.creative = c.value("creative", "");
    a.previous_status = r.value("previous_status", "");
}

/// Announces `event` on the campaign-events topic (through Campaign Management).
inline auto announce(std::string event) {
    return [event = std::move(event)](const campaign_action& a) {
        return saga::command{
            "announce",
            {{"campaign", a.campaign_id},
             {"event", event},
             {"details",
              {{"ads", a.ads}, {"reservation", a.reservation_id}, {"networks", a.networks}}}}};
    };
}

/// The feed phase: every product in the campaign's feed and compliant, in chunks of 4, two at a
/// time; each product's result is kept; one rejected product fails the phase (after all ran).
void ensure_feed(saga::for_each_builder<campaign_action, std::string>& each);

/// The review wait of `network`: its `AdReviewed.<network>` event, with a deadline.
void review_step(saga::sequence_builder<campaign_action>& branch, const std::string& network,
                 const simulation& sim);

/// The go-live phase: each network's approved ad goes live (undo: back to approved).
void go_live(saga::parallel_builder<campaign_action>& p);

}  // namespace campaign::detail
