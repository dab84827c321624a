#include "migrate_v1.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "../instance_state.hpp"
#include "../machine/instance.hpp"
#include "../machine/snapshot.hpp"
#include "../machine/status_rules.hpp"

namespace saga::legacy {

result<journal_write> migrate_v1(const instance_record& rec, std::span<const timer_record> timers,
                                 std::span<const outbox_record> pending,
                                 std::span<const std::string> consumed) {
    auto old = detail::instance_state_from_json(rec.state);
    if (!old)
        return error{errc::bad_data, fmt::format("saga '{}': its v1 state cannot be read: {}",
                                                 rec.id, old.error().message)};
    machine::instance st;
    st.id = rec.id;
    st.status = rec.status;
    st.correlation_key = rec.correlation_key;
    st.exclusive = rec.exclusive;
    st.traceparent = old.value().traceparent;
    st.seq = old.value().seq;
    st.compensating = old.value().compensating;
    st.cancel_requested = old.value().cancel_requested;
    st.pivot_passed = old.value().pivot_passed;
    st.forward_failed = old.value().forward_failed;
    st.error = old.value().error;
    for (const auto& [name, q] : old.value().signals)
        for (const auto& p : q) st.signals[name].push_back(p);
    // v1 kept every message id it consumed (replies and signals) in its inbox; the machine keeps
    // signal ids to refuse a repeated one. Reply ids are harmless there (replies are matched by
    // step and attempt), so all of them are carried; the window shrinks to
    // machine::consumed_ids_kept as the instance consumes new signals.
    st.consumed_ids.assign(consumed.begin(), consumed.end());
    st.created_at = rec.created_at;
    st.updated_at = rec.updated_at;
    for (const auto& [key, u] : old.value().units) {
        machine::unit m;
        m.status = u.status;
        m.attempts = u.attempts;
        m.compensation_attempts = u.compensation_attempts;
        m.seq = u.seq;
        m.abandoned = u.abandoned;
        m.uncertain = u.uncertain;
        m.forward_generation = u.forward_generation;
        m.compensation_generation = u.compensation_generation;
        m.error = u.error;
        m.started_at = u.started_at;
        m.finished_at = u.finished_at;
        m.items = u.items;
        st.units.emplace(key, std::move(m));
    }
    // v1 timers ("kind|unit|attempt", payload {kind, unit, attempt}) become due times of the
    // units they belong to.
    for (const auto& t : timers) {
        if (t.saga_id != rec.id || !t.payload.is_object()) continue;
        const auto kind = t.payload.value("kind", std::string());
        auto it = st.units.find(t.payload.value("unit", std::string()));
        if (it == st.units.end()) continue;
        if (kind == "retry" || kind == "compensation_retry")
            it->second.retry_at = t.due;
        else if (kind == "timeout" || kind == "compensation_timeout" || kind == "deadline")
            it->second.deadline = t.due;
    }
    journal_write w;
    w.record.saga_id = rec.id;
    w.record.version = 1;
    w.record.at = rec.updated_at;
    for (const auto& o : pending)
        if (o.saga_id == rec.id) w.record.output.push_back({o.destination, o.topic, o.message});
    w.record.data = rec.data.dump();
    w.record.snapshot = machine::encode_snapshot(st);
    instance_head h;
    h.id = rec.id;
    h.definition = rec.definition;
    h.definition_version = rec.definition_version;
    h.status = rec.status;
    h.correlation_key = rec.correlation_key;
    h.exclusive = rec.exclusive;
    h.wake_at = machine::wake_at(st);
    // Output v1 could not send is released when the runtime next decides for the instance: at
    // open for running and compensating ones; a waiting or paused one is made due (as of its
    // last update, so at once) for the same reason the runtime's drain makes it so.
    const bool output_out =
        std::any_of(pending.begin(), pending.end(),
                    [&](const outbox_record& o) { return o.saga_id == rec.id; });
    if (output_out && machine::due_for_output(rec.status) &&
        (!h.wake_at || *h.wake_at > rec.updated_at))
        h.wake_at = rec.updated_at;
    h.version = 1;
    h.created_at = rec.created_at;
    h.updated_at = rec.updated_at;
    w.head = std::move(h);
    return w;
}

}  // namespace saga::legacy
