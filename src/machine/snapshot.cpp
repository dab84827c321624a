#include "snapshot.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <saga/journal_codec.hpp>
#include <saga/json_limits.hpp>

#include <stdexcept>

namespace saga::machine {
namespace {

using json = nlohmann::json;

std::int64_t to_us(time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
/// Throws (caught by decode_snapshot) for a count that a time_point cannot hold.
time_point from_us(std::int64_t us) {
    const auto t = from_unix_micros(us);
    if (!t) throw std::out_of_range(fmt::format("{} microseconds is not a time", us));
    return *t;
}
void put_time(json& o, const char* key, const std::optional<time_point>& t) {
    if (t) o[key] = to_us(*t);
}
std::optional<time_point> get_time(const json& o, const char* key) {
    if (!o.contains(key)) return std::nullopt;
    return from_us(o.at(key).get<std::int64_t>());
}

}  // namespace

std::string encode_snapshot(const instance& s) {
    json units = json::object();
    for (const auto& [key, u] : s.units) {
        json o = json::object();
        o["s"] = to_string(u.status);
        if (u.attempts) o["a"] = u.attempts;
        if (u.compensation_attempts) o["ca"] = u.compensation_attempts;
        if (u.seq) o["q"] = u.seq;
        if (u.abandoned) o["ab"] = true;
        if (u.uncertain) o["un"] = true;
        if (u.forward_generation) o["fg"] = u.forward_generation;
        if (u.compensation_generation) o["cg"] = u.compensation_generation;
        if (!u.error.empty()) o["e"] = u.error;
        put_time(o, "t0", u.started_at);
        put_time(o, "t1", u.finished_at);
        put_time(o, "dl", u.deadline);
        put_time(o, "ra", u.retry_at);
        if (u.items) o["items"] = *u.items;
        units[key] = std::move(o);
    }
    json j = json::object();
    j["v"] = 1;
    j["id"] = s.id;
    j["status"] = to_string(s.status);
    if (!s.correlation_key.empty()) j["key"] = s.correlation_key;
    if (s.exclusive) j["exclusive"] = true;
    if (!s.traceparent.empty()) j["tp"] = s.traceparent;
    j["units"] = std::move(units);
    j["seq"] = s.seq;
    if (s.compensating) j["compensating"] = true;
    if (s.cancel_requested) j["cancel"] = true;
    if (s.pivot_passed) j["pivot_passed"] = true;
    if (s.forward_failed) j["forward_failed"] = true;
    if (!s.error.empty()) j["error"] = s.error;
    if (!s.signals.empty()) {
        json sig = json::object();
        for (const auto& [name, q] : s.signals)
            sig[name] = json(std::vector<json>(q.begin(), q.end()));
        j["signals"] = std::move(sig);
    }
    if (!s.consumed_ids.empty())
        j["consumed"] = std::vector<std::string>(s.consumed_ids.begin(), s.consumed_ids.end());
    j["created"] = to_us(s.created_at);
    j["updated"] = to_us(s.updated_at);
    return j.dump();
}

result<instance> decode_snapshot(std::string_view text) {
    auto parsed = parse_json(text, "a state snapshot");
    if (!parsed) return error{errc::bad_data, parsed.error().message};
    const auto& j = parsed.value();
    try {
        if (!j.is_object() || j.value("v", 0) != 1)
            return error{errc::bad_data, "a state snapshot: not a version 1 snapshot"};
        instance s;
        s.id = j.at("id").get<std::string>();
        auto status = parse_saga_status(j.at("status").get<std::string>());
        if (!status) return error{errc::bad_data, "a state snapshot: unknown saga status"};
        s.status = *status;
        s.correlation_key = j.value("key", std::string());
        s.exclusive = j.value("exclusive", false);
        s.traceparent = j.value("tp", std::string());
        for (const auto& [key, o] : j.at("units").items()) {
            unit u;
            auto st = parse_step_status(o.at("s").get<std::string>());
            if (!st)
                return error{errc::bad_data,
                             fmt::format("a state snapshot: unit '{}' has an unknown status", key)};
            u.status = *st;
            u.attempts = o.value("a", 0u);
            u.compensation_attempts = o.value("ca", 0u);
            u.seq = o.value("q", std::uint64_t{0});
            u.abandoned = o.value("ab", false);
            u.uncertain = o.value("un", false);
            u.forward_generation = o.value("fg", 0u);
            u.compensation_generation = o.value("cg", 0u);
            u.error = o.value("e", std::string());
            u.started_at = get_time(o, "t0");
            u.finished_at = get_time(o, "t1");
            u.deadline = get_time(o, "dl");
            u.retry_at = get_time(o, "ra");
            if (o.contains("items")) u.items = o.at("items").get<std::vector<json>>();
            s.units.emplace(key, std::move(u));
        }
        s.seq = j.value("seq", std::uint64_t{0});
        s.compensating = j.value("compensating", false);
        s.cancel_requested = j.value("cancel", false);
        s.pivot_passed = j.value("pivot_passed", false);
        s.forward_failed = j.value("forward_failed", false);
        s.error = j.value("error", std::string());
        if (j.contains("signals"))
            for (const auto& [name, q] : j.at("signals").items())
                for (const auto& p : q) s.signals[name].push_back(p);
        if (j.contains("consumed"))
            for (const auto& id : j.at("consumed")) s.consumed_ids.push_back(id.get<std::string>());
        s.created_at = from_us(j.value("created", std::int64_t{0}));
        s.updated_at = from_us(j.value("updated", std::int64_t{0}));
        return s;
    } catch (const std::exception& e) {
        return error{errc::bad_data, std::string("a state snapshot: ") + e.what()};
    }
}

}  // namespace saga::machine
