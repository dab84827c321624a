#pragma once
// Small rules about statuses that the machine's files share.

#include <saga/status.hpp>

#include "instance.hpp"

namespace saga::machine {

/// How far a step or a sequence has got.
enum class progress { done, blocked, failed };

[[nodiscard]] inline bool is_done(step_status s) noexcept {
    return s == step_status::completed || s == step_status::skipped || s == step_status::failed ||
           s == step_status::compensated || s == step_status::compensation_failed;
}

[[nodiscard]] inline progress progress_of(step_status s) noexcept {
    switch (s) {
        case step_status::completed:
        case step_status::skipped: return progress::done;
        case step_status::failed: return progress::failed;
        default: return progress::blocked;
    }
}

/// The status of a saga that moves again (resumed, or cancelled while paused): what the pause
/// interrupted, worked out from the state.
[[nodiscard]] inline saga_status moving_status(const instance& st) noexcept {
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

/// The statuses recovery loads at open: an instance in them may have output to send again or
/// a local step to run again. Others are loaded when due.
[[nodiscard]] inline bool recovered_by_status(saga_status s) noexcept {
    return s == saga_status::running || s == saga_status::compensating;
}

/// Whether an instance in status `s` with output not yet released must be made due (now) to be
/// loaded after a restart: unfinished, and not among those recovery loads anyway.
[[nodiscard]] inline bool due_for_output(saga_status s) noexcept {
    return !is_terminal(s) && !recovered_by_status(s);
}

}  // namespace saga::machine
