// Authentication, routing and the JSON endpoints of the admin server (no Beast here).
#include "api.hpp"

#include <fmt/format.h>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <saga/json_limits.hpp>
#include <saga/status.hpp>

namespace saga::admin {

using json = nlohmann::json;

// ---- errors --------------------------------------------------------------------------------

std::string_view error_type(const error& e) noexcept {
    if (e.code.category() != saga_category()) return "INTERNAL";
    switch (static_cast<errc>(e.code.value())) {
        case errc::success: return "SUCCESS";
        case errc::invalid_definition: return "INVALID_DEFINITION";
        case errc::invalid_argument: return "INVALID_ARGUMENT";
        case errc::not_found: return "NOT_FOUND";
        case errc::already_exists: return "ALREADY_EXISTS";
        case errc::version_conflict: return "VERSION_CONFLICT";
        case errc::duplicate_message: return "DUPLICATE_MESSAGE";
        case errc::lock_held: return "LOCK_HELD";
        case errc::definition_not_registered: return "DEFINITION_NOT_REGISTERED";
        case errc::bad_data: return "BAD_DATA";
        case errc::step_threw: return "STEP_THREW";
        case errc::participant_transient: return "PARTICIPANT_TRANSIENT";
        case errc::participant_permanent: return "PARTICIPANT_PERMANENT";
        case errc::timeout: return "TIMEOUT";
        case errc::deadline_exceeded: return "DEADLINE_EXCEEDED";
        case errc::circuit_open: return "CIRCUIT_OPEN";
        case errc::cancelled: return "CANCELLED";
        case errc::saga_finished: return "SAGA_FINISHED";
        case errc::past_pivot: return "PAST_PIVOT";
        case errc::store_failure: return "STORE_FAILURE";
        case errc::store_busy: return "STORE_BUSY";
        case errc::transport_failure: return "TRANSPORT_FAILURE";
        case errc::shutting_down: return "SHUTTING_DOWN";
        case errc::invalid_state: return "INVALID_STATE";
        case errc::limit_exceeded: return "LIMIT_EXCEEDED";
    }
    return "INTERNAL";
}

unsigned http_status_of(const error& e) noexcept {
    if (e.code.category() != saga_category()) return 500;
    switch (static_cast<errc>(e.code.value())) {
        case errc::not_found: return 404;
        case errc::invalid_state:
        case errc::saga_finished:
        case errc::past_pivot:
        case errc::lock_held:
        case errc::already_exists:
        case errc::version_conflict: return 409;
        case errc::limit_exceeded: return 413;
        case errc::invalid_argument:
        case errc::bad_data:
        case errc::invalid_definition:
        case errc::definition_not_registered: return 400;
        case errc::shutting_down:
        case errc::store_busy: return 503;
        default: return 500;
    }
}

response error_response(unsigned status, std::string_view type, std::string_view message) {
    return {status, json{{"error", {{"type", type}, {"message", message}}}}};
}

// ---- request helpers -----------------------------------------------------------------------

result<json> request::json() const {
    if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
    // bounded: a deeply nested body would overflow the stack when a handler copies it
    return parse_json(body, "the request body");
}

std::string request::query_or(std::string_view name, std::string fallback) const {
    if (auto it = query.find(name); it != query.end()) return it->second;
    return fallback;
}

namespace detail {
namespace {

// ---- small utilities -----------------------------------------------------------------------

std::string percent_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%' && i + 2 < s.size()) {
            int v = 0;
            auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
            if (ec == std::errc{} && p == s.data() + i + 3) {
                out.push_back(static_cast<char>(v));
                i += 2;
                continue;
            }
        }
        out.push_back(plus_is_space && c == '+' ? ' ' : c);
    }
    return out;
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        const auto j = std::min(path.find('/', i), path.size());
        out.push_back(percent_decode(path.substr(i, j - i), false));
        i = j;
    }
    return out;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::ranges::transform(out, out.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

/// A reply body; text that is not UTF-8 (from a path, say) is replaced rather than thrown on.
std::string to_text(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// A correlation id a client sent that is safe to echo and log: 1 to 128 printable ASCII
/// characters, no spaces.
bool usable_correlation(std::string_view v) {
    return !v.empty() && v.size() <= 128 &&
           std::ranges::all_of(v, [](char c) { return c > 0x20 && c < 0x7f; });
}

/// Compares in time that depends only on the length of `given`, not on where it differs.
bool constant_time_equal(std::string_view given, std::string_view expected) {
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    const std::size_t n = given.size();
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned char e =
            expected.empty() ? 0 : static_cast<unsigned char>(expected[i % expected.size()]);
        diff |= static_cast<unsigned char>(static_cast<unsigned char>(given[i]) ^ e);
    }
    return diff == 0;
}

// ---- time ----------------------------------------------------------------------------------

std::string iso(time_point t) {
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(t);
    const auto day = floor<days>(ms);
    const year_month_day ymd{day};
    const hh_mm_ss hms{ms - day};
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                       hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                       hms.subseconds().count());
}

