#include "runtime.hpp"

#include <fmt/format.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <deque>
#include <future>
#include <random>
#include <set>

#include <saga/json_limits.hpp>

#include "../json_writer.hpp"
#include "../machine/ids.hpp"
#include "../machine/replay.hpp"
#include "../machine/status_rules.hpp"

namespace saga::runtime {

namespace asio = boost::asio;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string new_id() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{:016x}{:016x}", rng(), rng());
}

/// What machine::recovered_by_status accepts, for the store's query at open.
std::vector<saga_status> recovered_statuses() {
    return {saga_status::running, saga_status::compensating};
}

bool valid_saga_id(std::string_view id) {
    return !id.empty() && id.size() <= 200 && id.find_first_of("/|[]~") == std::string_view::npos;
}

}  // namespace

struct runtime::actor {
    explicit actor(std::string i, asio::io_context& io)
        : id(std::move(i)), strand(io.get_executor()) {}

    std::string id;
    asio::strand<asio::io_context::executor_type> strand;
    bool loaded = false;
    bool busy = false;
    std::shared_ptr<const machine::compiled> def;
    machine::instance state;
    /// shared with the awaitable local steps that run against it
    std::shared_ptr<detail::data_box> data;
    /// +1 on every load: a local step's result from an earlier load is dropped
    std::uint64_t generation = 0;
    instance_head head;
    std::uint64_t version = 0;
    /// output of every record up to here has been handed to the transport
    std::uint64_t released_through = 0;
    /// the watermark the newest durable record carries, and the newest version with output:
    /// an instance leaves memory only once the store knows its output went out (else every
    /// load would send it again)
    std::uint64_t durable_through = 0;
    std::uint64_t output_through = 0;
    /// versions with sends still in flight, and how many
    std::map<std::uint64_t, std::size_t> in_flight;
    std::deque<std::pair<machine::input, done_fn>> mailbox;
    std::optional<clock::timer_id> wake;
    std::optional<time_point> wake_at;
    /// local steps posted or running; awaitable ones with their cancellation signal
    std::size_t locals = 0;
    std::map<std::pair<std::string, direction>, std::shared_ptr<asio::cancellation_signal>> live;
    /// posts on their way to the strand (guarded by the runtime's mutex): the actor may be
    /// evicted only when there are none
    std::size_t posts = 0;
};

// ---- construction, registry -----------------------------------------------------------------

result<std::shared_ptr<runtime>> runtime::create(options o) {
    if (!o.store) return error{errc::invalid_argument, "runtime: a journal store is needed"};
    if (!o.clock) return error{errc::invalid_argument, "runtime: a clock is needed"};
    if (!o.io) return error{errc::invalid_argument, "runtime: an io_context is needed"};
    return std::shared_ptr<runtime>(new runtime(std::move(o)));
}

runtime::runtime(options o) : opts_(std::move(o)) {
    cfg_.reply_to = opts_.endpoint;
    cfg_.default_remote_timeout = opts_.default_remote_timeout;
    cfg_.seed = opts_.seed;
}

runtime::~runtime() {
    close();
}

result<void> runtime::add(std::shared_ptr<const detail::model> m) {
    SAGA_TRY(auto c, machine::compile(std::move(m)));
    std::unique_lock lock(mutex_);
    auto key = std::pair{c->model->name, c->model->version};
    if (definitions_.contains(key))
        return error{errc::already_exists, fmt::format("definition '{}' version {} is registered",
                                                       key.first, key.second)};
    // Instances that waited for this version move on: a tick loads each with it.
    std::vector<std::string> unblocked;
    for (auto it = blocked_.begin(); it != blocked_.end();) {
        if (it->second.definition == key.first && it->second.version == key.second) {
            unblocked.push_back(it->first);
            it = blocked_.erase(it);
        } else {
            ++it;
        }
    }
    definitions_.emplace(std::move(key), std::move(c));
    lock.unlock();
    for (const auto& id : unblocked) post(id, machine::tick_input{}, nullptr);
    return success();
}

std::vector<blocked_instance> runtime::blocked() const {
    std::lock_guard lock(mutex_);
    std::vector<blocked_instance> out;
    for (const auto& [id, b] : blocked_) out.push_back(b);
    return out;
}

std::shared_ptr<const machine::compiled> runtime::find(std::string_view name,
                                                       std::optional<std::uint32_t> version) const {
    std::lock_guard lock(mutex_);
    std::shared_ptr<const machine::compiled> best;
    for (const auto& [key, c] : definitions_) {
        if (key.first != name) continue;
        if (version ? key.second == *version : (!best || key.second > best->model->version))
            best = c;
    }
    return best;
}

runtime::work_guard runtime::in_flight_work() const {
    // A commit in flight on a store's own thread is work of the io_context: run_until_idle
    // (one thread, virtual clock) waits for its outcome instead of returning before it.
    return asio::make_work_guard(*opts_.io);
}

std::shared_ptr<runtime::actor> runtime::actor_of(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto& a = actors_[id];
    if (!a) a = std::make_shared<actor>(id, *opts_.io);
    ++a->posts;
    return a;
}

void runtime::maybe_evict(const std::shared_ptr<actor>& a) {
    // An idle instance leaves memory: nothing queued, committing, sending or running, and
    // nothing it waits for but a signal, an operator or its wake-up (armed by id).
    if (a->busy || !a->mailbox.empty() || !a->in_flight.empty() || a->locals || !a->loaded) return;
    const auto s = a->state.status;
    if (s != saga_status::waiting && !is_settled(s)) return;
    {
        std::lock_guard lock(mutex_);
        if (a->posts) return;
        if (waiters_.contains(a->id)) return;
        if (a->output_through <= a->durable_through) {
            auto it = actors_.find(a->id);
            if (it != actors_.end() && it->second == a) actors_.erase(it);
            ++stats_.evicted;
            return;
        }
    }
    flush_watermark(a);
}

