#include <fmt/format.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <future>
#include <random>

#include <saga/json_limits.hpp>

#include "engine_impl.hpp"
#include "runtime/engine_v2.hpp"
#include "step_views.hpp"

namespace saga {
namespace detail {
namespace {

constexpr std::uint32_t max_direct_commit_tries = 64;

std::string new_id() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     std::hash<std::thread::id>{}(std::this_thread::get_id())};
    return fmt::format("{:016x}{:016x}", rng(), rng());
}

std::int64_t ms_between(time_point a, time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

/// "name[3]" -> "name"
std::string_view base_name(std::string_view key) {
    auto pos = key.find('[');
    return pos == std::string_view::npos ? key : key.substr(0, pos);
}

std::optional<std::size_t> item_index(std::string_view key) {
    auto pos = key.find('[');
    if (pos == std::string_view::npos) return std::nullopt;
    std::size_t i = 0;
    for (auto c : key.substr(pos + 1)) {
        if (c == ']') break;
        i = i * 10 + static_cast<std::size_t>(c - '0');
    }
    return i;
}

/// Whether `key` is a compensation's idempotency key (`.../compensate` or `.../compensate~r<n>`).
bool is_compensation_key(std::string_view key) {
    const auto pos = key.rfind("/compensate");
    if (pos == std::string_view::npos) return false;
    const auto rest = key.substr(pos + 11);
    return rest.empty() || rest.starts_with("~r");
}

json note_json(const operator_note& note) {
    return json{{"who", note.who}, {"why", note.why}};
}

std::string item_key(const std::string& name, std::size_t i) {
    return fmt::format("{}[{}]", name, i);
}

using machine::is_done;

progress progress_of(step_status s) {
    switch (s) {
        case step_status::completed:
        case step_status::skipped: return progress::done;
        case step_status::failed: return progress::failed;
        default: return progress::blocked;
    }
}

/// The status of a saga that moves again (resumed, or cancelled while paused), from its state:
/// what the pause interrupted. The instance works out the rest as it moves (a forward failure
/// past the pivot settles it `failed`).
saga_status moving_status(const instance_state& st) {
    if (st.compensating || (st.cancel_requested && !st.forward_failed))
        return saga_status::compensating;
    bool any_waiting = false;
    for (const auto& [key, u] : st.units) {
        if (u.status == step_status::running || u.status == step_status::retrying)
            return saga_status::running;
        if (u.status == step_status::waiting) any_waiting = true;
    }
    return any_waiting ? saga_status::waiting : saga_status::running;
}

std::uint64_t seed_of(std::uint64_t seed, const std::string& id, const std::string& key) {
    return seed ^ std::hash<std::string>{}(id) ^ (std::hash<std::string>{}(key) << 1);
}

void index_steps(compiled_definition& c, const std::vector<node>& steps, bool& pivot_seen) {
    for (const auto& n : steps) {
        c.nodes.emplace(n.name, &n);
        if (pivot_seen) c.after_pivot.insert(&n);
        for (const auto& b : n.branches) {
            bool inner = pivot_seen;
            index_steps(c, b.steps, inner);
        }
        if (n.pivot) pivot_seen = true;
    }
}

bool compensable(const node& n, std::string_view key) {
    if (n.compensation.empty()) return false;
    if (n.kind == node_kind::for_each) return item_index(key).has_value();
    return n.kind == node_kind::local || n.kind == node_kind::remote;
}

/// A reply the engine cannot use (forged, or stale: late, repeated, for a saga that is gone):
/// counted in `saga_replies_ignored_total{reason}` and logged at debug with its message id.
/// Reasons: unknown_saga, finished, unknown_step, unknown_attempt, not_waiting, duplicate.
void note_ignored_reply(metrics_registry& metrics, log_sink& log, log_level least, time_point now,
                        const envelope& e, std::string_view reason) {
    metrics.add("saga_replies_ignored_total", {{"reason", std::string{reason}}});
    if (least > log_level::debug) return;
    log_record r;
    r.at = now;
    r.level = log_level::debug;
    r.message = "reply_ignored";
    r.saga_id = e.saga_id;
    r.step = e.step;
    r.attempt = e.attempt;
    r.correlation_id = e.correlation_id;
    r.fields = {{"message_id", e.message_id}, {"reason", reason}, {"type", e.type}};
    try {
        log.write(r);
    } catch (...) {
    }
}

}  // namespace

// ---- construction, registry, cache ---------------------------------------------------------

engine_impl::engine_impl(std::shared_ptr<state_store> store, std::shared_ptr<transport> transport,
                         engine_options options)
    : store_(std::move(store)),
      transport_(std::move(transport)),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : std::make_shared<system_clock>()) {
    if (options_.workers == 0) options_.workers = 1;
    lifeline_->engine = this;
    scheduler_ = std::make_shared<scheduler>(scheduler::hooks{
        .clock = clock_.get(),
        .has_definition =
            [this](const std::string& name) {
                return find_definition(name, std::nullopt) != nullptr;
            },
        .start = [this](const std::string& name, json data,
                        start_options o) { return start(name, std::move(data), std::move(o)); },
        .post = [this](std::function<void()> fn) { asio::post(ctx_, std::move(fn)); },
        .warn = [this](const std::string& what) { warn(what); }});
    init_telemetry();
    if (transport_) transport_->set_metrics(metrics_);  // saga_messages_dead_lettered_total
}

engine_impl::~engine_impl() {
    {
        std::unique_lock lock(lifeline_->mutex);
        lifeline_->engine = nullptr;
    }
    stop();
    std::lock_guard lock(mutex_);
    for (auto& [id, inst] : instances_)
        for (auto& [tid, cid] : inst->armed) clock_->cancel(cid);
}

result<void> engine_impl::add_model(std::shared_ptr<const model> m) {
    if (!m) return error{errc::invalid_argument, "null definition"};
    auto c = std::make_shared<compiled_definition>();
    c->m = m;
    bool pivot = false;
    index_steps(*c, m->steps, pivot);
    std::unique_lock lock(mutex_);
    auto& versions = defs_[m->name];
    if (versions.contains(m->version))
        return error{
            errc::already_exists,
            fmt::format("definition '{}' version {} is registered already", m->name, m->version)};
    versions.emplace(m->version, std::move(c));
    // Instances that waited for this version resume.
    std::vector<std::string> resume;
    for (auto it = blocked_.begin(); it != blocked_.end();) {
        if (it->second.definition == m->name && it->second.version == m->version) {
            resume.push_back(it->first);
            it = blocked_.erase(it);
        } else {
            ++it;
        }
    }
    lock.unlock();
    for (const auto& id : resume) post_input(id, input{});
    return success();
}

std::shared_ptr<const compiled_definition> engine_impl::find_definition(
    std::string_view name, std::optional<std::uint32_t> version) const {
    std::lock_guard lock(mutex_);
    auto it = defs_.find(name);
    if (it == defs_.end() || it->second.empty()) return nullptr;
    if (!version) return it->second.rbegin()->second;
    auto v = it->second.find(*version);
    return v == it->second.end() ? nullptr : v->second;
}

std::shared_ptr<instance> engine_impl::get_instance(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto& slot = instances_[id];
    if (!slot) slot = std::make_shared<instance>(id, ctx_);
    return slot;
}

void engine_impl::evict(const std::shared_ptr<instance>& inst) {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(inst->id);
    if (it != instances_.end() && it->second == inst) instances_.erase(it);
}

std::size_t engine_impl::active_instances() const {
    std::lock_guard lock(mutex_);
    return instances_.size();
}

std::shared_ptr<endpoint_runtime> engine_impl::endpoint(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto& slot = endpoints_[name];
    if (!slot) slot = std::make_shared<endpoint_runtime>(endpoint_policy{}, clock_->now());
    return slot;
}

void engine_impl::set_endpoint_policy(const std::string& name, endpoint_policy policy) {
    std::lock_guard lock(mutex_);
    endpoints_[name] = std::make_shared<endpoint_runtime>(policy, clock_->now());
}

circuit_state engine_impl::endpoint_circuit(const std::string& name) {
    return endpoint(name)->breaker.state(clock_->now());
}

void engine_impl::add_observer(std::shared_ptr<observer> o) {
    std::lock_guard lock(mutex_);
    observers_.push_back(std::move(o));
}

// ---- schedules ---------------------------------------------------------------------------------

result<void> engine_impl::schedule(schedule_options options) {
    return scheduler_->add(std::move(options));
}

std::vector<blocked_instance> engine_impl::blocked() const {
    std::lock_guard lock(mutex_);
    std::vector<blocked_instance> out;
    for (const auto& [id, b] : blocked_) out.push_back(b);
    return out;
}

// ---- public calls that write directly (start, signal, cancel) ----------------------------

result<std::string> engine_impl::start(std::string_view name, json data, start_options options) {
    if (stopping_) return error{errc::shutting_down, "the engine is stopping"};
    auto def = find_definition(name, options.version);
    if (!def) {
        return error{errc::definition_not_registered,
                     options.version ? fmt::format("definition '{}' version {} is not registered",
                                                   name, *options.version)
                                     : fmt::format("definition '{}' is not registered", name)};
    }
    if (auto check = def->m->load(data); !check)
        return error{errc::bad_data, fmt::format("data for saga '{}' is not valid: {}", name,
                                                 check.error().message)};
    if (options.id.empty()) options.id = new_id();
    if (options.id.find_first_of("/|") != std::string::npos || options.id.size() > 200)
        return error{errc::invalid_argument,
                     fmt::format("saga id '{}' is not valid: at most 200 characters, no '/' or '|'",
                                 options.id)};

    auto existing = [&](const instance_record& rec) -> result<std::string> {
        if (rec.definition != name)
            return error{errc::already_exists,
                         fmt::format("saga id '{}' is taken by an instance of '{}'", options.id,
                                     rec.definition)};
        return rec.id;
    };
    if (auto rec = store_->load(options.id)) return existing(rec.value());

    const auto now = clock_->now();
    instance_state state;
    // Continue the caller's trace, or start one whose root is the saga's own span.
    if (auto tc = trace_context::parse(options.traceparent)) {
        state.traceparent = tc->traceparent();
    } else {
        auto root = trace_context::random();
        root.span_id = derive_span_id(root.trace_id, "saga|" + options.id);
        state.traceparent = root.traceparent();
    }
    transition t;
    t.expected_version = 0;
    t.record.id = options.id;
    t.record.definition = std::string(name);
    t.record.definition_version = def->m->version;
    t.record.version = 1;
    t.record.status = saga_status::running;
    t.record.correlation_key = options.correlation_key;
    t.record.exclusive = options.exclusive;
    t.record.data = std::move(data);
    t.record.state = to_json(state);
    t.record.created_at = now;
    t.record.updated_at = now;
    t.history.push_back({options.id,
                         1,
                         now,
                         "saga_started",
                         {},
                         0,
                         json{{"definition", t.record.definition},
                              {"version", t.record.definition_version},
                              {"correlation_key", options.correlation_key}}});
    auto record = t.record;
    auto entries = t.history;
    auto r = store_->commit(std::move(t));
    if (!r) {
        if (r.error() == errc::already_exists) {
            if (auto rec = store_->load(options.id)) return existing(rec.value());
        }
        return r.error();
    }
    notify(record, entries, state);
    post_input(options.id, input{});
    return options.id;
}