json iso_or_null(const std::optional<time_point>& t) {
    return t ? json(iso(*t)) : json(nullptr);
}

/// RFC 3339 ("2026-01-01T10:00:00Z", "...T10:00:00.250+02:00", "2026-01-01") or Unix epoch
/// milliseconds.
result<time_point> parse_time(std::string_view s) {
    using namespace std::chrono;
    const auto bad = [&] {
        return error{errc::invalid_argument,
                     fmt::format("'{}' is not an RFC 3339 time or epoch milliseconds", s)};
    };
    if (!s.empty() && std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; })) {
        long long v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        // time_point counts nanoseconds in 64 bits: milliseconds beyond that would overflow
        constexpr long long max_ms = std::numeric_limits<long long>::max() / 1'000'000;
        if (ec != std::errc{} || v > max_ms) return bad();
        return time_point{milliseconds{v}};
    }
    std::size_t pos = 0;
    auto num = [&](std::size_t digits, int& out) {
        if (pos + digits > s.size()) return false;
        auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + digits, out);
        if (ec != std::errc{} || p != s.data() + pos + digits) return false;
        pos += digits;
        return true;
    };
    auto expect = [&](char c) {
        if (pos < s.size() && (s[pos] == c || std::tolower(s[pos]) == std::tolower(c))) {
            ++pos;
            return true;
        }
        return false;
    };
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!num(4, y) || !expect('-') || !num(2, mo) || !expect('-') || !num(2, d)) return bad();
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    // time_point counts nanoseconds in 64 bits: years 1678 to 2261
    if (!ymd.ok() || y < 1678 || y > 2261) return bad();
    milliseconds offset{0};
    milliseconds frac{0};
    if (pos < s.size()) {
        if (!(expect('T') || expect(' ')) || !num(2, h) || !expect(':') || !num(2, mi) ||
            !expect(':') || !num(2, sec))
            return bad();
        if (h > 23 || mi > 59 || sec > 60) return bad();
        if (expect('.')) {
            int scale = 100;
            std::size_t digits = 0;
            while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
                frac += milliseconds{(s[pos] - '0') * scale};
                scale /= 10;
                ++pos;
                ++digits;
            }
            if (digits == 0) return bad();
        }
        if (expect('Z')) {
        } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
            const int sign = s[pos] == '-' ? -1 : 1;
            ++pos;
            int oh = 0, om = 0;
            if (!num(2, oh) || !expect(':') || !num(2, om)) return bad();
            offset = sign * (hours{oh} + minutes{om});
        }
        if (pos != s.size()) return bad();
    }
    return time_point{sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + frac - offset};
}

// ---- JSON views ----------------------------------------------------------------------------

json summary_of(const instance_record& r) {
    return {{"id", r.id},
            {"definition", r.definition},
            {"definition_version", r.definition_version},
            {"version", r.version},
            {"status", to_string(r.status)},
            {"correlation_key", r.correlation_key},
            {"exclusive", r.exclusive},
            {"created_at", iso(r.created_at)},
            {"updated_at", iso(r.updated_at)},
            {"percent_complete", nullptr},
            {"current_steps", json::array()},
            {"error", ""}};
}

