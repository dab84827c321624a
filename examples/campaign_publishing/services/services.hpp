#pragma once
/// @file services.hpp
/// The simulated participant services. Each owns its SQLite file and is reached by the sagas only
/// through the transport; `service_set` starts them all, in the engine's process (in-memory
/// transport) or in a process of their own (`campaign_publishing services`).

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <saga/endpoint_policy.hpp>
#include <saga/sqlite/store_lock.hpp>

#include "../domain.hpp"
#include "../simulation.hpp"
#include "durable_service.hpp"

namespace campaign {

/// A campaign as Campaign Management stores it.
struct campaign_record {
    std::string id;
    std::string name;
    std::string merchant;
    std::vector<std::string> networks;
    std::vector<std::string> products;
    std::int64_t budget_cents = 0;
    std::string creative;
    /// "DRAFT", "PUBLISHING", "ACTIVE", "PAUSED" or "FINISHED"
    std::string status = "DRAFT";
    /// the schedule window (seed 003): DRAFT -> OPEN at `open_at`, -> CLOSED at `close_at`,
    /// -> INACTIVE 30 days after closing
    std::string schedule_state = "DRAFT";
    std::int64_t open_at_ms = 0;
    std::int64_t close_at_ms = 0;
    std::int64_t closed_at_ms = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(campaign_record, id, name, merchant, networks,
                                                products, budget_cents, creative, status,
                                                schedule_state, open_at_ms, close_at_ms,
                                                closed_at_ms)

/// A product as the Product Catalog stores it.
struct product_record {
    std::string sku;
    std::string title;
    std::string gtin;
    std::int64_t price_cents = 0;
    std::string image_url;
};

/// Campaign Management: campaigns and their status lifecycle, the scheduled OPEN / CLOSED /
/// INACTIVE refresh, and the `CampaignPublished` family of events.
///
/// Commands: `begin_action` (check the status, optionally move it, reply the campaign),
/// `set_status`, `revert_status` (compensation of both: back to the status before, by the
/// forward command's key), `announce` (publish an event on `campaign-events`),
/// `refresh_schedule`.
class campaign_service final : public durable_service {
public:
    campaign_service(const data_paths& paths, const simulation& sim);
    ~campaign_service() override;
    /// Creates (or replaces) a campaign; for seeding.
    void create(const campaign_record& c);
    /// Every campaign; for seeding checks and listings.
    [[nodiscard]] std::vector<campaign_record> all();

private:
    saga::participant_reply apply(const saga::envelope& e) override;
    saga::participant_reply begin_action(const saga::envelope& e);
    saga::participant_reply set_status(const saga::envelope& e);
    saga::participant_reply revert_status(const saga::envelope& e);
    saga::participant_reply announce(const saga::envelope& e);
    saga::participant_reply refresh_schedule(const saga::envelope& e);
    std::optional<campaign_record> find(const std::string& id);
    void move(const std::string& id, const std::string& from, const std::string& to,
              const std::string& key);
};

/// Product Catalog: products and the campaign feeds. `ensure_in_feed` checks a product's
/// compliance (GTIN, image, price) and adds it to the campaign's feed; `remove_from_feed`
/// (compensation) removes what that command added.
class catalog_service final : public durable_service {
public:
    catalog_service(const data_paths& paths, const simulation& sim);
    ~catalog_service() override;
    void add_product(const product_record& p);

private:
    saga::participant_reply apply(const saga::envelope& e) override;
};

/// Billing: merchants' credit limits and budget reservations. `reserve` (refused for good when
/// the credit is short), `release` (compensation), `settle` (finish: the reservation is spent)
/// and `reopen` (its compensation).
class billing_service final : public durable_service {
public:
    billing_service(const data_paths& paths, const simulation& sim);
    ~billing_service() override;
    void open_account(const std::string& merchant, std::int64_t credit_limit_cents);

private:
    saga::participant_reply apply(const saga::envelope& e) override;
};

/// Ad Network Integration for one network: its own latency, rate limit, failure rate, ad ids
/// and review policy. Ads go `in_review` -> `approved` | `rejected` (the review result is sent
/// to the saga as an `AdReviewed.<network>` event after the review latency) -> `live` ->
/// `paused` -> `ended`; any of them may be `withdrawn`. `fetch_report` publishes
/// `AdPerformanceDataIngested` for every live ad on `ad-events`.
class ad_network_service final : public durable_service {
public:
    ad_network_service(const data_paths& paths, const simulation& sim,
                       const network_profile& profile);
    ~ad_network_service() override;
    void stop() override;
    [[nodiscard]] const network_profile& profile() const noexcept { return profile_; }

private:
    saga::participant_reply apply(const saga::envelope& e) override;
    void started() override;
    saga::participant_reply create_ad(const saga::envelope& e);
    saga::participant_reply update_ad(const saga::envelope& e);
    saga::participant_reply move_ad(const saga::envelope& e, std::vector<std::string> from,
                                    const std::string& to);
    saga::participant_reply restore_ad(const saga::envelope& e);
    saga::participant_reply fetch_report(const saga::envelope& e);
    void schedule_review(const std::string& ad_id, std::int64_t revision, const saga::envelope& e,
                         const std::string& creative);
    void reviewer();
    void send_due_reviews();

