// saga::engine on core v2: the public engine's calls as inputs of the runtime (one write path),
// queries read from the journal. Chosen by constructing saga::engine with a journal_store.
// While core v2 is being switched in, `schedule` history and telemetry are the parts still
// being ported (docs/internals.md, "Status").

#include <fmt/format.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <functional>
#include <optional>
#include <thread>

#include <saga/tracing.hpp>

#include "../engine_core.hpp"
#include "../machine/ids.hpp"
#include "runtime.hpp"

namespace saga::runtime {
namespace {

namespace asio = boost::asio;
using detail::node;
using detail::node_kind;

std::string_view kind_name(const node& n) {
    switch (n.kind) {
        case node_kind::local: return "local";
        case node_kind::remote: return "remote";
        case node_kind::wait: return "wait";
        case node_kind::parallel: return "parallel";
        case node_kind::for_each: return "for_each";
    }
    return "unknown";
}

bool is_open(step_status s) {
    return s == step_status::running || s == step_status::retrying || s == step_status::waiting ||
           s == step_status::compensating;
}
bool is_done(step_status s) {
    return s == step_status::completed || s == step_status::skipped || s == step_status::failed ||
           s == step_status::compensated || s == step_status::compensation_failed;
}

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
    std::size_t total = 0;
    std::size_t settled = 0;
    auto unit_view = [&](const std::string& key, std::string kind) {
        step_view s;
        s.name = key;
        s.kind = std::move(kind);
        if (auto it = st.units.find(key); it != st.units.end()) {
            const auto& u = it->second;
            s.status = u.status;
            s.attempts = u.attempts;
            s.compensation_attempts = u.compensation_attempts;
            s.error = u.error;
            s.started_at = u.started_at;
            s.finished_at = u.finished_at;
        }
        return s;
    };
    auto count = [&](step_status s) {
        ++total;
        if (is_done(s)) ++settled;
        return is_open(s);
    };
    std::function<void(const std::vector<node>&)> walk = [&](const std::vector<node>& steps) {
        for (const auto& n : steps) {
            auto s = unit_view(n.name, std::string(kind_name(n)));
            if (n.kind == node_kind::for_each) {
                auto it = st.units.find(n.name);
                if (it != st.units.end() && it->second.items) {
                    const auto& items = *it->second.items;
                    s.items_total = items.size();
                    for (std::size_t i = 0; i < items.size(); ++i) {
                        auto iv = unit_view(machine::item_key(n.name, i), "item");
                        if (iv.status == step_status::completed ||
                            iv.status == step_status::compensated)
                            ++s.items_completed;
                        if (iv.status == step_status::failed) ++s.items_failed;
                        s.items.push_back({i, items[i], iv.status, iv.attempts, iv.error});
                        if (count(iv.status)) v.current_steps.push_back(iv.name);
                    }
                    if (items.empty()) count(s.status);
                } else if (count(s.status)) {
                    v.current_steps.push_back(n.name);
                }
            } else if (n.kind != node_kind::parallel) {
                if (count(s.status)) v.current_steps.push_back(n.name);
            }
            v.steps.push_back(std::move(s));
            for (const auto& b : n.branches) walk(b.steps);
        }
    };
    walk(in.def->model->steps);
    v.percent_complete = is_terminal(st.status) || total == 0
                             ? 100.0
                             : 100.0 * static_cast<double>(settled) / static_cast<double>(total);
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

/// History entries of a record, by the events' own names (legacy names: see
/// docs/internals.md, "History compatibility", being ported).
std::vector<history_entry> entries_of(const journal_record& rec) {
    std::vector<history_entry> out;
    out.reserve(rec.events.size());
    for (const auto& e : rec.events) {
        history_entry h;
        h.saga_id = rec.saga_id;
        h.version = rec.version;
        h.at = rec.at;
        h.event = std::string(to_string(e.type));
        h.step = e.unit;
        h.attempt = e.attempt;
        h.detail = nlohmann::json::object();
        if (!e.error.empty()) h.detail["error"] = e.error;
        if (!e.who.empty()) h.detail["who"] = e.who;
        if (!e.why.empty()) h.detail["why"] = e.why;
        if (e.dir == direction::compensation) h.detail["direction"] = "compensation";
        out.push_back(std::move(h));
    }
    return out;
}

class engine_core_v2 final : public detail::engine_core {
public:
    engine_core_v2(std::shared_ptr<journal_store> store, std::shared_ptr<transport> transport,
                   engine_options options)
        : store_(std::move(store)), options_(std::move(options)) {
        clock_ = options_.clock ? options_.clock : std::make_shared<system_clock>();
        metrics_ = options_.metrics ? options_.metrics : std::make_shared<metrics_registry>();
        saga::runtime::options ro;
        ro.endpoint = options_.endpoint;
        ro.default_remote_timeout = options_.default_remote_timeout;
        ro.seed = options_.seed;
        ro.store = store_;
        ro.transport = std::move(transport);
        ro.clock = clock_.get();
        ro.io = &ctx_;
        ro.on_commit = [this](const instance_head& h, const journal_record& rec,
                              const machine::instance&) { notify(h, rec); };
        rt_ = saga::runtime::runtime::create(std::move(ro)).value();
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
        return rt_->call(
            std::string(id),
            machine::signal_input{std::string(name), std::move(payload), std::move(message_id)});
    }

