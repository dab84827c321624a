// How runs, trackers and check reports look on a terminal (and in plain logs).
#include <fmt/format.h>

#include <cmath>

#include <unistd.h>

#include "cli.hpp"

namespace campaign::cli {

bool interactive() {
    return ::isatty(STDOUT_FILENO) == 1;
}

std::string progress_bar(double percent, int width) {
    const int filled = static_cast<int>(std::lround(percent / 100.0 * width));
    return fmt::format("[{}{}] {:3.0f}%", std::string(static_cast<std::size_t>(filled), '#'),
                       std::string(static_cast<std::size_t>(width - filled), '-'), percent);
}

std::string progress_line(const tracker& t) {
    std::string where;
    for (const auto& p : t.phases)
        if (p.status == "running" || p.status == "failed") {
            where = fmt::format("{} {}/{}", p.name, p.processed, p.total);
            if (p.failed) where += fmt::format(" ({} failed)", p.failed);
            break;
        }
    if (where.empty() && !t.current_steps.empty()) where = t.current_steps.front();
    return fmt::format("{:<8} {:<10} {:<13} {} {}", t.campaign_id,
                       t.definition.substr(0, t.definition.find('_')), t.status,
                       progress_bar(t.percent_complete), where);
}

void print_tracker(const tracker& t) {
    fmt::print("run {} ({}) on campaign {}: {}  {}\n", t.saga_id, t.definition, t.campaign_id,
               t.status, progress_bar(t.percent_complete));
    if (!t.error.empty()) fmt::print("  error: {}\n", t.error);
    if (!t.current_steps.empty()) fmt::print("  now: {}\n", fmt::join(t.current_steps, ", "));
    fmt::print("  {:<11} {:<12} {:>5} {:>9} {:>10} {:>6} {:>11}\n", "phase", "status", "total",
               "processed", "successful", "failed", "compensated");
    for (const auto& p : t.phases)
        fmt::print("  {:<11} {:<12} {:>5} {:>9} {:>10} {:>6} {:>11}\n", p.name, p.status, p.total,
                   p.processed, p.successful, p.failed, p.compensated);
    if (!t.products.empty()) {
        fmt::print("  products:");
        for (const auto& p : t.products) fmt::print(" {}={}", p.sku, p.status);
        fmt::print("\n");
        for (const auto& p : t.products)
            if (!p.error.empty()) fmt::print("    {}: {}\n", p.sku, p.error);
    }
    if (!t.ads.empty()) {
        fmt::print("  ads:");
        for (const auto& [network, id] : t.ads) fmt::print(" {}={}", network, id);
        fmt::print("\n");
    }
}

int print_check(const consistency_report& r) {
    std::map<std::string, int> verdicts;
    for (const auto& c : r.campaigns) ++verdicts[c.verdict];
    std::vector<std::string> parts;
    for (const auto& [v, n] : verdicts) parts.push_back(fmt::format("{} {}", n, v));
    fmt::print("consistency check: {} campaigns: {}\n", r.campaigns.size(),
               parts.empty() ? std::string("none") : fmt::format("{}", fmt::join(parts, ", ")));
    for (const auto& p : r.problems) fmt::print("  ORPHAN/INCONSISTENT: {}\n", p);
    for (const auto& s : r.stuck_sagas) fmt::print("  STUCK: {}\n", s);
    if (r.ok()) {
        fmt::print(
            "consistency check: OK (every campaign is fully published, paused, finished or "
            "fully rolled back; nothing is orphaned)\n");
        return ok;
    }
    fmt::print("consistency check: FAILED ({} problem(s), {} stuck run(s))\n", r.problems.size(),
               r.stuck_sagas.size());
    return failed;
}

int report_error(const saga::error& e) {
    fmt::print(stderr, "campaign_publishing: {}\n", e.message.empty() ? e.what() : e.message);
    if (e == saga::errc::lock_held) return locked;
    if (e == saga::errc::invalid_argument) return usage;
    return failed;
}

}  // namespace campaign::cli
