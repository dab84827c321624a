// One attempt path for forward and compensation attempts: starting an attempt, its outcome,
// the retry decision and exhaustion. The only place where retry policies are read.

#include "context.hpp"

namespace saga::machine {
namespace {

const detail::action& action_of(const detail::node& n, direction dir) {
    return dir == direction::forward ? n.forward : n.compensation;
}

std::uint32_t attempts_of(const unit& u, direction dir) {
    return dir == direction::forward ? u.attempts : u.compensation_attempts;
}

void fail_saga(context& c, const std::string& reason) {
    if (c.st.compensating || c.st.forward_failed) return;
    event e;
    e.error = reason;
    if (c.st.pivot_passed) {
        e.type = event_type::forward_failed;
    } else {
        e.type = event_type::compensation_started;
    }
    c.emit(std::move(e));
}

void compensation_done(context& c, const detail::node& n, const std::string& key,
                       std::optional<saga::error> err) {
    const auto attempt = c.unit_of(key).compensation_attempts;
    if (!err) {
        c.emit(event_type::step_compensated, key, direction::compensation, attempt);
        return;
    }
    event failed;
    failed.type = event_type::attempt_failed;
    failed.unit = key;
    failed.dir = direction::compensation;
    failed.attempt = attempt;
    failed.error = err->what();
    failed.transient = err->transient();
    c.emit(std::move(failed));
    const auto policy = c.retry_for(n, direction::compensation);
    if (err->transient() && policy.allows_another(attempt)) {
        event retry;
        retry.type = event_type::retry_scheduled;
        retry.unit = key;
        retry.dir = direction::compensation;
        retry.attempt = attempt;
        retry.due = c.now + policy.backoff(attempt, jitter_seed(c.cfg.seed, c.st.id, key,
                                                                direction::compensation));
        c.emit(std::move(retry));
        return;
    }
    event e;
    e.type = event_type::compensation_failed;
    e.unit = key;
    e.dir = direction::compensation;
    e.attempt = attempt;
    e.error = err->what();
    c.emit(std::move(e));
    // A paused saga stays paused: it settles when it moves again (decide.cpp, compensation).
    if (c.st.status != saga_status::paused) {
        event settled;
        settled.type = event_type::saga_compensation_failed;
        settled.error = c.st.error;
        c.emit(std::move(settled));
    }
}

}  // namespace

void start_attempt(context& c, const detail::node& n, const std::string& key, direction dir) {
    const auto& a = action_of(n, dir);
    switch (a.kind) {
        case detail::action::how::local:
        case detail::action::how::local_async: start_local(c, n, key, dir); return;
        case detail::action::how::remote: start_remote(c, n, key, dir); return;
        case detail::action::how::none: break;
    }
    const auto attempt = attempts_of(c.unit_of(key), dir) + 1;
    event e;
    e.type = event_type::attempt_started;
    e.unit = key;
    e.dir = dir;
    e.attempt = attempt;
    c.emit(std::move(e));
    attempt_done(
        c, n, key, dir,
        saga::error{errc::invalid_definition, fmt::format("step '{}' has no action", key)});
}

void attempt_done(context& c, const detail::node& n, const std::string& key, direction dir,
                  std::optional<saga::error> err, bool timed_out, std::optional<bool> uncertain) {
    if (dir == direction::compensation) {
        compensation_done(c, n, key, std::move(err));
        return;
    }
    if (!err) {
        complete_unit(c, n, key);
        return;
    }
    const auto& u = c.unit_of(key);
    const auto attempt = u.attempts;
    event failed;
    failed.type = event_type::attempt_failed;
    failed.unit = key;
    failed.attempt = attempt;
    failed.error = err->what();
    failed.transient = err->transient();
    // A remote attempt that timed out or failed transiently may still take effect: a duplicate
    // of its command can be handled after the failure reply was sent. Such a step is
    // compensated if the saga compensates.
    if (uncertain)
        failed.uncertain = uncertain;
    else if (timed_out || (err->transient() && n.forward.kind == detail::action::how::remote))
        failed.uncertain = true;
    c.emit(std::move(failed));
    const auto policy = c.retry_for(n, direction::forward);
    if (err->transient() && !u.abandoned && !c.halted() && policy.allows_another(attempt)) {
        event retry;
        retry.type = event_type::retry_scheduled;
        retry.unit = key;
        retry.attempt = attempt;
        retry.due = c.now + policy.backoff(
                                attempt, jitter_seed(c.cfg.seed, c.st.id, key, direction::forward));
        c.emit(std::move(retry));
        return;
    }
    event e;
    e.type = event_type::step_failed;
    e.unit = key;
    e.attempt = attempt;
    e.error = err->what();
    c.emit(std::move(e));
    unit_failed(c, n, key, *err);
}

void complete_unit(context& c, const detail::node& n, const std::string& key, std::string note) {
    event e;
    e.type = event_type::step_completed;
    e.unit = key;
    e.attempt = c.unit_of(key).attempts;
    e.error = std::move(note);
    c.emit(std::move(e));
    if (n.pivot && !item_index(key)) c.emit(event_type::pivot_passed, key);
}

void unit_failed(context& c, const detail::node& n, const std::string& key,
                 const saga::error& err) {
    if (item_index(key) && n.policy == for_each_policy::continue_on_failure) return;
    fail_saga(c, fmt::format("step '{}' failed: {}", key, err.what()));
}

void fail_now(context& c, const detail::node& n, const std::string& key, const saga::error& err) {
    event e;
    e.type = event_type::step_failed;
    e.unit = key;
    e.attempt = c.unit_of(key).attempts;
    e.error = err.what();
    c.emit(std::move(e));
    unit_failed(c, n, key, err);
}

}  // namespace saga::machine
