#pragma once
// Runs one saga twice from one script: on today's engine (in memory, on a virtual clock) and on
// the pure machine (tests/machine/machine_sim.hpp, with the same participants answering by
// hand), so that a test can compare what users see of each: today's history against
// legacy::to_history of the machine's journal, and today's logs, metrics and spans against
// telemetry::journal_telemetry fed with that journal.
//
// Both runs share the clock's start, the saga id, correlation key and trace context, the
// remote timeout and the jitter seed; with jitter-free compensation retry policies (the
// definitions of the tests set them: the two engines seed a compensation's jitter
// differently), even times, delays and durations agree.

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <saga/inmemory/memory_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

#include "legacy/history.hpp"
#include "machine/machine_sim.hpp"
#include "scenarios/harness.hpp"
#include "telemetry/journal_telemetry.hpp"

namespace saga::test {

using namespace std::chrono_literals;

/// machine_sim's: the saga id, key and trace context of both runs.
inline const std::string twin_id = "s-1";
inline const std::string twin_key = "key-1";
inline const std::string twin_traceparent =
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// machine_sim's start time.
inline time_point twin_start() {
    return time_point{} + std::chrono::hours{1000};
}
/// A retry policy without jitter: both runs back off alike.
inline retry_policy steady(std::uint32_t attempts, duration initial = 1s) {
    return {.max_attempts = attempts, .initial_backoff = initial, .jitter = 0};
}

/// The participants of a scenario: a handler per (endpoint, command type), and which replies
/// get lost on the way back.
struct services {
    std::map<std::pair<std::string, std::string>, command_handler> handlers;
    std::function<bool(const std::string& type, std::uint32_t attempt)> lose_reply;

    services& on(std::string endpoint, std::string type, command_handler h) {
        handlers[{std::move(endpoint), std::move(type)}] = std::move(h);
        return *this;
    }
};
/// Each run gets its own services (handlers may keep state).
using services_factory = std::function<services()>;

inline command_handler succeed(nlohmann::json payload = nlohmann::json::object()) {
    return [payload](const envelope&) { return participant_reply::success(payload); };
}
inline command_handler refuse(std::string why) {
    return [why](const envelope&) { return participant_reply::permanent(why); };
}
/// Transient failures the first `n` calls, then success.
inline command_handler busy_first(int n) {
    auto calls = std::make_shared<int>(0);
    return [calls, n](const envelope&) {
        if ((*calls)++ < n) return participant_reply::transient("busy");
        return participant_reply::success();
    };
}

struct captured_logs final : log_sink {
    std::mutex mutex;
    std::vector<log_record> records;
    void write(const log_record& r) override {
        std::lock_guard lock(mutex);
        records.push_back(r);
    }
    /// The lines about sagas (not the engine's own warnings), as written.
    std::vector<std::string> saga_lines() {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        for (const auto& r : records)
            if (!r.saga_id.empty()) out.push_back(to_json_line(r));
        return out;
    }
};

struct captured_spans final : span_exporter {
    std::mutex mutex;
    std::vector<span> spans;
    void export_span(const span& s) override {
        std::lock_guard lock(mutex);
        spans.push_back(s);
    }
    std::vector<std::string> lines() {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        for (const auto& s : spans)
            out.push_back(fmt::format(
                "{} kind={} trace={} id={} parent={} start={} end={} ok={} status='{}' {}", s.name,
                s.kind, s.trace_id, s.span_id, s.parent_span_id, (s.start - twin_start()).count(),
                (s.end - twin_start()).count(), s.ok, s.status_message, s.attributes.dump()));
        return out;
    }
};

/// A history as comparable lines: event, step, attempt, detail and time (not the version: the
/// machine groups transitions differently).
inline std::vector<std::string> lines_of(const std::vector<history_entry>& h) {
    std::vector<std::string> out;
    for (const auto& e : h)
        out.push_back(fmt::format(
            "{}:{} #{} {} @{}ms", e.event, e.step, e.attempt, e.detail.dump(),
            std::chrono::duration_cast<std::chrono::milliseconds>(e.at - twin_start()).count()));
    return out;
}

/// The metric lines both runs make from histories (not the runtime's own figures: commit and
/// release times, gauges; nor the new counter of ignored inputs).
inline std::vector<std::string> metric_lines(const metrics_registry& m) {
    static const std::vector<std::string> runtime_families{
        "saga_transition_commit_seconds", "saga_outbox_lag_seconds", "saga_instances_in_flight",
        "saga_outbox_unreleased", "saga_circuit_state", "saga_replies_ignored_total", "saga_store_",
        // the transport's own (dead letters)
        "saga_messages_"};
    std::vector<std::string> out;
    std::string text = m.prometheus_text();
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        bool skip = line.empty();
        for (const auto& f : runtime_families)
            if (line.find(f) != std::string::npos) skip = true;
        if (!skip) out.push_back(std::move(line));
    }
    return out;
}