    simulation sim_;
    network_profile profile_;
    saga::token_bucket bucket_;
    std::thread reviewer_;
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
};

/// Analytics Reporting: consumes `AdPerformanceDataIngested` and `CampaignPublished`, computes
/// CTR, CPA and ROAS, and keeps daily summaries per campaign (`summarize_day` command).
class analytics_service final : public durable_service {
public:
    analytics_service(const data_paths& paths, const simulation& sim);
    ~analytics_service() override;
    void stop() override;

private:
    saga::participant_reply apply(const saga::envelope& e) override;
    void started() override;
    void on_event(const std::shared_ptr<saga::delivery>& d);
    std::unique_ptr<saga::subscription> events_;
};

/// One row of the analytics daily summary.
struct daily_summary {
    std::string day;
    std::string campaign_id;
    std::int64_t impressions = 0;
    std::int64_t clicks = 0;
    std::int64_t conversions = 0;
    std::int64_t spend_cents = 0;
    std::int64_t revenue_cents = 0;
    double ctr = 0;
    double cpa_cents = 0;
    double roas = 0;
};

/// Reads the daily summaries (read-only; empty if analytics has none yet).
[[nodiscard]] std::vector<daily_summary> read_daily_summaries(const data_paths& paths);

/// Every participant service, started together on one transport.
class service_set {
public:
    service_set(const data_paths& paths, const simulation& sim);
    ~service_set();
    service_set(const service_set&) = delete;
    service_set& operator=(const service_set&) = delete;

    /// Starts every service on `transport` (or only those named in `only`: "campaigns",
    /// "catalog", "billing", "analytics" and the network names), on the set's own threads (so
    /// that their latencies and fsyncs do not hold the engine's). An unknown name is
    /// `errc::invalid_argument` listing the known ones.
    [[nodiscard]] saga::result<void> start(const std::shared_ptr<saga::transport>& transport,
                                           const std::vector<std::string>& only = {});
    /// The names `start` accepts in `only`.
    [[nodiscard]] std::vector<std::string> names() const;
    /// Stops every service.
    void stop();

    /// Creates `count` sample campaigns (with their products and merchant accounts). The first
    /// seven are scripted to exercise every path (see `sample_campaigns`); the others are drawn
    /// from the seed. Returns the campaigns.
    std::vector<campaign_record> seed_samples(std::size_t count);

    campaign_service& campaigns() { return *campaigns_; }

private:
    data_paths paths_;
    simulation sim_;
    /// held shared while the services' files are open (before they open, released after they
    /// close), so that `setup` and the demo see the installation in use
    saga::sqlite::store_lock lock_;
    std::unique_ptr<campaign_service> campaigns_;
    std::unique_ptr<catalog_service> catalog_;
    std::unique_ptr<billing_service> billing_;
    std::vector<std::unique_ptr<ad_network_service>> networks_;
    std::unique_ptr<analytics_service> analytics_;
    boost::asio::thread_pool threads_{4};
    bool started_ = false;
};

}  // namespace campaign
