#pragma once
// The runtime of core v2 (docs/internals.md, "The runtime"): one actor per instance feeds the
// pure machine its inputs, commits each decision as one journal record, and only then carries
// out the decision's effects (sends, awaitable local steps, the wake-up; plain local steps run
// inside the decision). The one write path: start,
// replies, signals, ticks, local results and operator actions all go through it.
//
// saga::engine runs on it (src/runtime/engine_v2.cpp); tests/runtime/ drives it directly.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/endpoint_policy.hpp>
#include <saga/engine.hpp>
#include <saga/error.hpp>
#include <saga/journal_store.hpp>
#include <saga/step_context.hpp>
#include <saga/transport.hpp>

#include "../machine/machine.hpp"

namespace saga::runtime {

struct options {
    /// the endpoint this engine consumes (replies, events)
    std::string endpoint = "orchestrator";
    /// how the endpoint is consumed (visibility timeout, batch size)
    consumer_options consumer;
    duration default_remote_timeout = std::chrono::seconds{30};
    std::uint64_t seed = 0;
    std::shared_ptr<journal_store> store;
    /// may be null when no definition has remote steps
    std::shared_ptr<saga::transport> transport;
    saga::clock* clock = nullptr;
    boost::asio::io_context* io = nullptr;
    /// Called on the instance's strand after each commit, with the head as it is now (written
    /// or not), the record, and the state after it: telemetry and observers.
    std::function<void(const instance_head&, const journal_record&, const machine::instance&)>
        on_commit;
    /// Called on the instance's strand with the inputs a decision of the instance ignored
    /// (stale or forged replies, repeated signals), the state they met, and the time.
    std::function<void(const instance_head&, const machine::instance&,
                       std::span<const machine::ignored_input>, time_point)>
        on_ignored;
    /// Called with a reply no instance could use before any saw it, and why: its saga id names
    /// no instance (`unknown_saga`), or its idempotency key names no attempt
    /// (`unknown_attempt`).
    std::function<void(const envelope&, machine::ignore_reason)> on_unrouted;
    /// Called with the seconds (steady clock) from handing a transition to the store until it
    /// was durable, and from releasing a message until the transport accepted it.
    std::function<void(double)> on_commit_took;
    std::function<void(double)> on_release_took;
    /// How often the store is asked for instances that fall due soon and are not in memory
    /// (after a restart, or after they left memory): each is woken at its head's wake-up time.
    duration due_poll = std::chrono::seconds{30};
    /// When more than zero: this often, running and compensating instances whose head was last
    /// written longer ago than this and that are not in memory are loaded (another engine on
    /// the same store died with them: their unreleased output goes out again, their open local
    /// steps run again). Several engines on one store without leases need it; see
    /// `engine_options::sweep_interval`.
    duration sweep_interval{0};
    /// Terminal instances older than `retention.older_than` are purged every
    /// `retention.interval` (off when `older_than` is 0); `on_purged` gets each batch's count.
    retention_options retention;
    std::function<void(std::size_t)> on_purged;
};

/// What `start` needs besides the definition and the data.
struct start_request {
    std::string definition;
    std::optional<std::uint32_t> version;
    nlohmann::json data;
    std::string id;
    std::string correlation_key;
    bool exclusive = false;
    std::string traceparent;
};

/// Counters a test or telemetry reads.
struct runtime_stats {
    std::size_t commits = 0;
    std::size_t ignored = 0;
    std::size_t sends = 0;
    std::size_t locals_run = 0;
    /// idle instances that left memory
    std::size_t evicted = 0;
    /// commands refused at release because their endpoint's circuit was open
    std::size_t refused_by_circuit = 0;
};

class runtime : public std::enable_shared_from_this<runtime> {
public:
    using done_fn = std::function<void(result<void>)>;