    result<instance_view> query(std::string_view id) override {
        SAGA_TRY(auto in, rt_->inspect(id));
        SAGA_TRY(auto journal, store_->journal(id));
        return make_view(in, journal.empty() ? in.head.version : journal.back().version);
    }

    result<void> cancel(std::string_view id, std::string_view reason,
                        const operator_note* note) override {
        machine::operator_input o{machine::operator_action::cancel, note ? note->who : "",
                                  note ? note->why : "", std::string(reason)};
        return rt_->call(std::string(id), std::move(o));
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
        SAGA_TRY(store_->head(id));
        SAGA_TRY(auto journal, store_->journal(id));
        std::vector<history_entry> out;
        for (const auto& rec : journal) {
            auto e = entries_of(rec);
            out.insert(out.end(), std::make_move_iterator(e.begin()),
                       std::make_move_iterator(e.end()));
        }
        return out;
    }

    metrics_registry& metrics() override { return *metrics_; }

    void add_waiter(const std::string& id, std::function<void(result<instance_view>)> fn) override {
        rt_->when_settled(id, [this, id, fn = std::move(fn)](result<saga_status> s) {
            if (!s) {
                fn(s.error());
                return;
            }
            fn(query(id));
        });
    }

    result<void> schedule(schedule_options) override {
        return error{errc::invalid_state, "schedules are not yet ported to core v2"};
    }
    std::vector<blocked_instance> blocked() const override { return {}; }

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
        SAGA_TRY(open());
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return success();
            ctx_.restart();
            work_.emplace(ctx_.get_executor());
        }
        std::vector<std::thread> threads;
        for (std::size_t i = 1; i < options_.workers; ++i)
            threads.emplace_back([this] { ctx_.run(); });
        ctx_.run();
        for (auto& t : threads) t.join();
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
            vc->advance_to_next();
        }
        return success();
    }

    void stop() override {
        stopping_ = true;
        rt_->close();
        {
            std::lock_guard lock(mutex_);
            work_.reset();
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
        return rt_->call(std::string(id),
                         machine::operator_input{a, note.who, note.why, std::move(step)});
    }

    void notify(const instance_head& h, const journal_record& rec) {
        std::vector<std::shared_ptr<observer>> observers;
        {
            std::lock_guard lock(mutex_);
            observers = observers_;
        }
        if (observers.empty()) return;
        auto record = record_of(h);
        record.version = rec.version;
        record.updated_at = rec.at;
        const auto entries = entries_of(rec);
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
    std::shared_ptr<metrics_registry> metrics_;
    asio::io_context ctx_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::shared_ptr<saga::runtime::runtime> rt_;
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<observer>> observers_;
    bool opened_ = false;
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
