#pragma once
// The engine's private machinery. One `instance` actor per saga instance: its inputs (replies,
// timers, local results, refreshes) are processed one at a time on the instance's strand; each
// input yields at most one transition, committed before anything it causes leaves the process.

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <saga/engine.hpp>
#include "engine_core.hpp"

#include "instance_state.hpp"
#include "scheduler.hpp"

namespace saga::detail {

namespace asio = boost::asio;
using json = nlohmann::json;

/// A registered definition with lookup tables.
struct compiled_definition {
    std::shared_ptr<const model> m;
    std::unordered_map<std::string, const node*> nodes;
    std::unordered_set<const node*> after_pivot;
};

/// Something that happened to an instance.
struct input {
    enum class kind { refresh, reply, timer, local_done, wake };
    input() = default;
    explicit input(kind k) : what(k) {}
    kind what = kind::refresh;
    // reply
    envelope message;
    std::shared_ptr<delivery> from;
    // timer
    std::string timer_id;
    json timer_payload;
    // local_done
    std::string unit;
    std::uint32_t attempt = 0;
    std::uint64_t generation = 0;
    bool compensation = false;
    std::optional<error> outcome;
};

struct launch {
    std::string unit;
    std::uint32_t attempt = 0;
    bool compensation = false;
};

/// A transition being computed.
struct tx {
    time_point now{};
    std::vector<history_entry> history;
    std::vector<outbox_record> outbox;
    std::vector<timer_record> timers_set;
    std::vector<std::string> timers_cleared;
    std::vector<std::string> inbox;
    std::vector<launch> launches;
    bool local_ran = false;
    bool need_continue = false;
    /// a reply changed nothing: the cached instance may be older than the store's
    bool stale_suspect = false;
    std::optional<duration> wake_after;

    [[nodiscard]] bool changed() const {
        return !history.empty() || !timers_cleared.empty() || !timers_set.empty() || !inbox.empty();
    }
};

struct instance {
    instance(std::string sid, asio::io_context& ctx)
        : id(std::move(sid)), strand(asio::make_strand(ctx)) {}
    std::string id;
    asio::strand<asio::io_context::executor_type> strand;
    // Everything below is touched only on `strand`.
    bool loaded = false;
    instance_record record;  // the last committed record's metadata (data and state are below)
    instance_state state;
    std::shared_ptr<data_box> data;
    std::shared_ptr<const compiled_definition> def;
    std::uint64_t generation = 0;
    std::deque<input> mailbox;
    bool busy = false;
    bool wake_armed = false;
    std::map<std::string, clock::timer_id> armed;
    // Armed timers that fell due while the instance was paused: they fire when it moves again.
    std::map<std::string, json> due_while_paused;
    std::map<std::string, std::uint32_t> live;  // async local units running here
    std::map<std::string, std::shared_ptr<asio::cancellation_signal>> cancels;
};

struct endpoint_runtime {
    explicit endpoint_runtime(endpoint_policy p, time_point now)
        : bucket(p.rate, now), breaker(p.breaker) {}
    token_bucket bucket;
    circuit_breaker breaker;
};

enum class progress { done, blocked, failed };

/// A record without its data and state (the engine keeps those as objects, not JSON).
inline instance_record metadata_of(instance_record r) {
    r.data = nlohmann::json();
    r.state = nlohmann::json();
    return r;
}

class engine_impl;

/// How callbacks from other threads (clock, store, transport) reach the engine without owning
/// it: they lock `mutex` and use `engine` only if it is still set. The engine clears it first
/// thing in its destructor, so it is always destroyed on its owner's thread and no callback runs
/// into a half-destroyed engine.
struct lifeline {
    std::shared_mutex mutex;  // shared by callbacks, exclusive for the destructor
    engine_impl* engine = nullptr;
};

class engine_impl final : public engine_core {
public:
    engine_impl(std::shared_ptr<state_store> store, std::shared_ptr<transport> transport,
                engine_options options);
    ~engine_impl();

