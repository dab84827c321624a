// The operator subcommands: actions on one campaign, approve, status, list, history, resume,
// check, reset and services.
#include <fmt/format.h>

#include <csignal>
#include <thread>

#include "../installation.hpp"
#include "cli.hpp"

namespace campaign::cli {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

/// How long a subcommand follows a run before it gives up (the run goes on in the next process).
constexpr std::chrono::milliseconds follow_limit = 60s;

/// How a subcommand uses the store.
enum class access { read_only, read_write };

/// Opens the runtime (and starts it when `start`), or prints why not. Read-only, it writes
/// nothing (and works on files that cannot be written).
std::unique_ptr<runtime> open_runtime(const arguments& args, bool start, int& code,
                                      access how = access::read_write) {
    if (!std::filesystem::exists(args.runtime.paths.store) && args.command != "services") {
        code = report_error(
            saga::error{saga::errc::not_found,
                        fmt::format("no store at {} (run the demo first, or give --store)",
                                    args.runtime.paths.store.string())});
        return nullptr;
    }
    auto options = args.runtime;
    options.read_only = how == access::read_only;
    auto rt = runtime::open(options);
    if (!rt) {
        code = report_error(rt.error());
        return nullptr;
    }
    if (start) {
        if (auto r = rt.value()->start(); !r) {
            code = report_error(r.error());
            return nullptr;
        }
    }
    return std::move(rt).value();
}

/// A campaign id or a run id -> the run id.
saga::result<std::string> run_of(runtime& rt, const std::string& what) {
    if (rt.engine().query(what)) return what;
    return rt.latest_action(what);
}

/// Follows run `id` until it is decided, printing progress; the exit code of its outcome.
int follow(runtime& rt, const std::string& id) {
    std::string last;
    auto v = rt.wait_for_decision(id, follow_limit, [&](const saga::instance_view& view) {
        auto line = progress_line(make_tracker(view));
        if (interactive()) {
            fmt::print("\r\033[K{}", line);
            std::fflush(stdout);
        } else if (line != last) {
            fmt::print("{}\n", line);
        }
        last = line;
    });
    if (interactive()) fmt::print("\n");
    if (!v) return report_error(v.error());
    print_tracker(make_tracker(v.value()));
    const auto& view = v.value();
    if (view.status == saga::saga_status::completed) return ok;
    if (view.status == saga::saga_status::waiting) {
        fmt::print("{} waits for approval: campaign_publishing approve {} [--reject]\n", id,
                   view.correlation_key);
        return ok;
    }
    fmt::print("{} ended {}: {}\n", id, saga::to_string(view.status), view.error);
    return failed;
}

volatile std::sig_atomic_t stop_requested = 0;

}  // namespace

int run_action(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, true, code);
    if (!rt) return code;
    auto id = rt->start_action({.campaign_id = args.positional.front(),
                                .action = args.command,
                                .require_approval = args.require_approval,
                                .force = args.force,
                                .requested_by = args.by.empty() ? "cli" : args.by});
    if (!id && id.error() == saga::errc::lock_held) {
        auto e = id.error();
        e.message += fmt::format("; wait for it, or use --force (or `reset {}`) to override",
                                 args.positional.front());
        return report_error(e);
    }
    if (!id) return report_error(id.error());
    fmt::print("started {}\n", id.value());
    std::fflush(stdout);
    return follow(*rt, id.value());
}

int run_approve(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, true, code);
    if (!rt) return code;
    auto id = rt->approve(args.positional.front(), !args.reject, args.by.empty() ? "cli" : args.by,
                          args.note);
    if (!id) return report_error(id.error());
    fmt::print("{} sent to {}\n", args.reject ? "refusal" : "approval", id.value());
    // the signal is durable now; follow once the run has taken it
    for (int i = 0; i < 200; ++i) {
        auto v = rt->engine().query(id.value());
        if (!v) return report_error(v.error());
        const auto* step = v.value().step(signals::approval);
        if (!step || step->status != saga::step_status::waiting) break;
        std::this_thread::sleep_for(50ms);
    }
    return follow(*rt, id.value());
}

