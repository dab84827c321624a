// saga::engine on core v2: the public engine's calls as inputs of the runtime (one write path),
// queries read from the journal. Chosen by constructing saga::engine with a journal_store.
// History comes from the journal (legacy::to_history), telemetry from each committed record
// (telemetry::journal_telemetry), schedules from the scheduler both cores share.

#include <fmt/format.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <optional>
#include <thread>

#include <saga/tracing.hpp>

#include "../engine_core.hpp"
#include "../legacy/history.hpp"
#include "../machine/ids.hpp"
#include "../scheduler.hpp"
#include "../step_views.hpp"
#include "../telemetry/journal_telemetry.hpp"
#include "runtime.hpp"

namespace saga::runtime {
namespace {

namespace asio = boost::asio;
using detail::node;
using detail::node_kind;

instance_view make_view(const saga::runtime::runtime::inspection& in, std::uint64_t version) {
    const auto& st = in.state;
    instance_view v;
    v.id = in.head.id;
    v.definition = in.head.definition;
    v.definition_version = in.head.definition_version;
    v.version = version;
    v.status = st.status;
    v.correlation_key = st.correlation_key;
    v.data = in.data;
    v.error = st.error;
    v.created_at = st.created_at;
    v.updated_at = st.updated_at;
    detail::describe_steps(v, &in.def->model->steps, st.units, st.status);
    return v;
}

instance_record record_of(const instance_head& h) {
    instance_record r;
    r.id = h.id;
    r.definition = h.definition;
    r.definition_version = h.definition_version;
    r.version = h.version;
    r.status = h.status;
    r.correlation_key = h.correlation_key;
    r.exclusive = h.exclusive;
    r.created_at = h.created_at;
    r.updated_at = h.updated_at;
    return r;
}

class engine_core_v2 final : public detail::engine_core {
public:
    engine_core_v2(std::shared_ptr<journal_store> store, std::shared_ptr<transport> transport,
                   engine_options options)
        : store_(std::move(store)),
          options_(std::move(options)),
          telemetry_({.metrics = options_.metrics,
                      .log_sink = options_.log_sink,
                      .log_level = options_.log_level,
                      .span_exporter = options_.span_exporter}) {
        clock_ = options_.clock ? options_.clock : std::make_shared<system_clock>();
        saga::runtime::options ro;
        ro.endpoint = options_.endpoint;
        ro.default_remote_timeout = options_.default_remote_timeout;
        ro.seed = options_.seed;
        ro.sweep_interval = options_.sweep_interval;
        ro.consumer = options_.consumer;
        ro.retention = options_.retention;
        ro.on_purged = [this](std::size_t n) { telemetry_.purged(n); };
        ro.store = store_;
        if (transport) transport->set_metrics(telemetry_.metrics_ptr());  // dead letters
        ro.transport = std::move(transport);
        ro.clock = clock_.get();
        ro.io = &ctx_;
        ro.on_commit = [this](const instance_head& h, const journal_record& rec,
                              const machine::instance& after) { committed(h, rec, after); };
        ro.on_ignored = [this](const instance_head& h, const machine::instance& st,
                               std::span<const machine::ignored_input> ignored,
                               time_point at) { telemetry_.on_ignored(h, st, ignored, at); };
        ro.on_unrouted = [this](const envelope& m, machine::ignore_reason reason) {
            telemetry_.on_unrouted(m, reason, clock_->now());
        };
        ro.on_commit_took = [this](double s) { telemetry_.commit_took(s); };
        ro.on_release_took = [this](double s) { telemetry_.release_took(s); };
        rt_ = saga::runtime::runtime::create(std::move(ro)).value();
        // the gauges may be read after the engine is gone (a shared registry): they hold the
        // runtime weakly
        std::weak_ptr<saga::runtime::runtime> rt = rt_;
        telemetry::gauge_sources g;
        g.in_flight = [rt] {
            auto r = rt.lock();
            return r ? static_cast<double>(r->cached()) : 0.0;
        };
        g.outbox_unreleased = [rt] {
            auto r = rt.lock();
            return r ? static_cast<double>(r->unreleased()) : 0.0;
        };
        g.circuits = [rt] {
            std::vector<std::pair<std::string, double>> out;
            auto r = rt.lock();
            if (!r) return out;
            for (auto& name : r->endpoints())
                out.emplace_back(name, telemetry::circuit_gauge(r->endpoint_circuit(name)));
            return out;
        };
        telemetry_.set_gauges(std::move(g));
        scheduler_ = std::make_shared<detail::scheduler>(detail::scheduler::hooks{
            .clock = clock_.get(),
            .has_definition =
                [this](const std::string& name) {
                    return rt_->definition(name, std::nullopt) != nullptr;
                },
            .start = [this](const std::string& name, nlohmann::json data,
                            start_options o) { return start(name, std::move(data), std::move(o)); },
            .post = [this](std::function<void()> fn) { asio::post(ctx_, std::move(fn)); },
            .warn = [this](const std::string& what) { telemetry_.warn(what, clock_->now()); }});
    }
    ~engine_core_v2() override { stop(); }

