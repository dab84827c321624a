// A parallel group: its branches run concurrently and join; one failed branch fails the group.

#include "../context.hpp"

namespace saga::machine {

progress drive_parallel(context& c, const detail::node& n) {
    if (c.unit_of(n.name).status == step_status::pending) {
        event e;
        e.type = event_type::group_started;
        e.unit = n.name;
        e.count = n.branches.size();
        c.emit(std::move(e));
    }
    if (c.unit_of(n.name).status != step_status::running)
        return progress_of(c.unit_of(n.name).status);
    bool all_done = true;
    bool failed = false;
    for (const auto& b : n.branches) {
        const auto p = drive_sequence(c, b.steps);
        if (p == progress::failed) failed = true;
        if (p != progress::done) all_done = false;
    }
    if (failed) {
        // Failing a member already failed the saga (or a policy absorbed it); the group fails
        // with it, once.
        if (c.unit_of(n.name).status == step_status::running) {
            event e;
            e.type = event_type::step_failed;
            e.unit = n.name;
            e.error = "a branch failed";
            c.emit(std::move(e));
        }
        return progress::failed;
    }
    if (all_done) {
        complete_unit(c, n, n.name);
        return progress::done;
    }
    return progress::blocked;
}

}  // namespace saga::machine