result<void> engine_impl::update_directly(std::string_view id, std::string_view what,
                                          std::string message_id, const direct_change& change,
                                          bool on_settled) {
    for (std::uint32_t i = 0; i < max_direct_commit_tries; ++i) {
        SAGA_TRY(auto rec, store_->load(id));
        if (is_terminal(rec.status) ||
            (!on_settled && is_settled(rec.status) && rec.status != saga_status::paused))
            return error{errc::saga_finished, fmt::format("saga '{}' is {}: {} refused", id,
                                                          to_string(rec.status), what)};
        SAGA_TRY(auto state, instance_state_from_json(rec.state));
        SAGA_TRY(auto entry, change(rec, state));
        if (!entry) return success();  // nothing to change
        const auto now = clock_->now();
        transition t;
        t.expected_version = rec.version;
        t.record = std::move(rec);
        t.record.version = t.expected_version + 1;
        t.record.updated_at = now;
        t.record.state = to_json(state);
        entry->saga_id = t.record.id;
        entry->version = t.record.version;
        entry->at = now;
        t.history.push_back(std::move(*entry));
        if (!message_id.empty()) t.inbox.push_back(message_id);
        auto record = t.record;
        auto entries = t.history;
        auto r = store_->commit(std::move(t));
        if (r) {
            notify(record, entries, state);
            post_input(record.id, input{});  // the actor reloads and moves on
            return success();
        }
        if (r.error() == errc::duplicate_message) return success();  // delivered before
        if (r.error() != errc::version_conflict) return r.error();
    }
    return error{errc::version_conflict,
                 fmt::format("saga '{}': gave up ({}) after {} concurrent updates", id, what,
                             max_direct_commit_tries)};
}

result<void> engine_impl::signal(std::string_view id, std::string_view name, json payload,
                                 std::string message_id) {
    if (name.empty()) return error{errc::invalid_argument, "a signal needs a name"};
    return update_directly(
        id, fmt::format("signal '{}'", name), std::move(message_id),
        [&](const instance_record&, instance_state& state) -> result<std::optional<history_entry>> {
            state.signals[std::string(name)].push_back(payload);
            history_entry e;
            e.event = "signal_received";
            e.detail = json{{"signal", name}, {"payload", payload}};
            return std::optional<history_entry>(std::move(e));
        });
}

result<void> engine_impl::cancel(std::string_view id, std::string_view reason,
                                 const operator_note* note) {
    return update_directly(
        id, "cancel", {},
        [&](instance_record& rec, instance_state& state) -> result<std::optional<history_entry>> {
            if (state.pivot_passed)
                return error{
                    errc::past_pivot,
                    fmt::format("saga '{}' is past its pivot and can only go forward", id)};
            if (state.cancel_requested || state.compensating)
                return error{
                    errc::invalid_state,
                    fmt::format("saga '{}' is {} already: cancel refused", id,
                                state.cancel_requested ? "being cancelled" : "compensating")};
            state.cancel_requested = true;
            // A cancel ends a pause: compensation starts at once.
            if (rec.status == saga_status::paused) rec.status = moving_status(state);
            history_entry e;
            e.event = "cancel_requested";
            e.detail = json{{"reason", reason}};
            if (note) e.detail.update(note_json(*note));
            return std::optional<history_entry>(std::move(e));
        });
}

namespace {

result<void> check_note(const operator_note& note, std::string_view action) {
    if (note.who.empty() || note.why.empty())
        return error{errc::invalid_argument,
                     fmt::format("{} is an operator action: say who does it and why", action)};
    return success();
}

history_entry operator_entry(std::string event, const operator_note& note, std::string step = {}) {
    history_entry e;
    e.event = std::move(event);
    e.step = std::move(step);
    e.detail = note_json(note);
    return e;
}

error wrong_state(std::string_view id, const instance_record& rec, std::string_view what,
                  std::string_view needs) {
    return error{errc::invalid_state, fmt::format("saga '{}' is {}: {} needs it {}", id,
                                                  to_string(rec.status), what, needs)};
}

}  // namespace

result<void> engine_impl::pause(std::string_view id, const operator_note& note) {
    SAGA_TRY(check_note(note, "pause"));
    return update_directly(
        id, "pause", {},
        [&](instance_record& rec, instance_state&) -> result<std::optional<history_entry>> {
            if (rec.status == saga_status::paused) return std::optional<history_entry>();
            rec.status = saga_status::paused;
            return std::optional<history_entry>(operator_entry("saga_paused", note));
        });
}

result<void> engine_impl::resume(std::string_view id, const operator_note& note) {
    SAGA_TRY(check_note(note, "resume"));
    return update_directly(
        id, "resume", {},
        [&](instance_record& rec, instance_state& state) -> result<std::optional<history_entry>> {
            if (rec.status != saga_status::paused) return wrong_state(id, rec, "resume", "paused");
            rec.status = moving_status(state);
            return std::optional<history_entry>(operator_entry("saga_resumed", note));
        },
        true);
}

result<void> engine_impl::retry(std::string_view id, const operator_note& note) {
    SAGA_TRY(check_note(note, "retry"));
    return update_directly(
        id, "retry", {},
        [&](instance_record& rec, instance_state& state) -> result<std::optional<history_entry>> {
            json units = json::array();
            if (rec.status == saga_status::compensation_failed) {
                // Compensate the failed units again, with a fresh retry budget.
                for (auto& [key, u] : state.units) {
                    if (u.status != step_status::compensation_failed) continue;
                    u.status =
                        u.uncertain && u.seq == 0 ? step_status::failed : step_status::completed;
                    u.compensation_attempts = 0;
                    ++u.compensation_generation;
                    u.finished_at.reset();
                    units.push_back(key);
                }
                rec.status = saga_status::compensating;
            } else if (rec.status == saga_status::failed) {
                // Attempt the failed steps again, with a fresh retry budget.
                for (auto& [key, u] : state.units) {
                    if (u.status != step_status::failed) continue;
                    u.status = u.items ? step_status::running : step_status::pending;
                    if (!u.items) {
                        u.attempts = 0;
                        ++u.forward_generation;
                    }
                    u.error.clear();
                    u.finished_at.reset();
                    units.push_back(key);
                }
                state.forward_failed = false;
                rec.status = saga_status::running;
            } else {
                return wrong_state(id, rec, "retry", "failed or compensation_failed");
            }
            state.error.clear();
            auto e = operator_entry("operator_retry", note);
            e.detail["steps"] = std::move(units);
            return std::optional<history_entry>(std::move(e));
        },
        true);
}

result<void> engine_impl::skip_step(std::string_view id, std::string_view step,
                                    const operator_note& note) {
    SAGA_TRY(check_note(note, "skip step"));
    return update_directly(
        id, "skip step", {},
        [&](instance_record& rec, instance_state& state) -> result<std::optional<history_entry>> {
            auto def = find_definition(rec.definition, rec.definition_version);
            if (!def)
                return error{errc::definition_not_registered,
                             fmt::format("saga '{}' needs definition '{}' version {}", id,
                                         rec.definition, rec.definition_version)};
            auto n = def->nodes.find(std::string(base_name(step)));
            if (n == def->nodes.end())
                return error{errc::not_found, fmt::format("saga '{}' has no step '{}'", id, step)};
            if (n->second->kind == node_kind::parallel ||
                (n->second->kind == node_kind::for_each && !item_index(step)))
                return error{errc::invalid_argument,
                             fmt::format("step '{}' of saga '{}' is a group: skip its steps or "
                                         "items instead",
                                         step, id)};
            auto& u = state.units[std::string(step)];
            const auto before = u.status;
            std::string event;
            if (u.status == step_status::compensation_failed) {
                u.status = step_status::compensated;
                event = "compensation_skipped";
                // A paused saga (its compensation failed while paused) stays paused.
                if (rec.status != saga_status::paused) rec.status = saga_status::compensating;
                state.error.clear();
            } else if (u.status == step_status::failed || u.status == step_status::retrying ||
                       u.status == step_status::waiting || u.status == step_status::running ||
                       u.status == step_status::pending) {
                if (state.compensating)
                    return error{errc::invalid_state,
                                 fmt::format("saga '{}' is compensating: step '{}' cannot be "
                                             "skipped forward",
                                             id, step)};
                u.status = step_status::skipped;
                event = "step_skipped_by_operator";
                if (rec.status == saga_status::failed) {
                    state.forward_failed = false;
                    state.error.clear();
                    rec.status = saga_status::running;
                }
            } else {
                return error{errc::invalid_state,
                             fmt::format("step '{}' of saga '{}' is {}: only a failed, retrying, "
                                         "waiting, running or pending step, or a failed "
                                         "compensation, can be skipped",
                                         step, id, to_string(u.status))};
            }
            u.finished_at = clock_->now();
            auto e = operator_entry(std::move(event), note, std::string(step));
            e.detail["was"] = to_string(before);
            return std::optional<history_entry>(std::move(e));
        },
        true);
}

result<std::size_t> engine_impl::release_lock(std::string_view key, const operator_note& note) {
    SAGA_TRY(check_note(note, "release lock"));
    if (key.empty()) return error{errc::invalid_argument, "release lock: no correlation key"};
    list_filter f;
    f.correlation_key = std::string(key);
    std::size_t released = 0;
    for (;;) {
        SAGA_TRY(auto page, store_->list(f));
        for (const auto& rec : page) {
            if (!rec.exclusive || is_terminal(rec.status)) continue;
            bool changed = false;
            SAGA_TRY(update_directly(
                rec.id, "release lock", {},
                [&](instance_record& r, instance_state&) -> result<std::optional<history_entry>> {
                    if (!r.exclusive) return std::optional<history_entry>();
                    r.exclusive = false;
                    changed = true;
                    auto e = operator_entry("lock_released", note);
                    e.detail["correlation_key"] = key;
                    return std::optional<history_entry>(std::move(e));
                },
                true));
            if (changed) ++released;
        }
        if (page.size() < f.limit) break;
        f.after_id = page.back().id;
    }
    return released;
}

result<std::vector<history_entry>> engine_impl::history_of(std::string_view id) {
    SAGA_TRY(store_->load(id));
    return store_->history(id);
}

// ---- the actor ---------------------------------------------------------------------------------

void engine_impl::post_input(const std::string& id, input in) {
    auto inst = get_instance(id);
    asio::post(inst->strand, [this, inst, in = std::move(in)]() mutable {
        inst->mailbox.push_back(std::move(in));
        pump(inst);
    });
}

void engine_impl::pump(const std::shared_ptr<instance>& inst) {
    while (!inst->busy && !inst->mailbox.empty()) {
        // Everything queued for the instance goes into one transition (say, the replies of a
        // parallel group that arrived together): one commit, one fsync, instead of one each.
        std::vector<input> batch;
        const std::size_t n = std::min<std::size_t>(inst->mailbox.size(), 256);
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            batch.push_back(std::move(inst->mailbox.front()));
            inst->mailbox.pop_front();
        }
        process(inst, std::move(batch));
    }
    // A paused instance stays cached: its armed timers (a retry, a deadline) must still fire
    // when it is resumed.
    if (!inst->busy && inst->mailbox.empty() && inst->loaded && is_settled(inst->record.status) &&
        inst->record.status != saga_status::paused && inst->live.empty())
        evict(inst);
}