void runtime::flush_watermark(const std::shared_ptr<actor>& a) {
    // No later record will carry the watermark: a record of its own does (no events), so
    // that loading the instance again sends nothing twice.
    const auto version = a->version + 1;
    const auto through = a->released_through;
    journal_write w;
    w.record.saga_id = a->id;
    w.record.version = version;
    w.record.at = opts_.clock->now();
    w.record.released_through = through;
    // A head made due only for its output (see drain) gets its real wake-up back.
    if (a->head.wake_at && *a->head.wake_at <= w.record.at &&
        a->head.wake_at != machine::wake_at(a->state)) {
        instance_head h = a->head;
        h.wake_at = machine::wake_at(a->state);
        h.version = version;
        h.updated_at = w.record.at;
        w.head = std::move(h);
    }
    auto head = w.head;
    a->busy = true;
    auto self = shared_from_this();
    opts_.store->async_commit(std::move(w), [self, a, version, through, head = std::move(head),
                                             work = in_flight_work()](result<void> r) mutable {
        asio::post(a->strand, [self, a, r = std::move(r), version, through,
                               head = std::move(head)]() mutable {
            a->busy = false;
            if (r) {
                a->version = version;
                a->durable_through = through;
                if (head) a->head = std::move(*head);
            } else {
                a->loaded = false;  // another writer, or a store error: the next input reloads
            }
            self->drain(a);
            self->maybe_evict(a);
        });
    });
}

std::size_t runtime::cached() const {
    std::lock_guard lock(mutex_);
    return actors_.size();
}

runtime_stats runtime::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

std::optional<machine::instance> runtime::cached_state(const std::string& id) const {
    std::shared_ptr<actor> a;
    {
        std::lock_guard lock(mutex_);
        auto it = actors_.find(id);
        if (it == actors_.end()) return std::nullopt;
        a = it->second;
    }
    // Read on the actor's strand, so that no decision runs meanwhile.
    std::promise<std::optional<machine::instance>> p;
    auto f = p.get_future();
    asio::post(a->strand, [a, &p] {
        p.set_value(a->loaded ? std::optional<machine::instance>(a->state) : std::nullopt);
    });
    while (f.wait_for(std::chrono::seconds{0}) != std::future_status::ready) {
        if (opts_.io->stopped()) opts_.io->restart();
        opts_.io->run_one();
    }
    return f.get();
}

result<runtime::inspection> runtime::inspect(std::string_view id) const {
    SAGA_TRY(auto li, opts_.store->load(id));
    inspection out;
    out.def = find(li.head.definition, li.head.definition_version);
    if (!out.def)
        return error{errc::definition_not_registered,
                     fmt::format("saga '{}' needs definition '{}' version {}", id,
                                 li.head.definition, li.head.definition_version)};
    SAGA_TRY(out.state, machine::replay(*out.def, id, li.records));
    if (li.data) {
        SAGA_TRY(out.data, parse_json(*li.data, fmt::format("the data of saga '{}'", id)));
    }
    out.version = li.records.empty() ? li.head.version : li.records.back().version;
    out.head = std::move(li.head);
    return out;
}

result<runtime::inspection> runtime::inspection_of(const actor& a) {
    inspection out;
    SAGA_TRY(out.data, a.data->to_json());
    out.head = a.head;
    out.head.status = a.state.status;
    out.state = a.state;
    out.def = a.def;
    out.version = a.version;
    return out;
}

// ---- starting -----------------------------------------------------------------------------

result<std::string> runtime::start(start_request r) {
    auto def = find(r.definition, r.version);
    if (!def)
        return error{errc::definition_not_registered,
                     r.version ? fmt::format("definition '{}' version {} is not registered",
                                             r.definition, *r.version)
                               : fmt::format("definition '{}' is not registered", r.definition)};
    if (r.id.empty()) r.id = new_id();
    if (!valid_saga_id(r.id))
        return error{
            errc::invalid_argument,
            fmt::format("saga id '{}' is not valid: 1 to 200 characters, none of / | [ ] ~", r.id)};
    auto existing = [&](const instance_head& h) -> result<std::string> {
        if (h.definition != r.definition)
            return error{errc::already_exists, fmt::format("saga id '{}' is taken by an instance "
                                                           "of '{}'",
                                                           r.id, h.definition)};
        return h.id;
    };
    // Read first: a start of a taken id returns it without running the first local step.
    if (auto h = opts_.store->head(r.id)) return existing(h.value());
    SAGA_TRY(auto data, def->model->load(r.data));

    auto a = std::make_shared<actor>(r.id, *opts_.io);
    a->def = def;
    a->data = std::move(data);
    a->state.id = r.id;
    a->state.correlation_key = r.correlation_key;
    a->state.exclusive = r.exclusive;
    a->state.traceparent = r.traceparent;
    const auto now = opts_.clock->now();
    auto d = machine::start(*def, cfg_, a->state, *a->data, now);
    run_plain_locals(*a, d, now);

    journal_record kept;
    auto w = write_of(r.id, 1, now, d, kept);
    SAGA_TRY(auto text, a->data->to_json());
    w.record.data = saga::detail::dump_json(text);
    instance_head h;
    h.id = r.id;
    h.definition = def->model->name;
    h.definition_version = def->model->version;
    h.status = a->state.status;
    h.correlation_key = r.correlation_key;
    h.exclusive = r.exclusive;
    h.wake_at = machine::wake_at(a->state);
    h.version = 1;
    h.created_at = now;
    h.updated_at = now;
    w.head = h;
    if (auto c = opts_.store->commit(w); !c) {
        if (c.error() == errc::already_exists)
            if (auto again = opts_.store->head(r.id)) return existing(again.value());
        return c.error();
    }
    a->head = std::move(h);
    a->version = 1;
    if (!w.record.output.empty()) a->output_through = 1;
    a->loaded = true;
    {
        std::lock_guard lock(mutex_);
        ++stats_.commits;
        actors_[r.id] = a;
    }
    asio::post(a->strand, [self = shared_from_this(), a, effects = std::move(d.effects),
                           record = std::move(kept)]() mutable {
        if (self->opts_.on_commit) self->opts_.on_commit(a->head, record, a->state);
        self->apply_effects(a, std::move(effects), 1);
        self->arm(a);
        self->settle_waiters(a);
    });
    return r.id;
}