    [[nodiscard]] static result<std::shared_ptr<runtime>> create(options o);
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    /// Registers a definition (name and version unique); instances blocked on it move on.
    [[nodiscard]] result<void> add(std::shared_ptr<const detail::model> m);
    /// Consumes the endpoint and recovers: instances that are running or compensating (they
    /// may have output to release or a local step to run again) and instances already due.
    [[nodiscard]] result<void> open();
    /// Stops consuming and cancels wake-ups; instances stay in the store.
    void close();

    /// Creates an instance: its first decision is committed before this returns (the id, or
    /// the id of the existing instance when `id` is taken by the same definition).
    [[nodiscard]] result<std::string> start(start_request r);
    /// Posts `in` to the instance's actor; `done` gets the outcome once the transition it
    /// caused is durable (or why the input was refused).
    void post(const std::string& id, machine::input in, done_fn done);
    /// `post` and wait: runs the io_context on this thread while waiting, so it works whether
    /// or not other threads run it.
    [[nodiscard]] result<void> call(const std::string& id, machine::input in);
    /// An instance: head, typed state (the journal replayed) and data, and the version of its
    /// newest record.
    struct inspection {
        instance_head head;
        machine::instance state;
        nlohmann::json data;
        std::shared_ptr<const machine::compiled> def;
        std::uint64_t version = 0;
    };
    /// Calls `fn` with the instance as it is once it is settled (now, if it is), taken from
    /// the actor that settled it (no read from the store), or with why it never will be
    /// (`errc::not_found`, a load error).
    void when_settled(const std::string& id, std::function<void(result<inspection>)> fn);

    /// Reads `id` from the store without touching its actor; `errc::not_found` if unknown.
    [[nodiscard]] result<inspection> inspect(std::string_view id) const;
    /// The definition `name` (newest version when `version` is empty), or null.
    [[nodiscard]] std::shared_ptr<const machine::compiled> definition(
        std::string_view name, std::optional<std::uint32_t> version) const {
        return find(name, version);
    }

    /// Rate limit and circuit breaker of `endpoint`, applied when a command is released.
    void set_endpoint_policy(const std::string& endpoint, endpoint_policy policy);
    [[nodiscard]] circuit_state endpoint_circuit(const std::string& endpoint);
    /// The endpoints commands have been released to or that have a policy.
    [[nodiscard]] std::vector<std::string> endpoints() const;
    /// Whether `id` is one of the runtime's own periodic wake-ups (the due poll, the sweep,
    /// retention), and how many of those are armed: a virtual-clock run is settled when they
    /// are all that is left.
    [[nodiscard]] bool is_background(clock::timer_id id) const;
    [[nodiscard]] std::size_t background_timers() const;
    /// Purges now: batches of `retention.batch` until a batch comes back short; how many went.
    [[nodiscard]] result<std::size_t> purge();
    /// Whether an instance that is not in memory falls due at or before `t`.
    [[nodiscard]] bool due_elsewhere(time_point t) const;
    /// Instances that cannot move because their definition version is not registered (left as
    /// they are; signals for them are kept in their journal) until that version is added.
    [[nodiscard]] std::vector<blocked_instance> blocked() const;
    /// Messages released to the transport that it has not accepted yet.
    [[nodiscard]] std::size_t unreleased() const { return unreleased_.load(); }

    /// The typed state of a cached instance (tests), or nothing.
    [[nodiscard]] std::optional<machine::instance> cached_state(const std::string& id) const;
    /// Instances in memory.
    [[nodiscard]] std::size_t cached() const;
    [[nodiscard]] runtime_stats stats() const;

private:
    struct actor;
    struct endpoint_state {
        endpoint_state(endpoint_policy p, time_point now)
            : bucket(p.rate, now), breaker(p.breaker) {}
        token_bucket bucket;
        circuit_breaker breaker;
    };
    [[nodiscard]] std::shared_ptr<endpoint_state> endpoint(const std::string& name);
    explicit runtime(options o);