json step_json(const step_view& s) {
    json j{{"name", s.name},
           {"kind", s.kind},
           {"status", to_string(s.status)},
           {"attempts", s.attempts},
           {"compensation_attempts", s.compensation_attempts},
           {"error", s.error},
           {"started_at", iso_or_null(s.started_at)},
           {"finished_at", iso_or_null(s.finished_at)},
           {"duration_ms", nullptr}};
    if (s.started_at && s.finished_at)
        j["duration_ms"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(*s.finished_at - *s.started_at)
                .count();
    if (s.kind == "for_each") {
        j["items_total"] = s.items_total;
        j["items_completed"] = s.items_completed;
        j["items_failed"] = s.items_failed;
        json items = json::array();
        for (const auto& it : s.items)
            items.push_back({{"index", it.index},
                             {"item", it.item},
                             {"status", to_string(it.status)},
                             {"attempts", it.attempts},
                             {"error", it.error}});
        j["items"] = std::move(items);
    }
    return j;
}

json view_json(const instance_view& v, bool full) {
    json j{{"id", v.id},
           {"definition", v.definition},
           {"definition_version", v.definition_version},
           {"version", v.version},
           {"status", to_string(v.status)},
           {"correlation_key", v.correlation_key},
           {"created_at", iso(v.created_at)},
           {"updated_at", iso(v.updated_at)},
           {"percent_complete", v.percent_complete},
           {"current_steps", v.current_steps},
           {"error", v.error}};
    if (full) {
        j["data"] = v.data;
        json steps = json::array();
        for (const auto& s : v.steps) steps.push_back(step_json(s));
        j["steps"] = std::move(steps);
    }
    return j;
}

json history_json(const history_entry& h) {
    return {{"version", h.version}, {"at", iso(h.at)},
            {"event", h.event},     {"step", h.step},
            {"attempt", h.attempt}, {"detail", h.detail.is_null() ? json::object() : h.detail}};
}

response ok(json body) {
    return {200, std::move(body)};
}

bool contains_ci(std::string_view hay, std::string_view needle) {
    return lower(hay).find(needle) != std::string::npos;
}

/// Parses the filter query parameters shared by list and summary.
result<list_filter> filter_of(const request& r) {
    list_filter f;
    if (auto s = r.query_or("status"); !s.empty()) {
        std::size_t i = 0;
        while (i <= s.size()) {
            const auto j = std::min(s.find(',', i), s.size());
            const auto name = std::string_view(s).substr(i, j - i);
            if (!name.empty()) {
                auto st = parse_saga_status(name);
                if (!st)
                    return error{errc::invalid_argument,
                                 fmt::format("unknown status '{}' (running, waiting, "
                                             "compensating, completed, compensated, failed, "
                                             "compensation_failed, cancelled, paused)",
                                             name)};
                f.statuses.push_back(*st);
            }
            i = j + 1;
        }
    }
    f.definition = r.query_or("definition");
    f.correlation_key = r.query_or("correlation_key");
    if (auto s = r.query_or("updated_after"); !s.empty()) {
        SAGA_TRY(auto t, parse_time(s));
        f.updated_after = t;
    }
    if (auto s = r.query_or("updated_before"); !s.empty()) {
        SAGA_TRY(auto t, parse_time(s));
        f.updated_before = t;
    }
    f.after_id = r.query_or("after");
    return f;
}

result<std::size_t> limit_of(const request& r, std::size_t fallback, std::size_t max) {
    const auto s = r.query_or("limit");
    if (s.empty()) return fallback;
    std::size_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > max)
        return error{errc::invalid_argument,
                     fmt::format("limit must be an integer from 1 to {}", max)};
    return v;
}

/// The `why` of an operator action body, and the operator from the request.
result<operator_note> note_of(const request& r, const json& body) {
    if (!body.is_object()) return error{errc::invalid_argument, "the body must be a JSON object"};
    const auto it = body.find("why");
    if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
        return error{errc::invalid_argument,
                     "operator actions need a reason: a body like {\"why\": \"...\"}"};
    return operator_note{r.operator_name, it->get<std::string>()};
}

std::string_view content_type_of(std::string_view path) {
    const auto ends = [&](std::string_view x) { return path.ends_with(x); };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".json")) return "application/json";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    return "application/octet-stream";
}

}  // namespace

