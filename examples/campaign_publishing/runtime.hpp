#pragma once
/// @file runtime.hpp
/// One orchestrator process: the saga store, the transport (from one factory), the engine with
/// every definition registered, and — with the in-memory transport — the participant services.
/// The CLI and the admin server (`serve`) drive everything through this type.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <saga/saga.hpp>

#include "consistency.hpp"
#include "services/services.hpp"
#include "simulation.hpp"
#include "tracker.hpp"

namespace campaign {

/// How a shared transport is reached (`--transport sqs`).
struct transport_settings {
    /// the SQS and SNS endpoint URL (a local emulator: http://127.0.0.1:5000); empty:
    /// `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_SNS`, then `AWS_ENDPOINT_URL`, else real AWS
    std::string sqs_endpoint;
    /// prepended to every queue and topic name
    std::string sqs_prefix = "campaign-";
    /// long-poll wait of every consumer (0 to 20 s). Use 1 s against moto: its FIFO long poll
    /// keeps a message group blocked for the whole wait if the group had a message in flight
    /// when the poll began, which would hold a saga's next reply for up to the wait
    std::chrono::seconds sqs_wait{20};
};

/// Where and how a runtime runs.
struct runtime_options {
    data_paths paths{"campaign_demo.db"};
    /// "memory" (services in this process) or "sqs" (services in other processes)
    std::string transport = "memory";
    /// how the shared transport is reached
    transport_settings transport_config;
    simulation sim;
    /// engine worker threads
    std::size_t workers = 2;
    /// open the store read-only, with no services and no engine log (`list`, `check`, `status`
    /// and `history`, which only read): works on files that cannot be written; `start` is
    /// `errc::invalid_state`
    bool read_only = false;
};

/// Makes the transport named `name`. "memory" is the in-memory transport (every service runs
/// in this process); "sqs" is Amazon SQS/SNS (FIFO queues and topics, one message group per
/// saga; region from `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1; credentials from
/// the standard AWS environment or shared credentials file), when the example is built with
/// saga::sqs. An unknown name is `errc::invalid_argument` listing the known ones.
/// This is the one place a new transport is added.
[[nodiscard]] saga::result<std::shared_ptr<saga::transport>> make_transport(
    std::string_view name, const std::shared_ptr<saga::clock>& clock, const simulation& sim,
    const transport_settings& settings = {});

/// True if the transport `name` connects processes, so that services may run elsewhere.
[[nodiscard]] bool transport_is_shared(std::string_view name);

/// A request to run an action on a campaign.
struct action_request {
    std::string campaign_id;
    /// "publish", "pause", "finish" or "republish"
    std::string action;
    /// publish: wait for a human approval before going live
    bool require_approval = false;
    /// release the campaign's lock first (recorded with `requested_by` and the reason)
    bool force = false;
    std::string requested_by = "cli";
};

/// The orchestrator of one process. Thread-safe like the engine.
class runtime {
public:
    /// Opens the store (creating it), the transport and the engine, and registers the sagas.
    /// Errors name what could not be opened.
    [[nodiscard]] static saga::result<std::unique_ptr<runtime>> open(runtime_options options);
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    /// Starts the services (in-memory transport) and the engine's threads; unfinished runs of an
    /// earlier process resume. `errc::invalid_state` for a runtime opened read-only.
    [[nodiscard]] saga::result<void> start();
    /// Stops the engine and the services (idempotent).
    void stop();
    /// Schedules performance ingestion and the status refresh every `every`.
    [[nodiscard]] saga::result<void> schedule_background(std::chrono::milliseconds ingestion,
                                                         std::chrono::milliseconds refresh);

    /// Starts an action saga on a campaign: one at a time per campaign. A second one is
    /// `errc::lock_held`, naming the run that holds the lock, unless `request.force`. Returns
    /// the saga id ("publish-c-1001-1").
    [[nodiscard]] saga::result<std::string> start_action(const action_request& request);
    /// The open (not terminal) action saga of a campaign, or `errc::not_found`.
    [[nodiscard]] saga::result<std::string> open_action(std::string_view campaign_id);
    /// The newest action saga of a campaign, or `errc::not_found`.
    [[nodiscard]] saga::result<std::string> latest_action(std::string_view campaign_id);
    /// The tracker of run `saga_id` (`errc::not_found` for an unknown id).
    [[nodiscard]] saga::result<tracker> track(std::string_view saga_id);
    /// Sends the approval (or refusal) to the campaign's open publish run.
    [[nodiscard]] saga::result<std::string> approve(std::string_view campaign_id, bool approved,
                                                    const std::string& by, const std::string& note);
    /// Force-resets a stuck campaign: releases its lock (audited with `note`), and cancels its
    /// open run too if `cancel`. Returns how many locks were released.
    [[nodiscard]] saga::result<std::size_t> reset(std::string_view campaign_id,
                                                  const saga::operator_note& note, bool cancel);
    /// Runs the consistency check.
    [[nodiscard]] saga::result<consistency_report> check();
    /// Polls run `saga_id` until it is settled or waits for a human (approval), calling
    /// `progress` with each new view; gives up after `limit`.
    [[nodiscard]] saga::result<saga::instance_view> wait_for_decision(
        std::string_view saga_id, std::chrono::milliseconds limit,
        const std::function<void(const saga::instance_view&)>& progress = {});
    /// True if the run is settled, or parked on a wait only a human can end.
    [[nodiscard]] static bool decided(const saga::instance_view& v);
    /// Known campaign ids (from Campaign Management's database).
    [[nodiscard]] saga::result<std::vector<campaign_record>> campaigns();

    [[nodiscard]] saga::engine& engine() noexcept { return *engine_; }
    /// The in-process services, or null when they run elsewhere.
    [[nodiscard]] service_set* services() noexcept { return services_.get(); }
    [[nodiscard]] const runtime_options& options() const noexcept { return options_; }

private:
    runtime() = default;
    runtime_options options_;
    std::shared_ptr<saga::system_clock> clock_;
    std::shared_ptr<saga::journal_store> store_;
    std::shared_ptr<saga::transport> transport_;
    std::unique_ptr<saga::engine> engine_;
    std::unique_ptr<service_set> services_;
    std::thread runner_;
    bool running_ = false;
};

}  // namespace campaign
