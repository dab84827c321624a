#include "instance_state.hpp"

#include <chrono>

namespace saga::detail {

using json = nlohmann::json;

namespace {

std::int64_t to_ms(time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
time_point from_ms(std::int64_t ms) {
    return time_point{std::chrono::milliseconds{ms}};
}

}  // namespace

nlohmann::json to_json(const instance_state& s) {
    // Built once per commit: the objects are filled in key order with end hints (no searches),
    // values constructed in place (no initializer-list temporaries that are copied again).
    using object = json::object_t;
    auto put = [](object& o, const char* key, auto&& value) {
        o.emplace_hint(o.end(), key, std::forward<decltype(value)>(value));
    };
    json units_json(json::value_t::object);
    auto& units = *units_json.get_ptr<object*>();
    for (const auto& [name, u] : s.units) {
        // keys in std::less order: a ab ca cg e fg items q s t0 t1 un
        json unit(json::value_t::object);
        auto& o = *unit.get_ptr<object*>();
        put(o, "a", u.attempts);
        if (u.abandoned) put(o, "ab", true);
        if (u.compensation_attempts) put(o, "ca", u.compensation_attempts);
        if (u.compensation_generation) put(o, "cg", u.compensation_generation);
        if (!u.error.empty()) put(o, "e", u.error);
        if (u.forward_generation) put(o, "fg", u.forward_generation);
        if (u.items) put(o, "items", *u.items);
        if (u.seq) put(o, "q", u.seq);
        put(o, "s", to_string(u.status));
        if (u.started_at) put(o, "t0", to_ms(*u.started_at));
        if (u.finished_at) put(o, "t1", to_ms(*u.finished_at));
        if (u.uncertain) put(o, "un", true);
        units.emplace_hint(units.end(), name, std::move(unit));
    }
    // keys in std::less order: cancel compensating error forward_failed pivot_passed seq signals
    // tp units
    json j(json::value_t::object);
    auto& o = *j.get_ptr<object*>();
    if (s.cancel_requested) put(o, "cancel", true);
    if (s.compensating) put(o, "compensating", true);
    if (!s.error.empty()) put(o, "error", s.error);
    if (s.forward_failed) put(o, "forward_failed", true);
    if (s.pivot_passed) put(o, "pivot_passed", true);
    put(o, "seq", s.seq);
    if (!s.signals.empty()) {
        json sig(json::value_t::object);
        for (const auto& [name, q] : s.signals)
            if (!q.empty()) sig[name] = json(std::vector<json>(q.begin(), q.end()));
        if (!sig.empty()) put(o, "signals", std::move(sig));
    }
    if (!s.traceparent.empty()) put(o, "tp", s.traceparent);
    put(o, "units", std::move(units_json));
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
