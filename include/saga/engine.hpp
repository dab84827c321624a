#pragma once
/// @file engine.hpp
/// The orchestrator: starts instances, advances them, persists every transition before its
/// messages leave (outbox), consumes replies and events (inbox), fires durable timers,
/// compensates, and recovers what a previous process left.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/definition.hpp>
#include <saga/endpoint_policy.hpp>
#include <saga/error.hpp>
#include <saga/journal_store.hpp>
#include <saga/log.hpp>
#include <saga/metrics.hpp>
#include <saga/observer.hpp>
#include <saga/state_store.hpp>
#include <saga/status.hpp>
#include <saga/tracing.hpp>
#include <saga/transport.hpp>

namespace saga {

namespace detail {
class engine_core;
}

/// How long finished instances stay in the store (docs/operations.md, "Retention").
struct retention_options {
    /// Terminal instances (completed, compensated, compensation failed, failed, cancelled)
    /// whose head was last written longer ago than this are deleted: head and journal, and
    /// the claim-check bodies kept in the same store once they are as old. 0 (the default):
    /// kept for ever.
    duration older_than{0};
    /// how often the engine purges, once it has opened
    duration interval = std::chrono::minutes{10};
    /// instances deleted per store transaction (each batch is its own write, so that commits
    /// of live instances run between them)
    std::size_t batch = 1000;
};

/// Options of an engine.
struct engine_options {
    /// worker threads `run()` uses (>= 1)
    std::size_t workers = 2;
    /// the endpoint this engine consumes replies and events from (`reply_to` of its commands)
    std::string endpoint = "saga.engine";
    /// the clock; default: a new `system_clock`
    std::shared_ptr<saga::clock> clock;
    /// timeout of a remote step attempt when the step sets none
    duration default_remote_timeout = std::chrono::seconds{30};
    /// how the engine consumes its endpoint
    consumer_options consumer;
    /// seed of backoff jitter (runs with the same seed and inputs back off the same way)
    std::uint64_t seed = 0;
    /// How often the engine looks in the store for work nobody in this process is doing: due
    /// timers it did not arm, and unfinished instances it has not loaded that were last updated
    /// longer than `sweep_interval` ago (another engine's that died, or a start whose process
    /// ended). 0 (the default): only when it opens. Set it when several engines share a store.
    duration sweep_interval{0};
    /// Deleting finished instances from the store; off by default.
    retention_options retention;
    /// where structured log lines go (one per history event at or above `log_level`, and the
    /// engine's own warnings); default: JSON lines on stderr
    std::shared_ptr<saga::log_sink> log_sink;
    /// the least important level written: `warn` (the default) logs failures only, `info`
    /// every step outcome, `debug` every history event
    saga::log_level log_level = saga::log_level::warn;
    /// receives the finished saga, step and compensation spans; default: none
    std::shared_ptr<saga::span_exporter> span_exporter;
    /// the registry metrics go to (several engines may share one); default: the engine's own
    std::shared_ptr<metrics_registry> metrics;
};

/// Options of one start.
struct start_options {
    /// the saga id; empty: a new unique id. Starting an id that exists returns it unchanged.
    std::string id;
    /// the business key (e.g. a campaign id), for lists, events and locks
    std::string correlation_key;
    /// hold a lock on `correlation_key` while the instance is not terminal: a second exclusive
    /// start with the same key is `errc::lock_held`
    bool exclusive = false;
    /// the definition version; default: the highest registered
    std::optional<std::uint32_t> version;
    /// W3C trace context to continue
    std::string traceparent;
};

/// A recurring start: the definition is started once per tick of `interval`, durably — also
/// across restarts and with several engines on one store, because the instance of tick `k` has
/// the id `<name>@<k>` and a start of an existing id starts nothing.
struct schedule_options {
    /// unique among the engine's schedules; the prefix of the instance ids
    std::string name;
    /// the definition to start (its highest registered version)
    std::string definition;
    /// the tick length (>= 1 ms); ticks are counted from the Unix epoch
    duration interval{0};
    /// the data of the tick's instance, from the tick's start time; default: an empty object
    std::function<result<nlohmann::json>(time_point tick)> data;
    /// the correlation key of every instance
    std::string correlation_key;
};

/// An instance that cannot run because the definition version it is pinned to is not
/// registered. It is left untouched; registering that version resumes it.
struct blocked_instance {
    std::string id;
    std::string definition;
    std::uint32_t version = 0;
    std::string error;
};

/// One step (or for-each item) as `query` shows it.
struct step_view {
    std::string name;
    /// "local", "remote", "wait", "parallel", "for_each" or "item"
    std::string kind;
    step_status status = step_status::pending;
    std::uint32_t attempts = 0;
    std::uint32_t compensation_attempts = 0;
    std::string error;
    std::optional<time_point> started_at;
    std::optional<time_point> finished_at;
    /// for-each steps: item counts and per-item results
    std::size_t items_total = 0;
    std::size_t items_completed = 0;
    std::size_t items_failed = 0;
    std::vector<item_result> items;
};

/// An instance as `query` shows it.
struct instance_view {
    std::string id;
    std::string definition;
    std::uint32_t definition_version = 0;
    std::uint64_t version = 0;
    saga_status status = saga_status::running;
    std::string correlation_key;
    nlohmann::json data;
    /// why it failed or was cancelled (empty otherwise)
    std::string error;
    std::vector<step_view> steps;
    /// 0 to 100: settled units of work over all units
    double percent_complete = 0;
    /// steps running, retrying or waiting now
    std::vector<std::string> current_steps;
    time_point created_at{};
    time_point updated_at{};

