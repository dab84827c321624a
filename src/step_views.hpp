#pragma once
// The steps of an instance as `query` shows them (instance_view::steps, current_steps,
// percent_complete), from a definition and the instance's units. One walk for both engine
// cores: their unit types differ, the fields read here do not.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <saga/definition.hpp>
#include <saga/engine.hpp>

#include "machine/ids.hpp"
#include "machine/status_rules.hpp"

namespace saga::detail {

[[nodiscard]] inline std::string_view kind_name(const node& n) noexcept {
    switch (n.kind) {
        case node_kind::local: return "local";
        case node_kind::remote: return "remote";
        case node_kind::wait: return "wait";
        case node_kind::parallel: return "parallel";
        case node_kind::for_each: return "for_each";
    }
    return "unknown";
}

/// A step that still has work under way: an attempt, a wait or a compensation.
[[nodiscard]] inline bool is_open(step_status s) noexcept {
    return s == step_status::running || s == step_status::retrying || s == step_status::waiting ||
           s == step_status::compensating;
}

/// Fills `v.steps`, `v.current_steps` and `v.percent_complete` of an instance in `status`
/// whose units (by key: step name, or "name[i]" for a for-each item) are `units`. `steps` is
/// the definition's; null when it is not registered, then the units are listed as they are.
template <class Units>
void describe_steps(instance_view& v, const std::vector<node>* steps, const Units& units,
                    saga_status status) {
    std::size_t total = 0;
    std::size_t settled = 0;
    auto unit_view = [&](const std::string& key, std::string kind) {
        step_view s;
        s.name = key;
        s.kind = std::move(kind);
        if (auto it = units.find(key); it != units.end()) {
            const auto& u = it->second;
            s.status = u.status;
            s.attempts = u.attempts;
            s.compensation_attempts = u.compensation_attempts;
            s.error = u.error;
            s.started_at = u.started_at;
            s.finished_at = u.finished_at;
        }
        return s;
    };
    auto count = [&](step_status s) {
        ++total;
        if (machine::is_done(s)) ++settled;
        return is_open(s);
    };
    std::function<void(const std::vector<node>&)> walk = [&](const std::vector<node>& list) {
        for (const auto& n : list) {
            auto s = unit_view(n.name, std::string(kind_name(n)));
            if (n.kind == node_kind::for_each) {
                auto it = units.find(n.name);
                if (it != units.end() && it->second.items) {
                    const auto& items = *it->second.items;
                    s.items_total = items.size();
                    for (std::size_t i = 0; i < items.size(); ++i) {
                        auto iv = unit_view(machine::item_key(n.name, i), "item");
                        if (iv.status == step_status::completed ||
                            iv.status == step_status::compensated)
                            ++s.items_completed;
                        if (iv.status == step_status::failed) ++s.items_failed;
                        s.items.push_back({i, items[i], iv.status, iv.attempts, iv.error});
                        if (count(iv.status)) v.current_steps.push_back(iv.name);
                    }
                    if (items.empty()) count(s.status);
                } else if (count(s.status)) {
                    v.current_steps.push_back(n.name);
                }
            } else if (n.kind != node_kind::parallel) {
                if (count(s.status)) v.current_steps.push_back(n.name);
            }
            v.steps.push_back(std::move(s));
            for (const auto& b : n.branches) walk(b.steps);
        }
    };
    if (steps) {
        walk(*steps);
    } else {
        for (const auto& entry : units) {
            auto s = unit_view(entry.first, "unknown");
            if (count(s.status)) v.current_steps.push_back(entry.first);
            v.steps.push_back(std::move(s));
        }
    }
    v.percent_complete = is_terminal(status) || total == 0
                             ? 100.0
                             : 100.0 * static_cast<double>(settled) / static_cast<double>(total);
}

}  // namespace saga::detail