// ---- the one write path -------------------------------------------------------------------

void runtime::post(const std::string& id, machine::input in, done_fn done) {
    auto a = actor_of(id);  // counts the post
    asio::post(a->strand, [self = shared_from_this(), a, in = std::move(in),
                           done = std::move(done)]() mutable {
        {
            std::lock_guard lock(self->mutex_);
            --a->posts;
        }
        a->mailbox.emplace_back(std::move(in), std::move(done));
        self->drain(a);
    });
}

result<void> runtime::call(const std::string& id, machine::input in) {
    auto state = std::make_shared<std::optional<result<void>>>();
    auto m = std::make_shared<std::mutex>();
    post(id, std::move(in), [state, m](result<void> r) {
        std::lock_guard lock(*m);
        *state = std::move(r);
    });
    for (;;) {
        {
            std::lock_guard lock(*m);
            if (*state) return std::move(**state);
        }
        if (opts_.io->stopped()) opts_.io->restart();
        opts_.io->run_one_for(std::chrono::milliseconds{50});
    }
}

result<loaded_instance> runtime::load(actor& a) {
    SAGA_TRY(auto li, opts_.store->load(a.id));
    auto def = find(li.head.definition, li.head.definition_version);
    if (!def) {
        error e{errc::definition_not_registered,
                fmt::format("saga '{}' needs definition '{}' version {}, which is not registered",
                            a.id, li.head.definition, li.head.definition_version)};
        std::lock_guard lock(mutex_);
        blocked_[a.id] = {a.id, li.head.definition, li.head.definition_version, e.message};
        return e;
    }
    if (!li.data) return error{errc::bad_data, fmt::format("saga '{}' has no data", a.id)};
    SAGA_TRY(auto json, parse_json(*li.data, fmt::format("the data of saga '{}'", a.id)));
    SAGA_TRY(auto data, def->model->load(json));
    SAGA_TRY(auto st, machine::replay(*def, a.id, li.records));
    a.released_through = 0;
    a.output_through = 0;
    for (const auto& rec : li.records) {
        a.released_through = std::max(a.released_through, rec.released_through);
        if (!rec.output.empty()) a.output_through = rec.version;
    }
    a.durable_through = a.released_through;
    a.def = std::move(def);
    a.state = std::move(st);
    a.data = std::move(data);
    a.head = li.head;
    a.version = li.records.empty() ? li.head.version : li.records.back().version;
    a.in_flight.clear();
    a.loaded = true;
    ++a.generation;
    return li;
}

void runtime::resume_after_load(const std::shared_ptr<actor>& a, const loaded_instance& li) {
    // Output the store has no acknowledgement for goes out again (participants deduplicate by
    // idempotency key); local steps whose attempt is open run again.
    for (const auto& rec : li.records) {
        if (rec.version <= a->released_through) continue;
        for (const auto& m : rec.output) release(a, m.destination, m.message, rec.version);
    }
    for (const auto& [key, u] : a->state.units) {
        const auto* n = a->def->nodes.count(std::string(machine::base_name(key)))
                            ? a->def->nodes.at(std::string(machine::base_name(key)))
                            : nullptr;
        if (!n) continue;
        auto is_local = [](const detail::action& act) {
            return act.kind == detail::action::how::local ||
                   act.kind == detail::action::how::local_async;
        };
        if (u.status == step_status::running && is_local(n->forward))
            run_local(a, {key, direction::forward, u.attempts});
        if (u.status == step_status::compensating && !u.retry_at && is_local(n->compensation))
            run_local(a, {key, direction::compensation, u.compensation_attempts});
    }
    arm(a);
}

