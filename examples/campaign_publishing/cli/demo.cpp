// The demo: sample campaigns published with injected failures, live progress, follow-up
// actions (pause, republish, finish), performance ingestion, a summary and the consistency
// check.
#include <fmt/format.h>

#include <thread>

#include "../installation.hpp"
#include "cli.hpp"

namespace campaign::cli {

namespace {

using namespace std::chrono_literals;

/// What the demo's "marketing lead" does with a campaign waiting for approval.
bool approves(const std::string& campaign_id) {
    return campaign_id != "c-1007";
}

/// The scripted story of the first seven campaigns.
std::string_view story(const std::string& id) {
    if (id == "c-1001") return "happy path";
    if (id == "c-1002") return "4 networks + approval";
    if (id == "c-1003") return "budget over credit";
    if (id == "c-1004") return "non-compliant product";
    if (id == "c-1005") return "TikTok rejects the ad";
    if (id == "c-1006") return "Snapchat review too slow";
    if (id == "c-1007") return "approval refused";
    return "random";
}

/// Redraws the progress block of every run (terminal), or prints changed lines (plain).
class progress_view {
public:
    void show(const std::vector<tracker>& runs) {
        std::vector<std::string> lines;
        for (const auto& t : runs) lines.push_back(progress_line(t));
        if (interactive()) {
            if (drawn_ > 0) fmt::print("\033[{}A", drawn_);
            for (const auto& l : lines) fmt::print("\r\033[K{}\n", l);
            drawn_ = lines.size();
            std::fflush(stdout);
        } else {
            for (std::size_t i = 0; i < lines.size(); ++i) {
                if (i >= last_.size() || strip(last_[i]) != strip(lines[i]))
                    fmt::print("{}\n", lines[i]);
            }
            last_ = lines;
        }
    }

private:
    /// Plain output prints a line when the status or phase changes, not on every percent.
    static std::string strip(const std::string& line) {
        const auto bar = line.find('[');
        const auto end = line.find(']');
        return bar == std::string::npos ? line : line.substr(0, bar) + line.substr(end + 6);
    }
    std::size_t drawn_ = 0;
    std::vector<std::string> last_;
};

/// Follows `ids` until every run is decided, approving (or refusing) on the way.
bool follow_all(runtime& rt, const std::vector<std::string>& ids, std::chrono::seconds limit) {
    progress_view view;
    std::set<std::string> answered;
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        std::vector<tracker> runs;
        bool all_decided = true;
        for (const auto& id : ids) {
            auto v = rt.engine().query(id);
            if (!v) continue;
            runs.push_back(make_tracker(v.value()));
            if (!runtime::decided(v.value())) all_decided = false;
            const auto& campaign_id = v.value().correlation_key;
            if (v.value().status == saga::saga_status::waiting && runtime::decided(v.value()) &&
                !answered.contains(id)) {
                answered.insert(id);
                all_decided = false;
                (void)rt.approve(
                    campaign_id, approves(campaign_id), "marketing-lead",
                    approves(campaign_id) ? "looks good" : "the creative is off-brand");
            }
        }
        view.show(runs);
        if (all_decided) return true;
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(interactive() ? 100ms : 50ms);
    }
}

void print_summary(runtime& rt, const std::vector<std::string>& ids) {
    fmt::print("\n{:<8} {:<24} {:<11} {:<32} {:<12} {}\n", "campaign", "story", "status", "ads",
               "last run", "outcome");
    auto cs = rt.campaigns();
    if (!cs) return;
    for (const auto& c : cs.value()) {
        std::string run = "-";
        std::string outcome;
        if (auto id = rt.latest_action(c.id)) {
            if (auto v = rt.engine().query(id.value())) {
                run = std::string(saga::to_string(v.value().status));
                outcome = v.value().error;
                if (auto a = v.value().data_as<campaign_action>();
                    a && !a.value().ads.empty() && outcome.empty())
                    outcome = fmt::format("{} ads", a.value().ads.size());
            }
        }
        if (outcome.size() > 70) outcome = outcome.substr(0, 67) + "...";
        fmt::print("{:<8} {:<24} {:<11} {:<32} {:<12} {}\n", c.id, story(c.id), c.status,
                   fmt::format("{}", fmt::join(c.networks, ",")), run, outcome);
    }
    (void)ids;
}

void print_analytics(const data_paths& paths) {
    auto rows = read_daily_summaries(paths);
    if (rows.empty()) {
        fmt::print("\nanalytics: no performance data yet\n");
        return;
    }
    fmt::print("\nanalytics daily summary ({}):\n", rows.front().day);
    fmt::print("  {:<8} {:>11} {:>7} {:>11} {:>10} {:>6} {:>9} {:>6}\n", "campaign", "impressions",
               "clicks", "conversions", "spend", "CTR", "CPA", "ROAS");
    for (const auto& r : rows)
        fmt::print("  {:<8} {:>11} {:>7} {:>11} {:>10.2f} {:>5.2f}% {:>9.2f} {:>6.2f}\n",
                   r.campaign_id, r.impressions, r.clicks, r.conversions,
                   static_cast<double>(r.spend_cents) / 100.0, r.ctr * 100.0, r.cpa_cents / 100.0,
                   r.roas);
}

}  // namespace