// ---- today's engine ---------------------------------------------------------------------------

class engine_run {
public:
    template <class Data>
    engine_run(const definition<Data>& d, const Data& data, services s) : services_(std::move(s)) {
        transport_ = std::make_shared<inmemory::memory_transport>(clock_);
        eng_ = std::make_unique<engine>(store_, transport_,
                                        engine_options{.workers = 1,
                                                       .clock = clock_,
                                                       .default_remote_timeout = 5s,
                                                       .seed = 7,  // machine_sim's
                                                       .log_sink = logs,
                                                       .log_level = log_level::debug,
                                                       .span_exporter = spans,
                                                       .metrics = metrics});
        REQUIRE(eng_->add(d));
        auto lossy = std::make_shared<dropping_transport>(
            transport_, [lose = services_.lose_reply](const std::string&, const envelope& e) {
                return e.kind == message_kind::reply && lose && lose(e.type, e.attempt);
            });
        std::map<std::string, std::unique_ptr<participant>> by_endpoint;
        for (const auto& [key, handler] : services_.handlers) {
            auto& p = by_endpoint[key.first];
            if (!p) p = std::make_unique<participant>(lossy, key.first);
            p->on(key.second, handler);
        }
        for (auto& [endpoint, p] : by_endpoint) {
            REQUIRE(p->start(eng_->get_executor()));
            participants_.push_back(std::move(p));
        }
        auto id = eng_->start(d.name(), data,
                              {.id = twin_id,
                               .correlation_key = twin_key,
                               .exclusive = true,
                               .traceparent = twin_traceparent});
        REQUIRE(id);
    }

    void idle() { eng_->run_until_idle(); }
    /// Moves the clock by `d`, handling what falls due on the way at its time.
    void advance(duration d) {
        const auto target = clock_->now() + d;
        idle();
        while (auto next = clock_->next_due()) {
            if (*next > target) break;
            clock_->advance_to_next();
            idle();
        }
        if (clock_->now() < target)
            clock_->advance(std::chrono::duration_cast<duration>(target - clock_->now()));
        idle();
    }
    void settle() { REQUIRE(eng_->run_until_settled()); }

    [[nodiscard]] engine& eng() { return *eng_; }
    [[nodiscard]] std::vector<history_entry> history() {
        auto h = eng_->history(twin_id);
        REQUIRE(h);
        return h.value();
    }
    [[nodiscard]] saga_status status() { return eng_->query(twin_id).value().status; }

    std::shared_ptr<captured_logs> logs = std::make_shared<captured_logs>();
    std::shared_ptr<captured_spans> spans = std::make_shared<captured_spans>();
    std::shared_ptr<metrics_registry> metrics = std::make_shared<metrics_registry>();

private:
    services services_;
    std::shared_ptr<virtual_clock> clock_ = std::make_shared<virtual_clock>(twin_start());
    std::shared_ptr<inmemory::memory_store> store_ = std::make_shared<inmemory::memory_store>();
    std::shared_ptr<inmemory::memory_transport> transport_;
    std::unique_ptr<engine> eng_;
    std::vector<std::unique_ptr<participant>> participants_;
};

// ---- the machine --------------------------------------------------------------------------------

class machine_run {
public:
    template <class Data>
    machine_run(const definition<Data>& d, const Data& data, services s)
        : services_(std::move(s)),
          sim_(d, data, twin_id),
          def_(machine::compile(d.model()).value()),
          name_(d.name()),
          version_(d.version()) {}