    result<void> add_model(std::shared_ptr<const detail::model> m) override {
        return rt_->add(std::move(m));
    }

    result<std::string> start(std::string_view name, nlohmann::json data,
                              start_options o) override {
        if (stopping_) return error{errc::shutting_down, "the engine is stopping"};
        start_request r;
        r.definition = std::string(name);
        r.version = o.version;
        r.data = std::move(data);
        r.id = std::move(o.id);
        r.correlation_key = std::move(o.correlation_key);
        r.exclusive = o.exclusive;
        // Continue the caller's trace, or start one whose root is the saga's own span.
        if (auto tc = trace_context::parse(o.traceparent)) {
            r.traceparent = tc->traceparent();
        } else {
            auto root = trace_context::random();
            if (r.id.empty()) r.id = fmt::format("{}", root.trace_id);
            root.span_id = derive_span_id(root.trace_id, "saga|" + r.id);
            r.traceparent = root.traceparent();
        }
        return rt_->start(std::move(r));
    }

    result<void> signal(std::string_view id, std::string_view name, nlohmann::json payload,
                        std::string message_id) override {
        return call(std::string(id), machine::signal_input{std::string(name), std::move(payload),
                                                           std::move(message_id)});
    }

    result<instance_view> query(std::string_view id) override {
        SAGA_TRY(auto in, rt_->inspect(id));
        return make_view(in, in.version);
    }

    result<void> cancel(std::string_view id, std::string_view reason,
                        const operator_note* note) override {
        machine::operator_input o{machine::operator_action::cancel, note ? note->who : "",
                                  note ? note->why : "", std::string(reason)};
        return call(std::string(id), std::move(o));
    }
    result<void> pause(std::string_view id, const operator_note& note) override {
        return act(id, machine::operator_action::pause, note, "pause");
    }
    result<void> resume(std::string_view id, const operator_note& note) override {
        return act(id, machine::operator_action::resume, note, "resume");
    }
    result<void> retry(std::string_view id, const operator_note& note) override {
        return act(id, machine::operator_action::retry, note, "retry");
    }
    result<void> skip_step(std::string_view id, std::string_view step,
                           const operator_note& note) override {
        return act(id, machine::operator_action::skip, note, "skip step", std::string(step));
    }
    result<std::size_t> release_lock(std::string_view key, const operator_note& note) override {
        SAGA_TRY(check_note(note, "release lock"));
        if (key.empty()) return error{errc::invalid_argument, "release lock: no correlation key"};
        head_filter f;
        f.correlation_key = std::string(key);
        std::size_t released = 0;
        for (;;) {
            SAGA_TRY(auto page, store_->list(f));
            for (const auto& h : page) {
                if (!h.exclusive || is_terminal(h.status)) continue;
                SAGA_TRY(act(h.id, machine::operator_action::release_lock, note, "release lock"));
                SAGA_TRY(auto after, store_->head(h.id));
                if (!after.exclusive) ++released;
            }
            if (page.size() < f.limit) break;
            f.after_id = page.back().id;
        }
        return released;
    }