result<void> engine_impl::load(instance& inst, bool keep_live_data) {
    SAGA_TRY(auto rec, store_->load(inst.id));
    auto def = find_definition(rec.definition, rec.definition_version);
    if (!def) {
        error e{errc::definition_not_registered,
                fmt::format("saga '{}' needs definition '{}' version {}, which is not registered",
                            inst.id, rec.definition, rec.definition_version)};
        std::lock_guard lock(mutex_);
        blocked_[inst.id] =
            blocked_instance{inst.id, rec.definition, rec.definition_version, e.message};
        return e;
    }
    SAGA_TRY(auto state, instance_state_from_json(rec.state));
    // Keep the live data object (and with it running coroutines' work) if nothing changed it.
    const bool same_data = keep_live_data && inst.data && inst.loaded && [&] {
        auto cur = inst.data->to_json();
        return cur && cur.value() == rec.data;
    }();
    if (!same_data) {
        SAGA_TRY(auto box, def->m->load(rec.data));
        inst.data = std::shared_ptr<data_box>(std::move(box));
        ++inst.generation;
    }
    inst.def = std::move(def);
    inst.state = std::move(state);
    inst.record = metadata_of(std::move(rec));
    inst.loaded = true;
    return success();
}

namespace {
void ack_all(std::vector<input>& batch) {
    for (auto& in : batch)
        if (in.from) in.from->ack();
}
void nack_all(std::vector<input>& batch, duration delay) {
    for (auto& in : batch)
        if (in.from) in.from->nack(delay);
}
}  // namespace

void engine_impl::process(const std::shared_ptr<instance>& inst, std::vector<input> batch) {
    const bool reload =
        !inst->loaded || std::any_of(batch.begin(), batch.end(), [](const input& in) {
            return in.what == input::kind::refresh;
        });
    if (reload) {
        if (auto r = load(*inst, true); !r) {
            if (r.error() == errc::not_found) {
                for (const auto& in : batch)
                    if (in.what == input::kind::reply)
                        note_ignored_reply(*metrics_, *log_, options_.log_level, clock_->now(),
                                           in.message, "unknown_saga");
                ack_all(batch);  // messages for a saga this store never had
                return;
            }
            if (r.error() != errc::definition_not_registered) warn(r.error().what());
            nack_all(batch, std::chrono::seconds{30});
            return;
        }
    }
    if (is_settled(inst->record.status) && inst->record.status != saga_status::paused) {
        // A timer that outlived its step (say, the deadline of a wait an operator skipped) is
        // cleared, not dropped: its record would stay overdue in the store.
        tx t;
        t.now = clock_->now();
        for (const auto& in : batch) {
            if (in.what == input::kind::timer) t.timers_cleared.push_back(in.timer_id);
            if (in.what == input::kind::reply)
                note_ignored_reply(*metrics_, *log_, options_.log_level, t.now, in.message,
                                   "finished");
        }
        if (t.timers_cleared.empty()) {
            ack_all(batch);
            return;
        }
        commit(inst, std::move(t), std::move(batch));
        return;
    }
    if (inst->record.status != saga_status::paused && !inst->due_while_paused.empty()) {
        // Moving again: the timers that fell due while paused fire now (in this batch, so that a
        // failed commit queues them again with the rest).
        for (auto& [tid, payload] : std::exchange(inst->due_while_paused, {})) {
            if (!inst->armed.contains(tid)) continue;  // cleared meanwhile
            input in{input::kind::timer};
            in.timer_id = tid;
            in.timer_payload = std::move(payload);
            batch.push_back(std::move(in));
        }
    }
    tx t;
    t.now = clock_->now();
    // Why a reply that handle_reply left unused (it changes nothing then, so the state it met
    // is still there to ask) was of no use; mirrors the checks of handle_reply_inner.
    const auto why_ignored = [&](const envelope& e) -> std::string_view {
        if (std::find(t.inbox.begin(), t.inbox.end(), e.message_id) != t.inbox.end())
            return "duplicate";
        const auto it = inst->state.units.find(e.step);
        const node* n = node_of(*inst, e.step);
        if (it == inst->state.units.end() || !n) return "unknown_step";
        if (is_compensation_key(e.idempotency_key)) return "not_waiting";
        if (n->forward.kind != action::how::remote) return "unknown_step";
        if (it->second.status != step_status::running && it->second.status != step_status::retrying)
            return "not_waiting";
        return "unknown_attempt";
    };
    std::vector<std::pair<const input*, std::string_view>> ignored;
    for (auto& in : batch) {
        const auto used = t.inbox.size();
        handle(*inst, t, in);
        if (in.what == input::kind::reply && t.inbox.size() == used)
            ignored.emplace_back(&in, why_ignored(in.message));
    }
    if (t.stale_suspect && !reload && !t.changed() &&
        std::all_of(batch.begin(), batch.end(),
                    [](const input& in) { return in.what == input::kind::reply; })) {
        // Only replies, none of which this copy could use: read the instance again before
        // dropping them (handling a reply has no effect outside the state the reload replaces).
        inst->loaded = false;
        for (auto it = batch.rbegin(); it != batch.rend(); ++it)
            inst->mailbox.push_front(std::move(*it));
        return;
    }
    // Counted once the decision is final (a transition that loses a version conflict is
    // computed again, and may count its ignored replies again).
    for (const auto& [in, reason] : ignored)
        note_ignored_reply(*metrics_, *log_, options_.log_level, t.now, in->message, reason);
    advance(*inst, t);
    if (!t.changed()) {
        ack_all(batch);
        schedule_wake(inst, t);
        if (t.need_continue) post_input(inst->id, input{input::kind::wake});
        return;
    }
    commit(inst, std::move(t), std::move(batch));
}

void engine_impl::commit(const std::shared_ptr<instance>& inst, tx t, std::vector<input> batch) {
    auto data = inst->data->to_json();
    if (!data) {
        // The user's data cannot be serialised: fail loudly, keep the last good record.
        warn(fmt::format("saga '{}': {}", inst->id, data.error().message));
        nack_all(batch, std::chrono::seconds{5});
        inst->loaded = false;
        return;
    }
    // The engine keeps only the record's metadata; data and state go to the store without copies.
    const auto& cur = inst->record;
    transition tr;
    tr.expected_version = cur.version;
    tr.record.id = cur.id;
    tr.record.definition = cur.definition;
    tr.record.definition_version = cur.definition_version;
    tr.record.version = cur.version + 1;
    tr.record.status = cur.status;
    tr.record.correlation_key = cur.correlation_key;
    tr.record.exclusive = cur.exclusive;
    tr.record.created_at = cur.created_at;
    tr.record.updated_at = t.now;
    tr.record.data = std::move(data).value();
    tr.record.state = to_json(inst->state);
    for (auto& h : t.history) h.version = tr.record.version;

    struct pending {
        instance_record next;  // metadata (with data and state only when observers need them)
        tx t;
        std::vector<input> batch;
    };
    auto p = std::make_shared<pending>();
    const bool observed = has_observers();
    p->next = observed ? tr.record : metadata_of(tr.record);
    tr.history = t.history;  // kept too: logs, metrics, spans and observers see it once durable
    tr.outbox = t.outbox;    // kept: released after the commit
    tr.timers_set = t.timers_set;
    tr.timers_cleared = t.timers_cleared;
    tr.inbox = std::move(t.inbox);
    p->t = std::move(t);
    p->batch = std::move(batch);

    inst->busy = true;
    begin_external();
    const auto began = std::chrono::steady_clock::now();
    store_->async_commit(std::move(tr), [life = lifeline_, inst, p, began](result<void> r) {
        with_engine(life, [&](engine_impl& self) {
            self.metrics_->observe(
                "saga_transition_commit_seconds", {},
                std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
            asio::post(inst->strand, [&self, inst, p, r = std::move(r)]() mutable {
                self.on_committed(inst, std::move(r), std::move(p->next), std::move(p->t),
                                  std::move(p->batch));
            });
            self.end_external();
        });
    });
}

void engine_impl::on_committed(const std::shared_ptr<instance>& inst, result<void> r,
                               instance_record next, tx t, std::vector<input> batch) {
    inst->busy = false;
    if (!r) {
        const auto& e = r.error();
        if (e == errc::version_conflict || e == errc::duplicate_message) {
            // Someone else moved the instance on, or already consumed one of these messages:
            // reload and process the inputs again, less the messages the store has consumed.
            inst->loaded = false;
            for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
                if (e == errc::duplicate_message && it->from) {
                    auto seen = store_->inbox_contains(inst->id, it->message.message_id);
                    if (seen && seen.value()) {
                        it->from->ack();
                        continue;
                    }
                }
                inst->mailbox.push_front(std::move(*it));
            }
        } else {
            warn(fmt::format("saga '{}': commit failed, will retry: {}", inst->id, e.what()));
            inst->loaded = false;
            for (auto& in : batch) {
                if (in.from) {
                    in.from->nack(std::chrono::seconds{1});
                } else if (in.what == input::kind::timer) {
                    // handle() disarmed the timer; a plain retry would find it disarmed and
                    // drop it (the stored timer would never fire in this process): arm it again
                    arm(inst,
                        timer_record{inst->id, in.timer_id, clock_->now() + std::chrono::seconds{1},
                                     std::move(in.timer_payload)});
                } else {
                    retry_later(inst->id, std::move(in), std::chrono::seconds{1});
                }
            }
        }
        pump(inst);
        return;
    }

    // Timers first (so a cleared one cannot fire), then messages, then local coroutines.
    for (const auto& id : t.timers_cleared) {
        if (auto it = inst->armed.find(id); it != inst->armed.end()) {
            clock_->cancel(it->second);
            inst->armed.erase(it);
        }
        inst->due_while_paused.erase(id);
    }
    for (const auto& tr : t.timers_set) arm(inst, tr);
    for (auto& o : t.outbox) release(std::move(o), 0);
    for (const auto& l : t.launches) launch_async(inst, l);
    ack_all(batch);
    schedule_wake(inst, t);
    if (t.need_continue) inst->mailbox.push_back(input{input::kind::wake});
    if (!t.history.empty()) notify(next, t.history, inst->state);
    inst->record = metadata_of(std::move(next));
    if (is_settled(inst->record.status) && has_waiters(inst->id)) {
        auto view_record = inst->record;
        if (auto d = inst->data->to_json()) view_record.data = std::move(d).value();
        settle_waiters(inst->id, make_view(view_record, inst->state));
    }
    pump(inst);
}

void engine_impl::schedule_wake(const std::shared_ptr<instance>& inst, const tx& t) {
    // A step held back by a rate limit: wake the instance when a token is there (not durable:
    // after a restart the step is simply tried again).
    if (!t.wake_after || inst->wake_armed) return;
    inst->wake_armed = true;
    clock_->call_at(t.now + *t.wake_after, [life = lifeline_, id = inst->id] {
        with_engine(life,
                    [&](engine_impl& self) { self.post_input(id, input{input::kind::wake}); });
    });
}

void engine_impl::retry_later(const std::string& id, input in, duration delay) {
    auto p = std::make_shared<input>(std::move(in));
    clock_->call_at(clock_->now() + delay, [life = lifeline_, id, p] {
        with_engine(life, [&](engine_impl& self) { self.post_input(id, std::move(*p)); });
    });
}

