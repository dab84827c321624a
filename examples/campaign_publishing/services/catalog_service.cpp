// Product Catalog: products and the per-campaign feeds the ad networks read. A product is
// compliant when it has a GTIN, an image and a positive price.
#include <fmt/format.h>

#include "services.hpp"

namespace campaign {

namespace {
using reply = saga::participant_reply;
}

catalog_service::catalog_service(const data_paths& paths, const simulation& sim)
    : durable_service({.endpoint = std::string(endpoints::catalog),
                       .database = paths.service(endpoints::catalog),
                       .seed = sim.seed,
                       .failure_rate = sim.failure_rate,
                       .latency = std::chrono::milliseconds{1}}) {
    db().exec(
        "CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, title TEXT NOT NULL,"
        " gtin TEXT NOT NULL, price_cents INTEGER NOT NULL, image_url TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS feed (campaign_id TEXT NOT NULL, sku TEXT NOT NULL,"
        " added_by TEXT NOT NULL, PRIMARY KEY (campaign_id, sku));");
}

catalog_service::~catalog_service() {
    stop();
}

void catalog_service::add_product(const product_record& p) {
    std::lock_guard lock(mutex());
    SQLite::Statement ins(db(),
                          "INSERT OR REPLACE INTO products (sku, title, gtin, price_cents,"
                          " image_url) VALUES (?, ?, ?, ?, ?)");
    ins.bind(1, p.sku);
    ins.bind(2, p.title);
    ins.bind(3, p.gtin);
    ins.bind(4, p.price_cents);
    ins.bind(5, p.image_url);
    ins.exec();
}

saga::participant_reply catalog_service::apply(const saga::envelope& e) {
    if (e.type == "ensure_in_feed") {
        const auto campaign = e.payload.value("campaign", std::string());
        const auto sku = e.payload.value("sku", std::string());
        SQLite::Statement q(db(),
                            "SELECT gtin, price_cents, image_url FROM products WHERE sku = ?");
        q.bind(1, sku);
        if (!q.executeStep()) return reply::permanent(fmt::format("unknown product '{}'", sku));
        if (q.getColumn(0).getString().empty())
            return reply::permanent(fmt::format("{} is not compliant: missing GTIN", sku));
        if (q.getColumn(1).getInt64() <= 0)
            return reply::permanent(fmt::format("{} is not compliant: no valid price", sku));
        if (q.getColumn(2).getString().empty())
            return reply::permanent(fmt::format("{} is not compliant: missing image", sku));
        q.reset();
        SQLite::Statement ins(
            db(), "INSERT OR IGNORE INTO feed (campaign_id, sku, added_by) VALUES (?, ?, ?)");
        ins.bind(1, campaign);
        ins.bind(2, sku);
        ins.bind(3, e.idempotency_key);
        const bool added = ins.exec() > 0;
        return reply::success({{"sku", sku}, {"added", added}});
    }
    if (e.type == "remove_from_feed") {
        // undo exactly what the forward command added (a product already in the feed stays)
        const auto it = e.headers.find("compensates");
        if (it == e.headers.end())
            return reply::permanent("remove_from_feed without 'compensates'");
        SQLite::Statement del(db(), "DELETE FROM feed WHERE added_by = ?");
        del.bind(1, it->second);
        return reply::success({{"removed", del.exec()}});
    }
    return reply::permanent(fmt::format("catalog: unknown command '{}'", e.type));
}

}  // namespace campaign