/// The built-in JSON routes over `eng`.
std::vector<api::builtin_route> builtin_routes(saga::engine& eng) {
    using params = std::vector<std::string>;
    auto action = [&eng](auto&& act) {
        return [&eng, act](const request& q, const params& p) -> result<response> {
            SAGA_TRY(auto body, q.json());
            SAGA_TRY(auto note, note_of(q, body));
            SAGA_TRY(act(p, note, body));
            SAGA_TRY(auto v, eng.query(p[0]));
            return ok({{"ok", true}, {"saga", view_json(v, true)}});
        };
    };
    return {
        {"GET",
         {"api", "v1", "sagas"},
         [&eng](const request& q, const params&) -> result<response> {
             SAGA_TRY(auto filter, filter_of(q));
             SAGA_TRY(auto limit, limit_of(q, 50, 500));
             const auto needle = lower(q.query_or("q"));
             json items = json::array();
             std::string next;
             bool more = false;
             filter.limit = needle.empty() ? limit + 1 : std::max<std::size_t>(limit * 4, 200);
             for (;;) {
                 SAGA_TRY(auto page, eng.list(filter));
                 for (const auto& rec : page) {
                     if (!needle.empty() && !contains_ci(rec.id, needle) &&
                         !contains_ci(rec.correlation_key, needle) &&
                         !contains_ci(rec.definition, needle))
                         continue;
                     if (items.size() == limit) {
                         more = true;
                         break;
                     }
                     auto s = summary_of(rec);
                     if (auto v = eng.query(rec.id)) {
                         s["percent_complete"] = v.value().percent_complete;
                         s["current_steps"] = v.value().current_steps;
                         s["error"] = v.value().error;
                     }
                     items.push_back(std::move(s));
                     next = rec.id;
                 }
                 if (more || page.size() < filter.limit || page.empty()) break;
                 filter.after_id = page.back().id;
             }
             return ok({{"items", std::move(items)},
                        {"next_after", more ? json(next) : json(nullptr)},
                        {"limit", limit}});
         }},
        {"GET",
         {"api", "v1", "summary"},
         [&eng](const request& q, const params&) -> result<response> {
             SAGA_TRY(auto filter, filter_of(q));
             constexpr std::size_t cap = 100'000;
             filter.limit = cap + 1;
             SAGA_TRY(auto all, eng.list(filter));
             json counts = json::object();
             for (auto s :
                  {saga_status::running, saga_status::waiting, saga_status::compensating,
                   saga_status::completed, saga_status::compensated, saga_status::failed,
                   saga_status::compensation_failed, saga_status::cancelled, saga_status::paused})
                 counts[std::string(to_string(s))] = 0;
             std::set<std::string> definitions;
             for (std::size_t i = 0; i < std::min(all.size(), cap); ++i) {
                 auto& c = counts[std::string(to_string(all[i].status))];
                 c = c.get<std::size_t>() + 1;
                 definitions.insert(all[i].definition);
             }
             json blocked = json::array();
             for (const auto& b : eng.blocked())
                 blocked.push_back({{"id", b.id},
                                    {"definition", b.definition},
                                    {"version", b.version},
                                    {"error", b.error}});
             return ok({{"counts", std::move(counts)},
                        {"total", std::min(all.size(), cap)},
                        {"truncated", all.size() > cap},
                        {"definitions", definitions},
                        {"blocked", std::move(blocked)}});
         }},
        {"GET",
         {"api", "v1", "sagas", "*"},
         [&eng](const request&, const params& p) -> result<response> {
             SAGA_TRY(auto v, eng.query(p[0]));
             return ok(view_json(v, true));
         }},
        {"GET",
         {"api", "v1", "sagas", "*", "history"},
         [&eng](const request&, const params& p) -> result<response> {
             SAGA_TRY(auto h, eng.history(p[0]));
             json items = json::array();
             for (const auto& e : h) items.push_back(history_json(e));
             return ok({{"id", p[0]}, {"items", std::move(items)}});
         }},
        {"POST",
         {"api", "v1", "sagas", "*", "cancel"},
         action([&eng](const params& p, const operator_note& n, const json&) {
             return eng.cancel(p[0], n);
         })},
        {"POST",
         {"api", "v1", "sagas", "*", "pause"},
         action([&eng](const params& p, const operator_note& n, const json&) {
             return eng.pause(p[0], n);
         })},
        {"POST",
         {"api", "v1", "sagas", "*", "resume"},
         action([&eng](const params& p, const operator_note& n, const json&) {
             return eng.resume(p[0], n);
         })},
        {"POST",
         {"api", "v1", "sagas", "*", "retry"},
         action([&eng](const params& p, const operator_note& n, const json&) {
             return eng.retry(p[0], n);
         })},
        {"POST",
         {"api", "v1", "sagas", "*", "steps", "*", "skip"},
         action([&eng](const params& p, const operator_note& n, const json&) {
             return eng.skip_step(p[0], p[1], n);
         })},
        {"POST",
         {"api", "v1", "sagas", "*", "signals", "*"},
         [&eng](const request& q, const params& p) -> result<response> {
             SAGA_TRY(auto body, q.json());
             if (!body.is_object())
                 return error{errc::invalid_argument, "the body must be a JSON object"};
             json payload = body.value("payload", json::object());
             SAGA_TRY(eng.signal(p[0], p[1], std::move(payload)));
             SAGA_TRY(auto v, eng.query(p[0]));
             return ok({{"ok", true}, {"saga", view_json(v, true)}});
         }},
        {"POST",
         {"api", "v1", "locks", "*", "release"},
         [&eng](const request& q, const params& p) -> result<response> {
             SAGA_TRY(auto body, q.json());
             SAGA_TRY(auto note, note_of(q, body));
             SAGA_TRY(auto n, eng.release_lock(p[0], note));
             return ok({{"ok", true}, {"correlation_key", p[0]}, {"released", n}});
         }},
    };
}