void engine_impl::arm(const std::shared_ptr<instance>& inst, const timer_record& tr) {
    if (auto it = inst->armed.find(tr.id); it != inst->armed.end()) clock_->cancel(it->second);
    inst->armed[tr.id] = clock_->call_at(
        tr.due, [life = lifeline_, id = inst->id, tid = tr.id, payload = tr.payload] {
            with_engine(life, [&](engine_impl& self) {
                input in{input::kind::timer};
                in.timer_id = tid;
                in.timer_payload = payload;
                self.post_input(id, std::move(in));
            });
        });
}

void engine_impl::release(outbox_record rec, std::uint32_t tries,
                          std::chrono::steady_clock::time_point since) {
    auto destination = rec.destination;
    auto message = rec.message;
    const bool topic = rec.topic;
    begin_external();
    if (tries == 0) ++outbox_in_flight_;
    auto done = [life = lifeline_, rec = std::move(rec), tries, since](result<void> r) mutable {
        with_engine(life, [&](engine_impl& self) {
            self.released(std::move(rec), tries, since, std::move(r));
            self.end_external();
        });
    };
    if (topic) {
        transport_->async_publish(destination, std::move(message), std::move(done));
    } else {
        transport_->async_send(destination, std::move(message), std::move(done));
    }
}

void engine_impl::flush_acks() {
    std::vector<std::string> ids;
    {
        std::lock_guard lock(acks_mutex_);
        ids.swap(acks_);
        ack_flush_scheduled_ = false;
    }
    if (ids.empty()) return;
    if (auto a = store_->ack_outbox(ids); !a)
        warn(fmt::format(
            "acknowledging {} released outbox messages failed (they will be sent again on "
            "recovery): {}",
            ids.size(), a.error().what()));
}

void engine_impl::begin_external() {
    std::lock_guard lock(external_mutex_);
    if (external_++ == 0) external_work_.emplace(ctx_.get_executor());
}

void engine_impl::end_external() {
    std::lock_guard lock(external_mutex_);
    if (--external_ == 0) external_work_.reset();
}