int run_status(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, false, code, access::read_only);
    if (!rt) return code;
    auto id = run_of(*rt, args.positional.front());
    if (!id) return report_error(id.error());
    auto t = rt->track(id.value());
    if (!t) return report_error(t.error());
    if (args.json)
        fmt::print("{}\n", to_json(t.value()).dump(2));
    else
        print_tracker(t.value());
    return ok;
}

int run_list(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, false, code, access::read_only);
    if (!rt) return code;
    auto cs = rt->campaigns();
    if (!cs) return report_error(cs.error());
    json out = json::array();
    if (!args.json)
        fmt::print("{:<8} {:<18} {:<11} {:<9} {:<30} {}\n", "campaign", "name", "status",
                   "schedule", "networks", "latest run");
    for (const auto& c : cs.value()) {
        std::string latest = "-";
        std::string outcome;
        if (auto id = rt->latest_action(c.id)) {
            latest = id.value();
            if (auto v = rt->engine().query(latest)) outcome = saga::to_string(v.value().status);
        }
        if (args.json) {
            out.push_back({{"campaign", c.id},
                           {"name", c.name},
                           {"status", c.status},
                           {"schedule_state", c.schedule_state},
                           {"networks", c.networks},
                           {"latest_run", latest},
                           {"latest_run_status", outcome}});
        } else {
            fmt::print("{:<8} {:<18} {:<11} {:<9} {:<30} {} {}\n", c.id, c.name, c.status,
                       c.schedule_state, fmt::format("{}", fmt::join(c.networks, ",")), latest,
                       outcome);
        }
    }
    if (args.json) fmt::print("{}\n", out.dump(2));
    return ok;
}

int run_history(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, false, code, access::read_only);
    if (!rt) return code;
    auto id = run_of(*rt, args.positional.front());
    if (!id) return report_error(id.error());
    auto h = rt->engine().history(id.value());
    if (!h) return report_error(h.error());
    json out = json::array();
    const auto start = h.value().empty() ? saga::time_point{} : h.value().front().at;
    if (!args.json) fmt::print("timeline of {}\n", id.value());
    for (const auto& e : h.value()) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.at - start).count();
        if (args.json) {
            out.push_back({{"at_ms", ms},
                           {"version", e.version},
                           {"event", e.event},
                           {"step", e.step},
                           {"attempt", e.attempt},
                           {"detail", e.detail}});
        } else {
            fmt::print("  +{:>6} ms  {:<28} {:<18} {}{}\n", ms, e.event, e.step,
                       e.attempt > 1 ? fmt::format("attempt {} ", e.attempt) : "",
                       e.detail.is_null() || e.detail.empty() ? "" : e.detail.dump());
        }
    }
    if (args.json) fmt::print("{}\n", out.dump(2));
    return ok;
}

int run_resume(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, true, code);
    if (!rt) return code;
    saga::list_filter f;
    f.statuses = {saga::saga_status::running, saga::saga_status::waiting,
                  saga::saga_status::compensating};
    f.limit = 100000;
    auto open = rt->engine().list(f);
    if (!open) return report_error(open.error());
    fmt::print("resuming {} unfinished run(s)\n", open.value().size());
    for (const auto& r : open.value()) {
        auto v = rt->wait_for_decision(r.id, follow_limit);
        if (!v) return report_error(v.error());
        fmt::print("  {:<28} {:<12} {}\n", r.id, saga::to_string(v.value().status),
                   runtime::decided(v.value()) && v.value().status == saga::saga_status::waiting
                       ? "(waits for approval)"
                       : v.value().error);
    }
    rt->stop();
    auto report = rt->check();
    if (!report) return report_error(report.error());
    return print_check(report.value());
}

int run_check(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, false, code, access::read_only);
    if (!rt) return code;
    auto report = rt->check();
    if (!report) return report_error(report.error());
    if (args.json) {
        json out = {{"ok", report.value().ok()},
                    {"problems", report.value().problems},
                    {"stuck", report.value().stuck_sagas}};
        fmt::print("{}\n", out.dump(2));
        return report.value().ok() ? ok : failed;
    }
    return print_check(report.value());
}

