// A local step: its attempt is a `run_local` effect the runtime carries out once the
// transition that started it is durable; the outcome comes back as a `local_done` input.

#include "../context.hpp"

namespace saga::machine {

void start_local(context& c, const detail::node& n, const std::string& key, direction dir) {
    const auto& a = dir == direction::forward ? n.forward : n.compensation;
    const auto& u = c.unit_of(key);
    event e;
    e.type = event_type::attempt_started;
    e.unit = key;
    e.dir = dir;
    e.attempt = (dir == direction::forward ? u.attempts : u.compensation_attempts) + 1;
    // Only an awaitable can be stopped when its deadline passes.
    if (a.kind == detail::action::how::local_async && n.timeout) e.due = c.now + *n.timeout;
    const auto attempt = e.attempt;
    c.emit(std::move(e));
    c.out.effects.emplace_back(run_local_effect{key, dir, attempt});
}

}  // namespace saga::machine