    result<void> add_model(std::shared_ptr<const model> m) override;
    result<std::string> start(std::string_view name, json data, start_options options) override;
    result<void> signal(std::string_view id, std::string_view name, json payload,
                        std::string message_id = {}) override;
    result<instance_view> query(std::string_view id) override;
    result<void> cancel(std::string_view id, std::string_view reason,
                        const operator_note* note) override;
    result<void> pause(std::string_view id, const operator_note& note) override;
    result<void> resume(std::string_view id, const operator_note& note) override;
    result<void> retry(std::string_view id, const operator_note& note) override;
    result<void> skip_step(std::string_view id, std::string_view step,
                           const operator_note& note) override;
    result<std::size_t> release_lock(std::string_view key, const operator_note& note) override;
    result<std::vector<instance_record>> list(const list_filter& f) override {
        return store_->list(f);
    }
    result<std::vector<history_entry>> history_of(std::string_view id) override;
    metrics_registry& metrics() override { return *metrics_; }
    /// Changes the record's metadata and state; returns the history entry to record, or none
    /// when there is nothing to change.
    using direct_change =
        std::function<result<std::optional<history_entry>>(instance_record&, instance_state&)>;
    /// Changes an instance straight in the store (signals, cancel, operator actions): load,
    /// `change`, commit with the expected version, retry on conflict; then the actor reloads
    /// it. Terminal instances are refused; settled ones too unless `on_settled`.
    result<void> update_directly(std::string_view id, std::string_view what, std::string message_id,
                                 const direct_change& change, bool on_settled = false);
    void add_waiter(const std::string& id, std::function<void(result<instance_view>)> fn) override;
    result<void> schedule(schedule_options options) override;
    std::vector<blocked_instance> blocked() const override;
    void set_endpoint_policy(const std::string& endpoint, endpoint_policy policy) override;
    circuit_state endpoint_circuit(const std::string& endpoint) override;
    void add_observer(std::shared_ptr<observer> o) override;
    result<void> open() override;
    result<void> run() override;
    std::size_t run_until_idle() override;
    result<void> run_until_settled(duration limit) override;
    void stop() override;
    asio::any_io_executor executor() override { return ctx_.get_executor(); }
    saga::clock& clock() override { return *clock_; }
    std::size_t active_instances() const override;

private:
    // registry and cache
    std::shared_ptr<const compiled_definition> find_definition(
        std::string_view name, std::optional<std::uint32_t> version) const;
    std::shared_ptr<instance> get_instance(const std::string& id);
    void evict(const std::shared_ptr<instance>& inst);
    std::shared_ptr<endpoint_runtime> endpoint(const std::string& name);

    // the actor
    void post_input(const std::string& id, input in);
    void pump(const std::shared_ptr<instance>& inst);
    void process(const std::shared_ptr<instance>& inst, std::vector<input> batch);
    result<void> load(instance& inst, bool keep_live_data);
    void commit(const std::shared_ptr<instance>& inst, tx t, std::vector<input> batch);
    void on_committed(const std::shared_ptr<instance>& inst, result<void> r, instance_record next,
                      tx t, std::vector<input> batch);
    bool has_observers() const;
    void retry_later(const std::string& id, input in, duration delay);
    void schedule_wake(const std::shared_ptr<instance>& inst, const tx& t);

    // transitions
    void handle(instance& inst, tx& t, input& in);
    void handle_reply(instance& inst, tx& t, const envelope& e);
    void handle_reply_inner(instance& inst, tx& t, const envelope& e);
    void handle_timer(instance& inst, tx& t, const std::string& id, const json& payload);
    void handle_local_done(instance& inst, tx& t, const input& in);
    void advance(instance& inst, tx& t);
    void advance_once(instance& inst, tx& t);
    progress drive_sequence(instance& inst, tx& t, const std::vector<node>& steps);
    progress drive_node(instance& inst, tx& t, const node& n);
    progress drive_for_each(instance& inst, tx& t, const node& n);
    void drive_compensation(instance& inst, tx& t);
    void start_attempt(instance& inst, tx& t, const node& n, const std::string& key);
    void attempt_done(instance& inst, tx& t, const node& n, const std::string& key,
                      std::optional<error> err, bool timed_out = false);
    void complete_unit(instance& inst, tx& t, const node& n, const std::string& key);
    void unit_failed(instance& inst, tx& t, const node& n, const std::string& key,
                     const error& err);
    void fail_saga(instance& inst, tx& t, const std::string& reason);
    void begin_compensation(instance& inst, tx& t, const std::string& reason);
    void start_wait(instance& inst, tx& t, const node& n, const std::string& key);
    void try_consume_signal(instance& inst, tx& t, const node& n, const std::string& key);
    void skip(instance& inst, tx& t, const node& n);
    void start_compensation(instance& inst, tx& t, const node& n, const std::string& key);
    void compensation_done(instance& inst, tx& t, const node& n, const std::string& key,
                           std::optional<error> err);
    void settle(instance& inst, tx& t, saga_status status, const char* event);