    [[nodiscard]] std::shared_ptr<const machine::compiled> find(
        std::string_view name, std::optional<std::uint32_t> version) const;
    [[nodiscard]] std::shared_ptr<actor> actor_of(const std::string& id);
    using work_guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
    [[nodiscard]] work_guard in_flight_work() const;
    [[nodiscard]] result<loaded_instance> load(actor& a);
    void drain(const std::shared_ptr<actor>& a);
    void hold_for_definition(const std::shared_ptr<actor>& a, const saga::error& why);
    void maybe_forget(const std::shared_ptr<actor>& a);
    /// The write of decision `d` as record `version` of instance `id` at `at`: a copy of its
    /// events, and the messages its effects send. `kept` gets what the runtime keeps while the
    /// store commits: the same record with the events moved out of `d`, without the output and
    /// data (only the store needs those, so neither is copied).
    [[nodiscard]] static journal_write write_of(const std::string& id, std::uint64_t version,
                                                time_point at, machine::decision& d,
                                                journal_record& kept);
    void committed(const std::shared_ptr<actor>& a, result<void> r, machine::decision d,
                   std::vector<done_fn> callers, journal_record rec,
                   std::optional<instance_head> head);
    void apply_effects(const std::shared_ptr<actor>& a, std::vector<machine::effect> effects,
                       std::uint64_t version);
    void release(const std::shared_ptr<actor>& a, const std::string& endpoint, envelope m,
                 std::uint64_t version);
    void released(const std::shared_ptr<actor>& a, std::uint64_t version);
    void run_local(const std::shared_ptr<actor>& a, const machine::run_local_effect& l);
    /// Plain (not awaitable) local steps run inside the decision that starts them, before its
    /// commit: their results are decided at once, so one record holds the attempt and its
    /// outcome (docs/internals.md, "Plain local steps").
    void run_plain_locals(actor& a, machine::decision& d, time_point now);
    [[nodiscard]] machine::local_done_input run_plain(actor& a, const machine::run_local_effect& l);
    [[nodiscard]] static const detail::action& action_of(const actor& a,
                                                         const machine::run_local_effect& l);
    [[nodiscard]] std::pair<std::optional<nlohmann::json>, std::shared_ptr<step_context>>
    local_call(const actor& a, const machine::run_local_effect& l);
    void launch_async(const std::shared_ptr<actor>& a, const machine::run_local_effect& l,
                      const detail::action& act, std::optional<nlohmann::json> item,
                      std::shared_ptr<step_context> ctx);
    void maybe_evict(const std::shared_ptr<actor>& a);
    void flush_watermark(const std::shared_ptr<actor>& a);
    void arm(const std::shared_ptr<actor>& a);
    void settle_waiters(const std::shared_ptr<actor>& a);
    [[nodiscard]] static result<inspection> inspection_of(const actor& a);
    void resume_after_load(const std::shared_ptr<actor>& a, const loaded_instance& li);
    void on_delivery(const std::shared_ptr<delivery>& d);
    void poll_due();
    void sweep();
    void retain();

    options opts_;
    machine::config cfg_;
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, std::uint32_t>, std::shared_ptr<const machine::compiled>>
        definitions_;
    std::map<std::string, std::shared_ptr<actor>, std::less<>> actors_;
    std::map<std::string, std::vector<std::function<void(result<inspection>)>>, std::less<>>
        waiters_;
    std::map<std::string, std::shared_ptr<endpoint_state>, std::less<>> endpoints_;
    std::map<std::string, blocked_instance, std::less<>> blocked_;
    std::unique_ptr<subscription> subscription_;
    std::optional<clock::timer_id> poll_timer_;
    std::optional<clock::timer_id> sweep_timer_;
    std::optional<clock::timer_id> retention_timer_;
    bool closed_ = false;
    runtime_stats stats_;
    std::atomic<std::size_t> unreleased_{0};
};

}  // namespace saga::runtime
