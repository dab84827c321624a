#include "instance_state.hpp"

#include <chrono>

namespace saga::detail {
namespace {

std::int64_t to_ms(time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
time_point from_ms(std::int64_t ms) {
    return time_point{std::chrono::milliseconds{ms}};
}

}  // namespace

nlohmann::json to_json(const instance_state& s) {
    nlohmann::json units = nlohmann::json::object();
    for (const auto& [name, u] : s.units) {
        nlohmann::json j{{"s", to_string(u.status)}, {"a", u.attempts}};
        if (u.compensation_attempts) j["ca"] = u.compensation_attempts;
        if (u.seq) j["q"] = u.seq;
        if (u.abandoned) j["ab"] = true;
        if (u.uncertain) j["un"] = true;
        if (!u.error.empty()) j["e"] = u.error;
        if (u.forward_generation) j["fg"] = u.forward_generation;
        if (u.compensation_generation) j["cg"] = u.compensation_generation;
        if (u.started_at) j["t0"] = to_ms(*u.started_at);
        if (u.finished_at) j["t1"] = to_ms(*u.finished_at);
        if (u.items) j["items"] = *u.items;
        units[name] = std::move(j);
    }
    nlohmann::json j{{"units", std::move(units)}, {"seq", s.seq}};
    if (s.compensating) j["compensating"] = true;
    if (s.cancel_requested) j["cancel"] = true;
    if (s.pivot_passed) j["pivot_passed"] = true;
    if (s.forward_failed) j["forward_failed"] = true;
    if (!s.error.empty()) j["error"] = s.error;
    if (!s.traceparent.empty()) j["tp"] = s.traceparent;
    if (!s.signals.empty()) {
        nlohmann::json sig = nlohmann::json::object();
        for (const auto& [name, q] : s.signals)
            if (!q.empty())
                sig[name] = nlohmann::json(std::vector<nlohmann::json>(q.begin(), q.end()));
        if (!sig.empty()) j["signals"] = std::move(sig);
    }
    return j;
}

result<instance_state> instance_state_from_json(const nlohmann::json& j) {
    try {
        instance_state s;
        if (j.is_null()) return s;
        s.seq = j.value("seq", std::uint64_t{0});
        s.compensating = j.value("compensating", false);
        s.cancel_requested = j.value("cancel", false);
        s.pivot_passed = j.value("pivot_passed", false);
        s.forward_failed = j.value("forward_failed", false);
        s.error = j.value("error", std::string());
        s.traceparent = j.value("tp", std::string());
        if (j.contains("units")) {
            for (const auto& [name, u] : j.at("units").items()) {
                unit_state us;
                auto st = parse_step_status(u.at("s").get<std::string>());
                if (!st)
                    return error{errc::bad_data,
                                 "unknown step status in saga state: " + u.at("s").dump()};
                us.status = *st;
                us.attempts = u.value("a", std::uint32_t{0});
                us.compensation_attempts = u.value("ca", std::uint32_t{0});
                us.seq = u.value("q", std::uint64_t{0});
                us.abandoned = u.value("ab", false);
                us.uncertain = u.value("un", false);
                us.error = u.value("e", std::string());
                us.forward_generation = u.value("fg", std::uint32_t{0});
                us.compensation_generation = u.value("cg", std::uint32_t{0});
                if (u.contains("t0")) us.started_at = from_ms(u.at("t0").get<std::int64_t>());
                if (u.contains("t1")) us.finished_at = from_ms(u.at("t1").get<std::int64_t>());
                if (u.contains("items"))
                    us.items = u.at("items").get<std::vector<nlohmann::json>>();
                s.units.emplace(name, std::move(us));
            }
        }
        if (j.contains("signals"))
            for (const auto& [name, q] : j.at("signals").items())
                for (const auto& p : q) s.signals[name].push_back(p);
        return s;
    } catch (const std::exception& e) {
        return error{errc::bad_data, std::string("malformed saga state: ") + e.what()};
    }
}

}  // namespace saga::detail