    /// The data as `Data`, or `errc::bad_data`.
    template <class Data>
    [[nodiscard]] result<Data> data_as() const {
        try {
            return data.get<Data>();
        } catch (const std::exception& e) {
            return saga::error{errc::bad_data, e.what()};
        }
    }
    /// The view of step `name`, or null.
    [[nodiscard]] const step_view* step(std::string_view name) const {
        for (const auto& s : steps)
            if (s.name == name) return &s;
        return nullptr;
    }
};

/// Who performed an operator action and why. Both are recorded in the instance's history
/// (`detail.who`, `detail.why`), so every manual intervention can be audited later.
struct operator_note {
    /// the operator (user name, service account, ...); required
    std::string who;
    /// the reason; required
    std::string why;
};

/// The saga engine. Thread-safe; every public call may be made from any thread.
class engine {
public:
    engine(std::shared_ptr<state_store> store, std::shared_ptr<transport> transport,
           engine_options options = {});
    /// An engine on core v2 (docs/internals.md): the pure machine and its runtime, on a journal
    /// store. Being switched in: `schedule` is not yet available on it.
    engine(std::shared_ptr<journal_store> store, std::shared_ptr<transport> transport,
           engine_options options = {});
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    /// Registers a definition (name and version). Registering the same name and version twice
    /// is `errc::already_exists`.
    template <class Data>
    result<void> add(const definition<Data>& d) {
        return add_model(d.model());
    }

    /// Starts an instance of the definition `name` with `data`; returns its id once the new
    /// instance is durable. With `options.id` of an existing instance, returns that id and
    /// starts nothing (idempotent start).
    template <class Data>
    result<std::string> start(std::string_view name, const Data& data, start_options options = {}) {
        nlohmann::json j;
        try {
            j = data;
        } catch (const std::exception& e) {
            return error{errc::bad_data,
                         std::string("cannot convert saga data to json: ") + e.what()};
        }
        return start_json(name, std::move(j), std::move(options));
    }
    /// Same, with the data already as JSON (validated against the definition's Data type).
    result<std::string> start_json(std::string_view name, nlohmann::json data,
                                   start_options options = {});

    /// Delivers the signal `name` to instance `id`. If no wait for it is open yet it is kept
    /// until one opens. `errc::not_found` for an unknown id, `errc::saga_finished` if the
    /// instance is terminal.
    result<void> signal(std::string_view id, std::string_view name,
                        nlohmann::json payload = nlohmann::json::object());

    /// The instance now: status, per-step state, attempts, percent complete, current steps.
    [[nodiscard]] result<instance_view> query(std::string_view id);

    /// Cancels instance `id`: no new step starts, running ones settle, completed ones are
    /// compensated and the instance ends `cancelled`. `errc::past_pivot` after the pivot,
    /// `errc::saga_finished` if it is already settled.
    result<void> cancel(std::string_view id, std::string_view reason = {});

    /// Same, as an operator action: `note` is recorded with the request.
    result<void> cancel(std::string_view id, const operator_note& note);

    // ---- operator actions: each is recorded in the history with `note.who` and `note.why`;
    // a note without who or why is `errc::invalid_argument`; an unknown id `errc::not_found`.

