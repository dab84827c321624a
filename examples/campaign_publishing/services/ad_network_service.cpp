// Ad Network Integration for one network (Google, Instagram, TikTok or Snapchat). Each network
// answers with its own latency, enforces its own rate limit (429 above it), assigns its own ad
// ids, and reviews ads asynchronously: the result arrives later as an `AdReviewed.<network>`
// event. Reviews waiting to be sent are durable, so a crash delays them but never loses them.
#include <fmt/format.h>

#include <algorithm>

#include "services.hpp"

namespace campaign {

namespace {

using json = nlohmann::json;
using reply = saga::participant_reply;

bool contains_word(const std::string& text, const std::vector<std::string>& words,
                   std::string& found) {
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const auto& w : words)
        if (lower.find(w) != std::string::npos) {
            found = w;
            return true;
        }
    return false;
}

/// A pending review event, read under the lock and sent after it.
struct review_event {
    std::string reply_to;
    saga::envelope message;
};

}  // namespace

ad_network_service::ad_network_service(const data_paths& paths, const simulation& sim,
                                       const network_profile& profile)
    : durable_service({.endpoint = endpoints::network(profile.name),
                       .database = paths.service(endpoints::network(profile.name)),
                       .seed = sim.seed,
                       .failure_rate = std::min(1.0, sim.failure_rate * profile.failure_factor),
                       .latency = profile.latency}),
      sim_(sim),
      profile_(profile),
      bucket_(saga::rate_limit{.per_second = profile.rate_per_second, .burst = profile.burst},
              std::chrono::system_clock::now()) {
    db().exec(
        "CREATE TABLE IF NOT EXISTS ads (ad_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL,"
        " status TEXT NOT NULL, revision INTEGER NOT NULL, creative TEXT NOT NULL,"
        " created_by TEXT NOT NULL UNIQUE, updated_at_ms INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS ad_ops (key TEXT PRIMARY KEY, ad_id TEXT NOT NULL,"
        " from_status TEXT NOT NULL, to_status TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS reviews (ad_id TEXT NOT NULL, revision INTEGER NOT NULL,"
        " saga_id TEXT NOT NULL, reply_to TEXT NOT NULL, approved INTEGER NOT NULL,"
        " reason TEXT NOT NULL, due_ms INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (ad_id, revision));");
}

ad_network_service::~ad_network_service() {
    stop();
}

