// A remote step: its attempt sends a command to the participant's endpoint (after the commit);
// the step completes when a reply to an open attempt arrives.

#include "../context.hpp"

#include <saga/tracing.hpp>

namespace saga::machine {
namespace {

std::string step_traceparent(const instance& st, const std::string& key, direction dir) {
    auto tc = trace_context::parse(st.traceparent);
    if (!tc) return st.traceparent;
    tc->span_id = derive_span_id(
        tc->trace_id, fmt::format("{}|{}|{}", st.id, key,
                                  dir == direction::compensation ? "compensate" : "step"));
    return tc->traceparent();
}

std::optional<saga::error> reply_error(const reply_input& r, const std::string& endpoint) {
    switch (r.status) {
        case reply_status::success: return std::nullopt;
        case reply_status::transient_failure:
            return saga::error{
                r.code.value_or(errc::participant_transient),
                r.code ? r.error : fmt::format("'{}' replied: {}", endpoint, r.error)};
        case reply_status::permanent_failure:
            return saga::error{
                r.code.value_or(errc::participant_permanent),
                r.code ? r.error : fmt::format("'{}' replied: {}", endpoint, r.error)};
    }
    return std::nullopt;
}

void ignore(context& c, const reply_input& r, ignore_reason reason) {
    c.out.ignored.push_back({r.unit, r.message_id, reason});
}

}  // namespace

void start_remote(context& c, const detail::node& n, const std::string& key, direction dir) {
    const auto& a = dir == direction::forward ? n.forward : n.compensation;
    const auto& u = c.unit_of(key);
    const auto attempt = (dir == direction::forward ? u.attempts : u.compensation_attempts) + 1;
    event e;
    e.type = event_type::attempt_started;
    e.unit = key;
    e.dir = dir;
    e.attempt = attempt;
    e.name = a.endpoint;
    e.due = c.now + n.timeout.value_or(c.cfg.default_remote_timeout);
    c.emit(std::move(e));

    auto ctx = c.step_ctx(key, dir, attempt);
    auto cmd = a.make_command(c.data, c.item_of(key), ctx);
    if (!cmd) {
        attempt_done(c, n, key, dir, cmd.error());
        return;
    }
    envelope m;
    m.message_id = message_id(c.st.id, key, dir, c.generation(key, dir), attempt);
    m.kind = dir == direction::forward ? message_kind::command : message_kind::compensation;
    m.type = std::move(cmd.value().type);
    m.saga_id = c.st.id;
    m.step = key;
    m.attempt = attempt;
    m.idempotency_key = std::string(ctx.idempotency_key());
    m.reply_to = c.cfg.reply_to;
    m.correlation_id = c.st.correlation_key;
    m.traceparent = step_traceparent(c.st, key, dir);
    if (dir == direction::compensation)
        m.headers["compensates"] = c.key_for(key, direction::forward);
    m.payload = std::move(cmd.value().payload);
    c.out.effects.emplace_back(send_effect{a.endpoint, std::move(m)});
}

void handle_reply(context& c, const reply_input& r) {
    auto it = c.st.units.find(r.unit);
    const detail::node* n = c.node_of(r.unit);
    if (it == c.st.units.end() || !n) return ignore(c, r, ignore_reason::unknown_step);
    if (r.generation != c.generation(r.unit, r.dir))
        return ignore(c, r, ignore_reason::not_waiting);
    const auto& u = it->second;
    if (r.dir == direction::forward) {
        if (n->forward.kind != detail::action::how::remote)
            return ignore(c, r, ignore_reason::unknown_step);
        if (u.status != step_status::running && u.status != step_status::retrying)
            return ignore(c, r, ignore_reason::not_waiting);
        if (r.attempt == 0 || r.attempt > u.attempts)
            return ignore(c, r, ignore_reason::unknown_attempt);
    } else {
        if (n->compensation.kind != detail::action::how::remote)
            return ignore(c, r, ignore_reason::not_waiting);
        if (u.status != step_status::compensating) return ignore(c, r, ignore_reason::not_waiting);
        if (r.attempt == 0 || r.attempt > u.compensation_attempts)
            return ignore(c, r, ignore_reason::unknown_attempt);
    }
    event received;
    received.type = event_type::reply_received;
    received.unit = r.unit;
    received.dir = r.dir;
    received.attempt = r.attempt;
    received.reply = r.status;
    received.message_id = r.message_id;
    c.emit(std::move(received));
    const auto& a = r.dir == direction::forward ? n->forward : n->compensation;
    auto err = reply_error(r, a.endpoint);
    std::optional<bool> uncertain;
    if (r.dir == direction::forward) {
        if (!err && n->forward.on_reply) {
            auto ctx = c.step_ctx(r.unit, r.dir, r.attempt);
            c.data_touched();
            if (auto done = n->forward.on_reply(c.data, c.item_of(r.unit), r.payload, ctx); !done) {
                err = done.error();
                uncertain = true;  // the participant did it: undo it if the saga compensates
            }
        } else if (err && r.status == reply_status::permanent_failure) {
            // A permanent refusal is recorded by the participant: no copy of this command
            // will ever take effect, whatever earlier attempts answered.
            uncertain = false;
        }
    }
    attempt_done(c, *n, r.unit, r.dir, std::move(err), false, uncertain);
}

}  // namespace saga::machine
