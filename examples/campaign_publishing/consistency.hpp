#pragma once
/// @file consistency.hpp
/// The consistency check: after any run, crash or fault, every campaign must be either fully
/// published or fully rolled back, and nothing may be orphaned.

#include <map>
#include <string>
#include <vector>

#include <saga/engine.hpp>

#include "simulation.hpp"

namespace campaign {

/// What the check found about one campaign.
struct campaign_state {
    std::string id;
    std::string status;
    std::string schedule_state;
    std::vector<std::string> networks;
    /// held budget reservations
    int reservations_held = 0;
    /// network -> status of its ad ("live", "paused", "withdrawn", ...; the newest ad)
    std::map<std::string, std::string> ads;
    /// products in its feed
    int feed_products = 0;
    /// the id of an action saga still open for it (running, waiting, paused), if any
    std::string open_saga;
    /// "published", "paused", "finished", "rolled back", "in progress" or "INCONSISTENT"
    std::string verdict;
};

/// The outcome of the check.
struct consistency_report {
    std::vector<campaign_state> campaigns;
    /// one line per orphan or broken invariant
    std::vector<std::string> problems;
    /// sagas that wait for an operator (failed or compensation_failed)
    std::vector<std::string> stuck_sagas;

    /// True when there is no problem and no stuck saga.
    [[nodiscard]] bool ok() const noexcept { return problems.empty() && stuck_sagas.empty(); }
};

/// Checks every campaign against the services' own databases (read only) and the saga store:
/// - ACTIVE: one budget reservation held, a live ad on exactly its networks, its products in
///   the feed;
/// - PAUSED: one reservation held, a paused ad on exactly its networks, none live;
/// - FINISHED: no reservation held, no live or paused ad;
/// - DRAFT (never published, or rolled back): no reservation held, no ad in review, approved,
///   live or paused, nothing in its feed;
/// - PUBLISHING: only while an action saga is open for it.
/// Campaigns with an open action saga are reported "in progress" and not judged. Reservations
/// and ads of unknown campaigns are orphans. The history of every saga is read too: one that
/// cannot be read (a damaged page), is empty or is out of order is a problem.
/// `errc::store_failure` if a database cannot be read.
[[nodiscard]] saga::result<consistency_report> check_consistency(const data_paths& paths,
                                                                 saga::engine& engine);

}  // namespace campaign
