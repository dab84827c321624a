// campaign_publishing: the reference saga's demo and operator tool. See usage_text() or
// docs/campaign-publishing.md.
#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <exception>

#include "cli.hpp"

namespace campaign::cli {

namespace {

template <class T>
saga::result<T> number(std::string_view option, std::string_view text) {
    T value{};
    if constexpr (std::is_floating_point_v<T>) {
        try {
            std::size_t used = 0;
            value = static_cast<T>(std::stod(std::string(text), &used));
            if (used == text.size()) return value;
        } catch (const std::exception&) {
        }
    } else {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc{} && end == text.data() + text.size()) return value;
    }
    return saga::error{saga::errc::invalid_argument,
                       fmt::format("{} needs a number, not '{}'", option, text)};
}

}  // namespace

std::string usage_text() {
    return R"(usage: campaign_publishing [COMMAND] [ARGS] [OPTIONS]

Publishes advertising campaigns to Google, Instagram, TikTok and Snapchat with sagas.
With no command, runs the demo: sample campaigns published with injected failures,
live progress, a summary and the consistency check (exit 1 if it finds an orphan).

commands:
  demo                      the demo (the default); starts from a fresh store
  publish CAMPAIGN          publish a campaign   [--require-approval] [--force]
  pause CAMPAIGN            pause its ads        [--force]
  finish CAMPAIGN           end its ads, settle its budget   [--force]
  republish CAMPAIGN        resubmit its ads for review and go live again   [--force]
  approve CAMPAIGN          approve its waiting publish   [--reject] [--by NAME] [--note TEXT]
  status CAMPAIGN|RUN       the tracker of a run (the campaign's latest)   [--json]
  list                      campaigns, their status and their latest run   [--json]
  history CAMPAIGN|RUN      the timeline of a run   [--json]
  resume                    continue the runs a stopped or killed process left, then check
  check                     the consistency check (exit 1 on an orphan or a stuck run)
  reset CAMPAIGN            force-release a stuck campaign's lock   [--cancel] [--by] [--note]
  setup                     a fresh installation: N sample campaigns, nothing run   [--campaigns N]
  orchestrate               run the engine (and the scheduled sagas) until Ctrl-C or SIGTERM,
                            for the services of other processes (needs a shared transport)
                            [--schedule-every MS]
  services                  run the participant services alone (needs a shared transport)
                            [--only NAME[,NAME...]]: campaigns, catalog, billing, analytics,
                            google, instagram, tiktok, snapchat
  serve                     the admin API and web dashboard over this orchestrator
                            (token from SAGA_ADMIN_TOKEN)   [--port N] [--address A]
                            [--require-approval]
  help                      this text

options:
  --store PATH              the saga store (default campaign_demo.db); the services' files
                            sit next to it (campaign_demo.billing.db, ...)
  --transport NAME          memory (default; the services run in this process) or sqs
                            (Amazon SQS/SNS: orchestrator and services as separate processes;
                            region from AWS_REGION (default us-east-1), credentials from the
                            standard AWS environment)
  --sqs-endpoint URL        the SQS and SNS endpoint (e.g. a local moto_server); default:
                            AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL, else AWS itself
  --sqs-prefix P            prefix of every queue and topic name (default campaign-)
  --sqs-wait S              long-poll wait of the SQS consumers, 0 to 20 s (default 20;
                            use 0 against moto, whose FIFO long poll holds back a message group)
  --seed N                  seed of every simulated failure (default 42)
  --failure-rate X          probability of a transient failure per call, 0 to 1 (default 0.1)
  --campaigns N             demo: how many sample campaigns (default 8, at least 1)
  --port N                  serve: the port (default 8080; 0 picks a free one)
  --address A               serve: the address to listen on (default 127.0.0.1)
  --help                    this text
)";
}