    /// Runs local steps and answers commands until nothing is left to do now.
    void idle() {
        for (int i = 0; i < 10000; ++i) {
            if (!sim_.locals.empty()) {
                const auto l = sim_.locals.front();
                sim_.locals.erase(sim_.locals.begin());
                sim_.feed(sim_.run_local(l));
                continue;
            }
            if (!sim_.sent.empty()) {
                const auto m = sim_.sent.front();
                sim_.sent.erase(sim_.sent.begin());
                answer(m);
                continue;
            }
            return;
        }
        FAIL("machine_run::idle does not settle");
    }
    /// Moves time by `d`, firing what falls due on the way at its time.
    void advance(duration d) {
        const auto target = sim_.now() + d;
        idle();
        while (auto w = machine::wake_at(sim_.state())) {
            if (*w > target || *w <= sim_.now()) break;
            sim_.advance(std::chrono::duration_cast<duration>(*w - sim_.now()));
            idle();
        }
        if (sim_.now() < target)
            sim_.advance(std::chrono::duration_cast<duration>(target - sim_.now()));
        idle();
    }
    /// Moves time to each wake-up until none is left (or none does anything: paused).
    void settle() {
        idle();
        for (int i = 0; i < 10000; ++i) {
            auto w = machine::wake_at(sim_.state());
            if (!w || *w <= sim_.now()) return;
            sim_.advance(std::chrono::duration_cast<duration>(*w - sim_.now()));
            idle();
        }
        FAIL("machine_run::settle does not settle");
    }
    result<void> feed(machine::input in) {
        auto d = sim_.feed(std::move(in));
        REQUIRE(d.outcomes.size() == 1);
        auto r = d.outcomes.front();
        idle();
        return r;
    }

    /// The journal as the store would hold it.
    [[nodiscard]] std::vector<saga::journal_record> journal() const {
        std::vector<saga::journal_record> out;
        std::uint64_t version = 0;
        for (const auto& r : sim_.journal()) {
            saga::journal_record rec;
            rec.saga_id = twin_id;
            rec.version = ++version;
            rec.at = r.at;
            rec.events = r.events;
            out.push_back(std::move(rec));
        }
        return out;
    }
    [[nodiscard]] std::vector<history_entry> history() const {
        const auto j = journal();
        return legacy::to_history(def_, j);
    }
    /// The instance after each record, replayed from the journal.
    [[nodiscard]] std::vector<machine::instance> states() const {
        std::vector<machine::instance> out;
        machine::instance st;
        st.id = twin_id;
        for (const auto& rec : journal()) {
            for (const auto& e : rec.events) machine::apply(*def_, st, e, rec.at);
            out.push_back(st);
        }
        return out;
    }
    /// The head after record `i`.
    [[nodiscard]] instance_head head(const machine::instance& after, std::uint64_t version) const {
        instance_head h;
        h.id = twin_id;
        h.definition = name_;
        h.definition_version = version_;
        h.status = after.status;
        h.correlation_key = after.correlation_key;
        h.exclusive = after.exclusive;
        h.version = version;
        h.created_at = after.created_at;
        h.updated_at = after.updated_at;
        return h;
    }
    /// Feeds every record to `t`: with the translator's entries (`exact`), or letting it make
    /// them from the record and the state after it.
    void feed(telemetry::journal_telemetry& t, bool exact) const {
        const auto j = journal();
        const auto s = states();
        legacy::history_translator tr(def_, twin_id);
        for (std::size_t i = 0; i < j.size(); ++i) {
            const auto h = head(s[i], j[i].version);
            if (exact)
                t.on_record(h, j[i], s[i], tr.translate(j[i]));
            else
                t.on_record(h, j[i], s[i]);
        }
    }