    result<std::vector<instance_record>> list(const list_filter& f) override {
        head_filter h;
        h.statuses = f.statuses;
        h.definition = f.definition;
        h.correlation_key = f.correlation_key;
        h.updated_before = f.updated_before;
        h.after_id = f.after_id;
        h.limit = f.limit;
        SAGA_TRY(auto heads, store_->list(h));
        std::vector<instance_record> out;
        for (const auto& head : heads) {
            if (f.updated_after && !(head.updated_at > *f.updated_after)) continue;
            out.push_back(record_of(head));
        }
        return out;
    }

    result<std::vector<history_entry>> history_of(std::string_view id) override {
        SAGA_TRY(auto head, store_->head(id));
        SAGA_TRY(auto journal, store_->journal(id));
        auto def = rt_->definition(head.definition, head.definition_version);
        if (!def)
            return error{errc::definition_not_registered,
                         fmt::format("saga '{}' needs definition '{}' version {}", id,
                                     head.definition, head.definition_version)};
        return legacy::to_history(std::move(def), journal);
    }

    metrics_registry& metrics() override { return telemetry_.metrics(); }

    void add_waiter(const std::string& id, std::function<void(result<instance_view>)> fn) override {
        // Settled already: answered now, on this thread, without needing the io_context to run
        // (a caller on the virtual clock may be the only one who runs it).
        if (auto h = store_->head(id); h && is_settled(h.value().status)) {
            fn(query(id));
            return;
        }
        rt_->when_settled(id, [fn = std::move(fn)](result<saga::runtime::runtime::inspection> in) {
            if (!in) {
                fn(in.error());
                return;
            }
            fn(make_view(in.value(), in.value().version));
        });
    }

    result<void> schedule(schedule_options options) override {
        return scheduler_->add(std::move(options));
    }
    std::vector<blocked_instance> blocked() const override { return rt_->blocked(); }

    void set_endpoint_policy(const std::string& endpoint, endpoint_policy policy) override {
        rt_->set_endpoint_policy(endpoint, policy);
    }
    circuit_state endpoint_circuit(const std::string& endpoint) override {
        return rt_->endpoint_circuit(endpoint);
    }

    void add_observer(std::shared_ptr<observer> o) override {
        std::lock_guard lock(mutex_);
        observers_.push_back(std::move(o));
    }

    result<void> open() override {
        std::lock_guard lock(mutex_);
        if (opened_) return success();
        SAGA_TRY(rt_->open());
        opened_ = true;
        return success();
    }

    result<void> run() override {
        // A stop() that came before run() got going (say, from the thread that started it) is
        // not lost: run() returns at once. A stop() that ended an earlier run() is no reason
        // not to run again.
        {
            std::lock_guard lock(mutex_);
            if (std::exchange(stop_pending_, false)) return success();
        }
        SAGA_TRY(open());
        {
            std::lock_guard lock(mutex_);
            if (std::exchange(stop_pending_, false)) return success();
            stopping_ = false;
            ctx_.restart();
            work_.emplace(ctx_.get_executor());
            running_ = true;
        }
        std::vector<std::thread> threads;
        for (std::size_t i = 1; i < options_.workers; ++i)
            threads.emplace_back([this] { ctx_.run(); });
        ctx_.run();
        for (auto& t : threads) t.join();
        std::lock_guard lock(mutex_);
        running_ = false;
        stop_pending_ = false;
        return success();
    }

    std::size_t run_until_idle() override {
        if (!open()) return 0;
        ctx_.restart();
        return ctx_.run();
    }

    result<void> run_until_settled(duration limit) override {
        auto* vc = dynamic_cast<virtual_clock*>(clock_.get());
        if (!vc) return error{errc::invalid_state, "run_until_settled needs a virtual_clock"};
        const auto until = vc->now() + limit;
        for (;;) {
            run_until_idle();
            auto next = vc->next_due();
            if (!next || *next > until) break;
            // The due poll alone is no work: settled, unless an instance that is not in
            // memory falls due before the limit (the poll would load it).
            if (vc->pending() <= rt_->background_timers() && rt_->is_background(*vc->next_id()) &&
                !rt_->due_elsewhere(until))
                break;
            vc->advance_to_next();
        }
        return success();
    }