void runtime::drain(const std::shared_ptr<actor>& a) {
    if (a->busy || a->mailbox.empty()) return;
    if (!a->loaded) {
        auto li = load(*a);
        if (!li && li.error() == errc::definition_not_registered) {
            hold_for_definition(a, li.error());
            return;
        }
        if (!li) {
            auto error_for_all = li.error();
            auto mailbox = std::move(a->mailbox);
            a->mailbox.clear();
            std::lock_guard lock(mutex_);
            actors_.erase(a->id);
            // (not a structured binding: clang 14 cannot capture one)
            for (auto& entry : mailbox)
                if (auto done = entry.second)
                    asio::post(*opts_.io, [done, error_for_all] { done(error_for_all); });
            return;
        }
        resume_after_load(a, li.value());
    }
    std::vector<machine::input> inputs;
    std::vector<done_fn> callers;
    while (!a->mailbox.empty()) {
        inputs.push_back(std::move(a->mailbox.front().first));
        callers.push_back(std::move(a->mailbox.front().second));
        a->mailbox.pop_front();
    }
    const auto now = opts_.clock->now();
    auto d = machine::decide(*a->def, cfg_, a->state, *a->data, inputs, now);
    run_plain_locals(*a, d, now);
    if (!d.ignored.empty()) {
        {
            std::lock_guard lock(mutex_);
            stats_.ignored += d.ignored.size();
        }
        if (opts_.on_ignored) opts_.on_ignored(a->head, a->state, d.ignored, now);
    }
    if (d.events.empty() && !d.data_changed) {
        for (std::size_t i = 0; i < callers.size(); ++i)
            if (callers[i]) callers[i](i < d.outcomes.size() ? d.outcomes[i] : success());
        apply_effects(a, std::move(d.effects), a->version);
        maybe_evict(a);
        return;
    }
    journal_record kept;
    auto w = write_of(a->id, a->version + 1, now, d, kept);
    w.record.released_through = kept.released_through = a->released_through;
    if (d.data_changed) {
        auto j = a->data->to_json();
        if (j) w.record.data = saga::detail::dump_json(j.value());
    }
    // The head changes when what it holds changes; its wake-up time only ever moves earlier
    // (or is renewed once it has passed), so it is never later than what is really due.
    auto wake = machine::wake_at(a->state);
    // Recovery loads running and compensating instances (they may have output the store has
    // no acknowledgement for) and the due ones. An instance that leaves those statuses with
    // output still out (paused while its command could not be sent) is made due now, so that
    // a restart loads it and sends that output instead of holding it until it moves again.
    const bool output_out = !w.record.output.empty() || a->output_through > a->released_through;
    if (output_out && machine::due_for_output(a->state.status)) wake = now;
    const bool stale_wake = a->head.wake_at && *a->head.wake_at <= now;
    const bool earlier = wake && (!a->head.wake_at || *wake < *a->head.wake_at);
    if (a->state.status != a->head.status || a->state.exclusive != a->head.exclusive || earlier ||
        stale_wake || (is_terminal(a->state.status) && a->head.wake_at)) {
        instance_head h = a->head;
        h.status = a->state.status;
        h.exclusive = a->state.exclusive;
        h.wake_at = wake;  // none once terminal (machine::wake_at)
        h.version = w.record.version;
        h.updated_at = now;
        w.head = std::move(h);
    }
    a->busy = true;
    auto self = shared_from_this();
    auto head = w.head;
    const auto began = std::chrono::steady_clock::now();
    opts_.store->async_commit(
        std::move(w),
        [self, a, d = std::move(d), callers = std::move(callers), kept = std::move(kept),
         head = std::move(head), began, work = in_flight_work()](result<void> r) mutable {
            if (self->opts_.on_commit_took) self->opts_.on_commit_took(seconds_since(began));
            asio::post(a->strand,
                       [self, a, r = std::move(r), d = std::move(d), callers = std::move(callers),
                        kept = std::move(kept), head = std::move(head)]() mutable {
                           self->committed(a, std::move(r), std::move(d), std::move(callers),
                                           std::move(kept), std::move(head));
                       });
        });
}

void runtime::hold_for_definition(const std::shared_ptr<actor>& a, const saga::error& why) {
    // Without its definition the instance cannot decide anything. Signals are kept, as
    // `signal_received` in a record of their own, and consumed once the version is registered;
    // every other input is refused with why.
    auto li = opts_.store->load(a->id);
    std::vector<done_fn> kept_callers;
    std::vector<done_fn> refused;
    journal_write w;
    if (li) {
        const auto& head = li.value().head;
        const bool open = !is_settled(head.status) || head.status == saga_status::paused;
        std::set<std::string, std::less<>> seen;  // signals journaled since the snapshot
        std::uint64_t version = head.version;
        for (const auto& rec : li.value().records) {
            version = std::max(version, rec.version);
            w.record.released_through = std::max(w.record.released_through, rec.released_through);
            for (const auto& e : rec.events)
                if (e.type == event_type::signal_received && !e.message_id.empty())
                    seen.insert(e.message_id);
        }
        w.record.saga_id = a->id;
        w.record.version = version + 1;
        w.record.at = opts_.clock->now();
        for (auto& [in, done] : a->mailbox) {
            auto* s = std::get_if<machine::signal_input>(&in);
            if (!s || !open || s->name.empty()) {
                refused.push_back(std::move(done));
                continue;
            }
            if (s->message_id.empty() || seen.insert(s->message_id).second) {
                event e;
                e.type = event_type::signal_received;
                e.name = s->name;
                e.payload = std::move(s->payload);
                e.message_id = s->message_id;
                w.record.events.push_back(std::move(e));
            }
            kept_callers.push_back(std::move(done));
        }
    } else {
        for (auto& entry : a->mailbox) refused.push_back(std::move(entry.second));
    }
    a->mailbox.clear();
    for (auto& done : refused)
        if (done) asio::post(*opts_.io, [done, why] { done(why); });
    if (w.record.events.empty()) {
        for (auto& done : kept_callers)
            if (done) asio::post(*opts_.io, [done] { done(success()); });
        maybe_forget(a);
        return;
    }
    a->busy = true;
    auto self = shared_from_this();
    opts_.store->async_commit(std::move(w), [self, a, kept_callers = std::move(kept_callers),
                                             work = in_flight_work()](result<void> r) mutable {
        asio::post(a->strand, [self, a, r = std::move(r), callers = std::move(kept_callers)] {
            a->busy = false;
            for (const auto& done : callers)
                if (done) done(r);
            self->drain(a);  // what came meanwhile: held too, or decided if the version came
            self->maybe_forget(a);
        });
    });
}

void runtime::maybe_forget(const std::shared_ptr<actor>& a) {
    // An actor that never loaded leaves the map once nothing is queued or on its way.
    if (a->loaded || a->busy || !a->mailbox.empty()) return;
    std::lock_guard lock(mutex_);
    if (a->posts) return;
    auto it = actors_.find(a->id);
    if (it != actors_.end() && it->second == a) actors_.erase(it);
}

