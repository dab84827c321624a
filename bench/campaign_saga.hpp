#pragma once
// The benchmarks' saga, shaped like the campaign-publishing example (variant A): a local
// validation, a budget reservation (compensable), a feed, four ad platforms in parallel
// (compensable), an activation, an announcement. With `refuse_activation` the activation is
// refused past three compensable steps and the saga compensates (variant B). saga_bench runs it
// on the engine, runtime_bench on the core v2 runtime alone.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <saga/definition.hpp>

namespace bench {

struct campaign {
    std::string campaign_id;
    std::int64_t budget = 0;
    bool refuse_activation = false;  // variant B
    bool validated = false;
    std::string reservation;
    std::string feed;
    std::map<std::string, std::string> ads;  // platform -> ad id
    std::string activation;
    bool announced = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(campaign, campaign_id, budget, refuse_activation,
                                                validated, reservation, feed, ads, activation,
                                                announced)

inline constexpr std::string_view saga_name = "publish_campaign";
inline constexpr std::string_view platforms[] = {"google", "instagram", "tiktok", "snapchat"};

inline std::string id_of(const nlohmann::json& reply) {
    return reply.value("id", std::string());
}

inline saga::result<saga::definition<campaign>> publish_campaign() {
    saga::definition_builder<campaign> b(std::string(saga_name), 1);
    b.local("validate",
            [](campaign& c) -> saga::result<void> {
                if (c.budget <= 0) return saga::permanent_error("budget must be positive");
                c.validated = true;
                return saga::success();
            })
        .compensate([](campaign& c) { c.validated = false; })
        .remote("reserve_budget", "budget",
                [](const campaign& c) {
                    return saga::command{"reserve",
                                         {{"campaign", c.campaign_id}, {"amount", c.budget}}};
                })
        .on_reply([](campaign& c, const nlohmann::json& r) { c.reservation = id_of(r); })
        .compensate_remote("budget",
                           [](const campaign& c) {
                               return saga::command{"release", {{"id", c.reservation}}};
                           })
        .remote("ensure_feed", "feeds",
                [](const campaign& c) {
                    return saga::command{"ensure", {{"campaign", c.campaign_id}}};
                })
        .on_reply([](campaign& c, const nlohmann::json& r) { c.feed = id_of(r); })
        .parallel("submit",
                  [](saga::parallel_builder<campaign>& p) {
                      for (const auto platform : platforms) {
                          const std::string name(platform);
                          p.branch(name)
                              .remote("submit_" + name, name,
                                      [](const campaign& c) {
                                          return saga::command{
                                              "submit",
                                              {{"campaign", c.campaign_id}, {"feed", c.feed}}};
                                      })
                              .on_reply([name](campaign& c, const nlohmann::json& r) {
                                  c.ads[name] = id_of(r);
                              })
                              .compensate_remote(name, [name](const campaign& c) {
                                  const auto it = c.ads.find(name);
                                  return saga::command{
                                      "withdraw", {{"ad", it == c.ads.end() ? "" : it->second}}};
                              });
                      }
                  })
        .remote("activate", "campaigns",
                [](const campaign& c) {
                    return saga::command{
                        "activate", {{"campaign", c.campaign_id}, {"refuse", c.refuse_activation}}};
                })
        .on_reply([](campaign& c, const nlohmann::json& r) { c.activation = id_of(r); })
        .local("announce", [](campaign& c) { c.announced = true; });
    return std::move(b).build();
}

}  // namespace bench
