// The publish saga, the reference saga of this repository (docs/campaign-publishing.md shows
// the marked part verbatim).
#include "common.hpp"

namespace campaign {

using namespace detail;

// [doc:submit_branch]
/// One network's branch of the submit phase: create the ad (rate-limited, retried with backoff
/// and behind the endpoint's circuit breaker; undo: withdraw it), then wait for its review.
void submit_branch(saga::parallel_builder<campaign_action>& p, const std::string& network,
                   const simulation& sim) {
    const auto endpoint = endpoints::network(network);
    auto targeted = [network](const campaign_action& a) { return a.targets(network); };
    auto& branch = p.branch(network);
    branch
        .remote("submit_" + network, endpoint,
                [](const campaign_action& a) {
                    return saga::command{"create_ad",
                                         {{"campaign", a.campaign_id}, {"creative", a.creative}}};
                })
        .when(targeted)
        .on_reply([network](campaign_action& a, const json& r) { a.ads[network] = r.at("ad_id"); })
        .compensate_remote(endpoint,
                           [](const campaign_action& a) {
                               return saga::command{"withdraw_ad", {{"campaign", a.campaign_id}}};
                           })
        .retry(network_retry)
        .timeout(step_timeout);
    review_step(branch, network, sim);
}
// [/doc:submit_branch]

// [doc:publish_definition]
saga::result<saga::definition<campaign_action>> publish_definition(const simulation& sim) {
    saga::definition_builder<campaign_action> b(std::string(sagas::publish), 1);
    b.default_retry(service_retry).default_compensation_retry(undo_retry);
    // 1. validate the campaign and mark it PUBLISHING (undo: back to the status before)
    b.remote("validate", std::string(endpoints::campaigns),
             begin_action("publish", {"DRAFT"}, "PUBLISHING"))
        .on_reply(take_campaign)
        .compensate_remote(std::string(endpoints::campaigns), revert_status)
        .timeout(step_timeout)
        // 2. reserve the budget (undo: release the reservation)
        .remote("reserve_budget", std::string(endpoints::billing),
                [](const campaign_action& a) {
                    return saga::command{"reserve",
                                         {{"campaign", a.campaign_id},
                                          {"merchant", a.merchant},
                                          {"amount_cents", a.budget_cents}}};
                })
        .on_reply(
            [](campaign_action& a, const json& r) { a.reservation_id = r.at("reservation_id"); })
        .compensate_remote(std::string(endpoints::billing),
                           [](const campaign_action& a) {
                               return saga::command{"release", {{"campaign", a.campaign_id}}};
                           })
        .timeout(step_timeout)
        // 3. every product in the feed and compliant, in chunks, with per-product results
        .for_each(
            "ensure_feed", [](const campaign_action& a) { return a.products; }, ensure_feed)
        // 4. submit to the selected networks in parallel, and wait for each review
        .parallel("submit",
                  [&](saga::parallel_builder<campaign_action>& p) {
                      for (auto network : all_networks) submit_branch(p, std::string(network), sim);
                  })
        // 5. optionally, a human approval
        .wait("approval", std::string(signals::approval))
        .when([](const campaign_action& a) { return a.require_approval; })
        .on_signal([](campaign_action& a, const json& s) -> saga::result<void> {
            a.approved_by = s.value("by", "someone");
            if (!s.value("approved", false))
                return saga::permanent_error(
                    fmt::format("approval refused by {}: {}", a.approved_by, s.value("note", "")));
            return saga::success();
        })
        .deadline(sim.approval_deadline)
        // 6. the approved ads go live, the campaign becomes ACTIVE, and the world hears of it
        .parallel("go_live", go_live)
        .remote("activate", std::string(endpoints::campaigns), set_status({"PUBLISHING"}, "ACTIVE"))
        .compensate_remote(std::string(endpoints::campaigns), revert_status)
        .timeout(step_timeout)
        .remote("announce", std::string(endpoints::campaigns), announce("CampaignPublished"))
        .timeout(step_timeout)
        .pivot();
    return std::move(b).build();
}
// [/doc:publish_definition]

namespace detail {

void ensure_feed(saga::for_each_builder<campaign_action, std::string>& each) {
    each.remote(
            std::string(endpoints::catalog),
            [](const campaign_action& a, const std::string& sku) {
                return saga::command{"ensure_in_feed", {{"campaign", a.campaign_id}, {"sku", sku}}};
            })
        .compensate_remote(std::string(endpoints::catalog),
                           [](const campaign_action& a, const std::string& sku) {
                               return saga::command{"remove_from_feed",
                                                    {{"campaign", a.campaign_id}, {"sku", sku}}};
                           })
        .chunk(4)
        .concurrency(2)
        .on_failure(saga::for_each_policy::continue_on_failure)
        .retry(service_retry)
        .compensation_retry(undo_retry)
        .timeout(step_timeout)
        .on_results([](campaign_action& a,
                       std::span<const saga::item_result> results) -> saga::result<void> {
            a.feed.clear();
            std::vector<std::string> rejected;
            for (const auto& r : results) {
                const auto sku = r.item.get<std::string>();
                const bool ok = r.status == saga::step_status::completed;
                a.feed.push_back({sku, ok ? "in_feed" : "rejected", r.error});
                if (!ok) rejected.push_back(r.error.empty() ? sku : r.error);
            }
            if (!rejected.empty())
                return saga::permanent_error(
                    fmt::format("{} of {} products rejected by the feed: {}", rejected.size(),
                                results.size(), fmt::join(rejected, "; ")));
            return saga::success();
        });
}

void review_step(saga::sequence_builder<campaign_action>& branch, const std::string& network,
                 const simulation& sim) {
    branch.wait("review_" + network, signals::ad_reviewed(network))
        .when([network](const campaign_action& a) { return a.targets(network); })
        .on_signal([network](campaign_action& a, const json& s) -> saga::result<void> {
            const auto reason = s.value("reason", "");
            if (!s.value("approved", false)) {
                a.reviews[network] = "rejected: " + reason;
                return saga::permanent_error(
                    fmt::format("{} rejected the ad: {}", network, reason));
            }
            a.reviews[network] = "approved";
            return saga::success();
        })
        .deadline(sim.review_deadline);
}

void go_live(saga::parallel_builder<campaign_action>& p) {
    for (auto n : all_networks) {
        const std::string network(n);
        p.branch("live_" + network)
            .remote("enable_" + network, endpoints::network(network),
                    [](const campaign_action& a) {
                        return saga::command{"enable_ad", {{"campaign", a.campaign_id}}};
                    })
            .when([network](const campaign_action& a) { return a.targets(network); })
            .compensate_remote(endpoints::network(network), restore_ad)
            .retry(network_retry)
            .timeout(step_timeout);
    }
}

}  // namespace detail
}  // namespace campaign