http_reply error_reply(unsigned status, std::string_view type, std::string_view message,
                       std::string_view correlation) {
    auto body = error_response(status, type, message).body;
    body["error"]["correlation"] = correlation;
    http_reply r;
    r.status = status;
    r.body = to_text(body);
    r.error_type = std::string(type);
    return r;
}

std::string new_correlation_id() {
    thread_local boost::uuids::random_generator generate;
    return boost::uuids::to_string(generate());
}

api::api(saga::engine& e, server_options options, std::string token)
    : engine_(e),
      options_(std::move(options)),
      token_(std::move(token)),
      builtins_(builtin_routes(e)) {}

result<void> api::add_route(std::string method, std::string prefix, route_handler handler) {
    if (method.empty()) return error{errc::invalid_argument, "a route needs a method"};
    if (prefix.empty() || prefix.front() != '/')
        return error{errc::invalid_argument,
                     fmt::format("route prefix '{}' must start with '/'", prefix)};
    if (!handler) return error{errc::invalid_argument, "a route needs a handler"};
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::lock_guard lock(mutex_);
    for (const auto& r : routes_)
        if (r.method == method && r.prefix == prefix)
            return error{errc::invalid_argument,
                         fmt::format("route {} {} is already added", method, prefix)};
    routes_.push_back({std::move(method), std::move(prefix), std::move(handler)});
    std::ranges::stable_sort(routes_, [](const extra_route& a, const extra_route& b) {
        return a.prefix.size() > b.prefix.size();
    });
    return success();
}

bool api::authorized(const request& r) const {
    if (token_.empty()) return options_.allow_no_auth;
    const auto it = r.headers.find("authorization");
    if (it == r.headers.end()) return false;
    std::string_view v = it->second;
    if (v.size() < 7 || lower(v.substr(0, 7)) != "bearer ") return false;
    v.remove_prefix(7);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return constant_time_equal(v, token_);
}

http_reply api::call(const route_handler& h, const request& r) {
    result<response> res = error{errc::invalid_state, "no handler"};
    try {
        res = h(r);
    } catch (const std::exception& e) {
        return error_reply(500, "INTERNAL", fmt::format("handler threw: {}", e.what()),
                           r.correlation_id);
    } catch (...) {
        return error_reply(500, "INTERNAL", "handler threw an unknown exception", r.correlation_id);
    }
    if (!res) {
        const auto& e = res.error();
        return error_reply(http_status_of(e), error_type(e),
                           e.message.empty() ? e.code.message() : e.message, r.correlation_id);
    }
    http_reply out;
    out.status = res.value().status;
    auto& body = res.value().body;
    // an error body the handler made itself (error_response) gets the correlation id too
    if (out.status >= 400 && body.is_object())
        if (auto e = body.find("error"); e != body.end() && e->is_object()) {
            if (!e->contains("correlation")) (*e)["correlation"] = r.correlation_id;
            if (auto t = e->find("type"); t != e->end() && t->is_string())
                out.error_type = t->get<std::string>();
        }
    out.body = to_text(body);
    return out;
}

