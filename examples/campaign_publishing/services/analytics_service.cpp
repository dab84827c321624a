// Analytics Reporting: consumes the performance and campaign events, and computes the derived
// metrics (CTR = clicks / impressions, CPA = spend / conversions, ROAS = revenue / spend) and the
// daily summary per campaign.
#include <fmt/format.h>

#include "services.hpp"

namespace campaign {

namespace {
using json = nlohmann::json;
using reply = saga::participant_reply;

std::string utc_day(std::int64_t ms) {
    const std::chrono::sys_days day = std::chrono::floor<std::chrono::days>(
        std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds{ms}));
    const std::chrono::year_month_day ymd{day};
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}
}  // namespace

analytics_service::analytics_service(const data_paths& paths, const simulation& sim)
    : durable_service({.endpoint = std::string(endpoints::analytics),
                       .database = paths.service(endpoints::analytics),
                       .seed = sim.seed,
                       .failure_rate = sim.failure_rate,
                       .latency = std::chrono::milliseconds{1}}) {
    db().exec(
        "CREATE TABLE IF NOT EXISTS events_seen (message_id TEXT PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS performance (network TEXT NOT NULL, ad_id TEXT NOT NULL,"
        " campaign_id TEXT NOT NULL, as_of_ms INTEGER NOT NULL, day TEXT NOT NULL,"
        " impressions INTEGER NOT NULL, clicks INTEGER NOT NULL, conversions INTEGER NOT NULL,"
        " spend_cents INTEGER NOT NULL, revenue_cents INTEGER NOT NULL,"
        " PRIMARY KEY (network, ad_id, as_of_ms));"
        "CREATE TABLE IF NOT EXISTS published (campaign_id TEXT NOT NULL, event TEXT NOT NULL,"
        " at_ms INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS daily_summary (day TEXT NOT NULL, campaign_id TEXT NOT NULL,"
        " impressions INTEGER NOT NULL, clicks INTEGER NOT NULL, conversions INTEGER NOT NULL,"
        " spend_cents INTEGER NOT NULL, revenue_cents INTEGER NOT NULL, ctr REAL NOT NULL,"
        " cpa_cents REAL NOT NULL, roas REAL NOT NULL, PRIMARY KEY (day, campaign_id));");
}

analytics_service::~analytics_service() {
    stop();
}

void analytics_service::stop() {
    if (events_) events_->stop();
    durable_service::stop();
}

void analytics_service::started() {
    const auto ep = std::string(endpoints::analytics_events);
    (void)transport()->subscribe(std::string(topics::ad_events), ep);
    (void)transport()->subscribe(std::string(topics::campaign_events), ep);
    auto sub = transport()->consume(ep, executor(),
                                    [this](std::shared_ptr<saga::delivery> d) { on_event(d); });
    if (sub) events_ = std::move(sub).value();
}

void analytics_service::on_event(const std::shared_ptr<saga::delivery>& d) {
    const auto& e = d->message();
    try {
        std::lock_guard lock(mutex());
        SQLite::Transaction tx(db(), SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement seen(db(), "INSERT OR IGNORE INTO events_seen (message_id) VALUES (?)");
        seen.bind(1, e.message_id);
        if (seen.exec() > 0) {  // first time: apply it
            if (e.type == "AdPerformanceDataIngested") {
                const auto m = e.payload.get<ad_metrics>();
                const auto as_of = e.payload.value("as_of_ms", std::int64_t{0});
                SQLite::Statement ins(db(),
                                      "INSERT OR IGNORE INTO performance VALUES"
                                      " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
                ins.bind(1, m.network);
                ins.bind(2, m.ad_id);
                ins.bind(3, m.campaign_id);
                ins.bind(4, as_of);
                ins.bind(5, utc_day(as_of));
                ins.bind(6, m.impressions);
                ins.bind(7, m.clicks);
                ins.bind(8, m.conversions);
                ins.bind(9, m.spend_cents);
                ins.bind(10, m.revenue_cents);
                ins.exec();
            } else if (e.type.rfind("Campaign", 0) == 0) {
                SQLite::Statement ins(db(), "INSERT INTO published VALUES (?, ?, ?)");
                ins.bind(1, e.payload.value("campaign", std::string()));
                ins.bind(2, e.type);
                ins.bind(3, e.payload.value("at_ms", std::int64_t{0}));
                ins.exec();
            }
        }
        tx.commit();
    } catch (const std::exception&) {
        d->nack(std::chrono::milliseconds{100});
        return;
    }
    d->ack();
}

// {as_of_ms} -> recomputes the daily summary of that day
saga::participant_reply analytics_service::apply(const saga::envelope& e) {
    if (e.type != "summarize_day")
        return reply::permanent(fmt::format("analytics: unknown command '{}'", e.type));
    const auto day = utc_day(e.payload.value("as_of_ms", now_ms()));
    SQLite::Statement del(db(), "DELETE FROM daily_summary WHERE day = ?");
    del.bind(1, day);
    del.exec();
    SQLite::Statement ins(
        db(),
        "INSERT INTO daily_summary SELECT day, campaign_id, SUM(impressions), SUM(clicks),"
        " SUM(conversions), SUM(spend_cents), SUM(revenue_cents),"
        " CASE WHEN SUM(impressions) > 0 THEN 1.0 * SUM(clicks) / SUM(impressions) ELSE 0 END,"
        " CASE WHEN SUM(conversions) > 0 THEN 1.0 * SUM(spend_cents) / SUM(conversions) ELSE 0 END,"
        " CASE WHEN SUM(spend_cents) > 0 THEN 1.0 * SUM(revenue_cents) / SUM(spend_cents) ELSE 0 "
        "END"
        " FROM performance WHERE day = ? GROUP BY day, campaign_id");
    ins.bind(1, day);
    const int campaigns = ins.exec();
    return reply::success({{"day", day}, {"campaigns", campaigns}});
}

std::vector<daily_summary> read_daily_summaries(const data_paths& paths) {
    std::vector<daily_summary> out;
    const auto file = paths.service(endpoints::analytics);
    if (!std::filesystem::exists(file)) return out;
    try {
        auto db = open_database(file, true);
        SQLite::Statement q(db, "SELECT * FROM daily_summary ORDER BY day, campaign_id");
        while (q.executeStep()) {
            daily_summary s;
            s.day = q.getColumn(0).getString();
            s.campaign_id = q.getColumn(1).getString();
            s.impressions = q.getColumn(2).getInt64();
            s.clicks = q.getColumn(3).getInt64();
            s.conversions = q.getColumn(4).getInt64();
            s.spend_cents = q.getColumn(5).getInt64();
            s.revenue_cents = q.getColumn(6).getInt64();
            s.ctr = q.getColumn(7).getDouble();
            s.cpa_cents = q.getColumn(8).getDouble();
            s.roas = q.getColumn(9).getDouble();
            out.push_back(s);
        }
    } catch (const std::exception&) {
        // no summary table yet
    }
    return out;
}

}  // namespace campaign
