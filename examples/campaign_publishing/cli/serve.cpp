// `campaign_publishing serve`: the orchestrator as a long-running process with the admin HTTP API
// and the web dashboard (saga::admin) mounted over its engine, plus the campaign routes:
// start an action, list the campaigns, follow a run's progress, approve a waiting publish.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "cli.hpp"

#ifdef CAMPAIGN_WITH_ADMIN
#include <saga/admin/server.hpp>

#include <pthread.h>
#include <signal.h>
#endif

namespace campaign::cli {

#ifndef CAMPAIGN_WITH_ADMIN

int run_serve(const arguments&) {
    fmt::print(stderr,
               "campaign_publishing: this build has no admin server (serve needs the saga::admin "
               "adapter: Boost.Beast); reconfigure with it to use serve\n");
    return usage;
}

#else

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::admin::request;
using saga::admin::response;

/// How often a server runs performance ingestion and the campaign status refresh.
constexpr std::chrono::milliseconds ingestion_every = 5min;
constexpr std::chrono::milliseconds refresh_every = 1min;

/// `rest` ("/a/b") split at '/', without empty segments.
std::vector<std::string> segments(std::string_view rest) {
    std::vector<std::string> out;
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        if (slash != 0) out.emplace_back(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return out;
}

/// The boolean `name` of a request body, `fallback` when absent; a non-boolean is a 400.
saga::result<bool> flag(const json& body, const char* name, bool fallback) {
    if (!body.is_object())
        return saga::error{saga::errc::invalid_argument, "the body must be a JSON object"};
    const auto it = body.find(name);
    if (it == body.end() || it->is_null()) return fallback;
    if (!it->is_boolean())
        return saga::error{saga::errc::invalid_argument,
                           fmt::format("'{}' must be true or false", name)};
    return it->get<bool>();
}

/// The string `name` of a request body, "" when absent; anything else is a 400.
saga::result<std::string> text(const json& body, const char* name) {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null()) return std::string();
    if (!it->is_string())
        return saga::error{saga::errc::invalid_argument,
                           fmt::format("'{}' must be a string", name)};
    return it->get<std::string>();
}

/// A campaign with its latest and open runs, as `GET /api/v1/campaigns` lists it.
json campaign_json(runtime& rt, const campaign_record& c) {
    json out = c;
    out["latest_run"] = nullptr;
    out["latest_run_status"] = nullptr;
    out["open_run"] = nullptr;
    if (auto id = rt.latest_action(c.id)) {
        out["latest_run"] = id.value();
        if (auto v = rt.engine().query(id.value()))
            out["latest_run_status"] = saga::to_string(v.value().status);
    }
    if (auto id = rt.open_action(c.id)) out["open_run"] = id.value();
    return out;
}

/// The campaign routes, over `rt`.
class campaign_routes {
public:
    campaign_routes(runtime& rt, bool require_approval)
        : rt_(rt), require_approval_(require_approval) {}

    /// POST /api/v1/campaigns/{id}/{publish|pause|finish|republish|approve}
    saga::result<response> post(const request& r) {
        const auto seg = segments(r.rest);
        if (seg.size() != 2)
            return saga::error{saga::errc::not_found,
                               fmt::format("no route for POST {}: use /api/v1/campaigns/{{id}}/"
                                           "{{publish|pause|finish|republish|approve}}",
                                           r.path)};
        const auto& campaign_id = seg[0];
        const auto& verb = seg[1];
        SAGA_TRY(auto body, r.json());
        if (verb == "approve") {
            SAGA_TRY(auto approved, flag(body, "approved", true));
            SAGA_TRY(auto note, text(body, "note"));
            SAGA_TRY(auto id, rt_.approve(campaign_id, approved, r.operator_name, note));
            return response{200,
                            {{"run_id", id}, {"campaign", campaign_id}, {"approved", approved}}};
        }
        if (verb != "publish" && verb != "pause" && verb != "finish" && verb != "republish")
            return saga::error{
                saga::errc::not_found,
                fmt::format("unknown campaign action '{}' (publish, pause, finish, republish, "
                            "approve)",
                            verb)};
        SAGA_TRY(auto approval, flag(body, "require_approval", require_approval_));
        SAGA_TRY(auto force, flag(body, "force", false));
        auto id = rt_.start_action({.campaign_id = campaign_id,
                                    .action = verb,
                                    .require_approval = approval,
                                    .force = force,
                                    .requested_by = r.operator_name});
        if (!id && id.error() == saga::errc::lock_held) {
            auto e = id.error();
            e.message += fmt::format(
                "; retry once it has finished, or send {{\"force\": true}} to release its lock "
                "and start anyway (recorded in its history), or POST "
                "/api/v1/locks/{}/release",
                campaign_id);
            return e;
        }
        if (!id) return std::move(id).error();
        return response{202, {{"run_id", id.value()}, {"campaign", campaign_id}, {"action", verb}}};
    }