journal_write runtime::write_of(const std::string& id, std::uint64_t version, time_point at,
                                machine::decision& d, journal_record& kept) {
    journal_write w;
    w.record.saga_id = id;
    w.record.version = version;
    w.record.at = at;
    w.record.events = d.events;
    for (const auto& e : d.effects)
        if (const auto* s = std::get_if<machine::send_effect>(&e))
            w.record.output.push_back({s->endpoint, false, s->message});
    kept.saga_id = id;
    kept.version = version;
    kept.at = at;
    kept.events = std::move(d.events);
    return w;
}

void runtime::committed(const std::shared_ptr<actor>& a, result<void> r, machine::decision d,
                        std::vector<done_fn> callers, journal_record rec,
                        std::optional<instance_head> head) {
    a->busy = false;
    if (!r) {
        // The decision changed the cached state: drop it, the next input reloads the instance.
        a->loaded = false;
        for (auto& c : callers)
            if (c) c(r.error());
        drain(a);
        return;
    }
    a->version = rec.version;
    a->durable_through = rec.released_through;
    for (const auto& e : d.effects)
        if (std::holds_alternative<machine::send_effect>(e)) a->output_through = rec.version;
    if (head) a->head = std::move(*head);
    // The circuit of a remote step's endpoint learns from the replies the instance took and
    // from the attempts that timed out.
    for (const auto& e : rec.events) {
        const bool reply = e.type == event_type::reply_received;
        if ((!reply && e.type != event_type::attempt_timed_out) || e.dir != direction::forward)
            continue;
        const auto it = a->def->nodes.find(machine::base_name(e.unit));
        if (it == a->def->nodes.end() || it->second->forward.kind != detail::action::how::remote)
            continue;
        auto ep = endpoint(it->second->forward.endpoint);
        if (reply && e.reply == reply_status::success)
            ep->breaker.record_success();
        else if (!reply || e.reply == reply_status::transient_failure)
            ep->breaker.record_failure(opts_.clock->now());
    }
    {
        std::lock_guard lock(mutex_);
        ++stats_.commits;
    }
    if (opts_.on_commit) opts_.on_commit(a->head, rec, a->state);
    apply_effects(a, std::move(d.effects), a->version);
    arm(a);
    for (std::size_t i = 0; i < callers.size(); ++i)
        if (callers[i]) callers[i](i < d.outcomes.size() ? d.outcomes[i] : success());
    settle_waiters(a);
    drain(a);
    maybe_evict(a);
}

// ---- effects ---------------------------------------------------------------------------------

void runtime::apply_effects(const std::shared_ptr<actor>& a, std::vector<machine::effect> effects,
                            std::uint64_t version) {
    for (auto& e : effects) {
        if (auto* s = std::get_if<machine::send_effect>(&e)) {
            release(a, s->endpoint, std::move(s->message), version);
        } else if (auto* l = std::get_if<machine::run_local_effect>(&e)) {
            run_local(a, *l);
        } else if (auto* c = std::get_if<machine::cancel_local_effect>(&e)) {
            auto it = a->live.find({c->unit, c->dir});
            if (it != a->live.end()) {
                it->second->emit(asio::cancellation_type::terminal);
                a->live.erase(it);
            }
        }
    }
}

bool runtime::is_background(clock::timer_id id) const {
    std::lock_guard lock(mutex_);
    return (poll_timer_ && *poll_timer_ == id) || (sweep_timer_ && *sweep_timer_ == id) ||
           (retention_timer_ && *retention_timer_ == id);
}

std::size_t runtime::background_timers() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(poll_timer_.has_value()) + sweep_timer_.has_value() +
           retention_timer_.has_value();
}

bool runtime::due_elsewhere(time_point t) const {
    auto due = opts_.store->due(t, 1000);
    if (!due) return true;  // cannot tell: keep going
    std::lock_guard lock(mutex_);
    for (const auto& id : due.value()) {
        auto it = actors_.find(id);
        if (it == actors_.end() || !it->second->loaded) return true;
    }
    return false;
}

std::vector<std::string> runtime::endpoints() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, e] : endpoints_) out.push_back(name);
    return out;
}

std::shared_ptr<runtime::endpoint_state> runtime::endpoint(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto& e = endpoints_[name];
    if (!e) e = std::make_shared<endpoint_state>(endpoint_policy{}, opts_.clock->now());
    return e;
}

void runtime::set_endpoint_policy(const std::string& name, endpoint_policy policy) {
    std::lock_guard lock(mutex_);
    endpoints_[name] = std::make_shared<endpoint_state>(policy, opts_.clock->now());
}

circuit_state runtime::endpoint_circuit(const std::string& name) {
    return endpoint(name)->breaker.state(opts_.clock->now());
}

