#include <saga/detail/model.hpp>

#include <fmt/format.h>

#include <set>

namespace saga::detail {
namespace {

error invalid(std::string msg) {
    return {errc::invalid_definition, std::move(msg)};
}

struct validator {
    const model& m;
    std::set<std::string> names;
    bool seen_pivot = false;

    result<void> check_action(const node& n, const action& a, const char* what) {
        if (a.kind == action::how::remote) {
            if (a.endpoint.empty())
                return invalid(fmt::format("step '{}': the {} has no endpoint", n.name, what));
            if (!a.make_command)
                return invalid(
                    fmt::format("step '{}': the {} has no command builder", n.name, what));
        }
        return success();
    }

    result<void> check_sequence(const std::vector<node>& steps, bool top_level,
                                const std::string& where) {
        if (steps.empty()) return invalid(fmt::format("{} has no steps", where));
        for (const auto& n : steps) {
            SAGA_TRY(check_node(n, top_level));
        }
        return success();
    }

    result<void> check_node(const node& n, bool top_level) {
        if (n.name.empty()) return invalid("a step has an empty name");
        if (n.name.find_first_of("[]/#") != std::string::npos)
            return invalid(
                fmt::format("step '{}': names may not contain '[', ']', '/' or '#'", n.name));
        if (!names.insert(n.name).second)
            return invalid(fmt::format("duplicate step name '{}'", n.name));
        if (n.retry) {
            if (auto r = n.retry->validate(); !r)
                return invalid(fmt::format("step '{}': {}", n.name, r.error().message));
        }
        if (n.compensation_retry) {
            if (auto r = n.compensation_retry->validate(); !r)
                return invalid(
                    fmt::format("step '{}': compensation {}", n.name, r.error().message));
        }
        if (n.timeout && n.timeout->count() <= 0)
            return invalid(fmt::format("step '{}': timeout must be positive", n.name));
        if (seen_pivot && !n.compensation.empty())
            return invalid(
                fmt::format("step '{}' comes after the pivot and cannot have a compensation: "
                            "nothing is compensated "
                            "once the pivot completes",
                            n.name));
        if (n.pivot) {
            if (!top_level)
                return invalid(
                    fmt::format("step '{}': the pivot must be a top-level step", n.name));
            if (seen_pivot)
                return invalid(fmt::format("step '{}': a saga has at most one pivot", n.name));
            if (!n.compensation.empty())
                return invalid(
                    fmt::format("step '{}' is the pivot and cannot have a compensation: nothing is "
                                "compensated once "
                                "the pivot completes",
                                n.name));
        }
        switch (n.kind) {
            case node_kind::local:
                if (n.forward.kind != action::how::local &&
                    n.forward.kind != action::how::local_async)
                    return invalid(fmt::format("step '{}': a local step needs a function", n.name));
                break;
            case node_kind::remote: {
                SAGA_TRY(check_action(n, n.forward, "command"));
                break;
            }
            case node_kind::wait:
                if (n.signal.empty())
                    return invalid(fmt::format("wait step '{}' has no signal name", n.name));
                if (n.deadline && n.deadline->count() <= 0)
                    return invalid(
                        fmt::format("wait step '{}': deadline must be positive", n.name));
                if (n.on_timeout && n.deadline_action != on_deadline::proceed)
                    return invalid(fmt::format(
                        "wait step '{}': on_timeout() needs deadline(..., on_deadline::proceed)",
                        n.name));
                break;
            case node_kind::parallel: {
                if (n.branches.empty())
                    return invalid(fmt::format("parallel group '{}' has no branch", n.name));
                std::set<std::string> branch_names;
                for (const auto& b : n.branches) {
                    if (b.name.empty())
                        return invalid(fmt::format(
                            "parallel group '{}' has a branch with an empty name", n.name));
                    if (!branch_names.insert(b.name).second)
                        return invalid(fmt::format(
                            "parallel group '{}' has two branches named '{}'", n.name, b.name));
                    SAGA_TRY(check_sequence(
                        b.steps, false,
                        fmt::format("branch '{}' of parallel group '{}'", b.name, n.name)));
                }
                break;
            }
            case node_kind::for_each: {
                if (!n.items)
                    return invalid(fmt::format("for-each step '{}' has no collection", n.name));
                if (n.forward.empty())
                    return invalid(fmt::format(
                        "for-each step '{}' has no item action (local or remote)", n.name));
                SAGA_TRY(check_action(n, n.forward, "item command"));
                if (n.concurrency == 0)
                    return invalid(
                        fmt::format("for-each step '{}': concurrency must be at least 1", n.name));
                break;
            }
        }
        if (n.forward.on_reply && n.forward.kind != action::how::remote)
            return invalid(
                fmt::format("step '{}': on_reply() applies to remote actions only", n.name));
        SAGA_TRY(check_action(n, n.compensation, "compensation"));
        if (n.pivot) seen_pivot = true;
        return success();
    }
};

}  // namespace

result<void> validate(const model& m, const std::vector<std::string>& build_errors) {
    if (m.name.empty()) return invalid("a definition needs a name");
    if (m.version == 0)
        return invalid(fmt::format("definition '{}': version must be at least 1", m.name));
    if (!build_errors.empty())
        return invalid(fmt::format("definition '{}': {}", m.name, build_errors.front()));
    if (auto r = m.default_retry.validate(); !r)
        return invalid(fmt::format("definition '{}': default {}", m.name, r.error().message));
    if (auto r = m.default_compensation_retry.validate(); !r)
        return invalid(
            fmt::format("definition '{}': default compensation {}", m.name, r.error().message));
    validator v{m, {}, false};
    if (auto r = v.check_sequence(m.steps, true, "the saga"); !r)
        return invalid(fmt::format("definition '{}': {}", m.name, r.error().message));
    return success();
}

}  // namespace saga::detail
