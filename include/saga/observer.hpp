#pragma once
/// @file observer.hpp
/// Lifecycle hooks: everything that happens to an instance is a history entry, and observers
/// see each transition's entries once it is durable. Logs, metrics and traces hang off this.

#include <span>

#include <saga/state_store.hpp>

namespace saga {

/// Receives every committed transition. Called on an engine worker thread; must be quick and
/// must not throw (an exception is caught and dropped).
class observer {
public:
    virtual ~observer() = default;
    /// `record` is the instance after the transition; `entries` what the transition did
    /// (event names as in docs/concepts.md: saga_started, step_started, step_completed,
    /// step_failed, retry_scheduled, step_timed_out, compensation_started, ...).
    virtual void on_transition(const instance_record& record,
                               std::span<const history_entry> entries) = 0;
};

}  // namespace saga