saga::result<arguments> parse(int argc, char** argv) {
    arguments a;
    std::vector<std::string> words(argv + 1, argv + argc);
    static const std::vector<std::string> commands{
        "demo",    "publish", "pause", "finish", "republish", "approve", "status", "list",
        "history", "resume",  "check", "reset",  "services",  "serve",   "help"};
    std::size_t i = 0;
    if (!words.empty() && words[0].rfind("--", 0) != 0) {
        static const std::vector<std::string> distributed{"setup", "orchestrate"};
        if (std::find(commands.begin(), commands.end(), words[0]) == commands.end() &&
            std::find(distributed.begin(), distributed.end(), words[0]) == distributed.end())
            return saga::error{saga::errc::invalid_argument,
                               fmt::format("unknown command '{}' (try --help)", words[0])};
        a.command = words[0];
        i = 1;
    }
    auto value = [&](const std::string& option) -> saga::result<std::string> {
        if (i + 1 >= words.size())
            return saga::error{saga::errc::invalid_argument,
                               fmt::format("{} needs a value", option)};
        return words[++i];
    };
    for (; i < words.size(); ++i) {
        const auto& w = words[i];
        if (w == "--help" || w == "-h") {
            a.command = "help";
        } else if (w == "--store") {
            SAGA_TRY(auto v, value(w));
            if (v.empty()) return saga::error{saga::errc::invalid_argument, "--store is empty"};
            a.runtime.paths.store = v;
        } else if (w == "--transport") {
            SAGA_TRY(a.runtime.transport, value(w));
        } else if (w == "--sqs-endpoint") {
            SAGA_TRY(a.runtime.transport_config.sqs_endpoint, value(w));
        } else if (w == "--sqs-prefix") {
            SAGA_TRY(a.runtime.transport_config.sqs_prefix, value(w));
        } else if (w == "--sqs-wait") {
            SAGA_TRY(auto v, value(w));
            SAGA_TRY(auto s, number<std::int64_t>(w, v));
            if (s < 0 || s > 20)
                return saga::error{saga::errc::invalid_argument,
                                   "--sqs-wait must be between 0 and 20 (seconds)"};
            a.runtime.transport_config.sqs_wait = std::chrono::seconds{s};
        } else if (w == "--only") {
            SAGA_TRY(auto v, value(w));
            for (std::size_t from = 0; from <= v.size();) {
                const auto comma = std::min(v.find(',', from), v.size());
                if (comma > from) a.only.push_back(v.substr(from, comma - from));
                from = comma + 1;
            }
            if (a.only.empty())
                return saga::error{saga::errc::invalid_argument, "--only needs service names"};
        } else if (w == "--schedule-every") {
            SAGA_TRY(auto v, value(w));
            SAGA_TRY(auto ms, number<std::int64_t>(w, v));
            if (ms < 100)
                return saga::error{saga::errc::invalid_argument,
                                   "--schedule-every must be at least 100 (ms)"};
            a.schedule_every = std::chrono::milliseconds{ms};
        } else if (w == "--seed") {
            SAGA_TRY(auto v, value(w));
            SAGA_TRY(a.runtime.sim.seed, number<std::uint64_t>(w, v));
        } else if (w == "--failure-rate") {
            SAGA_TRY(auto v, value(w));
            SAGA_TRY(auto rate, number<double>(w, v));
            if (rate < 0 || rate > 1)
                return saga::error{
                    saga::errc::invalid_argument,
                    fmt::format("--failure-rate must be between 0 and 1, not {}", v)};
            a.runtime.sim.failure_rate = rate;
        } else if (w == "--campaigns") {
            SAGA_TRY(auto v, value(w));
            SAGA_TRY(a.campaigns, number<std::size_t>(w, v));
            if (a.campaigns < 1 || a.campaigns > 500)
                return saga::error{saga::errc::invalid_argument,
                                   "--campaigns must be between 1 and 500"};
        } else if (w == "--port") {
            SAGA_TRY(auto v, value(w));
            SAGA_TRY(a.port, number<std::uint16_t>(w, v));
        } else if (w == "--address") {
            SAGA_TRY(a.address, value(w));
        } else if (w == "--by") {
            SAGA_TRY(a.by, value(w));
        } else if (w == "--note") {
            SAGA_TRY(a.note, value(w));
        } else if (w == "--require-approval") {
            a.require_approval = true;
        } else if (w == "--force") {
            a.force = true;
        } else if (w == "--reject") {
            a.reject = true;
        } else if (w == "--cancel") {
            a.cancel = true;
        } else if (w == "--json") {
            a.json = true;
        } else if (w.rfind("--", 0) == 0) {
            return saga::error{saga::errc::invalid_argument,
                               fmt::format("unknown option '{}' (try --help)", w)};
        } else {
            a.positional.push_back(w);
        }
    }
    static const std::vector<std::string> one_arg{"publish", "pause",  "finish",  "republish",
                                                  "approve", "status", "history", "reset"};
    const bool needs_one = std::find(one_arg.begin(), one_arg.end(), a.command) != one_arg.end();
    if (a.command != "help") {
        if (needs_one && a.positional.size() != 1)
            return saga::error{
                saga::errc::invalid_argument,
                fmt::format("{} needs exactly one campaign id{}", a.command,
                            a.command == "status" || a.command == "history" ? " or run id" : "")};
        if (!needs_one && !a.positional.empty())
            return saga::error{
                saga::errc::invalid_argument,
                fmt::format("{} takes no argument, got '{}'", a.command, a.positional.front())};
    }
    return a;
}

}  // namespace campaign::cli

int main(int argc, char** argv) {
    using namespace campaign::cli;
    try {
        auto parsed = parse(argc, argv);
        if (!parsed) {
            fmt::print(stderr, "campaign_publishing: {}\n", parsed.error().message);
            return usage;
        }
        const auto& a = parsed.value();
        if (a.command == "help") {
            fmt::print("{}", usage_text());
            return ok;
        }
        if (a.command == "demo") return run_demo(a);
        if (a.command == "publish" || a.command == "pause" || a.command == "finish" ||
            a.command == "republish")
            return run_action(a);
        if (a.command == "approve") return run_approve(a);
        if (a.command == "status") return run_status(a);
        if (a.command == "list") return run_list(a);
        if (a.command == "history") return run_history(a);
        if (a.command == "resume") return run_resume(a);
        if (a.command == "check") return run_check(a);
        if (a.command == "reset") return run_reset(a);
        if (a.command == "setup") return run_setup(a);
        if (a.command == "orchestrate") return run_orchestrate(a);
        if (a.command == "services") return run_services(a);
        if (a.command == "serve") return run_serve(a);
        fmt::print(stderr, "campaign_publishing: unknown command '{}'\n", a.command);
        return usage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "campaign_publishing: unexpected error: %s\n", e.what());
        return failed;
    } catch (...) {
        std::fprintf(stderr, "campaign_publishing: unexpected error\n");
        return failed;
    }
}
