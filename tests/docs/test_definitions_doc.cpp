// The examples of docs/definitions.md, compiled and run. Each snippet between "// [doc:NAME]" and
// "// [/doc:NAME]" must appear verbatim in the doc (checked by check_snippets.cmake).
#include <catch2/catch.hpp>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// [doc:data]
struct campaign {
    std::string id;
    std::vector<std::string> networks;  // e.g. {"google", "tiktok"}
    std::vector<std::string> products;
    int budget = 0;
    std::string reservation;  // set from Billing's reply
    bool approved = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(campaign, id, networks, products, budget,
                                                reservation, approved)
// [/doc:data]

bool targets(const campaign& c, const std::string& network) {
    return std::find(c.networks.begin(), c.networks.end(), network) != c.networks.end();
}

saga::result<saga::definition<campaign>> publish_campaign() {
    // [doc:definition]
    saga::definition_builder<campaign> b("publish_campaign", 1);
    b.local("validate",
            [](campaign& c) -> saga::result<void> {
                if (c.networks.empty()) return saga::permanent_error("no network selected");
                return saga::success();
            })
        .remote("reserve_budget", "billing",
                [](const campaign& c) {
                    return saga::command{"reserve", {{"campaign", c.id}, {"amount", c.budget}}};
                })
        .on_reply([](campaign& c, const json& reply) { c.reservation = reply.at("id"); })
        .compensate_remote("billing",
                           [](const campaign& c) {
                               return saga::command{"release", {{"id", c.reservation}}};
                           })
        .retry(saga::retry_policy::exponential(5, 200ms, 10s))
        .timeout(5s)
        .for_each(
            "ensure_feed", [](const campaign& c) { return c.products; },
            [](saga::for_each_builder<campaign, std::string>& each) {
                each.remote("catalog",
                            [](const campaign&, const std::string& sku) {
                                return saga::command{"ensure", {{"sku", sku}}};
                            })
                    .chunk(50)
                    .concurrency(4)
                    .on_failure(saga::for_each_policy::continue_on_failure);
            })
        .parallel("submit",
                  [](saga::parallel_builder<campaign>& p) {
                      for (std::string network : {"google", "tiktok"}) {
                          p.branch(network)
                              .remote("submit_" + network, network,
                                      [](const campaign& c) {
                                          return saga::command{"submit", {{"campaign", c.id}}};
                                      })
                              .when([network](const campaign& c) { return targets(c, network); })
                              .compensate_remote(
                                  network,
                                  [](const campaign& c) {
                                      return saga::command{"withdraw", {{"campaign", c.id}}};
                                  })
                              .wait("review_" + network, "AdReviewed." + network)
                              .deadline(24h)
                              .when([network](const campaign& c) { return targets(c, network); });
                      }
                  })
        .wait("approval", "approved")
        .on_signal(
            [](campaign& c, const json& payload) { c.approved = payload.value("ok", false); })
        .deadline(48h, saga::on_deadline::fail)
        .local("activate", [](campaign&) { /* mark ACTIVE */ })
        .pivot()
        .local("announce", [](campaign&, saga::step_context& ctx) {
            std::printf("campaign saga %s is live\n", std::string(ctx.saga_id()).c_str());
        });
    return std::move(b).build();
    // [/doc:definition]
}

}  // namespace

TEST_CASE("the definitions guide's campaign saga builds and runs to completion", "[docs]") {
    auto clock = std::make_shared<saga::virtual_clock>();
    auto store = std::make_shared<saga::inmemory::memory_journal_store>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
    saga::engine engine(store, transport, {.clock = clock});
    auto def = publish_campaign();
    REQUIRE(def);
    REQUIRE(engine.add(def.value()));

    std::vector<std::unique_ptr<saga::participant>> services;
    auto service = [&](std::string endpoint) -> saga::participant& {
        services.push_back(std::make_unique<saga::participant>(transport, endpoint));
        return *services.back();
    };
    service("billing")
        .on("reserve",
            [](const saga::envelope& e) {
                return saga::participant_reply::success({{"id", "r-" + e.saga_id}});
            })
        .on("release", [](const saga::envelope&) { return saga::participant_reply::success(); });
    service("catalog").on("ensure",
                          [](const saga::envelope&) { return saga::participant_reply::success(); });
    service("google")
        .on("submit", [](const saga::envelope&) { return saga::participant_reply::success(); })
        .on("withdraw", [](const saga::envelope&) { return saga::participant_reply::success(); });
    for (auto& s : services) REQUIRE(s->start(engine.get_executor()));

    auto id =
        engine.start("publish_campaign", campaign{"c-1", {"google"}, {"sku-1", "sku-2"}, 500});
    REQUIRE(id);
    engine.run_until_idle();
    REQUIRE(engine.signal(id.value(), "AdReviewed.google"));
    REQUIRE(engine.signal(id.value(), "approved", {{"ok", true}}));
    REQUIRE(engine.run_until_settled());
    auto v = engine.query(id.value());
    REQUIRE(v);
    CHECK(v.value().status == saga::saga_status::completed);
    CHECK(v.value().step("submit_tiktok")->status == saga::step_status::skipped);
    CHECK(v.value().step("ensure_feed")->items_completed == 2);
    CHECK(v.value().data_as<campaign>().value().reservation == "r-" + id.value());
}

TEST_CASE("the definitions guide's mistakes are reported by build()", "[docs]") {
    // [doc:mistake]
    auto bad = saga::definition_builder<campaign>("broken", 1)
                   .local("charge", [](campaign&) {})
                   .pivot()
                   .local("email", [](campaign&) {})
                   .compensate([](campaign&) {})
                   .build();
    // bad.error().message: "definition 'broken': step 'email' comes after the pivot and cannot
    // have a compensation: nothing is compensated once the pivot completes"
    // [/doc:mistake]
    REQUIRE(!bad);
    CHECK(bad.error() == saga::errc::invalid_definition);
    CHECK(bad.error().message ==
          "definition 'broken': step 'email' comes after the pivot and cannot have a compensation: "
          "nothing is "
          "compensated once the pivot completes");
}