int run_reset(const arguments& args) {
    int code = ok;
    auto rt = open_runtime(args, args.cancel, code);
    if (!rt) return code;
    const auto& campaign_id = args.positional.front();
    auto known = rt->campaigns();
    if (!known) return report_error(known.error());
    if (std::none_of(known.value().begin(), known.value().end(),
                     [&](const campaign_record& c) { return c.id == campaign_id; }))
        return report_error(
            saga::error{saga::errc::not_found, fmt::format("unknown campaign '{}'", campaign_id)});
    const saga::operator_note note{
        .who = args.by.empty() ? "cli" : args.by,
        .why = args.note.empty() ? "force-reset from the command line" : args.note};
    auto open = rt->open_action(campaign_id);
    auto released = rt->reset(campaign_id, note, args.cancel);
    if (!released) return report_error(released.error());
    fmt::print("released {} lock(s) on {}{}\n", released.value(), campaign_id,
               open ? fmt::format(" (held by {})", open.value()) : std::string());
    if (args.cancel && open) return follow(*rt, open.value());
    return ok;
}

int run_setup(const arguments& args) {
    auto opts = args.runtime;
    if (auto cleared = clear_installation(opts.paths, "setup"); !cleared)
        return report_error(cleared.error());
    // the store and the services' databases are files: no transport is needed to create them
    opts.transport = "memory";
    auto rt = runtime::open(opts);
    if (!rt) return report_error(rt.error());
    const auto samples = rt.value()->services()->seed_samples(args.campaigns);
    fmt::print("created {} with {} campaigns:", opts.paths.store.string(), samples.size());
    for (const auto& c : samples) fmt::print(" {}", c.id);
    fmt::print("\n");
    return ok;
}

int run_orchestrate(const arguments& args) {
    if (!transport_is_shared(args.runtime.transport))
        return report_error(saga::error{
            saga::errc::invalid_argument,
            fmt::format("orchestrate runs the engine for services in other processes: it needs a "
                        "shared transport (--transport sqs), not {}",
                        args.runtime.transport)});
    int code = ok;
    auto rt = open_runtime(args, true, code);
    if (!rt) return code;
    if (auto r = rt->schedule_background(args.schedule_every, args.schedule_every); !r)
        return report_error(r.error());
    std::signal(SIGINT, [](int) { stop_requested = 1; });
    std::signal(SIGTERM, [](int) { stop_requested = 1; });
    fmt::print("orchestrator running on transport {} (store {}); Ctrl-C stops it\n",
               args.runtime.transport, args.runtime.paths.store.string());
    std::fflush(stdout);
    while (!stop_requested) std::this_thread::sleep_for(100ms);
    rt->stop();
    fmt::print("orchestrator stopped\n");
    return ok;
}

int run_services(const arguments& args) {
    if (!transport_is_shared(args.runtime.transport))
        return report_error(saga::error{
            saga::errc::invalid_argument,
            fmt::format("the {} transport cannot be shared between processes: with it the "
                        "services run inside every other command; use a shared transport "
                        "(--transport sqs) to run them alone",
                        args.runtime.transport)});
    auto clock = std::make_shared<saga::system_clock>();
    auto transport = make_transport(args.runtime.transport, clock, args.runtime.sim,
                                    args.runtime.transport_config);
    if (!transport) return report_error(transport.error());
    service_set services(args.runtime.paths, args.runtime.sim);
    if (auto r = services.start(transport.value(), args.only); !r) return report_error(r.error());
    std::signal(SIGINT, [](int) { stop_requested = 1; });
    std::signal(SIGTERM, [](int) { stop_requested = 1; });
    fmt::print(
        "services {} running on transport {}; Ctrl-C stops them\n",
        args.only.empty() ? std::string("(all)") : fmt::format("{}", fmt::join(args.only, ",")),
        args.runtime.transport);
    std::fflush(stdout);
    while (!stop_requested) std::this_thread::sleep_for(100ms);
    services.stop();
    return ok;
}

}  // namespace campaign::cli