    // helpers
    void history(instance& inst, tx& t, std::string event, std::string step = {},
                 std::uint32_t attempt = 0, json detail = json::object());
    void set_timer(instance& inst, tx& t, std::string id, time_point due, json payload);
    void clear_unit_timers(instance& inst, tx& t, const std::string& key);
    const node* node_of(const instance& inst, std::string_view key) const;
    const json* item_of(const instance& inst, const std::string& key) const;
    std::string idempotency_key_of(const instance& inst, const std::string& key,
                                   bool compensating) const;
    step_context context(const instance& inst, const std::string& key, std::uint32_t attempt,
                         bool compensating) const;
    envelope make_envelope(const instance& inst, const std::string& key, std::uint32_t attempt,
                           message_kind kind, command cmd, std::string idempotency_key) const;
    retry_policy retry_for(const instance& inst, const node& n) const;
    retry_policy compensation_retry_for(const instance& inst, const node& n) const;
    bool halted(const instance& inst) const;
    bool is_live(const instance& inst, const tx& t, const std::string& key) const;
    void launch_async(const std::shared_ptr<instance>& inst, const launch& l);
    void arm(const std::shared_ptr<instance>& inst, const timer_record& t);
    void release(outbox_record rec, std::uint32_t tries,
                 std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now());
    void released(outbox_record rec, std::uint32_t tries,
                  std::chrono::steady_clock::time_point since, result<void> r);
    void notify(const instance_record& record, std::span<const history_entry> entries,
                const instance_state& state);
    void settle_waiters(const std::string& id, const result<instance_view>& view);
    bool has_waiters(const std::string& id) const;
    instance_view make_view(const instance_record& record, const instance_state& state) const;
    void on_delivery(const std::shared_ptr<delivery>& d);
    void recover();
    /// Arms due timers nobody armed here and loads stale unfinished instances (sweep_interval).
    void sweep();
    bool sweeping_ = false;

    std::shared_ptr<state_store> store_;
    std::shared_ptr<transport> transport_;
    engine_options options_;
    std::shared_ptr<saga::clock> clock_;
    asio::io_context ctx_;

    mutable std::mutex mutex_;  // guards the maps below
    std::map<std::string, std::map<std::uint32_t, std::shared_ptr<const compiled_definition>>,
             std::less<>>
        defs_;
    std::unordered_map<std::string, std::shared_ptr<instance>> instances_;
    std::unordered_map<std::string, std::shared_ptr<endpoint_runtime>> endpoints_;
    std::vector<std::shared_ptr<observer>> observers_;
    std::unordered_map<std::string,
                       std::vector<std::shared_ptr<std::function<void(result<instance_view>)>>>>
        waiters_;
    std::map<std::string, blocked_instance> blocked_;
    std::shared_ptr<scheduler> scheduler_;

    std::mutex open_mutex_;
    bool opened_ = false;
    void close_consumer();
    std::mutex run_mutex_;  // guards running_, stop_pending_, work_ between run() and stop()
    bool running_ = false;
    bool stop_pending_ = false;
    std::atomic<bool> stopping_{false};
    std::unique_ptr<subscription> subscription_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    // Operations completing on other threads (store commits, transport sends) keep the
    // io_context from running out of work, so run_until_idle waits for them; counted here rather
    // than by a tracked executor in the callback, which could outlive the engine.
    std::mutex external_mutex_;
    std::size_t external_ = 0;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> external_work_;
    void begin_external();
    void end_external();
    std::mutex acks_mutex_;
    std::vector<std::string> acks_;
    bool ack_flush_scheduled_ = false;
    void flush_acks();
    std::shared_ptr<lifeline> lifeline_ = std::make_shared<lifeline>();

    // telemetry (src/telemetry.cpp): every committed history entry feeds logs, metrics, spans
    std::shared_ptr<metrics_registry> metrics_;
    std::shared_ptr<log_sink> log_;
    std::mutex trace_mutex_;
    std::unordered_map<std::string, time_point> compensation_clock_;  // saga id -> last boundary
    std::atomic<std::int64_t> outbox_in_flight_{0};
    void init_telemetry();
    void telemetry(const instance_record& record, std::span<const history_entry> entries,
                   const instance_state& state);
    void trace(const instance_record& record, const history_entry& e, const instance_state& state);
    /// The span a step (or its compensation) runs in, as a traceparent for its envelopes.
    std::string step_traceparent(const instance& inst, const std::string& key,
                                 bool compensating) const;
    void warn(std::string_view what) const;
};

/// Runs `fn(engine)` if the engine behind `l` is still alive.
template <class Fn>
void with_engine(const std::shared_ptr<lifeline>& l, Fn&& fn) {
    std::shared_lock lock(l->mutex);
    if (l->engine) fn(*l->engine);
}

}  // namespace saga::detail