void runtime::release(const std::shared_ptr<actor>& a, const std::string& endpoint_name, envelope m,
                      std::uint64_t version) {
    if (!opts_.transport) return;
    auto ep = endpoint(endpoint_name);
    const auto now = opts_.clock->now();
    // A command is refused here, when it would leave, if its endpoint's circuit is open; an
    // undo never is (its own retry policy paces it).
    if (m.kind == message_kind::command && !ep->breaker.allow(now)) {
        auto parts = machine::parse_idempotency_key(m.idempotency_key, m.saga_id, m.step);
        machine::reply_input r;
        r.unit = m.step;
        r.attempt = m.attempt;
        r.generation = parts ? parts->generation : 0;
        r.status = reply_status::transient_failure;
        r.code = errc::circuit_open;
        r.error = fmt::format("circuit of endpoint '{}' is open", endpoint_name);
        {
            std::lock_guard lock(mutex_);
            ++stats_.refused_by_circuit;
        }
        a->mailbox.emplace_back(std::move(r), nullptr);
        auto self = shared_from_this();
        asio::post(a->strand, [self, a] { self->drain(a); });
        return;
    }
    ++a->in_flight[version];
    // The rate limit's token is taken now, when the command leaves; without one it waits.
    if (auto wait = ep->bucket.try_acquire(now)) {
        --a->in_flight[version];
        if (a->in_flight[version] == 0) a->in_flight.erase(version);
        ++a->in_flight[version];  // still counted while it waits
        std::weak_ptr<runtime> weak = shared_from_this();
        opts_.clock->call_at(
            now + *wait, [weak, a, endpoint_name, m = std::move(m), version]() mutable {
                auto s = weak.lock();
                if (!s) return;
                asio::post(a->strand, [s, a, endpoint_name, m = std::move(m), version]() mutable {
                    if (--a->in_flight[version] == 0) a->in_flight.erase(version);
                    s->release(a, endpoint_name, std::move(m), version);
                });
            });
        return;
    }
    {
        std::lock_guard lock(mutex_);
        ++stats_.sends;
    }
    auto self = shared_from_this();
    ++unreleased_;
    const auto began = std::chrono::steady_clock::now();
    opts_.transport->async_send(
        endpoint_name, std::move(m), [self, a, version, began](result<void> r) {
            --self->unreleased_;
            // A failed send stays unacknowledged: the attempt's deadline
            // re-sends it, and recovery releases it again.
            if (!r) return;
            if (self->opts_.on_release_took) self->opts_.on_release_took(seconds_since(began));
            asio::post(a->strand, [self, a, version] { self->released(a, version); });
        });
}

void runtime::released(const std::shared_ptr<actor>& a, std::uint64_t version) {
    auto it = a->in_flight.find(version);
    if (it == a->in_flight.end()) return;
    if (--it->second == 0) a->in_flight.erase(it);
    // The watermark: everything below the oldest version still in flight.
    const auto oldest = a->in_flight.empty() ? a->version + 1 : a->in_flight.begin()->first;
    a->released_through = std::max(a->released_through, oldest - 1);
    maybe_evict(a);
}

const detail::action& runtime::action_of(const actor& a, const machine::run_local_effect& l) {
    const auto* n = a.def->nodes.at(std::string(machine::base_name(l.unit)));
    return l.dir == direction::forward ? n->forward : n->compensation;
}

std::pair<std::optional<nlohmann::json>, std::shared_ptr<step_context>> runtime::local_call(
    const actor& a, const machine::run_local_effect& l) {
    std::optional<nlohmann::json> item;
    if (auto idx = machine::item_index(l.unit)) {
        auto g = a.state.units.find(machine::base_name(l.unit));
        if (g != a.state.units.end() && g->second.items && *idx < g->second.items->size())
            item = (*g->second.items)[*idx];
    }
    const auto u = a.state.units.find(l.unit);
    const auto fg = u == a.state.units.end() ? 0u : u->second.forward_generation;
    const auto cg = u == a.state.units.end() ? 0u : u->second.compensation_generation;
    auto ctx = std::make_shared<step_context>(
        a.id, l.unit, l.attempt, machine::idempotency_key(a.id, l.unit, l.dir, fg, cg),
        a.state.correlation_key, opts_.clock->now(), machine::item_index(l.unit),
        l.dir == direction::compensation);
    {
        std::lock_guard lock(mutex_);
        ++stats_.locals_run;
    }
    return {std::move(item), std::move(ctx)};
}

machine::local_done_input runtime::run_plain(actor& a, const machine::run_local_effect& l) {
    auto [item, ctx] = local_call(a, l);
    std::optional<saga::error> outcome;
    if (auto r = action_of(a, l).local(*a.data, item ? &*item : nullptr, *ctx); !r)
        outcome = r.error();
    return {l.unit, l.dir, l.attempt, std::move(outcome)};
}

void runtime::run_plain_locals(actor& a, machine::decision& d, time_point now) {
    // A bound, in case a definition's retries of a plain local step come due at once forever:
    // what is left then runs after the commit, as an awaitable step would.
    for (int round = 0; round < 64; ++round) {
        std::vector<machine::input> results;
        std::vector<machine::effect> rest;
        for (auto& e : d.effects) {
            const auto* l = std::get_if<machine::run_local_effect>(&e);
            if (l && action_of(a, *l).kind == detail::action::how::local)
                results.emplace_back(run_plain(a, *l));
            else
                rest.push_back(std::move(e));
        }
        d.effects = std::move(rest);
        if (results.empty()) return;
        auto more = machine::decide(*a.def, cfg_, a.state, *a.data, results, now);
        for (auto& e : more.events) d.events.push_back(std::move(e));
        for (auto& e : more.effects) d.effects.push_back(std::move(e));
        for (auto& i : more.ignored) d.ignored.push_back(std::move(i));
        d.data_changed = d.data_changed || more.data_changed;
    }
}

void runtime::run_local(const std::shared_ptr<actor>& a, const machine::run_local_effect& l) {
    ++a->locals;
    auto self = shared_from_this();
    asio::post(a->strand, [self, a, l] {
        --a->locals;
        if (!a->loaded) return;
        const auto& act = action_of(*a, l);
        if (act.kind == detail::action::how::local) {
            a->mailbox.emplace_back(self->run_plain(*a, l), nullptr);
            self->drain(a);
            return;
        }
        auto [item, ctx] = self->local_call(*a, l);
        self->launch_async(a, l, act, std::move(item), std::move(ctx));
    });
}