int run_demo(const arguments& args) {
    const auto& opts = args.runtime;
    fmt::print("campaign publishing demo: {} campaigns, seed {}, failure rate {:.2f}, store {}\n",
               args.campaigns, opts.sim.seed, opts.sim.failure_rate, opts.paths.store.string());
    // (checked before anything is deleted)
    if (transport_is_shared(opts.transport))
        return report_error(
            saga::error{saga::errc::invalid_argument,
                        "the demo runs its services in-process: --transport memory"});
    if (auto cleared = clear_installation(opts.paths, "the demo"); !cleared)
        return report_error(cleared.error());

    auto opened = runtime::open(opts);
    if (!opened) return report_error(opened.error());
    auto& rt = *opened.value();
    const auto samples = rt.services()->seed_samples(args.campaigns);
    if (auto r = rt.start(); !r) return report_error(r.error());
    if (auto r = rt.schedule_background(1s, 1s); !r) return report_error(r.error());

    // 1. publish every campaign; some need a human approval
    fmt::print("\n== publishing {} campaigns to Google, Instagram, TikTok and Snapchat\n",
               samples.size());
    std::vector<std::string> ids;
    for (const auto& c : samples) {
        const bool approval = c.id == "c-1002" || c.id == "c-1007" ||
                              (c.id > "c-1007" && chance(opts.sim.seed, c.id + "|approval") < 0.3);
        auto id = rt.start_action({.campaign_id = c.id,
                                   .action = "publish",
                                   .require_approval = approval,
                                   .requested_by = "demo"});
        if (!id) return report_error(id.error());
        ids.push_back(id.value());
    }
    // one action at a time per campaign: a second publish of a running campaign is refused
    if (auto second = rt.start_action({.campaign_id = samples.front().id, .action = "publish"});
        !second)
        fmt::print("second publish of {} refused, as it should be: {}\n", samples.front().id,
                   second.error().message);
    if (!follow_all(rt, ids, 45s)) fmt::print("some runs did not finish in time\n");

    // 2. follow-up actions on the published campaigns
    fmt::print("\n== lifecycle actions\n");
    auto act = [&](const std::string& campaign_id, const std::string& action) {
        auto id =
            rt.start_action({.campaign_id = campaign_id, .action = action, .requested_by = "demo"});
        if (!id) {
            fmt::print("{} {}: {}\n", action, campaign_id, id.error().message);
            return;
        }
        if (!follow_all(rt, {id.value()}, 20s))
            fmt::print("{} did not finish in time\n", id.value());
    };
    auto status_of = [&](const std::string& campaign_id) {
        auto cs = rt.campaigns();
        if (cs)
            for (const auto& c : cs.value())
                if (c.id == campaign_id) return c.status;
        return std::string();
    };
    if (status_of("c-1001") == "ACTIVE") {
        act("c-1001", "pause");
        act("c-1001", "republish");
    }
    if (status_of("c-1002") == "ACTIVE") act("c-1002", "finish");

    // 3. let performance ingestion run once more over the live ads
    fmt::print("\n== performance ingestion (scheduled every second)\n");
    std::this_thread::sleep_for(1500ms);
    rt.stop();

    print_summary(rt, ids);
    print_analytics(opts.paths);
    fmt::print("\n");
    auto report = rt.check();
    if (!report) return report_error(report.error());
    const int code = print_check(report.value());
    fmt::print("\ntry: campaign_publishing status c-1005 | history c-1004 | list   (--store {})\n",
               opts.paths.store.string());
    return code;
}

}  // namespace campaign::cli
