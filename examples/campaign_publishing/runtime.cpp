#include "runtime.hpp"

#include <fmt/format.h>

#include <saga/inmemory/memory_transport.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>
#ifdef CAMPAIGN_WITH_SQS
#include <saga/sqs/sqs_transport.hpp>
#endif

#include <cstdlib>

#include "sagas/sagas.hpp"

namespace campaign {

namespace {

using json = nlohmann::json;

std::vector<saga::saga_status> open_statuses() {
    return {saga::saga_status::running,      saga::saga_status::waiting,
            saga::saga_status::compensating, saga::saga_status::paused,
            saga::saga_status::failed,       saga::saga_status::compensation_failed};
}

}  // namespace

saga::result<std::shared_ptr<saga::transport>> make_transport(
    std::string_view name, const std::shared_ptr<saga::clock>& clock, const simulation& sim,
    const transport_settings& settings) {
    if (name == "memory") {
        // a lossless in-memory bus; the faults of this demo come from the services themselves
        return std::shared_ptr<saga::transport>(std::make_shared<saga::inmemory::memory_transport>(
            clock, saga::inmemory::fault_plan{.seed = sim.seed}));
    }
    if (name == "sqs") {
#ifdef CAMPAIGN_WITH_SQS
        // FIFO: the messages of one saga (its message group) arrive in the order sent, and a
        // re-sent message (same id) within five minutes is dropped by SQS itself
        std::string region;
        for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"})
            if (const char* v = std::getenv(var); region.empty() && v && *v) region = v;
        auto t = saga::sqs::sqs_transport::create({.region = region.empty() ? "us-east-1" : region,
                                                   .sqs_endpoint = settings.sqs_endpoint,
                                                   .sns_endpoint = settings.sqs_endpoint,
                                                   .queue_prefix = settings.sqs_prefix,
                                                   .topic_prefix = settings.sqs_prefix,
                                                   .fifo = true,
                                                   .wait_time = settings.sqs_wait});
        if (!t)
            return saga::error{t.error().code, fmt::format("cannot set up the sqs transport: {}",
                                                           t.error().message)};
        return std::shared_ptr<saga::transport>(t.value());
#else
        (void)settings;
        return saga::error{saga::errc::invalid_argument,
                           "this campaign_publishing was built without saga::sqs (configure with "
                           "OpenSSL 3 and Boost 1.81 so that the SQS adapter is built)"};
#endif
    }
    return saga::error{saga::errc::invalid_argument,
                       fmt::format("unknown transport '{}' (known: memory, sqs)", name)};
}

bool transport_is_shared(std::string_view name) {
    return name != "memory";
}

saga::result<std::unique_ptr<runtime>> runtime::open(runtime_options options) {
    std::unique_ptr<runtime> rt(new runtime());
    rt->options_ = std::move(options);
    rt->clock_ = std::make_shared<saga::system_clock>();
    const bool read_only = rt->options_.read_only;
    auto store =
        saga::sqlite::sqlite_journal_store::open({.path = rt->options_.paths.store.string(),
                                                  .sync = saga::sqlite::synchronous::normal,
                                                  .read_only = read_only});
    if (!store) return store.error();
    rt->store_ = store.value();
    SAGA_TRY(rt->transport_, make_transport(rt->options_.transport, rt->clock_, rt->options_.sim,
                                            rt->options_.transport_config));
    const bool shared = transport_is_shared(rt->options_.transport);
    // The engine's structured log goes to a file beside the store (every step outcome, at info),
    // so the terminal shows the demo's progress and `tail -f` shows the engine's view.
    // (read-only, nothing runs: warnings, if any, go to stderr)
    std::shared_ptr<saga::log_sink> log_sink;
    if (!read_only) {
        auto log_path = rt->options_.paths.store;
        log_path += ".log";
        auto log = saga::json_lines_sink::open(log_path);
        if (!log) return log.error();
        log_sink = log.value();
    }
    rt->engine_ = std::make_unique<saga::engine>(
        rt->store_, rt->transport_,
        saga::engine_options{
            .workers = rt->options_.workers,
            .endpoint = std::string(endpoints::orchestrator),
            .clock = rt->clock_,
            .default_remote_timeout = std::chrono::seconds{2},
            // over a shared transport, what a killed orchestrator had taken
            // comes back to the others within seconds
            .consumer = shared
                            ? saga::consumer_options{.visibility_timeout = std::chrono::seconds{5}}
                            : saga::consumer_options{},
            .seed = rt->options_.sim.seed,
            // several engines share the store: pick up timers and runs a dead one left
            .sweep_interval = shared ? std::chrono::seconds{3} : saga::duration{0},
            .log_sink = log_sink,
            .log_level = saga::log_level::info});
    SAGA_TRY(register_sagas(*rt->engine_, rt->options_.sim));
    if (!shared && !read_only) {
        try {
            rt->services_ = std::make_unique<service_set>(rt->options_.paths, rt->options_.sim);
        } catch (const std::exception& e) {
            return saga::error{saga::errc::store_failure,
                               fmt::format("cannot open the services' databases next to {}: {}",
                                           rt->options_.paths.store.string(), e.what())};
        }
    }
    return rt;
}

runtime::~runtime() {
    stop();
}

saga::result<void> runtime::start() {
    if (running_) return saga::success();
    if (options_.read_only)
        return saga::error{saga::errc::invalid_state,
                           fmt::format("{} was opened read-only: nothing can run on it",
                                       options_.paths.store.string())};
    if (services_) {
        SAGA_TRY(services_->start(transport_));
    }
    SAGA_TRY(engine_->open());
    runner_ = std::thread([this] {
        if (auto r = engine_->run(); !r)
            fmt::print(stderr, "campaign_publishing: engine stopped: {}\n", r.error().what());
    });
    running_ = true;
    return saga::success();
}

void runtime::stop() {
    if (!running_) return;
    running_ = false;
    engine_->stop();
    if (runner_.joinable()) runner_.join();
    if (services_) services_->stop();
}

saga::result<void> runtime::schedule_background(std::chrono::milliseconds ingestion,
                                                std::chrono::milliseconds refresh) {
    // [doc:schedules]
    SAGA_TRY(engine_->schedule(
        {.name = "ingest",
         .definition = std::string(sagas::ingest),
         .interval = ingestion,
         .data = [](saga::time_point tick) -> saga::result<json> {
             return json(ingestion_run{
                 .as_of_ms =
                     std::chrono::duration_cast<std::chrono::milliseconds>(tick.time_since_epoch())
                         .count()});
         },
         .correlation_key = "performance"}));
    SAGA_TRY(engine_->schedule(
        {.name = "refresh",
         .definition = std::string(sagas::refresh),
         .interval = refresh,
         .data = [](saga::time_point tick) -> saga::result<json> {
             return json(status_refresh{
                 .as_of_ms =
                     std::chrono::duration_cast<std::chrono::milliseconds>(tick.time_since_epoch())
                         .count()});
         },
         .correlation_key = "status-refresh"}));
    // [/doc:schedules]
    return saga::success();
}

saga::result<std::string> runtime::start_action(const action_request& request) {
    const auto definition = definition_of(request.action);
    if (definition.empty())
        return saga::error{
            saga::errc::invalid_argument,
            fmt::format("unknown action '{}' (publish, pause, finish, republish)", request.action)};
    SAGA_TRY(auto known, campaigns());
    if (std::none_of(known.begin(), known.end(),
                     [&](const campaign_record& c) { return c.id == request.campaign_id; }))
        return saga::error{saga::errc::not_found,
                           fmt::format("unknown campaign '{}'", request.campaign_id)};
    if (request.force) {
        SAGA_TRY(auto released,
                 engine_->release_lock(request.campaign_id,
                                       {.who = request.requested_by,
                                        .why = fmt::format("forced {}", request.action)}));
        if (released > 0)
            fmt::print(stderr, "released the lock on {} held by {} run(s)\n", request.campaign_id,
                       released);
    }
    // readable ids: <action>-<campaign>-<n>
    saga::list_filter f;
    f.correlation_key = request.campaign_id;
    f.limit = 100000;
    SAGA_TRY(auto earlier, engine_->list(f));
    const auto id =
        fmt::format("{}-{}-{}", request.action, request.campaign_id, earlier.size() + 1);
    campaign_action data{.campaign_id = request.campaign_id,
                         .action = request.action,
                         .requested_by = request.requested_by,
                         .require_approval = request.require_approval};
    // [doc:exclusive_start]
    auto started = engine_->start(
        definition, data, {.id = id, .correlation_key = request.campaign_id, .exclusive = true});
    // [/doc:exclusive_start]
    if (!started && started.error() == saga::errc::lock_held) {
        auto holder = open_action(request.campaign_id);
        // what to do about it depends on the caller (a command line, an HTTP client): they add it
        return saga::error{
            saga::errc::lock_held,
            fmt::format("campaign {} is busy: {} holds its lock", request.campaign_id,
                        holder ? holder.value() : std::string("another run"))};
    }
    return started;
}

saga::result<std::string> runtime::open_action(std::string_view campaign_id) {
    saga::list_filter f;
    f.correlation_key = std::string(campaign_id);
    f.statuses = open_statuses();
    SAGA_TRY(auto found, engine_->list(f));
    for (const auto& r : found)
        if (sagas::is_action(r.definition)) return r.id;
    return saga::error{saga::errc::not_found,
                       fmt::format("campaign {} has no open action", campaign_id)};
}

saga::result<std::string> runtime::latest_action(std::string_view campaign_id) {
    saga::list_filter f;
    f.correlation_key = std::string(campaign_id);
    f.limit = 100000;
    SAGA_TRY(auto found, engine_->list(f));
    const saga::instance_record* latest = nullptr;
    for (const auto& r : found)
        if (sagas::is_action(r.definition) && (!latest || r.created_at >= latest->created_at))
            latest = &r;
    if (!latest)
        return saga::error{saga::errc::not_found,
                           fmt::format("no action was ever run on campaign '{}'", campaign_id)};
    return latest->id;
}

saga::result<tracker> runtime::track(std::string_view saga_id) {
    SAGA_TRY(auto view, engine_->query(saga_id));
    return make_tracker(view);
}

saga::result<std::string> runtime::approve(std::string_view campaign_id, bool approved,
                                           const std::string& by, const std::string& note) {
    SAGA_TRY(auto id, open_action(campaign_id));
    SAGA_TRY(auto view, engine_->query(id));
    if (view.definition != sagas::publish)
        return saga::error{saga::errc::invalid_state,
                           fmt::format("the open run of {} is {}, not a publish", campaign_id, id)};
    // [doc:approval_signal]
    SAGA_TRY(engine_->signal(id, signals::approval,
                             {{"approved", approved}, {"by", by}, {"note", note}}));
    // [/doc:approval_signal]
    return id;
}

saga::result<std::size_t> runtime::reset(std::string_view campaign_id,
                                         const saga::operator_note& note, bool cancel) {
    auto open = open_action(campaign_id);
    SAGA_TRY(auto released, engine_->release_lock(campaign_id, note));
    if (cancel && open) {
        if (auto r = engine_->cancel(open.value(), note);
            !r && r.error() != saga::errc::saga_finished)
            return r.error();
    }
    return released;
}

saga::result<consistency_report> runtime::check() {
    return check_consistency(options_.paths, *engine_);
}

bool runtime::decided(const saga::instance_view& v) {
    if (saga::is_settled(v.status)) return true;
    return v.status == saga::saga_status::waiting && v.current_steps.size() == 1 &&
           v.current_steps.front() == signals::approval;
}

saga::result<saga::instance_view> runtime::wait_for_decision(
    std::string_view saga_id, std::chrono::milliseconds limit,
    const std::function<void(const saga::instance_view&)>& progress) {
    const auto until = std::chrono::steady_clock::now() + limit;
    std::uint64_t seen = 0;
    for (;;) {
        SAGA_TRY(auto v, engine_->query(saga_id));
        if (progress && v.version != seen) progress(v);
        seen = v.version;
        if (decided(v)) return v;
        if (std::chrono::steady_clock::now() > until)
            return saga::error{saga::errc::timeout,
                               fmt::format("{} is still {} after {} s", saga_id,
                                           saga::to_string(v.status), limit.count() / 1000)};
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
}

saga::result<std::vector<campaign_record>> runtime::campaigns() {
    std::vector<campaign_record> out;
    try {
        auto db = open_database(options_.paths.service(endpoints::campaigns), true);
        SQLite::Statement q(db,
                            "SELECT id, name, merchant, networks, products, budget_cents,"
                            " creative, status, schedule_state FROM campaigns ORDER BY id");
        while (q.executeStep()) {
            campaign_record c;
            c.id = q.getColumn(0).getString();
            c.name = q.getColumn(1).getString();
            c.merchant = q.getColumn(2).getString();
            c.networks = json::parse(q.getColumn(3).getString()).get<std::vector<std::string>>();
            c.products = json::parse(q.getColumn(4).getString()).get<std::vector<std::string>>();
            c.budget_cents = q.getColumn(5).getInt64();
            c.creative = q.getColumn(6).getString();
            c.status = q.getColumn(7).getString();
            c.schedule_state = q.getColumn(8).getString();
            out.push_back(std::move(c));
        }
    } catch (const std::exception& e) {
        return saga::error{saga::errc::store_failure,
                           fmt::format("cannot read the campaigns: {}", e.what())};
    }
    return out;
}

}  // namespace campaign