void engine_impl::released(outbox_record rec, std::uint32_t tries,
                           std::chrono::steady_clock::time_point since, result<void> r) {
    if (r) {
        --outbox_in_flight_;
        metrics_->observe(
            "saga_outbox_lag_seconds", {},
            std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
        // Acknowledged in batches: one store call for all the messages released meanwhile. An ack
        // lost to a crash only means the message is sent again on recovery.
        std::lock_guard lock(acks_mutex_);
        acks_.push_back(std::move(rec.message.message_id));
        if (!ack_flush_scheduled_) {
            ack_flush_scheduled_ = true;
            asio::post(ctx_, [this] { flush_acks(); });
        }
        return;
    }
    // The message stays in the outbox; send it again with backoff.
    const auto delay = retry_policy{
        .initial_backoff = std::chrono::milliseconds{100},
        .max_backoff = std::chrono::seconds{
            30}}.backoff(tries + 1, std::hash<std::string>{}(rec.message.message_id));
    if (tries == 0 || tries % 20 == 0)
        warn(fmt::format("sending message {} to '{}' failed (will retry): {}",
                         rec.message.message_id, rec.destination, r.error().what()));
    auto p = std::make_shared<outbox_record>(std::move(rec));
    clock_->call_at(clock_->now() + delay, [life = lifeline_, p, tries, since] {
        with_engine(life,
                    [&](engine_impl& self) { self.release(std::move(*p), tries + 1, since); });
    });
}

void engine_impl::launch_async(const std::shared_ptr<instance>& inst, const launch& l) {
    const node* n = node_of(*inst, l.unit);
    if (!n) return;
    const action& a = l.compensation ? n->compensation : n->forward;
    if (a.kind != action::how::local_async) return;
    const std::string live_key = l.compensation ? l.unit + "#c" : l.unit;
    auto sig = std::make_shared<asio::cancellation_signal>();
    inst->cancels[live_key] = sig;
    inst->live[live_key] = l.attempt;
    auto ctx = std::make_shared<step_context>(context(*inst, l.unit, l.attempt, l.compensation));
    auto data = inst->data;
    auto def = inst->def;  // keeps the action alive
    const json* item_ptr = item_of(*inst, l.unit);
    auto item = std::make_shared<json>(item_ptr ? *item_ptr : json());
    const bool has_item = item_ptr != nullptr;
    const auto gen = inst->generation;
    // The coroutine's result is a plain struct: co_spawn default-constructs it on exceptions, and
    // g++ 12 reports a false "maybe uninitialized" for std::optional there.
    struct outcome {
        bool failed = false;
        error err{};
    };
    auto body = [a = &a, def, data, item, has_item, ctx]() -> asio::awaitable<outcome> {
        auto r = co_await a->async(*data, has_item ? item.get() : nullptr, *ctx);
        if (r) co_return outcome{};
        co_return outcome{true, r.error()};
    };
    asio::co_spawn(
        inst->strand, std::move(body),
        asio::bind_cancellation_slot(
            // The handler owns the signal: it must outlive the operation bound to its slot.
            sig->slot(), [this, id = inst->id, l, gen, sig](std::exception_ptr ep, outcome result) {
                std::optional<error> out;
                if (result.failed) out = std::move(result.err);
                input in{input::kind::local_done};
                in.unit = l.unit;
                in.attempt = l.attempt;
                in.compensation = l.compensation;
                in.generation = gen;
                if (ep) {
                    try {
                        std::rethrow_exception(ep);
                    } catch (const std::exception& e) {
                        out = error{errc::step_threw,
                                    fmt::format("step '{}' threw: {}", l.unit, e.what())};
                    } catch (...) {
                        out = error{errc::step_threw, fmt::format("step '{}' threw", l.unit)};
                    }
                }
                in.outcome = std::move(out);
                post_input(id, std::move(in));
            }));
}

// ---- transitions -------------------------------------------------------------------------------

void engine_impl::handle(instance& inst, tx& t, input& in) {
    switch (in.what) {
        case input::kind::refresh: break;
        case input::kind::wake: inst.wake_armed = false; break;
        case input::kind::reply: handle_reply(inst, t, in.message); break;
        case input::kind::timer: {
            // The timer stays armed until a commit clears it: a transition that loses a version
            // conflict is computed again from the inputs, this one included.
            const auto& id = in.timer_id;
            if (std::find(t.timers_cleared.begin(), t.timers_cleared.end(), id) !=
                    t.timers_cleared.end() ||
                std::any_of(t.timers_set.begin(), t.timers_set.end(),
                            [&](const timer_record& r) { return r.id == id; }))
                break;  // fired twice, or cleared or replaced in this transition
            if (!inst.armed.contains(id)) {
                // Cleared since it was armed, or armed by an instance since evicted (say, the
                // deadline of a skipped wait, when the saga failed and was retried): it does
                // nothing, and its record (if any is left) goes.
                t.timers_cleared.push_back(id);
                break;
            }
            if (inst.record.status == saga_status::paused) {
                inst.due_while_paused[id] = in.timer_payload;  // fires on resume
                break;
            }
            t.timers_cleared.push_back(id);
            handle_timer(inst, t, id, in.timer_payload);
            break;
        }
        case input::kind::local_done: handle_local_done(inst, t, in); break;
    }
}

void engine_impl::handle_reply(instance& inst, tx& t, const envelope& e) {
    // A copy of a message already consumed in this transition (inputs are batched).
    if (std::find(t.inbox.begin(), t.inbox.end(), e.message_id) != t.inbox.end()) return;
    const auto inbox_before = t.inbox.size();
    const auto history_before = t.history.size();
    handle_reply_inner(inst, t, e);
    // A reply that changed nothing may be one this cached copy is too old to know (another
    // engine on the same store moved the instance on): `process` reloads and tries again once.
    if (t.inbox.size() == inbox_before && t.history.size() == history_before)
        t.stale_suspect = true;
}

void engine_impl::handle_reply_inner(instance& inst, tx& t, const envelope& e) {
    auto it = inst.state.units.find(e.step);
    const node* n = node_of(inst, e.step);
    if (it == inst.state.units.end() || !n) return;
    auto& u = it->second;

    const bool for_compensation = is_compensation_key(e.idempotency_key);
    const auto reply_error = [&](const std::string& endpoint) -> std::optional<error> {
        switch (e.status) {
            case reply_status::success: return std::nullopt;
            case reply_status::transient_failure:
                return error{errc::participant_transient,
                             fmt::format("'{}' replied: {}", endpoint, e.error)};
            case reply_status::permanent_failure:
                return error{errc::participant_permanent,
                             fmt::format("'{}' replied: {}", endpoint, e.error)};
        }
        return std::nullopt;
    };
    if (!for_compensation) {
        if (n->forward.kind != action::how::remote) return;
        if (u.status != step_status::running && u.status != step_status::retrying)
            return;  // late or repeated
        if (e.attempt > u.attempts) return;
        t.inbox.push_back(e.message_id);
        history(inst, t, "reply_received", e.step, e.attempt,
                json{{"status", to_string(e.status)}});
        if (u.status == step_status::retrying)
            u.status = step_status::running;  // a late reply wins
        auto ep = endpoint(n->forward.endpoint);
        auto err = reply_error(n->forward.endpoint);
        if (!err) {
            ep->breaker.record_success();
            if (n->forward.on_reply) {
                auto ctx = context(inst, e.step, e.attempt, false);
                if (auto r = n->forward.on_reply(*inst.data, item_of(inst, e.step), e.payload, ctx);
                    !r) {
                    err = r.error();
                    u.uncertain = true;  // the participant did it: undo it if the saga compensates
                }
            }
        } else if (e.status == reply_status::transient_failure) {
            ep->breaker.record_failure(t.now);
        } else {
            // A permanent refusal is recorded by the participant: no copy of this command will
            // ever take effect, whatever earlier attempts answered.
            u.uncertain = false;
        }
        attempt_done(inst, t, *n, e.step, std::move(err));
    } else {
        if (u.status != step_status::compensating) return;
        t.inbox.push_back(e.message_id);
        history(inst, t, "compensation_reply_received", e.step, e.attempt,
                json{{"status", to_string(e.status)}});
        compensation_done(inst, t, *n, e.step, reply_error(n->compensation.endpoint));
    }
}

void engine_impl::handle_timer(instance& inst, tx& t, const std::string& id, const json& payload) {
    const auto kind = payload.value("kind", std::string());
    const auto key = payload.value("unit", std::string());
    const auto attempt = payload.value("attempt", std::uint32_t{0});
    auto it = inst.state.units.find(key);
    const node* n = node_of(inst, key);
    if (it == inst.state.units.end() || !n) return;
    auto& u = it->second;
    (void)id;
    if (kind == "retry") {
        if (u.status == step_status::retrying && u.attempts == attempt)
            u.status = step_status::pending;
    } else if (kind == "timeout") {
        if (u.status != step_status::running || u.attempts != attempt) return;
        if (auto c = inst.cancels.find(key); c != inst.cancels.end()) {
            c->second->emit(asio::cancellation_type::terminal);
            inst.cancels.erase(c);
            inst.live.erase(key);
        }
        if (n->forward.kind == action::how::remote)
            endpoint(n->forward.endpoint)->breaker.record_failure(t.now);
        history(inst, t, "step_timed_out", key, attempt);
        attempt_done(
            inst, t, *n, key,
            error{errc::timeout, fmt::format("step '{}' attempt {} timed out", key, attempt)},
            true);
    } else if (kind == "deadline") {
        if (u.status != step_status::waiting) return;
        history(inst, t, "wait_deadline_passed", key);
        if (n->deadline_action == on_deadline::proceed) {
            if (n->on_timeout) {
                auto ctx = context(inst, key, u.attempts, false);
                if (auto r = n->on_timeout(*inst.data, nullptr, ctx); !r) {
                    u.status = step_status::failed;
                    u.error = r.error().what();
                    u.finished_at = t.now;
                    history(inst, t, "step_failed", key, u.attempts, json{{"error", u.error}});
                    unit_failed(inst, t, *n, key, r.error());
                    return;
                }
            }
            complete_unit(inst, t, *n, key);
        } else {
            error err{errc::deadline_exceeded,
                      fmt::format("wait '{}' for signal '{}' passed its deadline", key, n->signal)};
            u.status = step_status::failed;
            u.error = err.what();
            u.finished_at = t.now;
            history(inst, t, "step_failed", key, u.attempts, json{{"error", u.error}});
            unit_failed(inst, t, *n, key, err);
        }
    } else if (kind == "compensation_retry") {
        if (u.status == step_status::compensating && u.compensation_attempts == attempt)
            u.status = u.uncertain && u.seq == 0 ? step_status::failed : step_status::completed;
    } else if (kind == "compensation_timeout") {
        if (u.status != step_status::compensating || u.compensation_attempts != attempt) return;
        const auto live_key = key + "#c";
        if (auto c = inst.cancels.find(live_key); c != inst.cancels.end()) {
            c->second->emit(asio::cancellation_type::terminal);
            inst.cancels.erase(c);
            inst.live.erase(live_key);
        }
        history(inst, t, "compensation_timed_out", key, attempt);
        compensation_done(
            inst, t, *n, key,
            error{errc::timeout,
                  fmt::format("compensation of '{}' attempt {} timed out", key, attempt)});
    }
}

void engine_impl::handle_local_done(instance& inst, tx& t, const input& in) {
    const std::string live_key = in.compensation ? in.unit + "#c" : in.unit;
    auto live = inst.live.find(live_key);
    if (live == inst.live.end() || live->second != in.attempt) return;  // cancelled or superseded
    inst.live.erase(live);
    inst.cancels.erase(live_key);
    auto it = inst.state.units.find(in.unit);
    const node* n = node_of(inst, in.unit);
    if (it == inst.state.units.end() || !n) return;
    auto& u = it->second;
    if (in.generation != inst.generation) {
        // The data was reloaded while the coroutine ran; its changes are gone: run it again.
        history(inst, t, "attempt_discarded", in.unit, in.attempt);
        if (!in.compensation && u.status == step_status::running) u.status = step_status::pending;
        if (in.compensation && u.status == step_status::compensating)
            u.status = step_status::completed;
        return;
    }
    if (!in.compensation) {
        if (u.status == step_status::running && u.attempts == in.attempt)
            attempt_done(inst, t, *n, in.unit, in.outcome);
    } else {
        if (u.status == step_status::compensating && u.compensation_attempts == in.attempt)
            compensation_done(inst, t, *n, in.unit, in.outcome);
    }
}

bool engine_impl::is_live(const instance& inst, const tx& t, const std::string& key) const {
    if (inst.live.contains(key)) return true;
    return std::any_of(t.launches.begin(), t.launches.end(),
                       [&](const launch& l) { return !l.compensation && l.unit == key; });
}

bool engine_impl::halted(const instance& inst) const {
    return inst.state.compensating || inst.state.forward_failed || inst.state.cancel_requested;
}

void engine_impl::advance(instance& inst, tx& t) {
    // Drive to a fixpoint: a step that settles at once (a local step, a consumed signal, a refused
    // call) may let the next one start in the same transition.
    for (int pass = 0; pass < 10000; ++pass) {
        const auto before = t.history.size();
        advance_once(inst, t);
        if (t.history.size() == before || is_settled(inst.record.status)) return;
    }
}

void engine_impl::advance_once(instance& inst, tx& t) {
    if (is_settled(inst.record.status)) return;
    auto& st = inst.state;
    // A cancel is accepted only before the pivot; the pivot may complete before the cancel is
    // seen here (a reply in the same batch, or while paused): the cancel still holds, as it
    // would had it been seen first (the pivot's step is then left running and settles).
    if (st.cancel_requested && !st.compensating && !st.forward_failed)
        begin_compensation(inst, t, "cancelled");
    if (!halted(inst)) {
        const auto p = drive_sequence(inst, t, inst.def->m->steps);
        if (p == progress::done && !halted(inst)) {
            settle(inst, t, saga_status::completed, "saga_completed");
            return;
        }
    }
    if (st.compensating) {
        const bool was = inst.record.status == saga_status::compensating;
        inst.record.status = saga_status::compensating;
        drive_compensation(inst, t);
        // Recorded (and so committed) even when nothing else changed.
        if (!was && inst.record.status == saga_status::compensating && t.history.empty())
            history(inst, t, "status_changed", {}, 0,
                    json{{"status", to_string(saga_status::compensating)}});
        return;
    }
    bool any_running = false;
    bool any_waiting = false;
    std::vector<std::string> open_groups;
    for (const auto& [key, u] : st.units) {
        const node* n = item_index(key) ? nullptr : node_of(inst, key);
        const bool group = n && (n->kind == node_kind::parallel || n->kind == node_kind::for_each);
        if (u.status == step_status::running && group) open_groups.push_back(key);
        if ((u.status == step_status::running || u.status == step_status::retrying) && !group)
            any_running = true;
        if (u.status == step_status::waiting) any_waiting = true;
    }
    if (st.forward_failed) {
        if (any_running) return;
        // A group whose member failed past the pivot is not driven any more: it fails with the
        // saga once nothing runs, so that the saga settles (it stayed `running` before).
        for (const auto& key : open_groups) {
            auto& g = st.units[key];
            g.status = step_status::failed;
            g.finished_at = t.now;
            g.error = "a member failed";
            history(inst, t, "step_failed", key, 0, json{{"error", g.error}});
        }
        settle(inst, t, saga_status::failed, "saga_failed");
        return;
    }
    const auto status = !any_running && any_waiting ? saga_status::waiting : saga_status::running;
    if (status != inst.record.status) {
        inst.record.status = status;
        history(inst, t, "status_changed", {}, 0, json{{"status", to_string(status)}});
    }
}

void engine_impl::settle(instance& inst, tx& t, saga_status status, const char* event) {
    inst.record.status = status;
    json detail = json::object();
    if (!inst.state.error.empty()) detail["error"] = inst.state.error;
    history(inst, t, event, {}, 0, std::move(detail));
}

progress engine_impl::drive_sequence(instance& inst, tx& t, const std::vector<node>& steps) {
    for (const auto& n : steps) {
        const auto p = drive_node(inst, t, n);
        if (p != progress::done) return p;
    }
    return progress::done;
}

void engine_impl::skip(instance& inst, tx& t, const node& n) {
    auto& u = inst.state.units[n.name];
    u.status = step_status::skipped;
    u.finished_at = t.now;
    history(inst, t, "step_skipped", n.name);
    for (const auto& b : n.branches)
        for (const auto& c : b.steps) skip(inst, t, c);
}

progress engine_impl::drive_node(instance& inst, tx& t, const node& n) {
    auto& u = inst.state.units[n.name];
    if (u.status == step_status::pending) {
        if (halted(inst)) return progress::blocked;
        if (n.when && !n.when(*inst.data)) {
            skip(inst, t, n);
            return progress::done;
        }
    }
    switch (n.kind) {
        case node_kind::local:
        case node_kind::remote: {
            // An async local step recorded as running but not running here (after a restart or a
            // reload) is started again.
            if (u.status == step_status::running && n.forward.kind == action::how::local_async &&
                !is_live(inst, t, n.name))
                u.status = step_status::pending;
            if (u.status == step_status::pending) start_attempt(inst, t, n, n.name);
            return progress_of(inst.state.units[n.name].status);
        }
        case node_kind::wait: {
            if (u.status == step_status::pending) start_wait(inst, t, n, n.name);
            if (inst.state.units[n.name].status == step_status::waiting)
                try_consume_signal(inst, t, n, n.name);
            return progress_of(inst.state.units[n.name].status);
        }
        case node_kind::parallel: {
            if (u.status == step_status::pending) {
                u.status = step_status::running;
                u.started_at = t.now;
                history(inst, t, "step_started", n.name, 0, json{{"branches", n.branches.size()}});
            }
            if (u.status != step_status::running) return progress_of(u.status);
            bool all_done = true;
            bool failed = false;
            for (const auto& b : n.branches) {
                const auto p = drive_sequence(inst, t, b.steps);
                if (p == progress::failed) failed = true;
                if (p != progress::done) all_done = false;
            }
            auto& g = inst.state.units[n.name];
            if (failed) {
                g.status = step_status::failed;
                g.finished_at = t.now;
                g.error = "a branch failed";
                history(inst, t, "step_failed", n.name, 0, json{{"error", g.error}});
                return progress::failed;
            }
            if (all_done) {
                complete_unit(inst, t, n, n.name);
                return progress::done;
            }
            return progress::blocked;
        }
        case node_kind::for_each: return drive_for_each(inst, t, n);
    }
    return progress::blocked;
}

progress engine_impl::drive_for_each(instance& inst, tx& t, const node& n) {
    {
        auto& g = inst.state.units[n.name];
        if (g.status == step_status::pending) {
            g.status = step_status::running;
            g.started_at = t.now;
            g.attempts = 1;
            auto items = n.items(*inst.data);
            if (!items) {
                g.status = step_status::failed;
                g.finished_at = t.now;
                g.error = items.error().what();
                history(inst, t, "step_failed", n.name, 1, json{{"error", g.error}});
                unit_failed(inst, t, n, n.name, items.error());
                return progress::failed;
            }
            g.items = std::move(items).value();
            history(inst, t, "step_started", n.name, 1, json{{"items", g.items->size()}});
        }
        if (g.status != step_status::running) return progress_of(g.status);
    }
    const std::size_t count = inst.state.units[n.name].items->size();
    const std::size_t chunk = n.chunk_size ? n.chunk_size : std::max<std::size_t>(count, 1);
    auto tally = [&](std::size_t& settled, bool& any_failed) {
        settled = 0;
        any_failed = false;
        for (std::size_t i = 0; i < count; ++i) {
            const auto& iu = inst.state.units[item_key(n.name, i)];
            if (is_done(iu.status)) ++settled;
            if (iu.status == step_status::failed) any_failed = true;
        }
    };
    std::size_t settled = 0;
    bool any_failed = false;
    tally(settled, any_failed);
    const bool fail_fast = n.policy == for_each_policy::fail_fast;
    if (!halted(inst) && !(fail_fast && any_failed) && settled < count) {
        // The current chunk is the first with an unsettled item.
        std::size_t first = 0;
        while (first < count && is_done(inst.state.units[item_key(n.name, first)].status)) ++first;
        const std::size_t begin = (first / chunk) * chunk;
        const std::size_t end = std::min(count, begin + chunk);
        std::size_t in_flight = 0;
        for (std::size_t i = begin; i < end; ++i) {
            const auto s = inst.state.units[item_key(n.name, i)].status;
            if (s == step_status::running || s == step_status::retrying) ++in_flight;
        }
        for (std::size_t i = begin; i < end && in_flight < n.concurrency && !halted(inst); ++i) {
            const auto key = item_key(n.name, i);
            auto& iu = inst.state.units[key];
            if (iu.status == step_status::running && n.forward.kind == action::how::local_async &&
                !is_live(inst, t, key))
                iu.status = step_status::pending;
            if (iu.status != step_status::pending) continue;
            start_attempt(inst, t, n, key);
            const auto s = inst.state.units[key].status;
            if (s == step_status::running || s == step_status::retrying) ++in_flight;
            if (s == step_status::pending)
                break;  // held back (rate limit or one local step per commit)
        }
        tally(settled, any_failed);
    }
    auto& g = inst.state.units[n.name];
    if (fail_fast && any_failed) {
        g.status = step_status::failed;
        g.finished_at = t.now;
        g.error = "an item failed";
        history(inst, t, "step_failed", n.name, 1, json{{"error", g.error}});
        return progress::failed;
    }
    if (settled < count) return progress::blocked;
    std::size_t failed_items = 0;
    if (n.on_results || n.policy == for_each_policy::continue_on_failure) {
        std::vector<item_result> results;
        results.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const auto& iu = inst.state.units[item_key(n.name, i)];
            if (iu.status == step_status::failed) ++failed_items;
            results.push_back({i, (*g.items)[i], iu.status, iu.attempts, iu.error});
        }
        if (n.on_results) {
            if (auto r = n.on_results(*inst.data, results); !r) {
                auto& gg = inst.state.units[n.name];
                gg.status = step_status::failed;
                gg.finished_at = t.now;
                gg.error = r.error().what();
                history(inst, t, "step_failed", n.name, 1, json{{"error", gg.error}});
                unit_failed(inst, t, n, n.name, r.error());
                return progress::failed;
            }
        }
    }
    complete_unit(inst, t, n, n.name);
    if (failed_items)
        inst.state.units[n.name].error = fmt::format("{} of {} items failed", failed_items, count);
    return progress::done;
}

