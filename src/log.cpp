#include <saga/log.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace saga {

std::string_view to_string(log_level l) noexcept {
    switch (l) {
        case log_level::debug: return "debug";
        case log_level::info: return "info";
        case log_level::warn: return "warn";
        case log_level::error: return "error";
        case log_level::off: return "off";
    }
    return "info";
}

std::optional<log_level> parse_log_level(std::string_view s) noexcept {
    for (auto l :
         {log_level::debug, log_level::info, log_level::warn, log_level::error, log_level::off})
        if (to_string(l) == s) return l;
    return std::nullopt;
}

std::string to_json_line(const log_record& r) {
    nlohmann::ordered_json j;
    const auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(r.at);
    const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(ms);
    j["ts"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", secs, (ms - secs).count());
    j["level"] = to_string(r.level);
    j["msg"] = r.message;
    if (!r.saga_id.empty()) j["saga_id"] = r.saga_id;
    if (!r.definition.empty()) {
        j["definition"] = r.definition;
        j["version"] = r.definition_version;
    }
    if (!r.step.empty()) j["step"] = r.step;
    if (r.attempt) j["attempt"] = r.attempt;
    if (!r.correlation_id.empty()) j["correlation_id"] = r.correlation_id;
    if (!r.trace_id.empty()) j["trace_id"] = r.trace_id;
    if (r.fields.is_object())
        for (const auto& [k, v] : r.fields.items())
            if (!j.contains(k)) j[k] = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

result<std::shared_ptr<json_lines_sink>> json_lines_sink::open(const std::filesystem::path& path) {
    std::FILE* f = std::fopen(path.c_str(), "a");
    if (!f)
        return error{errc::invalid_argument, fmt::format("cannot open log file '{}': {}",
                                                         path.string(), std::strerror(errno))};
    auto sink = std::make_shared<json_lines_sink>(f);
    sink->owned_ = true;
    return sink;
}

json_lines_sink::~json_lines_sink() {
    if (owned_ && out_) std::fclose(out_);
}

void json_lines_sink::write(const log_record& r) {
    auto line = to_json_line(r);
    line += '\n';
    std::lock_guard lock(mutex_);
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
}

}  // namespace saga
