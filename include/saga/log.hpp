#pragma once
/// @file log.hpp
/// Structured logs: every line is one JSON object with a timestamp, a level, a message and the
/// saga's coordinates (saga id, definition and version, step, attempt, correlation id, trace id).
/// The engine writes them through a pluggable `log_sink`; the default writes JSON lines to
/// stderr.
///
/// ```cpp
/// struct my_sink final : saga::log_sink {
///     void write(const saga::log_record& r) override { my_logger.info("{}",
///     saga::to_json_line(r)); }
/// };
/// saga::engine eng(store, transport, {.log_sink = std::make_shared<my_sink>(),
///                                     .log_level = saga::log_level::info});
/// ```

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <saga/clock.hpp>
#include <saga/error.hpp>

namespace saga {

/// How important a log line is.
enum class log_level { debug, info, warn, error, off };

/// Names as written in log lines ("debug", "info", "warn", "error", "off").
[[nodiscard]] std::string_view to_string(log_level l) noexcept;
/// Parses a level name; nullopt for an unknown name.
[[nodiscard]] std::optional<log_level> parse_log_level(std::string_view s) noexcept;

/// One log line.
struct log_record {
    time_point at{};
    log_level level = log_level::info;
    /// what happened: a history event name ("step_failed") or a sentence
    std::string message;
    std::string saga_id;
    std::string definition;
    std::uint32_t definition_version = 0;
    std::string step;
    std::uint32_t attempt = 0;
    std::string correlation_id;
    /// the W3C trace id (32 hex digits), when the saga has one
    std::string trace_id;
    /// anything else (the history entry's detail)
    nlohmann::json fields = nlohmann::json::object();
};

/// The record as one line of JSON (no newline): `ts`, `level`, `msg`, then the coordinates that
/// are set, then `fields`' members.
[[nodiscard]] std::string to_json_line(const log_record& r);

/// Where log lines go. Implementations must be thread-safe and must not throw.
class log_sink {
public:
    virtual ~log_sink() = default;
    /// Writes one record.
    virtual void write(const log_record& r) = 0;
};

/// Writes JSON lines to a C stream (stderr by default), one `fwrite` per line under a mutex.
class json_lines_sink final : public log_sink {
public:
    /// Writes to `out`, which stays the caller's (it must outlive the sink).
    explicit json_lines_sink(std::FILE* out = stderr) : out_(out) {}
    /// Appends to the file `path` (created if missing), which the sink owns;
    /// `errc::invalid_argument` naming the file and the reason when it cannot be opened.
    [[nodiscard]] static result<std::shared_ptr<json_lines_sink>> open(
        const std::filesystem::path& path);
    ~json_lines_sink() override;
    json_lines_sink(const json_lines_sink&) = delete;
    json_lines_sink& operator=(const json_lines_sink&) = delete;
    void write(const log_record& r) override;

private:
    std::FILE* out_;
    bool owned_ = false;
    std::mutex mutex_;
};

}  // namespace saga