void engine_impl::start_attempt(instance& inst, tx& t, const node& n, const std::string& key) {
    const action& a = n.forward;
    if (a.kind == action::how::local && t.local_ran) {
        t.need_continue = true;  // one local step per transition: its result is committed first
        return;
    }
    auto& u = inst.state.units[key];
    std::optional<error> refused;
    if (a.kind == action::how::remote) {
        auto ep = endpoint(a.endpoint);
        if (auto wait = ep->bucket.try_acquire(t.now)) {
            t.wake_after = t.wake_after ? std::min(*t.wake_after, *wait) : *wait;
            return;
        }
        if (!ep->breaker.allow(t.now))
            refused = error{errc::circuit_open,
                            fmt::format("circuit of endpoint '{}' is open", a.endpoint)};
    }
    ++u.attempts;
    u.status = step_status::running;
    if (!u.started_at) u.started_at = t.now;
    json detail = json::object();
    if (a.kind == action::how::remote) detail["endpoint"] = a.endpoint;
    history(inst, t, "step_started", key, u.attempts, std::move(detail));
    if (refused) {
        attempt_done(inst, t, n, key, std::move(refused));
        return;
    }
    auto ctx = context(inst, key, u.attempts, false);
    switch (a.kind) {
        case action::how::local: {
            t.local_ran = true;
            auto r = a.local(*inst.data, item_of(inst, key), ctx);
            attempt_done(inst, t, n, key, r ? std::nullopt : std::optional<error>(r.error()));
            return;
        }
        case action::how::local_async: {
            t.launches.push_back({key, u.attempts, false});
            if (n.timeout)
                set_timer(inst, t, fmt::format("timeout|{}|{}", key, u.attempts),
                          t.now + *n.timeout,
                          json{{"kind", "timeout"}, {"unit", key}, {"attempt", u.attempts}});
            return;
        }
        case action::how::remote: {
            auto cmd = a.make_command(*inst.data, item_of(inst, key), ctx);
            if (!cmd) {
                attempt_done(inst, t, n, key, cmd.error());
                return;
            }
            auto e = make_envelope(inst, key, u.attempts, message_kind::command,
                                   std::move(cmd).value(), std::string(ctx.idempotency_key()));
            t.outbox.push_back({inst.id, a.endpoint, false, std::move(e)});
            set_timer(inst, t, fmt::format("timeout|{}|{}", key, u.attempts),
                      t.now + n.timeout.value_or(options_.default_remote_timeout),
                      json{{"kind", "timeout"}, {"unit", key}, {"attempt", u.attempts}});
            return;
        }
        case action::how::none: break;
    }
    attempt_done(inst, t, n, key,
                 error{errc::invalid_definition, fmt::format("step '{}' has no action", key)});
}

void engine_impl::attempt_done(instance& inst, tx& t, const node& n, const std::string& key,
                               std::optional<error> err, bool timed_out) {
    auto& u = inst.state.units[key];
    clear_unit_timers(inst, t, key);
    if (!err) {
        complete_unit(inst, t, n, key);
        return;
    }
    u.error = err->what();
    // A remote attempt that timed out or failed transiently may still take effect: a duplicate of
    // its command can be handled after the failure reply was sent. Such a step is compensated if
    // the saga compensates (the participant's tombstone refuses a copy arriving after the undo).
    if (timed_out || (err->transient() && n.forward.kind == action::how::remote))
        u.uncertain = true;
    history(inst, t, "attempt_failed", key, u.attempts,
            json{{"error", u.error}, {"transient", err->transient()}});
    const auto policy = retry_for(inst, n);
    if (err->transient() && !u.abandoned && !halted(inst) && policy.allows_another(u.attempts)) {
        u.status = step_status::retrying;
        const auto delay = policy.backoff(u.attempts, seed_of(options_.seed, inst.id, key));
        set_timer(inst, t, fmt::format("retry|{}|{}", key, u.attempts), t.now + delay,
                  json{{"kind", "retry"}, {"unit", key}, {"attempt", u.attempts}});
        history(inst, t, "retry_scheduled", key, u.attempts, json{{"delay_ms", delay.count()}});
        return;
    }
    u.status = step_status::failed;
    u.finished_at = t.now;
    if (u.uncertain) u.seq = ++inst.state.seq;  // may have taken effect: compensate it in order
    history(inst, t, "step_failed", key, u.attempts, json{{"error", u.error}});
    unit_failed(inst, t, n, key, *err);
}

void engine_impl::complete_unit(instance& inst, tx& t, const node& n, const std::string& key) {
    auto& u = inst.state.units[key];
    u.status = step_status::completed;
    u.seq = ++inst.state.seq;
    u.finished_at = t.now;
    u.error.clear();
    clear_unit_timers(inst, t, key);
    json detail = json::object();
    if (u.started_at) detail["duration_ms"] = ms_between(*u.started_at, t.now);
    history(inst, t, "step_completed", key, u.attempts, std::move(detail));
    if (n.pivot && !item_index(key)) {
        inst.state.pivot_passed = true;
        history(inst, t, "pivot_passed", key);
    }
}

void engine_impl::unit_failed(instance& inst, tx& t, const node& n, const std::string& key,
                              const error& err) {
    if (item_index(key) && n.policy == for_each_policy::continue_on_failure) return;
    fail_saga(inst, t, fmt::format("step '{}' failed: {}", key, err.what()));
}

void engine_impl::fail_saga(instance& inst, tx& t, const std::string& reason) {
    auto& st = inst.state;
    if (st.compensating || st.forward_failed) return;
    if (st.pivot_passed) {
        st.forward_failed = true;
        st.error = reason;
        history(inst, t, "forward_failed", {}, 0, json{{"error", reason}});
        return;
    }
    begin_compensation(inst, t, reason);
}

void engine_impl::begin_compensation(instance& inst, tx& t, const std::string& reason) {
    auto& st = inst.state;
    st.compensating = true;
    st.error = reason;
    history(inst, t, "compensation_started", {}, 0, json{{"reason", reason}});
    for (auto& [key, u] : st.units) {
        switch (u.status) {
            case step_status::waiting:
                u.status = step_status::skipped;
                u.finished_at = t.now;
                clear_unit_timers(inst, t, key);
                history(inst, t, "step_abandoned", key, u.attempts);
                break;
            case step_status::pending:
                // Attempted before, its retry due but not started (the retry's timer and the
                // cancel in one transition): like a retrying step, it may have taken effect.
                if (u.attempts == 0) break;
                [[fallthrough]];
            case step_status::retrying:
                u.status = step_status::failed;
                u.finished_at = t.now;
                if (u.uncertain) u.seq = ++st.seq;
                clear_unit_timers(inst, t, key);
                history(inst, t, "step_abandoned", key, u.attempts);
                break;
            case step_status::running:
                if (!item_index(key) && st.units.size() && node_of(inst, key) &&
                    (node_of(inst, key)->kind == node_kind::parallel ||
                     node_of(inst, key)->kind == node_kind::for_each)) {
                    u.status = step_status::failed;  // a group: its members settle on their own
                    u.finished_at = t.now;
                    break;
                }
                u.abandoned = true;  // let it settle: its reply decides whether it is compensated
                break;
            default: break;
        }
    }
}

void engine_impl::start_wait(instance& inst, tx& t, const node& n, const std::string& key) {
    auto& u = inst.state.units[key];
    u.status = step_status::waiting;
    u.attempts = 1;
    u.started_at = t.now;
    history(inst, t, "step_waiting", key, 1, json{{"signal", n.signal}});
    if (n.deadline)
        set_timer(inst, t, fmt::format("deadline|{}", key), t.now + *n.deadline,
                  json{{"kind", "deadline"}, {"unit", key}, {"attempt", 1}});
}

void engine_impl::try_consume_signal(instance& inst, tx& t, const node& n, const std::string& key) {
    auto it = inst.state.signals.find(n.signal);
    if (it == inst.state.signals.end() || it->second.empty()) return;
    json payload = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) inst.state.signals.erase(it);
    history(inst, t, "signal_consumed", key, 1, json{{"signal", n.signal}});
    std::optional<error> err;
    if (n.on_signal) {
        auto ctx = context(inst, key, 1, false);
        if (auto r = n.on_signal(*inst.data, nullptr, payload, ctx); !r) err = r.error();
    }
    if (!err) {
        complete_unit(inst, t, n, key);
        return;
    }
    auto& u = inst.state.units[key];
    clear_unit_timers(inst, t, key);
    u.status = step_status::failed;
    u.error = err->what();
    u.finished_at = t.now;
    history(inst, t, "step_failed", key, 1, json{{"error", u.error}});
    unit_failed(inst, t, n, key, *err);
}