    /// GET /api/v1/campaigns and /api/v1/campaigns/{id}
    saga::result<response> get(const request& r) {
        const auto seg = segments(r.rest);
        if (seg.size() > 1)
            return saga::error{saga::errc::not_found, fmt::format("no route for GET {}", r.path)};
        SAGA_TRY(auto all, rt_.campaigns());
        if (seg.empty()) {
            json items = json::array();
            for (const auto& c : all) items.push_back(campaign_json(rt_, c));
            return response{200, {{"items", items}}};
        }
        for (const auto& c : all)
            if (c.id == seg[0]) return response{200, campaign_json(rt_, c)};
        return saga::error{saga::errc::not_found, fmt::format("unknown campaign '{}'", seg[0])};
    }

    /// GET /api/v1/runs/{run id}/progress: the tracker of a campaign action run
    saga::result<response> progress(const request& r) {
        const auto seg = segments(r.rest);
        if (seg.size() != 2 || seg[1] != "progress")
            return saga::error{
                saga::errc::not_found,
                fmt::format("no route for GET {}: use /api/v1/runs/{{id}}/progress", r.path)};
        SAGA_TRY(auto view, rt_.engine().query(seg[0]));
        if (view.definition != sagas::publish && view.definition != sagas::pause &&
            view.definition != sagas::finish && view.definition != sagas::republish)
            return saga::error{saga::errc::not_found,
                               fmt::format("{} is a {} run, not a campaign action: it has no "
                                           "progress tracker",
                                           seg[0], view.definition)};
        return response{200, to_json(make_tracker(view))};
    }

    /// POST /api/v1/demo/seed {"campaigns": N}: the demo's sample campaigns, into an empty store
    saga::result<response> seed(const request& r) {
        SAGA_TRY(auto body, r.json());
        if (!body.is_object())
            return saga::error{saga::errc::invalid_argument, "the body must be a JSON object"};
        std::size_t count = 8;
        if (auto it = body.find("campaigns"); it != body.end()) {
            if (!it->is_number_unsigned() || it->get<std::size_t>() < 1 ||
                it->get<std::size_t>() > 500)
                return saga::error{saga::errc::invalid_argument,
                                   "'campaigns' must be a number from 1 to 500"};
            count = it->get<std::size_t>();
        }
        if (!rt_.services())
            return saga::error{saga::errc::invalid_state,
                               "the services run in another process: seed them there"};
        std::lock_guard lock(seed_mutex_);
        SAGA_TRY(auto existing, rt_.campaigns());
        if (!existing.empty())
            return saga::error{
                saga::errc::already_exists,
                fmt::format("the store already has {} campaign(s); seed an empty store",
                            existing.size())};
        json ids = json::array();
        for (const auto& c : rt_.services()->seed_samples(count)) ids.push_back(c.id);
        return response{201, {{"campaigns", ids}}};
    }

private:
    runtime& rt_;
    bool require_approval_;
    std::mutex seed_mutex_;
};

}  // namespace

int run_serve(const arguments& args) {
    const char* env_token = std::getenv("SAGA_ADMIN_TOKEN");
    if (env_token == nullptr || *env_token == '\0') {
        fmt::print(stderr,
                   "campaign_publishing: serve needs a bearer token for its API: set "
                   "SAGA_ADMIN_TOKEN (e.g. SAGA_ADMIN_TOKEN=$(openssl rand -hex 16) "
                   "campaign_publishing serve)\n");
        return usage;
    }
    // SIGINT and SIGTERM go to sigwait below: block them before any thread starts, so that every
    // thread inherits the mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto opened = runtime::open(args.runtime);
    if (!opened) return report_error(opened.error());
    auto& rt = *opened.value();
    if (auto r = rt.start(); !r) return report_error(r.error());
    if (auto r = rt.schedule_background(ingestion_every, refresh_every); !r)
        return report_error(r.error());

    campaign_routes routes(rt, args.require_approval);
    saga::admin::server admin(
        rt.engine(), {.address = args.address, .port = args.port, .token = std::string(env_token)});
    const auto add = [&](std::string method, std::string prefix, auto member) {
        return admin.add_route(std::move(method), std::move(prefix),
                               [&routes, member](const request& r) { return (routes.*member)(r); });
    };
    for (auto r : {add("POST", "/api/v1/campaigns", &campaign_routes::post),
                   add("GET", "/api/v1/campaigns", &campaign_routes::get),
                   add("GET", "/api/v1/runs", &campaign_routes::progress),
                   add("POST", "/api/v1/demo/seed", &campaign_routes::seed)})
        if (!r) return report_error(r.error());
    auto port = admin.start();
    if (!port) {
        rt.stop();
        return report_error(port.error());
    }
    const bool v6 = args.address.find(':') != std::string::npos;
    fmt::print(
        "campaign_publishing serve: dashboard and API on http://{}{}{}:{}/ (store {}, "
        "transport {}); Ctrl-C stops\n",
        v6 ? "[" : "", args.address, v6 ? "]" : "", port.value(), args.runtime.paths.store.string(),
        args.runtime.transport);
    std::fflush(stdout);

    int received = 0;
    sigwait(&stop_signals, &received);
    fmt::print("campaign_publishing serve: {}, stopping\n",
               received == SIGINT ? "SIGINT" : "SIGTERM");
    std::fflush(stdout);
    admin.stop();
    rt.stop();
    return ok;
}

#endif

}  // namespace campaign::cli