http_reply api::serve_static(const request& r) {
    std::string path = r.path == "/" ? "/index.html" : r.path;
    if (!options_.static_dir.empty()) {
        for (const auto& seg : split_path(path))
            if (seg.empty() || seg.front() == '.' || seg.find('\\') != std::string::npos)
                return error_reply(404, "NOT_FOUND", "no such file", r.correlation_id);
        std::ifstream in(options_.static_dir + path, std::ios::binary);
        if (in) {
            std::ostringstream ss;
            ss << in.rdbuf();
            http_reply out;
            out.content_type = std::string(content_type_of(path));
            out.body = ss.str();
            out.headers.emplace_back("Cache-Control", "no-cache");
            return out;
        }
    }
    for (const auto& a : embedded_assets()) {
        if (a.path == path) {
            http_reply out;
            out.content_type = std::string(a.content_type);
            out.body = std::string(a.data);
            out.headers.emplace_back("Cache-Control", "no-cache");
            return out;
        }
    }
    return error_reply(404, "NOT_FOUND", fmt::format("no route for {}", r.path), r.correlation_id);
}

request api::make_request(std::string method, std::string_view target,
                          std::map<std::string, std::string, std::less<>> headers) const {
    request r;
    r.method = std::move(method);
    r.headers = std::move(headers);
    const auto q = target.find('?');
    r.path = percent_decode(target.substr(0, q), false);
    if (q != std::string_view::npos) {
        auto qs = target.substr(q + 1);
        while (!qs.empty()) {
            const auto amp = std::min(qs.find('&'), qs.size());
            const auto pair = qs.substr(0, amp);
            const auto eq = pair.find('=');
            if (!pair.empty())
                r.query[percent_decode(pair.substr(0, eq), true)] =
                    eq == std::string_view::npos ? std::string()
                                                 : percent_decode(pair.substr(eq + 1), true);
            qs.remove_prefix(std::min(amp + 1, qs.size()));
        }
    }
    r.operator_name = options_.default_operator;
    if (auto it = r.headers.find(lower(options_.operator_header));
        it != r.headers.end() && !it->second.empty())
        r.operator_name = it->second.substr(0, 200);
    if (auto it = r.headers.find("x-correlation-id");
        it != r.headers.end() && usable_correlation(it->second))
        r.correlation_id = it->second;
    else
        r.correlation_id = new_correlation_id();
    return r;
}

http_reply api::finish(const request& r, http_reply reply,
                       std::chrono::steady_clock::time_point started) const {
    reply.headers.emplace_back("X-Correlation-Id", r.correlation_id);
    if (options_.access_log) {
        const auto took =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started);
        log_record line;
        line.at = std::chrono::system_clock::now();
        line.level = reply.status >= 500 ? log_level::error : log_level::info;
        line.message = fmt::format("{} {} {}", r.method, r.path, reply.status);
        line.correlation_id = r.correlation_id;
        line.fields = {{"component", "saga.admin"},
                       {"method", r.method},
                       {"path", r.path},
                       {"status", reply.status},
                       {"duration_ms", took.count()},
                       {"operator", r.operator_name},
                       {"bytes", reply.body.size()}};
        if (!reply.error_type.empty()) line.fields["error"] = reply.error_type;
        options_.access_log->write(line);
    }
    return reply;
}

http_reply api::handle(std::string method, std::string_view target,
                       std::map<std::string, std::string, std::less<>> headers, std::string body) {
    const auto started = std::chrono::steady_clock::now();
    auto r = make_request(std::move(method), target, std::move(headers));
    r.body = std::move(body);
    auto reply = dispatch(r, split_path(target.substr(0, target.find('?'))));
    return finish(r, std::move(reply), started);
}