void ad_network_service::stop() {
    {
        std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (reviewer_.joinable()) reviewer_.join();
    durable_service::stop();
}

void ad_network_service::started() {
    {
        // Review results the saga may not have heard before a crash are sent again (the saga
        // deduplicates them by message id, and ignores them once it has moved on).
        std::lock_guard lock(mutex());
        db().exec(
            "UPDATE reviews SET sent = 0 WHERE sent = 1 AND EXISTS (SELECT 1 FROM ads"
            " WHERE ads.ad_id = reviews.ad_id AND ads.revision = reviews.revision"
            " AND ads.status IN ('approved', 'rejected'))");
    }
    reviewer_ = std::thread([this] { reviewer(); });
}

saga::participant_reply ad_network_service::apply(const saga::envelope& e) {
    if (e.kind == saga::message_kind::command && e.type != "fetch_report") {
        // the network's own rate limit: above it, a 429 (transient; the engine backs off)
        if (bucket_.try_acquire(std::chrono::system_clock::now()))
            return reply::transient(fmt::format("429 too many requests ({})", profile_.name));
    }
    if (e.type == "create_ad") return create_ad(e);
    if (e.type == "update_ad") return update_ad(e);
    if (e.type == "enable_ad") return move_ad(e, {"approved"}, "live");
    if (e.type == "pause_ad") return move_ad(e, {"live"}, "paused");
    if (e.type == "end_ad") return move_ad(e, {"live", "paused"}, "ended");
    if (e.type == "restore_ad") return restore_ad(e);
    if (e.type == "withdraw_ad") {
        const auto it = e.headers.find("compensates");
        if (it == e.headers.end()) return reply::permanent("withdraw_ad without 'compensates'");
        SQLite::Statement u(db(),
                            "UPDATE ads SET status = 'withdrawn', updated_at_ms = ?"
                            " WHERE created_by = ? AND status <> 'withdrawn'");
        u.bind(1, now_ms());
        u.bind(2, it->second);
        return reply::success({{"withdrawn", u.exec()}});
    }
    if (e.type == "fetch_report") return fetch_report(e);
    return reply::permanent(fmt::format("{}: unknown command '{}'", profile_.name, e.type));
}

// {campaign, creative} -> {ad_id}; the ad goes to review
saga::participant_reply ad_network_service::create_ad(const saga::envelope& e) {
    const auto campaign = e.payload.value("campaign", std::string());
    const auto creative = e.payload.value("creative", std::string());
    SQLite::Statement q(db(),
                        "SELECT ad_id FROM ads WHERE campaign_id = ? AND status IN"
                        " ('in_review', 'approved', 'live', 'paused')");
    q.bind(1, campaign);
    if (q.executeStep())
        return reply::permanent(fmt::format("campaign {} already has ad {} on {}", campaign,
                                            q.getColumn(0).getString(), profile_.name));
    q.reset();
    const auto ad_id =
        fmt::format("{}{:08x}", profile_.ad_prefix, mix(sim_.seed, e.idempotency_key) >> 32);
    SQLite::Statement ins(db(),
                          "INSERT INTO ads (ad_id, campaign_id, status, revision, creative,"
                          " created_by, updated_at_ms) VALUES (?, ?, 'in_review', 1, ?, ?, ?)");
    ins.bind(1, ad_id);
    ins.bind(2, campaign);
    ins.bind(3, creative);
    ins.bind(4, e.idempotency_key);
    ins.bind(5, now_ms());
    ins.exec();
    schedule_review(ad_id, 1, e, creative);
    return reply::success({{"ad_id", ad_id}});
}

// republish: {campaign, creative}; the live (or paused) ad gets a new revision, reviewed again
saga::participant_reply ad_network_service::update_ad(const saga::envelope& e) {
    const auto campaign = e.payload.value("campaign", std::string());
    const auto creative = e.payload.value("creative", std::string());
    SQLite::Statement q(db(),
                        "SELECT ad_id, status, revision FROM ads WHERE campaign_id = ? AND"
                        " status IN ('live', 'paused')");
    q.bind(1, campaign);
    if (!q.executeStep())
        return reply::permanent(
            fmt::format("campaign {} has no live or paused ad on {}", campaign, profile_.name));
    const auto ad_id = q.getColumn(0).getString();
    const auto from = q.getColumn(1).getString();
    const auto revision = q.getColumn(2).getInt64() + 1;
    q.reset();
    SQLite::Statement u(db(),
                        "UPDATE ads SET status = 'in_review', revision = ?, creative = ?,"
                        " updated_at_ms = ? WHERE ad_id = ?");
    u.bind(1, revision);
    u.bind(2, creative);
    u.bind(3, now_ms());
    u.bind(4, ad_id);
    u.exec();
    SQLite::Statement op(db(),
                         "INSERT OR REPLACE INTO ad_ops (key, ad_id, from_status, to_status)"
                         " VALUES (?, ?, ?, 'in_review')");
    op.bind(1, e.idempotency_key);
    op.bind(2, ad_id);
    op.bind(3, from);
    op.exec();
    schedule_review(ad_id, revision, e, creative);
    return reply::success({{"ad_id", ad_id}, {"revision", revision}});
}

// {campaign}: the campaign's ad moves from one of `from` to `to`
saga::participant_reply ad_network_service::move_ad(const saga::envelope& e,
                                                    std::vector<std::string> from,
                                                    const std::string& to) {
    const auto campaign = e.payload.value("campaign", std::string());
    SQLite::Statement q(db(),
                        "SELECT ad_id, status FROM ads WHERE campaign_id = ? AND status NOT IN"
                        " ('withdrawn', 'ended', 'rejected') ORDER BY updated_at_ms DESC");
    q.bind(1, campaign);
    if (!q.executeStep())
        return reply::permanent(
            fmt::format("campaign {} has no ad on {}", campaign, profile_.name));
    const auto ad_id = q.getColumn(0).getString();
    const auto status = q.getColumn(1).getString();
    q.reset();
    if (status == to) return reply::success({{"ad_id", ad_id}, {"status", to}});
    if (std::find(from.begin(), from.end(), status) == from.end())
        return reply::permanent(fmt::format("ad {} is {}; it cannot become {}", ad_id, status, to));
    SQLite::Statement u(db(), "UPDATE ads SET status = ?, updated_at_ms = ? WHERE ad_id = ?");
    u.bind(1, to);
    u.bind(2, now_ms());
    u.bind(3, ad_id);
    u.exec();
    SQLite::Statement op(db(),
                         "INSERT OR REPLACE INTO ad_ops (key, ad_id, from_status, to_status)"
                         " VALUES (?, ?, ?, ?)");
    op.bind(1, e.idempotency_key);
    op.bind(2, ad_id);
    op.bind(3, status);
    op.bind(4, to);
    op.exec();
    return reply::success({{"ad_id", ad_id}, {"status", to}});
}

// compensation of enable / pause / end / update: the status before comes back, if nothing moved
// the ad since
saga::participant_reply ad_network_service::restore_ad(const saga::envelope& e) {
    const auto it = e.headers.find("compensates");
    if (it == e.headers.end()) return reply::permanent("restore_ad without 'compensates'");
    SQLite::Statement q(db(), "SELECT ad_id, from_status, to_status FROM ad_ops WHERE key = ?");
    q.bind(1, it->second);
    if (!q.executeStep()) return reply::success({{"restored", false}});
    const auto ad_id = q.getColumn(0).getString();
    const auto from = q.getColumn(1).getString();
    const auto to = q.getColumn(2).getString();
    q.reset();
    // an update whose review came back is undone too: approved/rejected still mean "not back"
    const char* sql =
        to == "in_review"
            ? "UPDATE ads SET status = ?, updated_at_ms = ? WHERE ad_id = ? AND status IN"
              " ('in_review', 'approved', 'rejected')"
            : "UPDATE ads SET status = ?, updated_at_ms = ? WHERE ad_id = ? AND status = ?";
    SQLite::Statement u(db(), sql);
    u.bind(1, from);
    u.bind(2, now_ms());
    u.bind(3, ad_id);
    if (to != "in_review") u.bind(4, to);
    return reply::success({{"restored", u.exec() > 0}, {"ad_id", ad_id}, {"status", from}});
}

// {as_of_ms}: the metrics of every live ad, published as AdPerformanceDataIngested
saga::participant_reply ad_network_service::fetch_report(const saga::envelope& e) {
    const auto as_of = e.payload.value("as_of_ms", now_ms());
    SQLite::Statement q(db(), "SELECT ad_id, campaign_id FROM ads WHERE status = 'live'");
    std::vector<ad_metrics> rows;
    while (q.executeStep()) {
        ad_metrics m;
        m.network = profile_.name;
        m.ad_id = q.getColumn(0).getString();
        m.campaign_id = q.getColumn(1).getString();
        const auto what = fmt::format("{}|{}", m.ad_id, as_of);
        m.impressions = 1000 + static_cast<std::int64_t>(mix(sim_.seed, what + "i") % 9000);
        m.clicks = m.impressions *
                   (10 + static_cast<std::int64_t>(mix(sim_.seed, what + "c") % 40)) / 1000;
        m.conversions =
            m.clicks * (20 + static_cast<std::int64_t>(mix(sim_.seed, what + "v") % 80)) / 1000;
        m.spend_cents =
            m.clicks * (30 + static_cast<std::int64_t>(mix(sim_.seed, what + "s") % 90));
        m.revenue_cents =
            m.conversions * (2000 + static_cast<std::int64_t>(mix(sim_.seed, what + "r") % 6000));
        rows.push_back(m);
    }
    q.reset();
    for (const auto& m : rows) {
        saga::envelope ev;
        ev.message_id = event_id("AdPerformanceDataIngested",
                                 fmt::format("{}|{}|{}", profile_.name, m.ad_id, as_of));
        ev.type = "AdPerformanceDataIngested";
        ev.correlation_id = m.campaign_id;
        ev.payload = json(m);
        ev.payload["as_of_ms"] = as_of;
        after_commit(
            [this, ev]() mutable { publish_event(std::string(topics::ad_events), std::move(ev)); });
    }
    return reply::success({{"reported", rows.size()}});
}

void ad_network_service::schedule_review(const std::string& ad_id, std::int64_t revision,
                                         const saga::envelope& e, const std::string& creative) {
    std::string word;
    bool approved = true;
    std::string reason = "meets the advertising policies";
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(
        sim_.review_latency * (0.5 + chance(sim_.seed, e.idempotency_key + "|review")));
    if (contains_word(creative, profile_.rejected_words, word)) {
        approved = false;
        reason = fmt::format("{} policy: '{}' claims are not allowed", profile_.name, word);
    } else if (contains_word(creative, profile_.manual_review_words, word)) {
        reason = fmt::format("manual review for restricted content '{}'", word);
        delay = std::chrono::hours{6};  // a human reviewer, far past any saga deadline
    }
    SQLite::Statement ins(db(),
                          "INSERT OR REPLACE INTO reviews (ad_id, revision, saga_id, reply_to,"
                          " approved, reason, due_ms, sent) VALUES (?, ?, ?, ?, ?, ?, ?, 0)");
    ins.bind(1, ad_id);
    ins.bind(2, revision);
    ins.bind(3, e.saga_id);
    ins.bind(4, e.reply_to);
    ins.bind(5, approved ? 1 : 0);
    ins.bind(6, reason);
    ins.bind(7, now_ms() + delay.count());
    ins.exec();
}

void ad_network_service::reviewer() {
    std::unique_lock lock(stop_mutex_);
    while (!stopping_) {
        lock.unlock();
        try {
            send_due_reviews();
        } catch (const std::exception&) {
            // the database is busy: next round
        }
        lock.lock();
        stop_cv_.wait_for(lock, std::chrono::milliseconds{20}, [this] { return stopping_; });
    }
}

void ad_network_service::send_due_reviews() {
    std::vector<review_event> due;
    {
        std::lock_guard lock(mutex());
        SQLite::Transaction tx(db(), SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement q(db(),
                            "SELECT r.ad_id, r.revision, r.saga_id, r.reply_to, r.approved,"
                            " r.reason, a.status, a.revision, a.campaign_id FROM reviews r"
                            " JOIN ads a ON a.ad_id = r.ad_id WHERE r.sent = 0 AND r.due_ms <= ?");
        q.bind(1, now_ms());
        std::vector<std::pair<std::string, std::int64_t>> done;
        while (q.executeStep()) {
            const auto ad_id = q.getColumn(0).getString();
            const auto revision = q.getColumn(1).getInt64();
            const bool approved = q.getColumn(4).getInt() != 0;
            const auto status = q.getColumn(6).getString();
            done.emplace_back(ad_id, revision);
            if (q.getColumn(7).getInt64() != revision) continue;  // superseded
            const auto result = approved ? "approved" : "rejected";
            if (status != "in_review" && status != result) continue;  // withdrawn meanwhile
            review_event ev;
            ev.reply_to = q.getColumn(3).getString();
            ev.message.message_id = event_id("AdReviewed", fmt::format("{}|{}", ad_id, revision));
            ev.message.type = signals::ad_reviewed(profile_.name);
            ev.message.saga_id = q.getColumn(2).getString();
            ev.message.correlation_id = q.getColumn(8).getString();
            ev.message.payload = {{"ad_id", ad_id},
                                  {"network", profile_.name},
                                  {"approved", approved},
                                  {"reason", q.getColumn(5).getString()}};
            due.push_back(std::move(ev));
            if (status == "in_review") {
                SQLite::Statement u(db(),
                                    "UPDATE ads SET status = ?, updated_at_ms = ? WHERE ad_id = ?");
                u.bind(1, result);
                u.bind(2, now_ms());
                u.bind(3, ad_id);
                u.exec();
            }
        }
        q.reset();
        for (const auto& [ad, rev] : done) {
            SQLite::Statement u(db(),
                                "UPDATE reviews SET sent = 1 WHERE ad_id = ? AND revision = ?");
            u.bind(1, ad);
            u.bind(2, rev);
            u.exec();
        }
        tx.commit();
    }
    for (auto& ev : due) send_event(ev.reply_to, std::move(ev.message));
}

}  // namespace campaign
