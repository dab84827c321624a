// Billing: each merchant has a credit limit; a campaign's budget is reserved against it while
// the campaign runs, released if the publish is rolled back, settled when it finishes.
#include <fmt/format.h>

#include "services.hpp"

namespace campaign {

namespace {
using reply = saga::participant_reply;
}

billing_service::billing_service(const data_paths& paths, const simulation& sim)
    : durable_service({.endpoint = std::string(endpoints::billing),
                       .database = paths.service(endpoints::billing),
                       .seed = sim.seed,
                       .failure_rate = sim.failure_rate,
                       .latency = std::chrono::milliseconds{2}}) {
    db().exec(
        "CREATE TABLE IF NOT EXISTS accounts (merchant TEXT PRIMARY KEY,"
        " credit_limit_cents INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL,"
        " merchant TEXT NOT NULL, amount_cents INTEGER NOT NULL,"
        " status TEXT NOT NULL CHECK (status IN ('held', 'released', 'settled')),"
        " reserved_by TEXT NOT NULL UNIQUE, settled_by TEXT NOT NULL DEFAULT '');");
}

billing_service::~billing_service() {
    stop();
}

void billing_service::open_account(const std::string& merchant, std::int64_t credit_limit_cents) {
    std::lock_guard lock(mutex());
    SQLite::Statement ins(
        db(), "INSERT OR REPLACE INTO accounts (merchant, credit_limit_cents) VALUES (?, ?)");
    ins.bind(1, merchant);
    ins.bind(2, credit_limit_cents);
    ins.exec();
}

saga::participant_reply billing_service::apply(const saga::envelope& e) {
    const auto compensates = [&]() -> std::string {
        auto it = e.headers.find("compensates");
        return it == e.headers.end() ? std::string() : it->second;
    };
    if (e.type == "reserve") {
        const auto campaign = e.payload.value("campaign", std::string());
        const auto merchant = e.payload.value("merchant", std::string());
        const auto amount = e.payload.value("amount_cents", std::int64_t{0});
        if (amount <= 0) return reply::permanent("the amount must be positive");
        SQLite::Statement acc(db(), "SELECT credit_limit_cents FROM accounts WHERE merchant = ?");
        acc.bind(1, merchant);
        if (!acc.executeStep())
            return reply::permanent(fmt::format("merchant '{}' has no billing account", merchant));
        const auto limit = acc.getColumn(0).getInt64();
        acc.reset();
        SQLite::Statement held(db(),
                               "SELECT COALESCE(SUM(amount_cents), 0) FROM reservations"
                               " WHERE merchant = ? AND status = 'held'");
        held.bind(1, merchant);
        held.executeStep();
        const auto in_use = held.getColumn(0).getInt64();
        held.reset();
        if (in_use + amount > limit)
            return reply::permanent(
                fmt::format("insufficient credit: {} needs {} cents, {} of {} are reserved already",
                            campaign, amount, in_use, limit));
        const auto id = fmt::format("rsv-{:012x}", mix(0, e.idempotency_key) & 0xffffffffffffull);
        SQLite::Statement ins(db(),
                              "INSERT INTO reservations (id, campaign_id, merchant, amount_cents,"
                              " status, reserved_by) VALUES (?, ?, ?, ?, 'held', ?)");
        ins.bind(1, id);
        ins.bind(2, campaign);
        ins.bind(3, merchant);
        ins.bind(4, amount);
        ins.bind(5, e.idempotency_key);
        ins.exec();
        return reply::success({{"reservation_id", id}});
    }
    if (e.type == "release") {  // compensation of reserve
        SQLite::Statement u(db(),
                            "UPDATE reservations SET status = 'released'"
                            " WHERE reserved_by = ? AND status = 'held'");
        u.bind(1, compensates());
        return reply::success({{"released", u.exec()}});
    }
    if (e.type == "settle") {  // finish: the held budget is spent
        SQLite::Statement u(db(),
                            "UPDATE reservations SET status = 'settled', settled_by = ?"
                            " WHERE campaign_id = ? AND status = 'held'");
        u.bind(1, e.idempotency_key);
        u.bind(2, e.payload.value("campaign", std::string()));
        return reply::success({{"settled", u.exec()}});
    }
    if (e.type == "reopen") {  // compensation of settle
        SQLite::Statement u(db(),
                            "UPDATE reservations SET status = 'held', settled_by = ''"
                            " WHERE settled_by = ? AND status = 'settled'");
        u.bind(1, compensates());
        return reply::success({{"reopened", u.exec()}});
    }
    return reply::permanent(fmt::format("billing: unknown command '{}'", e.type));
}

}  // namespace campaign
