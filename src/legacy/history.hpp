#pragma once
// Today's history entries from the typed journal of core v2: what engine.history(), the admin
// API, the dashboard, observers and the scenario tests see, with the event names and `detail`
// JSON today's engine (src/engine.cpp) writes. The reverse direction is not needed.
// docs/internals.md, "History compatibility", lists every difference that remains.

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <saga/journal_store.hpp>
#include <saga/state_store.hpp>

#include "../machine/machine.hpp"

namespace saga::legacy {

/// The name of the history entry today's engine writes for `e` ("step_started" for a forward
/// `attempt_started`, "compensation_retry_scheduled" for a compensation's `retry_scheduled`,
/// ...), or empty for an event it shows nothing for (`retry_due`). An event of this name may
/// still be left out (see `history_translator`); no other name is ever made for `e`.
[[nodiscard]] std::string_view name_of(const event& e) noexcept;

/// Translates the records of one instance in version order. It replays their events with
/// `machine::apply` on its own copy of the instance, so that each entry is as today's engine
/// writes it: the entries that need the state before an event (`step_abandoned`, which today's
/// engine writes for every unit compensation leaves behind), after it (`duration_ms` of
/// `step_completed`), or the records before (`status_changed` as today's engine records it: at
/// the end of a transition, never while a synchronous local step runs).
class history_translator {
public:
    /// For a journal from its first record; `saga_id` names the instance.
    history_translator(std::shared_ptr<const machine::compiled> def, std::string saga_id);
    /// Going on from `state`: the instance after the records before the next one translated;
    /// `shown`: the status the history showed last (by default `state.status`).
    history_translator(std::shared_ptr<const machine::compiled> def, machine::instance state,
                       std::optional<saga_status> shown = std::nullopt);

    /// Appends the entries of `rec`, the instance's next record, to `out`. A record with a
    /// snapshot and no events (record 1 of an instance migrated from a schema v1 file) takes
    /// the state from the snapshot and shows one entry, `migrated` (detail: `status`).
    void translate(const journal_record& rec, std::vector<history_entry>& out);
    [[nodiscard]] std::vector<history_entry> translate(const journal_record& rec);

    /// The instance after the records translated so far.
    [[nodiscard]] const machine::instance& state() const noexcept { return state_; }

private:
    /// Whether `unit` runs a synchronous local step forward.
    [[nodiscard]] bool sync_local(std::string_view unit) const;

    std::shared_ptr<const machine::compiled> def_;
    machine::instance state_;
    /// the status today's engine would have recorded last (its `status_changed` entries)
    saga_status shown_ = saga_status::running;
};

/// The history of a whole journal (records in version order, from the first).
[[nodiscard]] std::vector<history_entry> to_history(std::shared_ptr<const machine::compiled> def,
                                                    std::span<const journal_record> journal);

/// The entries of one record on its own, given the instance `after` it (what the runtime holds
/// once the record is committed): the translator's entries but two, which need more than one
/// record: no `step_abandoned`, and `status_changed` where the machine records it rather than
/// where today's engine would (docs/internals.md, "History compatibility").
[[nodiscard]] std::vector<history_entry> to_history(const journal_record& rec,
                                                    const machine::instance& after);
/// Same, appended to `out`.
void append_history(const journal_record& rec, const machine::instance& after,
                    std::vector<history_entry>& out);

}  // namespace saga::legacy