    void stop() override {
        stopping_ = true;
        scheduler_->stop();
        rt_->close();
        {
            std::lock_guard lock(mutex_);
            work_.reset();
            opened_ = false;  // run_until_idle after stop consumes and recovers again, as today
            if (!running_) stop_pending_ = true;
        }
        ctx_.stop();
    }

    boost::asio::any_io_executor executor() override { return ctx_.get_executor(); }
    saga::clock& clock() override { return *clock_; }
    std::size_t active_instances() const override { return rt_->cached(); }

private:
    static result<void> check_note(const operator_note& note, std::string_view action) {
        if (note.who.empty() || note.why.empty())
            return error{errc::invalid_argument,
                         fmt::format("{} is an operator action: say who does it and why", action)};
        return success();
    }

    result<void> act(std::string_view id, machine::operator_action a, const operator_note& note,
                     std::string_view what, std::string step = {}) {
        SAGA_TRY(check_note(note, what));
        return call(std::string(id),
                    machine::operator_input{a, note.who, note.why, std::move(step)});
    }

    /// `in` to instance `id`, and its outcome once durable. While run() runs the io_context
    /// on other threads, this thread just waits for it; otherwise (or when called from a
    /// handler) it runs the io_context itself until the outcome is there.
    result<void> call(const std::string& id, machine::input in) {
        bool others_run = false;
        {
            std::lock_guard lock(mutex_);
            others_run = running_ && !ctx_.get_executor().running_in_this_thread();
        }
        if (!others_run) return rt_->call(id, std::move(in));
        auto p = std::make_shared<std::promise<result<void>>>();
        auto f = p->get_future();
        rt_->post(id, std::move(in), [p](result<void> r) { p->set_value(std::move(r)); });
        while (f.wait_for(std::chrono::milliseconds{20}) != std::future_status::ready) {
            {
                std::lock_guard lock(mutex_);
                if (running_) continue;
            }
            // run() ended meanwhile: nobody else runs what the outcome waits for
            if (ctx_.stopped()) ctx_.restart();
            ctx_.poll();
        }
        return f.get();
    }

    /// One committed record: telemetry, and the observers with its history entries (made
    /// only when someone observes; telemetry makes its own only when it logs).
    void committed(const instance_head& h, const journal_record& rec,
                   const machine::instance& after) {
        std::vector<std::shared_ptr<observer>> observers;
        {
            std::lock_guard lock(mutex_);
            observers = observers_;
        }
        if (observers.empty()) {
            telemetry_.on_record(h, rec, after);
            return;
        }
        std::vector<history_entry> entries;
        legacy::append_history(rec, after, entries);
        telemetry_.on_record(h, rec, after, entries);
        auto record = record_of(h);
        record.version = rec.version;
        record.updated_at = rec.at;
        for (const auto& o : observers) {
            try {
                o->on_transition(record, entries);
            } catch (...) {
            }
        }
    }

    std::shared_ptr<journal_store> store_;
    engine_options options_;
    std::shared_ptr<saga::clock> clock_;
    telemetry::journal_telemetry telemetry_;
    asio::io_context ctx_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::shared_ptr<saga::runtime::runtime> rt_;
    std::shared_ptr<detail::scheduler> scheduler_;
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<observer>> observers_;
    bool opened_ = false;
    bool running_ = false;       // run() is running the io_context
    bool stop_pending_ = false;  // stop() came while run() was not running
    std::atomic<bool> stopping_{false};
};

}  // namespace

std::shared_ptr<detail::engine_core> make_engine_core_v2(std::shared_ptr<journal_store> store,
                                                         std::shared_ptr<transport> transport,
                                                         engine_options options) {
    return std::make_shared<engine_core_v2>(std::move(store), std::move(transport),
                                            std::move(options));
}

}  // namespace saga::runtime