http_reply api::refuse(std::string method, std::string_view target,
                       std::map<std::string, std::string, std::less<>> headers, unsigned status,
                       std::string_view type, std::string_view message) {
    const auto started = std::chrono::steady_clock::now();
    const auto r = make_request(std::move(method), target, std::move(headers));
    return finish(r, error_reply(status, type, message, r.correlation_id), started);
}

http_reply api::dispatch(request& r, const std::vector<std::string>& seg) {
    // Unauthenticated: health and the dashboard's files (the page asks for the token itself).
    if (r.path == "/healthz") {
        if (r.method != "GET" && r.method != "HEAD") {
            auto out = error_reply(405, "METHOD_NOT_ALLOWED", "use GET", r.correlation_id);
            out.headers.emplace_back("Allow", "GET");
            return out;
        }
        http_reply out;
        out.body = to_text(json{{"status", "ok"}});
        return out;
    }
    const bool api_path = r.path.starts_with("/api/") || r.path == "/api" || r.path == "/metrics";
    bool extra_path = false;
    {
        std::lock_guard lock(mutex_);
        for (const auto& x : routes_)
            if (r.path == x.prefix || r.path.starts_with(x.prefix + "/")) extra_path = true;
    }
    if (!api_path && !extra_path) {
        if (r.method != "GET" && r.method != "HEAD") {
            auto out =
                error_reply(405, "METHOD_NOT_ALLOWED", "static files take GET", r.correlation_id);
            out.headers.emplace_back("Allow", "GET");
            return out;
        }
        return serve_static(r);
    }
    if (!authorized(r)) {
        auto out = error_reply(401, "UNAUTHORIZED",
                               r.headers.contains("authorization")
                                   ? "the bearer token is wrong"
                                   : "an Authorization: Bearer <token> header is required",
                               r.correlation_id);
        out.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"saga-admin\"");
        return out;
    }

    bool path_matched = false;
    std::set<std::string> allowed;
    for (const auto& rt : builtins_) {
        if (rt.pattern.size() != seg.size()) continue;
        std::vector<std::string> p;
        bool match = true;
        for (std::size_t i = 0; i < seg.size() && match; ++i) {
            if (rt.pattern[i] == "*")
                p.push_back(seg[i]);
            else
                match = rt.pattern[i] == seg[i];
        }
        if (!match) continue;
        path_matched = true;
        allowed.insert(std::string(rt.method));
        if (rt.method != r.method) continue;
        return call([&](const request& q) { return rt.handler(q, p); }, r);
    }

    // /metrics and /api/v1/openapi.json
    if (r.path == "/metrics" || r.path == "/api/v1/openapi.json") {
        if (r.method != "GET") {
            auto out = error_reply(405, "METHOD_NOT_ALLOWED", "use GET", r.correlation_id);
            out.headers.emplace_back("Allow", "GET");
            return out;
        }
        if (r.path == "/metrics") {
            http_reply out;
            out.content_type = "text/plain; version=0.0.4; charset=utf-8";
            out.body = engine_.metrics().prometheus_text();
            return out;
        }
        return serve_static(r);
    }

    // Routes the embedding application added (longest prefix first).
    if (!path_matched) {
        std::vector<extra_route> candidates;
        {
            std::lock_guard lock(mutex_);
            for (const auto& x : routes_)
                if (r.path == x.prefix || r.path.starts_with(x.prefix + "/"))
                    candidates.push_back(x);
        }
        for (const auto& x : candidates) {
            allowed.insert(x.method);
            path_matched = true;
        }
        for (const auto& x : candidates) {
            if (x.method != r.method) continue;
            r.rest = r.path.substr(x.prefix.size());
            return call(x.handler, r);
        }
    }
    if (path_matched) {
        std::string allow;
        for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
        auto out =
            error_reply(405, "METHOD_NOT_ALLOWED",
                        fmt::format("{} is not allowed on {}; use {}", r.method, r.path, allow),
                        r.correlation_id);
        out.headers.emplace_back("Allow", allow);
        return out;
    }
    return error_reply(404, "NOT_FOUND", fmt::format("no route for {} {}", r.method, r.path),
                       r.correlation_id);
}

}  // namespace detail
}  // namespace saga::admin
