// Campaign Management: owns campaigns and their status; every status change is recorded with
// the idempotency key of the command that made it, so that its compensation can put back
// exactly what that command changed.
#include <fmt/format.h>

#include <algorithm>

#include "services.hpp"

namespace campaign {

namespace {

using json = nlohmann::json;
using reply = saga::participant_reply;

constexpr std::int64_t inactive_after_ms = 30LL * 24 * 3600 * 1000;

campaign_record read_row(SQLite::Statement& q) {
    campaign_record c;
    c.id = q.getColumn(0).getString();
    c.name = q.getColumn(1).getString();
    c.merchant = q.getColumn(2).getString();
    c.networks = json::parse(q.getColumn(3).getString()).get<std::vector<std::string>>();
    c.products = json::parse(q.getColumn(4).getString()).get<std::vector<std::string>>();
    c.budget_cents = q.getColumn(5).getInt64();
    c.creative = q.getColumn(6).getString();
    c.status = q.getColumn(7).getString();
    c.schedule_state = q.getColumn(8).getString();
    c.open_at_ms = q.getColumn(9).getInt64();
    c.close_at_ms = q.getColumn(10).getInt64();
    c.closed_at_ms = q.getColumn(11).getInt64();
    return c;
}

constexpr const char* columns =
    "id, name, merchant, networks, products, budget_cents, creative, status, schedule_state,"
    " open_at_ms, close_at_ms, closed_at_ms";

}  // namespace

campaign_service::campaign_service(const data_paths& paths, const simulation& sim)
    : durable_service({.endpoint = std::string(endpoints::campaigns),
                       .database = paths.service(endpoints::campaigns),
                       .seed = sim.seed,
                       .failure_rate = sim.failure_rate,
                       .latency = std::chrono::milliseconds{1}}) {
    db().exec(
        "CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
        " merchant TEXT NOT NULL, networks TEXT NOT NULL, products TEXT NOT NULL,"
        " budget_cents INTEGER NOT NULL, creative TEXT NOT NULL, status TEXT NOT NULL,"
        " schedule_state TEXT NOT NULL, open_at_ms INTEGER NOT NULL, close_at_ms INTEGER NOT NULL,"
        " closed_at_ms INTEGER NOT NULL DEFAULT 0, updated_at_ms INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS transitions (key TEXT PRIMARY KEY, campaign_id TEXT NOT NULL,"
        " from_status TEXT NOT NULL, to_status TEXT NOT NULL, at_ms INTEGER NOT NULL);");
}

campaign_service::~campaign_service() {
    stop();
}

void campaign_service::create(const campaign_record& c) {
    std::lock_guard lock(mutex());
    SQLite::Statement ins(db(), fmt::format("INSERT OR REPLACE INTO campaigns ({}, updated_at_ms)"
                                            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                            columns));
    ins.bind(1, c.id);
    ins.bind(2, c.name);
    ins.bind(3, c.merchant);
    ins.bind(4, json(c.networks).dump());
    ins.bind(5, json(c.products).dump());
    ins.bind(6, c.budget_cents);
    ins.bind(7, c.creative);
    ins.bind(8, c.status);
    ins.bind(9, c.schedule_state);
    ins.bind(10, c.open_at_ms);
    ins.bind(11, c.close_at_ms);
    ins.bind(12, c.closed_at_ms);
    ins.bind(13, now_ms());
    ins.exec();
}

std::vector<campaign_record> campaign_service::all() {
    std::lock_guard lock(mutex());
    SQLite::Statement q(db(), fmt::format("SELECT {} FROM campaigns ORDER BY id", columns));
    std::vector<campaign_record> out;
    while (q.executeStep()) out.push_back(read_row(q));
    return out;
}

std::optional<campaign_record> campaign_service::find(const std::string& id) {
    SQLite::Statement q(db(), fmt::format("SELECT {} FROM campaigns WHERE id = ?", columns));
    q.bind(1, id);
    if (!q.executeStep()) return std::nullopt;
    return read_row(q);
}

void campaign_service::move(const std::string& id, const std::string& from, const std::string& to,
                            const std::string& key) {
    SQLite::Statement u(db(), "UPDATE campaigns SET status = ?, updated_at_ms = ? WHERE id = ?");
    u.bind(1, to);
    u.bind(2, now_ms());
    u.bind(3, id);
    u.exec();
    SQLite::Statement t(db(),
                        "INSERT OR REPLACE INTO transitions (key, campaign_id, from_status,"
                        " to_status, at_ms) VALUES (?, ?, ?, ?, ?)");
    t.bind(1, key);
    t.bind(2, id);
    t.bind(3, from);
    t.bind(4, to);
    t.bind(5, now_ms());
    t.exec();
}

saga::participant_reply campaign_service::apply(const saga::envelope& e) {
    if (e.type == "begin_action") return begin_action(e);
    if (e.type == "set_status") return set_status(e);
    if (e.type == "revert_status") return revert_status(e);
    if (e.type == "announce") return announce(e);
    if (e.type == "refresh_schedule") return refresh_schedule(e);
    return reply::permanent(fmt::format("campaigns: unknown command '{}'", e.type));
}

// {campaign, action, allowed: [statuses], to: status or ""} -> the campaign and its status before
saga::participant_reply campaign_service::begin_action(const saga::envelope& e) {
    const auto id = e.payload.value("campaign", std::string());
    const auto action = e.payload.value("action", std::string());
    auto c = find(id);
    if (!c) return reply::permanent(fmt::format("unknown campaign '{}'", id));
    const auto allowed = e.payload.value("allowed", std::vector<std::string>{});
    if (std::find(allowed.begin(), allowed.end(), c->status) == allowed.end())
        return reply::permanent(fmt::format("campaign {} is {}; {} needs {}", id, c->status, action,
                                            fmt::join(allowed, " or ")));
    if (action == "publish" || action == "republish") {
        if (c->networks.empty()) return reply::permanent("no ad network selected");
        for (const auto& n : c->networks)
            if (!is_network(n)) return reply::permanent(fmt::format("unknown ad network '{}'", n));
        if (c->budget_cents <= 0) return reply::permanent("the budget must be positive");
        if (c->creative.empty()) return reply::permanent("the campaign has no creative");
        if (c->products.empty()) return reply::permanent("the campaign promotes no product");
    }
    const auto to = e.payload.value("to", std::string());
    if (!to.empty()) move(id, c->status, to, e.idempotency_key);
    return reply::success({{"campaign", json(*c)}, {"previous_status", c->status}});
}

// {campaign, allowed: [statuses], to}
saga::participant_reply campaign_service::set_status(const saga::envelope& e) {
    const auto id = e.payload.value("campaign", std::string());
    const auto to = e.payload.value("to", std::string());
    auto c = find(id);
    if (!c) return reply::permanent(fmt::format("unknown campaign '{}'", id));
    if (!parse_campaign_status(to)) return reply::permanent(fmt::format("bad status '{}'", to));
    const auto allowed = e.payload.value("allowed", std::vector<std::string>{});
    if (std::find(allowed.begin(), allowed.end(), c->status) == allowed.end())
        return reply::permanent(
            fmt::format("campaign {} is {}; cannot move it to {}", id, c->status, to));
    move(id, c->status, to, e.idempotency_key);
    return reply::success({{"status", to}, {"previous_status", c->status}});
}

// compensation of begin_action and set_status: the status that command replaced comes back, if
// nothing moved it since
saga::participant_reply campaign_service::revert_status(const saga::envelope& e) {
    const auto it = e.headers.find("compensates");
    if (it == e.headers.end()) return reply::permanent("revert_status without 'compensates'");
    SQLite::Statement q(
        db(), "SELECT campaign_id, from_status, to_status FROM transitions WHERE key = ?");
    q.bind(1, it->second);
    if (!q.executeStep()) return reply::success({{"reverted", false}});  // nothing was changed
    const auto id = q.getColumn(0).getString();
    const auto from = q.getColumn(1).getString();
    const auto to = q.getColumn(2).getString();
    q.reset();
    auto c = find(id);
    if (!c || c->status != to) return reply::success({{"reverted", false}});
    move(id, to, from, e.idempotency_key);
    return reply::success({{"reverted", true}, {"status", from}});
}

// {campaign, event, details} -> the event on the campaign-events topic, once committed
saga::participant_reply campaign_service::announce(const saga::envelope& e) {
    const auto id = e.payload.value("campaign", std::string());
    const auto event = e.payload.value("event", std::string("CampaignPublished"));
    auto c = find(id);
    if (!c) return reply::permanent(fmt::format("unknown campaign '{}'", id));
    saga::envelope ev;
    ev.message_id = event_id(event, e.idempotency_key);
    ev.type = event;
    ev.correlation_id = id;
    ev.traceparent = e.traceparent;
    ev.payload = {{"campaign", id},
                  {"status", c->status},
                  {"details", e.payload.value("details", json::object())},
                  {"at_ms", now_ms()}};
    after_commit([this, ev]() mutable {
        publish_event(std::string(topics::campaign_events), std::move(ev));
    });
    return reply::success({{"event", event}});
}

// {as_of_ms}: DRAFT -> OPEN -> CLOSED -> INACTIVE by the campaign's dates (seed 003)
saga::participant_reply campaign_service::refresh_schedule(const saga::envelope& e) {
    const auto now = e.payload.value("as_of_ms", now_ms());
    auto run = [&](const char* sql, auto bind) {
        SQLite::Statement u(db(), sql);
        bind(u);
        return u.exec();
    };
    const int opened =
        run("UPDATE campaigns SET schedule_state = 'OPEN' WHERE schedule_state = 'DRAFT'"
            " AND open_at_ms <= ? AND close_at_ms > ?",
            [&](SQLite::Statement& u) {
                u.bind(1, now);
                u.bind(2, now);
            });
    const int closed =
        run("UPDATE campaigns SET schedule_state = 'CLOSED', closed_at_ms = close_at_ms"
            " WHERE schedule_state IN ('DRAFT', 'OPEN') AND close_at_ms <= ?",
            [&](SQLite::Statement& u) { u.bind(1, now); });
    const int inactivated =
        run("UPDATE campaigns SET schedule_state = 'INACTIVE' WHERE schedule_state = 'CLOSED'"
            " AND closed_at_ms + ? <= ?",
            [&](SQLite::Statement& u) {
                u.bind(1, inactive_after_ms);
                u.bind(2, now);
            });
    return reply::success({{"opened", opened}, {"closed", closed}, {"inactivated", inactivated}});
}

}  // namespace campaign