void engine_impl::drive_compensation(instance& inst, tx& t) {
    auto& st = inst.state;
    const std::string* best = nullptr;
    std::uint64_t best_seq = 0;
    for (const auto& [key, u] : st.units) {
        if (u.status == step_status::compensation_failed) {
            // It failed while the saga was paused.
            settle(inst, t, saga_status::compensation_failed, "saga_compensation_failed");
            return;
        }
        if (u.status == step_status::running || u.status == step_status::compensating)
            return;  // settle first
        const bool candidate =
            u.status == step_status::completed || (u.status == step_status::failed && u.uncertain);
        if (!candidate || u.seq == 0 || u.seq < best_seq) continue;
        const node* n = node_of(inst, key);
        if (!n || !compensable(*n, key)) continue;
        best = &key;
        best_seq = u.seq;
    }
    if (!best) {
        if (st.cancel_requested) {
            settle(inst, t, saga_status::cancelled, "saga_cancelled");
        } else {
            settle(inst, t, saga_status::compensated, "saga_compensated");
        }
        return;
    }
    const std::string key = *best;
    start_compensation(inst, t, *node_of(inst, key), key);
}

void engine_impl::start_compensation(instance& inst, tx& t, const node& n, const std::string& key) {
    const action& a = n.compensation;
    if (a.kind == action::how::local && t.local_ran) {
        t.need_continue = true;
        return;
    }
    if (a.kind == action::how::remote) {
        // Compensations respect the endpoint's rate limit but not its circuit breaker: an undo is
        // never refused locally, and its own retry policy paces it.
        if (auto wait = endpoint(a.endpoint)->bucket.try_acquire(t.now)) {
            t.wake_after = t.wake_after ? std::min(*t.wake_after, *wait) : *wait;
            return;
        }
    }
    auto& u = inst.state.units[key];
    ++u.compensation_attempts;
    u.status = step_status::compensating;
    history(inst, t, "compensation_step_started", key, u.compensation_attempts);
    auto ctx = context(inst, key, u.compensation_attempts, true);
    switch (a.kind) {
        case action::how::local: {
            t.local_ran = true;
            auto r = a.local(*inst.data, item_of(inst, key), ctx);
            compensation_done(inst, t, n, key, r ? std::nullopt : std::optional<error>(r.error()));
            return;
        }
        case action::how::local_async: {
            t.launches.push_back({key, u.compensation_attempts, true});
            if (n.timeout)
                set_timer(inst, t,
                          fmt::format("compensation_timeout|{}|{}", key, u.compensation_attempts),
                          t.now + *n.timeout,
                          json{{"kind", "compensation_timeout"},
                               {"unit", key},
                               {"attempt", u.compensation_attempts}});
            return;
        }
        case action::how::remote: {
            auto cmd = a.make_command(*inst.data, item_of(inst, key), ctx);
            if (!cmd) {
                compensation_done(inst, t, n, key, cmd.error());
                return;
            }
            auto e = make_envelope(inst, key, u.compensation_attempts, message_kind::compensation,
                                   std::move(cmd).value(), std::string(ctx.idempotency_key()));
            e.headers["compensates"] = idempotency_key_of(inst, key, false);
            t.outbox.push_back({inst.id, a.endpoint, false, std::move(e)});
            set_timer(inst, t,
                      fmt::format("compensation_timeout|{}|{}", key, u.compensation_attempts),
                      t.now + n.timeout.value_or(options_.default_remote_timeout),
                      json{{"kind", "compensation_timeout"},
                           {"unit", key},
                           {"attempt", u.compensation_attempts}});
            return;
        }
        case action::how::none: break;
    }
}

void engine_impl::compensation_done(instance& inst, tx& t, const node& n, const std::string& key,
                                    std::optional<error> err) {
    auto& u = inst.state.units[key];
    clear_unit_timers(inst, t, key);
    if (!err) {
        u.status = step_status::compensated;  // a forward error, if any, stays visible
        u.finished_at = t.now;
        history(inst, t, "step_compensated", key, u.compensation_attempts);
        return;
    }
    u.error = err->what();
    history(inst, t, "compensation_attempt_failed", key, u.compensation_attempts,
            json{{"error", u.error}, {"transient", err->transient()}});
    const auto policy = compensation_retry_for(inst, n);
    if (err->transient() && policy.allows_another(u.compensation_attempts)) {
        const auto delay =
            policy.backoff(u.compensation_attempts, seed_of(options_.seed, inst.id, key + "#c"));
        set_timer(inst, t, fmt::format("compensation_retry|{}|{}", key, u.compensation_attempts),
                  t.now + delay,
                  json{{"kind", "compensation_retry"},
                       {"unit", key},
                       {"attempt", u.compensation_attempts}});
        history(inst, t, "compensation_retry_scheduled", key, u.compensation_attempts,
                json{{"delay_ms", delay.count()}});
        return;
    }
    u.status = step_status::compensation_failed;
    u.finished_at = t.now;
    inst.state.error = fmt::format("compensation of step '{}' failed: {}", key, u.error);
    history(inst, t, "compensation_failed", key, u.compensation_attempts, json{{"error", u.error}});
    // A paused saga stays paused: it settles when it moves again (drive_compensation).
    if (inst.record.status != saga_status::paused)
        settle(inst, t, saga_status::compensation_failed, "saga_compensation_failed");
}

// ---- helpers -------------------------------------------------------------------------------

void engine_impl::history(instance& inst, tx& t, std::string event, std::string step,
                          std::uint32_t attempt, json detail) {
    t.history.push_back(
        {inst.id, 0, t.now, std::move(event), std::move(step), attempt, std::move(detail)});
}

void engine_impl::set_timer(instance& inst, tx& t, std::string id, time_point due, json payload) {
    std::erase(t.timers_cleared, id);
    t.timers_set.push_back({inst.id, std::move(id), due, std::move(payload)});
}

