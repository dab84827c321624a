#pragma once
/// @file tracker.hpp
/// The publishing tracker of seed 004, derived from the engine's view of a run: phases with
/// processed / successful / failed counts, per-product results, percent complete. Queryable at
/// any moment, from any process that can read the store.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <saga/engine.hpp>

#include "domain.hpp"

namespace campaign {

/// One phase of a run ("validate", "budget", "feed", "submit", "review", ...).
struct phase_progress {
    std::string name;
    /// units of work in the phase (steps, or products for the feed), skipped ones excluded
    std::size_t total = 0;
    /// settled units: successful + failed
    std::size_t processed = 0;
    /// units that completed (including those later compensated)
    std::size_t successful = 0;
    std::size_t failed = 0;
    /// successful units that were undone by a compensation
    std::size_t compensated = 0;
    /// "pending", "running", "completed", "failed", "compensated" or "skipped"
    std::string status = "pending";
};

/// The tracker of one run (one saga instance).
struct tracker {
    std::string saga_id;
    std::string definition;
    std::string campaign_id;
    /// the saga status ("running", "completed", "compensated", ...)
    std::string status;
    double percent_complete = 0;
    std::vector<std::string> current_steps;
    std::vector<phase_progress> phases;
    std::vector<product_result> products;
    /// network -> ad id
    std::map<std::string, std::string> ads;
    std::string error;
};

/// The phase a step belongs to ("submit_google" -> "submit", "ensure_feed" -> "feed").
[[nodiscard]] std::string phase_of(const std::string& step);

/// The tracker of the run `view` shows.
[[nodiscard]] tracker make_tracker(const saga::instance_view& view);

/// The tracker as JSON (the shape of seed 004's progress data).
[[nodiscard]] nlohmann::json to_json(const tracker& t);

}  // namespace campaign