void runtime::launch_async(const std::shared_ptr<actor>& a, const machine::run_local_effect& l,
                           const detail::action& act, std::optional<nlohmann::json> item,
                           std::shared_ptr<step_context> ctx) {
    // The coroutine's result is a plain struct: co_spawn default-constructs it on exceptions.
    struct outcome {
        bool failed = false;
        saga::error err{};
    };
    auto sig = std::make_shared<asio::cancellation_signal>();
    a->live[{l.unit, l.dir}] = sig;
    ++a->locals;
    auto data = a->data;
    auto def = a->def;  // keeps the action alive
    auto item_ptr = std::make_shared<std::optional<nlohmann::json>>(std::move(item));
    auto body = [act = &act, def, data, item_ptr, ctx]() -> asio::awaitable<outcome> {
        auto r = co_await act->async(*data, *item_ptr ? &**item_ptr : nullptr, *ctx);
        if (r) co_return outcome{};
        co_return outcome{true, r.error()};
    };
    const auto generation = a->generation;
    auto self = shared_from_this();
    asio::co_spawn(
        a->strand, std::move(body),
        asio::bind_cancellation_slot(
            // The handler owns the signal: it must outlive the operation bound to its slot.
            sig->slot(), [self, a, l, generation, sig](std::exception_ptr ep, outcome result) {
                --a->locals;
                auto it = a->live.find({l.unit, l.dir});
                if (it != a->live.end() && it->second == sig) a->live.erase(it);
                if (generation != a->generation || !a->loaded) return;  // reloaded: it runs again
                std::optional<saga::error> out;
                if (result.failed) out = std::move(result.err);
                if (ep) {
                    try {
                        std::rethrow_exception(ep);
                    } catch (const std::exception& e) {
                        out = saga::error{errc::step_threw,
                                          fmt::format("step '{}' threw: {}", l.unit, e.what())};
                    } catch (...) {
                        out = saga::error{errc::step_threw, fmt::format("step '{}' threw", l.unit)};
                    }
                }
                a->mailbox.emplace_back(machine::local_done_input{l.unit, l.dir, l.attempt, out},
                                        nullptr);
                self->drain(a);
                self->maybe_evict(a);
            }));
}

void runtime::arm(const std::shared_ptr<actor>& a) {
    const auto due = machine::wake_at(a->state);  // none while paused or terminal
    if (due == a->wake_at) return;
    if (a->wake) opts_.clock->cancel(*a->wake);
    a->wake.reset();
    a->wake_at = due;
    if (!due) return;
    // By id, not by actor: the instance may leave memory before it is due, and is loaded again.
    std::weak_ptr<runtime> weak = shared_from_this();
    a->wake = opts_.clock->call_at(*due, [weak, id = a->id] {
        if (auto s = weak.lock()) s->post(id, machine::tick_input{}, nullptr);
    });
}

void runtime::when_settled(const std::string& id, std::function<void(result<inspection>)> fn) {
    auto a = actor_of(id);
    asio::post(a->strand, [self = shared_from_this(), a, id, fn = std::move(fn)]() mutable {
        {
            std::lock_guard lock(self->mutex_);
            --a->posts;
        }
        if (!a->loaded) {
            auto li = self->load(*a);
            if (!li) {
                fn(li.error());
                std::lock_guard lock(self->mutex_);
                if (a->posts == 0 && a->mailbox.empty()) self->actors_.erase(a->id);
                return;
            }
            self->resume_after_load(a, li.value());
        }
        if (is_settled(a->state.status)) {
            fn(inspection_of(*a));
            self->maybe_evict(a);
            return;
        }
        std::lock_guard lock(self->mutex_);
        self->waiters_[id].push_back(std::move(fn));
    });
}

void runtime::settle_waiters(const std::shared_ptr<actor>& a) {
    if (!is_settled(a->state.status)) return;
    std::vector<std::function<void(result<inspection>)>> fns;
    {
        std::lock_guard lock(mutex_);
        auto it = waiters_.find(a->id);
        if (it == waiters_.end()) return;
        fns = std::move(it->second);
        waiters_.erase(it);
    }
    const auto in = inspection_of(*a);
    for (auto& f : fns) f(in);
}

// ---- transport and recovery ---------------------------------------------------------------

void runtime::on_delivery(const std::shared_ptr<delivery>& d) {
    const auto& m = d->message();
    machine::input in;
    if (m.kind == message_kind::reply) {
        machine::reply_input r;
        r.unit = m.step;
        r.attempt = m.attempt;
        auto parts = machine::parse_idempotency_key(m.idempotency_key, m.saga_id, m.step);
        if (!parts) {
            {
                std::lock_guard lock(mutex_);
                ++stats_.ignored;
            }
            if (opts_.on_unrouted) opts_.on_unrouted(m, machine::ignore_reason::unknown_attempt);
            d->ack();
            return;
        }
        r.dir = parts->dir;
        r.generation = parts->generation;
        r.status = m.status;
        r.error = m.error;
        r.payload = m.payload;
        r.message_id = m.message_id;
        in = std::move(r);
    } else if (m.kind == message_kind::event) {
        in = machine::signal_input{m.type, m.payload, m.message_id};
    } else {
        d->ack();  // a command sent to an orchestrator: not ours to handle
        return;
    }
    // An event names its saga, or is for every open saga with its correlation key.
    std::vector<std::string> targets;
    if (!m.saga_id.empty() || m.kind != message_kind::event) {
        targets.push_back(m.saga_id);
    } else if (!m.correlation_id.empty()) {
        head_filter f;
        f.correlation_key = m.correlation_id;
        f.statuses = {saga_status::running, saga_status::waiting, saga_status::paused};
        for (;;) {
            auto page = opts_.store->list(f);
            if (!page) {
                d->nack(std::chrono::seconds{1});
                return;
            }
            for (const auto& h : page.value()) targets.push_back(h.id);
            if (page.value().size() < f.limit) break;
            f.after_id = targets.back();
        }
    }
    if (targets.empty()) {
        d->ack();
        return;
    }
    // Acknowledged once durable for every target; an unknown or finished saga's message is
    // consumed too.
    struct fan_out {
        std::atomic<std::size_t> left{0};
        std::atomic<bool> failed{false};
    };
    auto pending = std::make_shared<fan_out>();
    pending->left = targets.size();
    std::weak_ptr<runtime> weak = shared_from_this();
    for (std::size_t i = 0; i < targets.size(); ++i) {
        auto input = i + 1 < targets.size() ? in : std::move(in);
        post(targets[i], std::move(input), [d, pending, weak](result<void> r) {
            if (!r && r.error() == errc::not_found && d->message().kind == message_kind::reply) {
                auto self = weak.lock();
                if (self && self->opts_.on_unrouted)
                    self->opts_.on_unrouted(d->message(), machine::ignore_reason::unknown_saga);
            }
            if (!r && r.error() != errc::not_found && r.error() != errc::saga_finished)
                pending->failed = true;
            if (--pending->left > 0) return;
            // refused for now (a store error, a saga that cannot take it yet): again in a
            // second, not at once
            if (pending->failed)
                d->nack(std::chrono::seconds{1});
            else
                d->ack();
        });
    }
}

