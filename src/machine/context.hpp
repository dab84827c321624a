#pragma once
// What the machine's files share while they make one decision: the definition, the state, the
// data, the time, and the decision being built. Every change of state goes through `emit`.

#include <fmt/format.h>

#include <string>

#include <saga/step_context.hpp>

#include "ids.hpp"
#include "machine.hpp"
#include "status_rules.hpp"

namespace saga::machine {

class context {
public:
    context(const compiled& d, const config& c, instance& s, detail::data_box& b, time_point t,
            decision& o)
        : def(d), cfg(c), st(s), data(b), now(t), out(o) {}

    const compiled& def;
    const config& cfg;
    instance& st;
    detail::data_box& data;
    const time_point now;
    decision& out;

    /// Records `e` in the decision and applies it to the state at once.
    void emit(event e) {
        apply(def, st, e, now);
        out.events.push_back(std::move(e));
    }
    void emit(event_type type, std::string unit = {}, direction dir = direction::forward,
              std::uint32_t attempt = 0) {
        event e;
        e.type = type;
        e.unit = std::move(unit);
        e.dir = dir;
        e.attempt = attempt;
        emit(std::move(e));
    }

    /// The state of `key` (a pending unit if it has none yet). Read only: changes go through
    /// `emit`, so that replaying the events builds exactly the same units.
    [[nodiscard]] const unit& unit_of(std::string_view key) const {
        static const unit none;
        auto it = st.units.find(key);
        return it == st.units.end() ? none : it->second;
    }

    [[nodiscard]] const detail::node* node_of(std::string_view key) const {
        auto it = def.nodes.find(base_name(key));
        return it == def.nodes.end() ? nullptr : it->second;
    }

    /// The item a for-each unit works on, or null.
    [[nodiscard]] const nlohmann::json* item_of(std::string_view key) const {
        auto idx = item_index(key);
        if (!idx) return nullptr;
        auto it = st.units.find(base_name(key));
        if (it == st.units.end() || !it->second.items || *idx >= it->second.items->size())
            return nullptr;
        return &(*it->second.items)[*idx];
    }

    [[nodiscard]] std::string key_for(const std::string& unit, direction dir) const {
        auto it = st.units.find(unit);
        const auto fg = it == st.units.end() ? 0u : it->second.forward_generation;
        const auto cg = it == st.units.end() ? 0u : it->second.compensation_generation;
        return idempotency_key(st.id, unit, dir, fg, cg);
    }

    [[nodiscard]] std::uint32_t generation(const std::string& unit, direction dir) const {
        auto it = st.units.find(unit);
        if (it == st.units.end()) return 0;
        return dir == direction::forward ? it->second.forward_generation
                                         : it->second.compensation_generation;
    }

    [[nodiscard]] step_context step_ctx(const std::string& unit, direction dir,
                                        std::uint32_t attempt) const {
        return step_context(st.id, unit, attempt, key_for(unit, dir), st.correlation_key, now,
                            item_index(unit), dir == direction::compensation);
    }

    [[nodiscard]] retry_policy retry_for(const detail::node& n, direction dir) const {
        if (dir == direction::compensation)
            return n.compensation_retry ? *n.compensation_retry
                                        : def.model->default_compensation_retry;
        if (n.retry) return *n.retry;
        if (def.after_pivot.contains(&n)) return retry_policy::forever();
        return def.model->default_retry;
    }

    /// The saga has stopped going forward (compensating, failed past the pivot, cancelling).
    [[nodiscard]] bool halted() const {
        return st.compensating || st.forward_failed || st.cancel_requested;
    }

    /// A hook changed (or may have changed) the data.
    void data_touched() { out.data_changed = true; }
};

// ---- shared by the step kinds (attempt.cpp) --------------------------------------------

/// Starts the next attempt of `key` in direction `dir` (the action of that direction).
void start_attempt(context& c, const detail::node& n, const std::string& key, direction dir);
/// An attempt of `key` in direction `dir` ended: success (no error) or failure; retries,
/// fails or completes the unit. `uncertain` overrides whether a failed attempt may have taken
/// effect (a timeout or a transient remote failure says yes).
void attempt_done(context& c, const detail::node& n, const std::string& key, direction dir,
                  std::optional<saga::error> err, bool timed_out = false,
                  std::optional<bool> uncertain = std::nullopt);
/// `key` completed forward (and the pivot passed, if it is one); `note` stays as its error
/// (a for-each step's count of failed items).
void complete_unit(context& c, const detail::node& n, const std::string& key,
                   std::string note = {});
/// `key` failed for good with `err`: fails the saga unless a for-each policy absorbs it.
void unit_failed(context& c, const detail::node& n, const std::string& key, const saga::error& err);
/// Fails `key` for good at once, with no retry (a hook's error).
void fail_now(context& c, const detail::node& n, const std::string& key, const saga::error& err);

// ---- the step kinds (one file each) -------------------------------------------------------

/// local.cpp: an attempt of a local action is a `run_local` effect.
void start_local(context& c, const detail::node& n, const std::string& key, direction dir);
/// remote.cpp: an attempt of a remote action sends its command; replies are handled there too.
void start_remote(context& c, const detail::node& n, const std::string& key, direction dir);
void handle_reply(context& c, const reply_input& r);
/// wait.cpp
progress drive_wait(context& c, const detail::node& n);
void wait_deadline(context& c, const detail::node& n, const std::string& key);
/// parallel.cpp
progress drive_parallel(context& c, const detail::node& n);
/// for_each.cpp
progress drive_for_each(context& c, const detail::node& n);

// ---- decide.cpp ---------------------------------------------------------------------------

/// Drives `steps` in order; how far the sequence got.
progress drive_sequence(context& c, const std::vector<detail::node>& steps);
/// Drives a local or remote unit (a step, or a for-each item).
progress drive_leaf(context& c, const detail::node& n, const std::string& key);
/// Marks `n` (and everything in its branches) skipped.
void skip(context& c, const detail::node& n);

}  // namespace saga::machine