    [[nodiscard]] machine_sim& sim() { return sim_; }
    [[nodiscard]] const std::shared_ptr<const machine::compiled>& def() const { return def_; }
    [[nodiscard]] saga_status status() const { return sim_.state().status; }

private:
    void answer(const envelope& m) {
        const auto* n = def_->nodes.at(std::string(machine::base_name(m.step)));
        const auto& endpoint =
            m.kind == message_kind::compensation ? n->compensation.endpoint : n->forward.endpoint;
        participant_reply r;
        if (auto it = recorded_.find(m.idempotency_key); it != recorded_.end()) {
            r = it->second;
        } else if (auto h = services_.handlers.find({endpoint, m.type});
                   h != services_.handlers.end()) {
            r = h->second(m);
            if (r.status != reply_status::transient_failure) recorded_[m.idempotency_key] = r;
        } else {
            r = participant_reply::permanent(
                fmt::format("no handler for command type '{}' on '{}'", m.type, endpoint));
        }
        if (services_.lose_reply && services_.lose_reply(m.type, m.attempt)) return;
        machine::reply_input in;
        in.unit = m.step;
        in.attempt = m.attempt;
        auto parts = machine::parse_idempotency_key(m.idempotency_key, m.saga_id, m.step);
        REQUIRE(parts);
        in.dir = parts->dir;
        in.generation = parts->generation;
        in.status = r.status;
        in.error = r.error;
        in.payload = r.payload;
        in.message_id = "reply-of-" + m.message_id;
        sim_.feed(std::move(in));
    }

    services services_;
    machine_sim sim_;
    std::shared_ptr<const machine::compiled> def_;
    std::string name_;
    std::uint32_t version_;
    std::map<std::string, participant_reply> recorded_;
};

// ---- both -----------------------------------------------------------------------------------

/// One script, two runs. Every call does the same to both and checks that they answer alike.
class twin {
public:
    template <class Data>
    twin(const definition<Data>& d, const Data& data, const services_factory& make)
        : today(d, data, make()), v2(d, data, make()) {}

    void idle() {
        today.idle();
        v2.idle();
    }
    void advance(duration d) {
        today.advance(d);
        v2.advance(d);
    }
    void settle() {
        today.settle();
        v2.settle();
    }

    void signal(const std::string& name, nlohmann::json payload = nlohmann::json::object()) {
        const auto a = today.eng().signal(twin_id, name, payload);
        today.idle();
        const auto b = v2.feed(machine::signal_input{name, payload, {}});
        same(a, b);
    }
    void pause(const operator_note& n) {
        same(act([&] { return today.eng().pause(twin_id, n); }),
             v2.feed(op(machine::operator_action::pause, n)));
    }
    void resume(const operator_note& n) {
        same(act([&] { return today.eng().resume(twin_id, n); }),
             v2.feed(op(machine::operator_action::resume, n)));
    }
    void cancel(const operator_note& n) {
        // engine::cancel(id, note) gives the why as the reason
        same(act([&] { return today.eng().cancel(twin_id, n); }),
             v2.feed(op(machine::operator_action::cancel, n, n.why)));
    }
    void retry(const operator_note& n) {
        same(act([&] { return today.eng().retry(twin_id, n); }),
             v2.feed(op(machine::operator_action::retry, n)));
    }
    void skip(const std::string& step, const operator_note& n) {
        same(act([&] { return today.eng().skip_step(twin_id, step, n); }),
             v2.feed(op(machine::operator_action::skip, n, step)));
    }
    void release_lock(const operator_note& n) {
        auto released = today.eng().release_lock(twin_key, n);
        today.idle();
        REQUIRE(released);
        const auto b = v2.feed(op(machine::operator_action::release_lock, n));
        CHECK(b);
        CHECK(released.value() == 1);
    }

    /// Both ended in the same status, and that status is `expected`.
    void check_status(saga_status expected) {
        CHECK(today.status() == expected);
        CHECK(v2.status() == expected);
    }

    engine_run today;
    machine_run v2;

private:
    template <class Fn>
    result<void> act(Fn fn) {
        auto r = fn();
        today.idle();
        return r;
    }
    static machine::input op(machine::operator_action a, const operator_note& n,
                             std::string step = {}) {
        return machine::operator_input{a, n.who, n.why, std::move(step)};
    }
    static void same(const result<void>& a, const result<void>& b) {
        CHECK(a.has_value() == b.has_value());
        if (!a && !b) CHECK(a.error().code == b.error().code);
    }
};

}  // namespace saga::test
