// The other actions on a published campaign: pause, finish and republish, each with its own
// steps per network; and the registration of every definition.
#include "common.hpp"

namespace campaign {

using namespace detail;

namespace {

/// A parallel phase with one branch per network: `type` sent to each targeted network, undone
/// by `restore_ad`.
auto per_network(std::string prefix, std::string type) {
    return [prefix = std::move(prefix),
            type = std::move(type)](saga::parallel_builder<campaign_action>& p) {
        for (auto n : all_networks) {
            const std::string network(n);
            p.branch(prefix + "_on_" + network)
                .remote(prefix + "_" + network, endpoints::network(network),
                        [type](const campaign_action& a) {
                            return saga::command{type, {{"campaign", a.campaign_id}}};
                        })
                .when([network](const campaign_action& a) { return a.targets(network); })
                .compensate_remote(endpoints::network(network), restore_ad)
                .retry(network_retry)
                .timeout(step_timeout);
        }
    };
}

}  // namespace

saga::result<saga::definition<campaign_action>> pause_definition() {
    const std::string campaigns(endpoints::campaigns);
    return saga::definition_builder<campaign_action>(std::string(sagas::pause), 1)
        .default_retry(service_retry)
        .default_compensation_retry(undo_retry)
        .remote("validate", campaigns, begin_action("pause", {"ACTIVE"}, ""))
        .on_reply(take_campaign)
        .timeout(step_timeout)
        .parallel("pause_ads", per_network("pause", "pause_ad"))
        .remote("mark_paused", campaigns, set_status({"ACTIVE"}, "PAUSED"))
        .timeout(step_timeout)
        .pivot()
        .remote("announce", campaigns, announce("CampaignPaused"))
        .timeout(step_timeout)
        .build();
}

saga::result<saga::definition<campaign_action>> finish_definition() {
    const std::string campaigns(endpoints::campaigns);
    const std::string billing(endpoints::billing);
    return saga::definition_builder<campaign_action>(std::string(sagas::finish), 1)
        .default_retry(service_retry)
        .default_compensation_retry(undo_retry)
        .remote("validate", campaigns, begin_action("finish", {"ACTIVE", "PAUSED"}, ""))
        .on_reply(take_campaign)
        .timeout(step_timeout)
        .parallel("end_ads", per_network("end", "end_ad"))
        .remote("settle_budget", billing,
                [](const campaign_action& a) {
                    return saga::command{"settle", {{"campaign", a.campaign_id}}};
                })
        .compensate_remote(billing,
                           [](const campaign_action& a) {
                               return saga::command{"reopen", {{"campaign", a.campaign_id}}};
                           })
        .timeout(step_timeout)
        .remote("mark_finished", campaigns, set_status({"ACTIVE", "PAUSED"}, "FINISHED"))
        .timeout(step_timeout)
        .pivot()
        .remote("announce", campaigns, announce("CampaignFinished"))
        .timeout(step_timeout)
        .build();
}

saga::result<saga::definition<campaign_action>> republish_definition(const simulation& sim) {
    const std::string campaigns(endpoints::campaigns);
    return saga::definition_builder<campaign_action>(std::string(sagas::republish), 1)
        .default_retry(service_retry)
        .default_compensation_retry(undo_retry)
        .remote("validate", campaigns,
                begin_action("republish", {"ACTIVE", "PAUSED"}, "PUBLISHING"))
        .on_reply(take_campaign)
        .compensate_remote(campaigns, revert_status)
        .timeout(step_timeout)
        .for_each(
            "ensure_feed", [](const campaign_action& a) { return a.products; }, ensure_feed)
        .parallel(
            "resubmit",
            [&](saga::parallel_builder<campaign_action>& p) {
                for (auto n : all_networks) {
                    const std::string network(n);
                    auto& branch = p.branch("resubmit_on_" + network);
                    branch
                        .remote("update_" + network, endpoints::network(network),
                                [](const campaign_action& a) {
                                    return saga::command{
                                        "update_ad",
                                        {{"campaign", a.campaign_id}, {"creative", a.creative}}};
                                })
                        .when([network](const campaign_action& a) { return a.targets(network); })
                        .on_reply([network](campaign_action& a, const json& r) {
                            a.ads[network] = r.at("ad_id");
                        })
                        .compensate_remote(endpoints::network(network), restore_ad)
                        .retry(network_retry)
                        .timeout(step_timeout);
                    review_step(branch, network, sim);
                }
            })
        .parallel("go_live", go_live)
        .remote("activate", campaigns, set_status({"PUBLISHING"}, "ACTIVE"))
        .compensate_remote(campaigns, revert_status)
        .timeout(step_timeout)
        .remote("announce", campaigns, announce("CampaignRepublished"))
        .timeout(step_timeout)
        .pivot()
        .build();
}

saga::result<saga::definition<ingestion_run>> ingestion_definition() {
    return saga::definition_builder<ingestion_run>(std::string(sagas::ingest), 1)
        .default_retry(service_retry)
        .parallel(
            "fetch",
            [](saga::parallel_builder<ingestion_run>& p) {
                for (auto n : all_networks) {
                    const std::string network(n);
                    p.branch("report_" + network)
                        .remote(
                            "fetch_" + network, endpoints::network(network),
                            [](const ingestion_run& r) {
                                return saga::command{"fetch_report", {{"as_of_ms", r.as_of_ms}}};
                            })
                        .on_reply([network](ingestion_run& r, const json& reply) {
                            r.reported[network] = reply.value("reported", std::int64_t{0});
                        })
                        .retry(network_retry)
                        .timeout(step_timeout);
                }
            })
        .remote("summarize", std::string(endpoints::analytics),
                [](const ingestion_run& r) {
                    return saga::command{"summarize_day", {{"as_of_ms", r.as_of_ms}}};
                })
        .on_reply([](ingestion_run& r, const json& reply) {
            r.day = reply.value("day", "");
            r.campaigns_summarised = reply.value("campaigns", std::int64_t{0});
        })
        .timeout(step_timeout)
        .build();
}

saga::result<saga::definition<status_refresh>> refresh_definition() {
    return saga::definition_builder<status_refresh>(std::string(sagas::refresh), 1)
        .default_retry(service_retry)
        .remote("refresh", std::string(endpoints::campaigns),
                [](const status_refresh& r) {
                    return saga::command{"refresh_schedule", {{"as_of_ms", r.as_of_ms}}};
                })
        .on_reply([](status_refresh& r, const json& reply) {
            r.opened = reply.value("opened", std::int64_t{0});
            r.closed = reply.value("closed", std::int64_t{0});
            r.inactivated = reply.value("inactivated", std::int64_t{0});
        })
        .timeout(step_timeout)
        .build();
}

std::string_view definition_of(std::string_view action) {
    if (action == "publish") return sagas::publish;
    if (action == "pause") return sagas::pause;
    if (action == "finish") return sagas::finish;
    if (action == "republish") return sagas::republish;
    return {};
}

saga::result<void> register_sagas(saga::engine& engine, const simulation& sim) {
    auto add = [&](auto def) -> saga::result<void> {
        if (!def) return def.error();
        return engine.add(def.value());
    };
    SAGA_TRY(add(publish_definition(sim)));
    SAGA_TRY(add(pause_definition()));
    SAGA_TRY(add(finish_definition()));
    SAGA_TRY(add(republish_definition(sim)));
    SAGA_TRY(add(ingestion_definition()));
    SAGA_TRY(add(refresh_definition()));
    // [doc:endpoint_policy]
    // Each network: a token bucket a little under the network's own limit (so that we are rarely
    // answered 429), and a circuit breaker that stops calling a network failing 5 times in a row.
    for (const auto& n : sim.networks)
        engine.set_endpoint_policy(
            endpoints::network(n.name),
            {.rate = {.per_second = n.rate_per_second * 0.8, .burst = n.burst / 2},
             .breaker = {.failure_threshold = 5, .cool_down = std::chrono::milliseconds{300}}});
    // [/doc:endpoint_policy]
    return saga::success();
}

}  // namespace campaign