void engine_impl::clear_unit_timers(instance& inst, tx& t, const std::string& key) {
    // Only armed (or about to be armed) timers exist; clear those of this unit.
    auto clear = [&](const std::string& id) {
        if (inst.armed.contains(id)) t.timers_cleared.push_back(id);
        std::erase_if(t.timers_set, [&](const timer_record& r) { return r.id == id; });
    };
    std::vector<std::string> ids;
    for (const auto& [id, cid] : inst.armed) ids.push_back(id);
    for (const auto& r : t.timers_set) ids.push_back(r.id);
    for (const auto& id : ids) {
        const auto first = id.find('|');
        if (first == std::string::npos) continue;
        const auto second = id.find('|', first + 1);
        const auto unit = id.substr(
            first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
        if (unit == key) clear(id);
    }
}

const node* engine_impl::node_of(const instance& inst, std::string_view key) const {
    if (!inst.def) return nullptr;
    auto it = inst.def->nodes.find(std::string(base_name(key)));
    return it == inst.def->nodes.end() ? nullptr : it->second;
}

const json* engine_impl::item_of(const instance& inst, const std::string& key) const {
    auto idx = item_index(key);
    if (!idx) return nullptr;
    auto it = inst.state.units.find(std::string(base_name(key)));
    if (it == inst.state.units.end() || !it->second.items || *idx >= it->second.items->size())
        return nullptr;
    return &(*it->second.items)[*idx];
}

std::string engine_impl::idempotency_key_of(const instance& inst, const std::string& key,
                                            bool compensating) const {
    // `<saga id>/<step>` and `<saga id>/<step>/compensate`; an operator retry after a permanent
    // failure (which had no effect) starts a new generation, "~r<n>", so that participants that
    // recorded the failed answer under the old key carry out the command this time.
    auto it = inst.state.units.find(key);
    const std::uint32_t fg = it == inst.state.units.end() ? 0 : it->second.forward_generation;
    auto k = fg ? fmt::format("{}/{}~r{}", inst.id, key, fg) : fmt::format("{}/{}", inst.id, key);
    if (!compensating) return k;
    k += "/compensate";
    const std::uint32_t cg = it == inst.state.units.end() ? 0 : it->second.compensation_generation;
    if (cg) k += fmt::format("~r{}", cg);
    return k;
}

step_context engine_impl::context(const instance& inst, const std::string& key,
                                  std::uint32_t attempt, bool compensating) const {
    return step_context(inst.id, key, attempt, idempotency_key_of(inst, key, compensating),
                        inst.record.correlation_key, clock_->now(), item_index(key), compensating);
}

envelope engine_impl::make_envelope(const instance& inst, const std::string& key,
                                    std::uint32_t attempt, message_kind kind, command cmd,
                                    std::string idempotency_key) const {
    envelope e;
    e.message_id = new_id();
    e.kind = kind;
    e.type = std::move(cmd.type);
    e.saga_id = inst.id;
    e.step = key;
    e.attempt = attempt;
    e.idempotency_key = std::move(idempotency_key);
    e.reply_to = options_.endpoint;
    e.correlation_id = inst.record.correlation_key;
    e.traceparent = step_traceparent(inst, key, kind == message_kind::compensation);
    e.payload = std::move(cmd.payload);
    return e;
}

retry_policy engine_impl::retry_for(const instance& inst, const node& n) const {
    if (n.retry) return *n.retry;
    if (inst.def->after_pivot.contains(&n)) return retry_policy::forever();
    return inst.def->m->default_retry;
}

retry_policy engine_impl::compensation_retry_for(const instance& inst, const node& n) const {
    return n.compensation_retry ? *n.compensation_retry : inst.def->m->default_compensation_retry;
}

bool engine_impl::has_observers() const {
    std::lock_guard lock(mutex_);
    return !observers_.empty();
}

void engine_impl::notify(const instance_record& record, std::span<const history_entry> entries,
                         const instance_state& state) {
    telemetry(record, entries, state);
    std::vector<std::shared_ptr<observer>> observers;
    {
        std::lock_guard lock(mutex_);
        observers = observers_;
    }
    for (const auto& o : observers) {
        try {
            o->on_transition(record, entries);
        } catch (...) {
        }
    }
}

// ---- queries and waiters ---------------------------------------------------------------------

instance_view engine_impl::make_view(const instance_record& record,
                                     const instance_state& state) const {
    instance_view v;
    v.id = record.id;
    v.definition = record.definition;
    v.definition_version = record.definition_version;
    v.version = record.version;
    v.status = record.status;
    v.correlation_key = record.correlation_key;
    v.data = record.data;
    v.error = state.error;
    v.created_at = record.created_at;
    v.updated_at = record.updated_at;
    auto def = find_definition(record.definition, record.definition_version);
    describe_steps(v, def ? &def->m->steps : nullptr, state.units, record.status);
    return v;
}

result<instance_view> engine_impl::query(std::string_view id) {
    SAGA_TRY(auto rec, store_->load(id));
    SAGA_TRY(auto state, instance_state_from_json(rec.state));
    return make_view(rec, state);
}

void engine_impl::add_waiter(const std::string& id, std::function<void(result<instance_view>)> fn) {
    auto once = std::make_shared<std::function<void(result<instance_view>)>>(
        [fn = std::move(fn),
         done = std::make_shared<std::atomic<bool>>(false)](result<instance_view> r) {
            if (!done->exchange(true)) fn(std::move(r));
        });
    {
        std::lock_guard lock(mutex_);
        waiters_[id].push_back(once);
    }
    auto v = query(id);
    if (!v || is_settled(v.value().status)) settle_waiters(id, v);
}

bool engine_impl::has_waiters(const std::string& id) const {
    std::lock_guard lock(mutex_);
    return waiters_.contains(id);
}

void engine_impl::settle_waiters(const std::string& id, const result<instance_view>& view) {
    std::vector<std::shared_ptr<std::function<void(result<instance_view>)>>> ws;
    {
        std::lock_guard lock(mutex_);
        auto it = waiters_.find(id);
        if (it == waiters_.end()) return;
        ws = std::move(it->second);
        waiters_.erase(it);
    }
    for (auto& w : ws) (*w)(view);
}

// ---- transport, recovery, running -------------------------------------------------------------

void engine_impl::on_delivery(const std::shared_ptr<delivery>& d) {
    const auto& e = d->message();
    switch (e.kind) {
        case message_kind::reply: {
            if (e.saga_id.empty()) {
                note_ignored_reply(*metrics_, *log_, options_.log_level, clock_->now(), e,
                                   "unknown_saga");
                d->ack();
                return;
            }
            input in{input::kind::reply};
            in.message = e;
            in.from = d;
            post_input(e.saga_id, std::move(in));
            return;
        }
        case message_kind::event: {
            // An event is a signal named by its type, for its saga or for every open saga with its
            // correlation key.
            std::vector<std::string> targets;
            if (!e.saga_id.empty()) {
                targets.push_back(e.saga_id);
            } else if (!e.correlation_id.empty()) {
                list_filter f;
                f.correlation_key = e.correlation_id;
                f.statuses = {saga_status::running, saga_status::waiting, saga_status::paused};
                auto found = store_->list(f);
                if (!found) {
                    d->nack(std::chrono::seconds{1});
                    return;
                }
                for (const auto& r : found.value()) targets.push_back(r.id);
            }
            for (const auto& id : targets) {
                auto r = signal(id, e.type, e.payload, e.message_id);
                if (!r && r.error() != errc::saga_finished && r.error() != errc::not_found) {
                    d->nack(std::chrono::seconds{1});
                    return;
                }
            }
            d->ack();
            return;
        }
        default: d->ack(); return;
    }
}

void engine_impl::recover() {
    list_filter f;
    f.statuses = {saga_status::running, saga_status::waiting, saga_status::compensating};
    f.limit = 1000;
    for (;;) {
        auto page = store_->list(f);
        if (!page) {
            warn(fmt::format("recovery could not list instances: {}", page.error().what()));
            break;
        }
        for (const auto& r : page.value()) post_input(r.id, input{});
        if (page.value().size() < f.limit) break;
        f.after_id = page.value().back().id;
    }
    if (auto timers = store_->timers(); timers) {
        for (const auto& tr : timers.value()) {
            auto inst = get_instance(tr.saga_id);
            asio::post(inst->strand, [this, inst, tr] {
                if (!inst->armed.contains(tr.id)) arm(inst, tr);
            });
        }
    } else {
        warn(fmt::format("recovery could not read timers: {}", timers.error().what()));
    }
    if (auto out = store_->pending_outbox(100000); out) {
        for (auto& o : out.value()) release(std::move(o), 0);
    } else {
        warn(fmt::format("recovery could not read the outbox: {}", out.error().what()));
    }
}

void engine_impl::sweep() {
    if (stopping_) return;
    const auto now = clock_->now();
    if (auto due = store_->timers(now); due) {
        for (const auto& tr : due.value()) {
            auto inst = get_instance(tr.saga_id);
            asio::post(inst->strand, [this, inst, tr] {
                if (!inst->armed.contains(tr.id)) arm(inst, tr);
            });
        }
    } else {
        warn(fmt::format("sweep could not read timers: {}", due.error().what()));
    }
    list_filter f;
    f.statuses = {saga_status::running, saga_status::waiting, saga_status::compensating};
    f.updated_before = now - options_.sweep_interval;
    f.limit = 1000;
    for (;;) {
        auto page = store_->list(f);
        if (!page) {
            warn(fmt::format("sweep could not list instances: {}", page.error().what()));
            break;
        }
        for (const auto& r : page.value()) {
            bool cached = false;
            {
                std::lock_guard lock(mutex_);
                cached = instances_.contains(r.id);
            }
            if (!cached) post_input(r.id, input{});
        }
        if (page.value().size() < f.limit) break;
        f.after_id = page.value().back().id;
    }
    clock_->call_at(now + options_.sweep_interval, [life = lifeline_] {
        with_engine(life,
                    [](engine_impl& self) { asio::post(self.ctx_, [&self] { self.sweep(); }); });
    });
}

result<void> engine_impl::open() {
    std::lock_guard lock(open_mutex_);
    if (opened_) return success();
    SAGA_TRY(auto sub, transport_->consume(
                           options_.endpoint, ctx_.get_executor(),
                           [life = lifeline_](std::shared_ptr<delivery> d) {
                               with_engine(life, [&](engine_impl& self) { self.on_delivery(d); });
                           },
                           options_.consumer));
    subscription_ = std::move(sub);
    opened_ = true;
    recover();
    if (options_.sweep_interval > duration{0} && !sweeping_) {
        sweeping_ = true;
        clock_->call_at(clock_->now() + options_.sweep_interval, [life = lifeline_] {
            with_engine(
                life, [](engine_impl& self) { asio::post(self.ctx_, [&self] { self.sweep(); }); });
        });
    }
    return success();
}

result<void> engine_impl::run() {
    // A stop() that came before run() got going (say, from the thread that started it) is not
    // lost: run() returns at once instead of blocking for ever.
    auto stopped_early = [this] {
        std::lock_guard lock(run_mutex_);
        return std::exchange(stop_pending_, false);
    };
    if (stopped_early()) return success();
    SAGA_TRY(open());
    {
        std::lock_guard lock(run_mutex_);
        if (!std::exchange(stop_pending_, false)) {
            stopping_ = false;
            ctx_.restart();
            work_.emplace(ctx_.get_executor());
            running_ = true;
        } else {
            running_ = false;
        }
    }
    if (!running_) {
        close_consumer();
        return success();
    }
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < options_.workers; ++i) threads.emplace_back([this] { ctx_.run(); });
    ctx_.run();
    for (auto& th : threads) th.join();
    std::lock_guard lock(run_mutex_);
    running_ = false;
    stop_pending_ = false;
    return success();
}

std::size_t engine_impl::run_until_idle() {
    if (auto r = open(); !r) {
        warn(r.error().what());
        return 0;
    }
    ctx_.restart();
    return ctx_.run();
}

result<void> engine_impl::run_until_settled(duration limit) {
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

void engine_impl::close_consumer() {
    std::unique_ptr<subscription> sub;
    {
        std::lock_guard lock(open_mutex_);
        sub = std::move(subscription_);
        opened_ = false;
    }
    if (sub) sub->stop();
}

void engine_impl::stop() {
    stopping_ = true;
    scheduler_->stop();
    close_consumer();
    {
        std::lock_guard lock(run_mutex_);
        if (!running_) stop_pending_ = true;
        work_.reset();
    }
    ctx_.stop();
}

}  // namespace detail

// ---- the public engine ---------------------------------------------------------------------

engine::engine(std::shared_ptr<state_store> store, std::shared_ptr<transport> transport,
               engine_options options)
    : impl_(std::make_shared<detail::engine_impl>(std::move(store), std::move(transport),
                                                  std::move(options))) {}

engine::engine(std::shared_ptr<journal_store> store, std::shared_ptr<transport> transport,
               engine_options options)
    : impl_(runtime::make_engine_core_v2(std::move(store), std::move(transport),
                                         std::move(options))) {}

engine::~engine() {
    if (impl_) impl_->stop();
}

result<void> engine::add_model(std::shared_ptr<const detail::model> m) {
    return impl_->add_model(std::move(m));
}

// JSON handed in by the caller may come from anywhere (a request body, a message): it is
// bounded like every input, before anything copies it (a copy recurses once per level).
result<std::string> engine::start_json(std::string_view name, nlohmann::json data,
                                       start_options options) {
    SAGA_TRY(check_json_depth(data, "the saga data"));
    return impl_->start(name, std::move(data), std::move(options));
}

result<void> engine::signal(std::string_view id, std::string_view name, nlohmann::json payload) {
    SAGA_TRY(check_json_depth(payload, fmt::format("the payload of signal '{}'", name)));
    return impl_->signal(id, name, std::move(payload));
}

result<instance_view> engine::query(std::string_view id) {
    return impl_->query(id);
}

result<void> engine::cancel(std::string_view id, std::string_view reason) {
    return impl_->cancel(id, reason, nullptr);
}

result<void> engine::cancel(std::string_view id, const operator_note& note) {
    if (note.who.empty() || note.why.empty())
        return error{errc::invalid_argument,
                     "cancel is an operator action here: say who does it and why"};
    return impl_->cancel(id, note.why, &note);
}

result<void> engine::pause(std::string_view id, const operator_note& note) {
    return impl_->pause(id, note);
}

result<void> engine::resume(std::string_view id, const operator_note& note) {
    return impl_->resume(id, note);
}

result<void> engine::retry(std::string_view id, const operator_note& note) {
    return impl_->retry(id, note);
}

result<void> engine::skip_step(std::string_view id, std::string_view step,
                               const operator_note& note) {
    return impl_->skip_step(id, step, note);
}

result<std::size_t> engine::release_lock(std::string_view correlation_key,
                                         const operator_note& note) {
    return impl_->release_lock(correlation_key, note);
}

result<std::vector<instance_record>> engine::list(const list_filter& filter) {
    return impl_->list(filter);
}

result<std::vector<history_entry>> engine::history(std::string_view id) {
    return impl_->history_of(id);
}

metrics_registry& engine::metrics() {
    return impl_->metrics();
}

result<instance_view> engine::wait(std::string_view id) {
    auto p = std::make_shared<std::promise<result<instance_view>>>();
    auto f = p->get_future();
    impl_->add_waiter(std::string(id),
                      [p](result<instance_view> r) { p->set_value(std::move(r)); });
    return f.get();
}

void engine::add_waiter(const std::string& id, std::function<void(result<instance_view>)> fn) {
    impl_->add_waiter(id, std::move(fn));
}

result<void> engine::schedule(schedule_options options) {
    return impl_->schedule(std::move(options));
}

std::vector<blocked_instance> engine::blocked() const {
    return impl_->blocked();
}

void engine::set_endpoint_policy(const std::string& endpoint, endpoint_policy policy) {
    impl_->set_endpoint_policy(endpoint, policy);
}

circuit_state engine::endpoint_circuit(const std::string& endpoint) {
    return impl_->endpoint_circuit(endpoint);
}

void engine::add_observer(std::shared_ptr<observer> o) {
    impl_->add_observer(std::move(o));
}

result<void> engine::open() {
    return impl_->open();
}

result<void> engine::run() {
    return impl_->run();
}

std::size_t engine::run_until_idle() {
    return impl_->run_until_idle();
}

result<void> engine::run_until_settled(duration limit) {
    return impl_->run_until_settled(limit);
}

void engine::stop() {
    impl_->stop();
}

boost::asio::any_io_executor engine::get_executor() {
    return impl_->executor();
}

saga::clock& engine::clock() {
    return impl_->clock();
}

std::size_t engine::active_instances() const {
    return impl_->active_instances();
}

}  // namespace saga
