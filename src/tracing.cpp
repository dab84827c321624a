#include <saga/tracing.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

namespace saga {

namespace {

bool is_hex(std::string_view s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

bool all_zero(std::string_view s) {
    return s.find_first_not_of('0') == std::string_view::npos;
}

std::uint64_t fnv1a(std::string_view a, std::string_view b, std::uint64_t seed) {
    std::uint64_t h = 1469598103934665603ULL ^ seed;
    for (char c : a) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (char c : b) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    // final avalanche (splitmix64)
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

std::int64_t unix_nanos(time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

nlohmann::json otlp_value(const nlohmann::json& v) {
    if (v.is_boolean()) return {{"boolValue", v.get<bool>()}};
    if (v.is_number_integer() || v.is_number_unsigned())
        return {{"intValue", std::to_string(v.get<std::int64_t>())}};
    if (v.is_number_float()) return {{"doubleValue", v.get<double>()}};
    if (v.is_string()) return {{"stringValue", v.get<std::string>()}};
    return {{"stringValue", v.dump()}};
}

}  // namespace

std::string trace_context::traceparent() const {
    return fmt::format("00-{}-{}-{:02x}", trace_id, span_id, flags);
}

std::optional<trace_context> trace_context::parse(std::string_view tp) {
    // version "00": 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters
    if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
    const auto version = tp.substr(0, 2);
    const auto trace = tp.substr(3, 32);
    const auto parent = tp.substr(36, 16);
    const auto flags = tp.substr(53, 2);
    if (!is_hex(version) || version == "ff" || !is_hex(trace) || !is_hex(parent) ||
        !is_hex(flags) || all_zero(trace) || all_zero(parent))
        return std::nullopt;
    if (version == "00" && tp.size() != 55) return std::nullopt;
    trace_context c;
    c.trace_id = std::string(trace);
    c.span_id = std::string(parent);
    c.flags = static_cast<std::uint8_t>(std::stoul(std::string(flags), nullptr, 16));
    return c;
}

trace_context trace_context::random() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     std::hash<std::thread::id>{}(std::this_thread::get_id())};
    trace_context c;
    std::uint64_t a = 0, b = 0, s = 0;
    while (a == 0 && b == 0) {
        a = rng();
        b = rng();
    }
    while (s == 0) s = rng();
    c.trace_id = fmt::format("{:016x}{:016x}", a, b);
    c.span_id = fmt::format("{:016x}", s);
    return c;
}

std::string derive_span_id(std::string_view trace_id, std::string_view parts) {
    auto h = fnv1a(trace_id, parts, 0);
    if (h == 0) h = 1;
    return fmt::format("{:016x}", h);
}

nlohmann::json to_otlp_json(const span& s, std::string_view service_name) {
    nlohmann::json attrs = nlohmann::json::array();
    for (const auto& [k, v] : s.attributes.items())
        attrs.push_back({{"key", k}, {"value", otlp_value(v)}});
    attrs.push_back({{"key", "saga.span_kind"}, {"value", {{"stringValue", s.kind}}}});
    nlohmann::json sp{
        {"traceId", s.trace_id},
        {"spanId", s.span_id},
        {"name", s.name},
        {"kind", s.kind == "saga" ? 1 : 3},  // INTERNAL, CLIENT
        {"startTimeUnixNano", std::to_string(unix_nanos(s.start))},
        {"endTimeUnixNano", std::to_string(unix_nanos(s.end))},
        {"attributes", std::move(attrs)},
        {"status", s.ok ? nlohmann::json{{"code", 1}}
                        : nlohmann::json{{"code", 2}, {"message", s.status_message}}}};
    if (!s.parent_span_id.empty()) sp["parentSpanId"] = s.parent_span_id;
    return {{"resourceSpans",
             {{{"resource",
                {{"attributes",
                  {{{"key", "service.name"}, {"value", {{"stringValue", service_name}}}}}}}},
               {"scopeSpans", {{{"scope", {{"name", "saga"}}}, {"spans", {sp}}}}}}}}};
}

result<std::shared_ptr<otlp_file_exporter>> otlp_file_exporter::open(
    const std::filesystem::path& path, std::string service_name) {
    std::FILE* f = std::fopen(path.c_str(), "a");
    if (!f)
        return error{errc::invalid_argument, fmt::format("cannot open span file '{}': {}",
                                                         path.string(), std::strerror(errno))};
    return std::shared_ptr<otlp_file_exporter>(new otlp_file_exporter(f, std::move(service_name)));
}

otlp_file_exporter::~otlp_file_exporter() {
    if (file_) std::fclose(file_);
}

void otlp_file_exporter::export_span(const span& s) {
    auto line = to_otlp_json(s, service_name_)
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    std::lock_guard lock(mutex_);
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
}

}  // namespace saga
