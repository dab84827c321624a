// A wait step: opens for a signal (or a transport event of that type), takes the oldest one
// queued for it, and may pass a deadline.

#include "../context.hpp"

namespace saga::machine {
namespace {

void try_consume_signal(context& c, const detail::node& n, const std::string& key) {
    auto it = c.st.signals.find(n.signal);
    if (it == c.st.signals.end() || it->second.empty()) return;
    const nlohmann::json payload = it->second.front();
    event consumed;
    consumed.type = event_type::signal_consumed;
    consumed.unit = key;
    consumed.attempt = 1;
    consumed.name = n.signal;
    c.emit(std::move(consumed));
    if (n.on_signal) {
        auto ctx = c.step_ctx(key, direction::forward, 1);
        c.data_touched();
        if (auto r = n.on_signal(c.data, nullptr, payload, ctx); !r) {
            fail_now(c, n, key, r.error());
            return;
        }
    }
    complete_unit(c, n, key);
}

}  // namespace

progress drive_wait(context& c, const detail::node& n) {
    if (c.unit_of(n.name).status == step_status::pending) {
        event e;
        e.type = event_type::step_waiting;
        e.unit = n.name;
        e.attempt = 1;
        e.name = n.signal;
        if (n.deadline) e.due = c.now + *n.deadline;
        c.emit(std::move(e));
    }
    if (c.unit_of(n.name).status == step_status::waiting) try_consume_signal(c, n, n.name);
    return progress_of(c.unit_of(n.name).status);
}

void wait_deadline(context& c, const detail::node& n, const std::string& key) {
    c.emit(event_type::wait_deadline_passed, key, direction::forward, 1);
    if (n.deadline_action == on_deadline::proceed) {
        if (n.on_timeout) {
            auto ctx = c.step_ctx(key, direction::forward, 1);
            c.data_touched();
            if (auto r = n.on_timeout(c.data, nullptr, ctx); !r) {
                fail_now(c, n, key, r.error());
                return;
            }
        }
        complete_unit(c, n, key);
        return;
    }
    fail_now(
        c, n, key,
        saga::error{errc::deadline_exceeded,
                    fmt::format("wait '{}' for signal '{}' passed its deadline", key, n.signal)});
}

}  // namespace saga::machine
