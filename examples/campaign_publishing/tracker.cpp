#include "tracker.hpp"

#include <algorithm>

namespace campaign {

namespace {

/// Step-name prefixes of per-network steps, and the phase they belong to.
constexpr std::pair<std::string_view, std::string_view> per_network_phases[] = {
    {"submit", "submit"}, {"review", "review"},   {"enable", "go_live"}, {"pause", "pause_ads"},
    {"end", "end_ads"},   {"update", "resubmit"}, {"fetch", "fetch"},
};

phase_progress& phase(std::vector<phase_progress>& phases, const std::string& name) {
    for (auto& p : phases)
        if (p.name == name) return p;
    return phases.emplace_back(phase_progress{.name = name});
}

void count(phase_progress& p, saga::step_status s) {
    using saga::step_status;
    if (s == step_status::skipped) return;
    ++p.total;
    switch (s) {
        case step_status::completed: ++p.successful; break;
        case step_status::compensating:
        case step_status::compensated:
        case step_status::compensation_failed:
            ++p.successful;
            ++p.compensated;
            break;
        case step_status::failed: ++p.failed; break;
        default: break;
    }
    p.processed = p.successful + p.failed;
}

std::string_view product_status(saga::step_status s) {
    switch (s) {
        case saga::step_status::completed: return "in_feed";
        case saga::step_status::failed: return "rejected";
        case saga::step_status::compensating:
        case saga::step_status::compensated: return "removed";
        case saga::step_status::skipped: return "skipped";
        case saga::step_status::pending: return "pending";
        default: return "checking";
    }
}

}  // namespace

std::string phase_of(const std::string& step) {
    if (step == "ensure_feed") return "feed";
    if (step == "reserve_budget" || step == "settle_budget") return "budget";
    if (step == "mark_paused" || step == "mark_finished") return "activate";
    if (step == "announce") return "activate";
    for (auto [prefix, name] : per_network_phases) {
        for (auto n : all_networks)
            if (step == std::string(prefix) + "_" + std::string(n)) return std::string(name);
    }
    return step;
}

tracker make_tracker(const saga::instance_view& view) {
    tracker t;
    t.saga_id = view.id;
    t.definition = view.definition;
    t.campaign_id = view.correlation_key;
    t.status = std::string(saga::to_string(view.status));
    t.percent_complete = view.percent_complete;
    t.current_steps = view.current_steps;
    t.error = view.error;
    for (const auto& s : view.steps) {
        if (s.kind == "parallel") continue;
        auto& p = phase(t.phases, phase_of(s.name));
        if (s.kind == "for_each") {
            for (const auto& item : s.items) {
                count(p, item.status);
                t.products.push_back(
                    {item.item.is_string() ? item.item.get<std::string>() : item.item.dump(),
                     std::string(product_status(item.status)), item.error});
            }
            if (s.items.empty()) count(p, s.status);
        } else {
            count(p, s.status);
        }
    }
    for (auto& p : t.phases) {
        if (p.total == 0)
            p.status = "skipped";
        else if (p.compensated > 0 && p.compensated == p.successful && p.failed == 0)
            p.status = "compensated";
        else if (p.failed > 0)
            p.status = "failed";
        else if (p.processed == p.total)
            p.status = "completed";
        else
            p.status = "pending";
    }
    for (const auto& s : view.current_steps) {
        const auto name = phase_of(s.substr(0, s.find('[')));
        for (auto& p : t.phases)
            if (p.name == name && p.status == "pending") p.status = "running";
    }
    if (view.data.is_object() && view.data.contains("ads") && view.data["ads"].is_object())
        t.ads = view.data["ads"].get<std::map<std::string, std::string>>();
    return t;
}

nlohmann::json to_json(const tracker& t) {
    nlohmann::json phases = nlohmann::json::object();
    for (const auto& p : t.phases)
        phases[p.name] = {{"status", p.status},       {"total", p.total},
                          {"processed", p.processed}, {"successful", p.successful},
                          {"failed", p.failed},       {"compensated", p.compensated}};
    nlohmann::json order = nlohmann::json::array();
    for (const auto& p : t.phases) order.push_back(p.name);
    return {{"id", t.saga_id},
            {"action", t.definition},
            {"campaign", t.campaign_id},
            {"status", t.status},
            {"progress", t.percent_complete},
            {"current_steps", t.current_steps},
            {"phase_order", order},
            {"phases_status", phases},
            {"products", t.products},
            {"ads", t.ads},
            {"error", t.error}};
}

}  // namespace campaign