    /// Holds instance `id`: no new step or compensation starts until `resume`; replies of steps
    /// already running are still recorded. The status becomes `paused`. Pausing a paused
    /// instance does nothing; a terminal one is `errc::saga_finished`.
    result<void> pause(std::string_view id, const operator_note& note);
    /// Lets a paused instance move again. `errc::invalid_state` unless it is paused.
    result<void> resume(std::string_view id, const operator_note& note);
    /// Retries what stopped an instance that waits for an operator: the failed compensation of a
    /// `compensation_failed` instance (compensation goes on from there, newest first), or the
    /// failed step of a `failed` instance (it is attempted again with a fresh retry budget).
    /// `errc::invalid_state` for any other status.
    result<void> retry(std::string_view id, const operator_note& note);
    /// Marks step `step` of instance `id` as done without running it, and moves on: a forward
    /// step that failed, is retrying or is waiting becomes `skipped` (its compensation will not
    /// run); a compensation that failed becomes `compensated`. `errc::invalid_state` when the
    /// step is in none of those states, `errc::not_found` for an unknown step.
    result<void> skip_step(std::string_view id, std::string_view step, const operator_note& note);
    /// Force-releases the lock on `correlation_key`: every non-terminal exclusive instance
    /// holding it stops holding it (it keeps running). Returns how many locks were released
    /// (0 when the key was free).
    result<std::size_t> release_lock(std::string_view correlation_key, const operator_note& note);

    /// Instances matching `filter` (ordered by id; page with `filter.after_id`).
    [[nodiscard]] result<std::vector<instance_record>> list(const list_filter& filter);
    /// The history timeline of instance `id`, oldest first; `errc::not_found` for an unknown id.
    [[nodiscard]] result<std::vector<history_entry>> history(std::string_view id);

    /// Completes with the instance's view once it is settled (see `is_settled`).
    /// Signature: `void(saga::result<saga::instance_view>)`.
    template <class Token>
    auto async_wait(std::string id, Token&& token) {
        return boost::asio::async_initiate<Token, void(result<instance_view>)>(
            [this](auto handler, std::string sid) {
                using H = decltype(handler);
                auto h = std::make_shared<H>(std::move(handler));
                auto ex = boost::asio::get_associated_executor(*h, get_executor());
                add_waiter(sid, [h, ex](result<instance_view> r) mutable {
                    boost::asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
                });
            },
            token, std::move(id));
    }
    /// Blocks until instance `id` is settled. Needs the engine to be running on other threads
    /// (`run()`), else it would wait forever.
    [[nodiscard]] result<instance_view> wait(std::string_view id);

    /// Starts `options.definition` once per tick of `options.interval` (the current tick at once,
    /// if its instance does not exist yet). Missed ticks are not caught up.
    /// `errc::invalid_argument` for a bad interval or name, `errc::already_exists` for a second
    /// schedule of that name.
    result<void> schedule(schedule_options options);

    /// Instances left untouched because their definition version is not registered.
    [[nodiscard]] std::vector<blocked_instance> blocked() const;

    /// Sets the rate limit and circuit breaker of remote steps sending to `endpoint`.
    void set_endpoint_policy(const std::string& endpoint, endpoint_policy policy);
    /// The circuit state of `endpoint` (closed when it has no breaker).
    [[nodiscard]] circuit_state endpoint_circuit(const std::string& endpoint);
    /// The engine's metrics (Prometheus text with `metrics().prometheus_text()`): sagas started
    /// and ended by definition and status, step durations, retries, compensations, timeouts,
    /// circuit states, outbox lag, store commit latency and batch size, instances in flight.
    [[nodiscard]] metrics_registry& metrics();
    /// Adds a lifecycle observer.
    void add_observer(std::shared_ptr<observer> o);

    /// Starts consuming the endpoint and recovers the store's unfinished instances, timers and
    /// outbox. Called by `run` and `run_until_idle` when not done yet; idempotent.
    result<void> open();
    /// Runs the engine on `workers` threads (this one included) until `stop()`.
    result<void> run();
    /// Runs handlers on this thread until nothing is left to do now (timers in the future do
    /// not count). Returns how many handlers ran. With a `virtual_clock`, pair it with
    /// `virtual_clock::advance` to drive time.
    std::size_t run_until_idle();
    /// Like `run_until_idle`, advancing the virtual clock to the next wake-up whenever idle,
    /// until no wake-up is pending or `limit` of virtual time has passed. `errc::invalid_state`
    /// unless the clock is a `virtual_clock`.
    result<void> run_until_settled(duration limit = std::chrono::hours{24 * 365});
    /// Graceful stop: stops consuming, lets the handlers running now finish, and makes `run`
    /// return. Committed work is never lost; unreleased outbox messages go on the next open.
    void stop();

    /// The engine's executor (participants in the same process may run on it).
    [[nodiscard]] boost::asio::any_io_executor get_executor();
    /// The engine's clock.
    [[nodiscard]] saga::clock& clock();
    /// Instances cached in memory (not settled).
    [[nodiscard]] std::size_t active_instances() const;

private:
    result<void> add_model(std::shared_ptr<const detail::model> m);
    void add_waiter(const std::string& id, std::function<void(result<instance_view>)> fn);
    std::shared_ptr<detail::engine_core> impl_;
};

}  // namespace saga