result<void> runtime::open() {
    {
        std::lock_guard lock(mutex_);
        closed_ = false;
    }
    if (opts_.transport && !subscription_) {
        std::weak_ptr<runtime> weak = shared_from_this();
        SAGA_TRY(auto sub, opts_.transport->consume(
                               opts_.endpoint, opts_.io->get_executor(),
                               [weak](std::shared_ptr<delivery> d) {
                                   if (auto s = weak.lock()) s->on_delivery(d);
                               },
                               opts_.consumer));
        subscription_ = std::move(sub);
    }
    std::set<std::string> ids;
    std::string after;
    for (;;) {
        SAGA_TRY(auto page, opts_.store->in_status(recovered_statuses(), after, 1000));
        ids.insert(page.begin(), page.end());
        if (page.size() < 1000) break;
        after = page.back();
    }
    for (const auto& id : ids) post(id, machine::tick_input{}, nullptr);
    poll_due();
    if (opts_.sweep_interval > duration{0}) sweep();
    if (opts_.retention.older_than > duration{0}) retain();
    return success();
}

result<std::size_t> runtime::purge() {
    const auto batch = std::max<std::size_t>(opts_.retention.batch, 1);
    const auto before = opts_.clock->now() - opts_.retention.older_than;
    std::size_t total = 0;
    for (;;) {
        SAGA_TRY(auto n, opts_.store->purge(before, batch));
        total += n;
        if (n > 0 && opts_.on_purged) opts_.on_purged(n);
        if (n < batch) return total;
    }
}

void runtime::retain() {
    // A failed purge (the store is away) is tried again at the next interval.
    (void)purge();
    std::weak_ptr<runtime> weak = shared_from_this();
    std::lock_guard lock(mutex_);
    if (closed_) return;
    retention_timer_ = opts_.clock->call_at(opts_.clock->now() + opts_.retention.interval, [weak] {
        if (auto s = weak.lock()) asio::post(*s->opts_.io, [s] { s->retain(); });
    });
}

void runtime::sweep() {
    const auto now = opts_.clock->now();
    head_filter f;
    f.statuses = {saga_status::running, saga_status::compensating};
    f.updated_before = now - opts_.sweep_interval;
    std::vector<std::string> stale;
    for (;;) {
        auto page = opts_.store->list(f);
        if (!page) break;  // the next sweep tries again
        {
            std::lock_guard lock(mutex_);
            for (const auto& h : page.value())
                if (!actors_.contains(h.id)) stale.push_back(h.id);
        }
        if (page.value().size() < f.limit) break;
        f.after_id = page.value().back().id;
    }
    for (const auto& id : stale) post(id, machine::tick_input{}, nullptr);
    std::weak_ptr<runtime> weak = shared_from_this();
    std::lock_guard lock(mutex_);
    if (closed_) return;
    sweep_timer_ = opts_.clock->call_at(now + opts_.sweep_interval, [weak] {
        if (auto s = weak.lock()) asio::post(*s->opts_.io, [s] { s->sweep(); });
    });
}

void runtime::poll_due() {
    const auto now = opts_.clock->now();
    const auto horizon = now + opts_.due_poll;
    std::weak_ptr<runtime> weak = shared_from_this();
    if (auto due = opts_.store->due(horizon, 100000)) {
        for (const auto& id : due.value()) {
            auto h = opts_.store->head(id);
            if (!h || !h.value().wake_at) continue;
            // An instance in memory has its own wake-up; a second tick changes nothing.
            opts_.clock->call_at(std::max(now, *h.value().wake_at), [weak, id] {
                if (auto s = weak.lock()) s->post(id, machine::tick_input{}, nullptr);
            });
        }
    }
    std::lock_guard lock(mutex_);
    if (closed_) return;
    poll_timer_ = opts_.clock->call_at(horizon, [weak] {
        if (auto s = weak.lock()) asio::post(*s->opts_.io, [s] { s->poll_due(); });
    });
}

void runtime::close() {
    if (subscription_) {
        subscription_->stop();
        subscription_.reset();
    }
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (poll_timer_) opts_.clock->cancel(*poll_timer_);
    poll_timer_.reset();
    if (sweep_timer_) opts_.clock->cancel(*sweep_timer_);
    sweep_timer_.reset();
    if (retention_timer_) opts_.clock->cancel(*retention_timer_);
    retention_timer_.reset();
    // On each actor's strand, before anything `open` posts: a reopened runtime arms every
    // wake-up again.
    for (auto& entry : actors_)
        asio::post(entry.second->strand, [a = entry.second, clock = opts_.clock] {
            if (a->wake) clock->cancel(*a->wake);
            a->wake.reset();
            a->wake_at.reset();
        });
}

}  // namespace saga::runtime
