#include "consistency.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "domain.hpp"
#include "sagas/sagas.hpp"
#include "services/durable_service.hpp"

namespace campaign {

namespace {

using json = nlohmann::json;

}  // namespace

saga::result<consistency_report> check_consistency(const data_paths& paths, saga::engine& engine) {
    consistency_report report;
    std::map<std::string, campaign_state> campaigns;
    try {
        {
            auto db = open_database(paths.service(endpoints::campaigns), true);
            SQLite::Statement q(db, "SELECT id, status, schedule_state, networks FROM campaigns");
            while (q.executeStep()) {
                campaign_state c;
                c.id = q.getColumn(0).getString();
                c.status = q.getColumn(1).getString();
                c.schedule_state = q.getColumn(2).getString();
                c.networks =
                    json::parse(q.getColumn(3).getString()).get<std::vector<std::string>>();
                campaigns.emplace(c.id, std::move(c));
            }
        }
        {
            auto db = open_database(paths.service(endpoints::billing), true);
            SQLite::Statement q(db,
                                "SELECT campaign_id, id FROM reservations WHERE status = 'held'");
            while (q.executeStep()) {
                const auto id = q.getColumn(0).getString();
                auto it = campaigns.find(id);
                if (it == campaigns.end())
                    report.problems.push_back(
                        fmt::format("orphan reservation {} of unknown campaign {}",
                                    q.getColumn(1).getString(), id));
                else
                    ++it->second.reservations_held;
            }
        }
        {
            auto db = open_database(paths.service(endpoints::catalog), true);
            SQLite::Statement q(db, "SELECT campaign_id, COUNT(*) FROM feed GROUP BY campaign_id");
            while (q.executeStep()) {
                auto it = campaigns.find(q.getColumn(0).getString());
                if (it != campaigns.end()) it->second.feed_products = q.getColumn(1).getInt();
            }
        }
        for (auto n : all_networks) {
            const auto file = paths.service(endpoints::network(n));
            auto db = open_database(file, true);
            SQLite::Statement q(
                db, "SELECT campaign_id, ad_id, status FROM ads ORDER BY updated_at_ms");
            while (q.executeStep()) {
                const auto id = q.getColumn(0).getString();
                const auto status = q.getColumn(2).getString();
                auto it = campaigns.find(id);
                if (it == campaigns.end()) {
                    if (status != "withdrawn" && status != "ended")
                        report.problems.push_back(
                            fmt::format("orphan {} ad {} of unknown campaign {}", n,
                                        q.getColumn(1).getString(), id));
                    continue;
                }
                auto& slot = it->second.ads[std::string(n)];
                // an ad that is not withdrawn or ended is what counts; two of them is a problem
                const bool open =
                    status != "withdrawn" && status != "ended" && status != "rejected";
                const bool slot_open =
                    !slot.empty() && slot != "withdrawn" && slot != "ended" && slot != "rejected";
                if (open && slot_open)
                    report.problems.push_back(
                        fmt::format("campaign {} has two open ads on {}", id, n));
                if (open || !slot_open) slot = status;
            }
        }
    } catch (const std::exception& e) {
        return saga::error{saga::errc::store_failure,
                           fmt::format("cannot read the services' databases: {}", e.what())};
    }

    // open and stuck action sagas
    saga::list_filter open;
    open.statuses = {saga::saga_status::running,      saga::saga_status::waiting,
                     saga::saga_status::compensating, saga::saga_status::paused,
                     saga::saga_status::failed,       saga::saga_status::compensation_failed};
    open.limit = 100000;
    SAGA_TRY(auto open_sagas, engine.list(open));
    for (const auto& r : open_sagas) {
        if (!sagas::is_action(r.definition)) continue;
        if (r.status == saga::saga_status::failed ||
            r.status == saga::saga_status::compensation_failed) {
            report.stuck_sagas.push_back(
                fmt::format("{} ({}, campaign {}) is {}: an operator must "
                            "retry or skip it",
                            r.id, r.definition, r.correlation_key, saga::to_string(r.status)));
        }
        if (auto it = campaigns.find(r.correlation_key); it != campaigns.end())
            it->second.open_saga = r.id;
    }

    // Every run's history: readable (a damaged page of the history shows here, also when the
    // store's own check on open is off or missed it), not empty, its versions never going down
    // nor past the run's own.
    saga::list_filter every;
    every.limit = 1000;
    for (;;) {
        SAGA_TRY(auto page, engine.list(every));
        for (const auto& r : page) {
            auto h = engine.history(r.id);
            if (!h) {
                report.problems.push_back(
                    fmt::format("the history of {} cannot be read: {}", r.id, h.error().message));
                continue;
            }
            if (h.value().empty()) {
                report.problems.push_back(fmt::format("{} has no history", r.id));
                continue;
            }
            // On a live store the run may have moved on since it was listed: its version read
            // after its history bounds that history (versions only grow).
            std::uint64_t bound = r.version;
            if (h.value().back().version > bound)
                if (auto now = engine.query(r.id)) bound = std::max(bound, now.value().version);
            std::uint64_t last = 0;
            for (const auto& e : h.value()) {
                if (e.version < last || e.version > bound) {
                    report.problems.push_back(fmt::format(
                        "the history of {} is out of order: entry '{}' at version {} (after {}, "
                        "the run is at {})",
                        r.id, e.event, e.version, last, bound));
                    break;
                }
                last = e.version;
            }
        }
        if (page.size() < every.limit) break;
        every.after_id = page.back().id;
    }

    for (auto& [id, c] : campaigns) {
        std::vector<std::string> issues;
        std::set<std::string> live, paused, pending;
        for (const auto& [network, status] : c.ads) {
            if (status == "live") live.insert(network);
            if (status == "paused") paused.insert(network);
            if (status == "in_review" || status == "approved") pending.insert(network);
        }
        const std::set<std::string> wanted(c.networks.begin(), c.networks.end());
        auto list = [](const std::set<std::string>& s) {
            return s.empty() ? std::string("none") : fmt::format("{}", fmt::join(s, ","));
        };
        if (!c.open_saga.empty()) {
            c.verdict = "in progress";
        } else if (c.status == "ACTIVE") {
            if (c.reservations_held != 1)
                issues.push_back(
                    fmt::format("{} budget reservations held (want 1)", c.reservations_held));
            if (live != wanted)
                issues.push_back(fmt::format("live ads on {} (want {})", list(live), list(wanted)));
            if (!pending.empty() || !paused.empty())
                issues.push_back(fmt::format("ads not live on {}", list(pending)));
            c.verdict = "published";
        } else if (c.status == "PAUSED") {
            if (c.reservations_held != 1)
                issues.push_back(
                    fmt::format("{} budget reservations held (want 1)", c.reservations_held));
            if (!live.empty()) issues.push_back(fmt::format("live ads on {}", list(live)));
            if (paused != wanted)
                issues.push_back(
                    fmt::format("paused ads on {} (want {})", list(paused), list(wanted)));
            c.verdict = "paused";
        } else if (c.status == "FINISHED") {
            if (c.reservations_held != 0)
                issues.push_back(
                    fmt::format("{} budget reservations still held", c.reservations_held));
            if (!live.empty() || !paused.empty() || !pending.empty())
                issues.push_back(fmt::format("ads still open on {}", list(live)));
            c.verdict = "finished";
        } else if (c.status == "DRAFT") {
            if (c.reservations_held != 0)
                issues.push_back(
                    fmt::format("orphan budget reservation ({} held)", c.reservations_held));
            if (!live.empty()) issues.push_back(fmt::format("orphan live ads on {}", list(live)));
            if (!paused.empty())
                issues.push_back(fmt::format("orphan paused ads on {}", list(paused)));
            if (!pending.empty())
                issues.push_back(fmt::format("orphan ads in review on {}", list(pending)));
            if (c.feed_products != 0)
                issues.push_back(fmt::format("{} orphan products in its feed", c.feed_products));
            c.verdict = "rolled back";
        } else {
            issues.push_back(fmt::format("{} with no action saga running", c.status));
        }
        if (!issues.empty()) {
            c.verdict = "INCONSISTENT";
            report.problems.push_back(
                fmt::format("campaign {} ({}): {}", id, c.status, fmt::join(issues, "; ")));
        }
        report.campaigns.push_back(c);
    }
    return report;
}

}  // namespace campaign
