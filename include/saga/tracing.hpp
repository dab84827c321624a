#pragma once
/// @file tracing.hpp
/// Trace context and spans. A saga continues the W3C `traceparent` it was started with (or
/// starts a new trace); each step attempt is a child span whose id travels to the participant in
/// the envelope's `traceparent`, so the participant's own spans hang under the step. The engine
/// hands finished spans (saga, step, compensation) to a `span_exporter`; `otlp_file_exporter`
/// writes them as OTLP/JSON lines that an OpenTelemetry collector's file receiver (or any
/// OTLP/JSON tool) reads.

#include <nlohmann/json.hpp>

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

/// A parsed W3C trace context: `00-<trace id>-<parent span id>-<flags>`.
struct trace_context {
    /// 32 lower-case hex digits, not all zero
    std::string trace_id;
    /// 16 lower-case hex digits, not all zero
    std::string span_id;
    std::uint8_t flags = 1;

    /// The `traceparent` header value.
    [[nodiscard]] std::string traceparent() const;
    /// Parses a `traceparent` value; nullopt if it is malformed (as the W3C spec says to treat it).
    [[nodiscard]] static std::optional<trace_context> parse(std::string_view traceparent);
    /// A new random trace with a new random span id.
    [[nodiscard]] static trace_context random();
};

/// A deterministic span id (16 hex digits) for `parts` within `trace_id`: the engine derives the
/// ids of saga, step and compensation spans this way, so that every process that handles the
/// saga (and a restarted one) names the same span the same way without storing it.
[[nodiscard]] std::string derive_span_id(std::string_view trace_id, std::string_view parts);

/// A finished span.
struct span {
    std::string trace_id;
    std::string span_id;
    /// empty for a root span
    std::string parent_span_id;
    /// e.g. "saga publish", "step reserve_budget", "compensate reserve_budget"
    std::string name;
    /// "saga", "step" or "compensation"
    std::string kind;
    time_point start{};
    time_point end{};
    bool ok = true;
    /// the error, when not ok
    std::string status_message;
    /// string/number/bool attributes (saga.id, saga.definition, saga.step, saga.attempts, ...)
    nlohmann::json attributes = nlohmann::json::object();
};

/// Receives finished spans. Implementations must be thread-safe and must not throw.
class span_exporter {
public:
    virtual ~span_exporter() = default;
    virtual void export_span(const span& s) = 0;
};

/// The span as one OTLP/JSON `ExportTraceServiceRequest` object (one resource, one scope, one
/// span), with `service_name` as the resource's `service.name`.
[[nodiscard]] nlohmann::json to_otlp_json(const span& s, std::string_view service_name = "saga");

/// Appends each span as one line of OTLP/JSON to a file.
class otlp_file_exporter final : public span_exporter {
public:
    /// Opens (creates or appends to) `path`; `errc::invalid_argument` naming the file and the
    /// reason on failure.
    [[nodiscard]] static result<std::shared_ptr<otlp_file_exporter>> open(
        const std::filesystem::path& path, std::string service_name = "saga");
    ~otlp_file_exporter() override;
    otlp_file_exporter(const otlp_file_exporter&) = delete;
    otlp_file_exporter& operator=(const otlp_file_exporter&) = delete;
    void export_span(const span& s) override;

private:
    otlp_file_exporter(std::FILE* f, std::string service_name)
        : file_(f), service_name_(std::move(service_name)) {}
    std::FILE* file_;
    std::string service_name_;
    std::mutex mutex_;
};

}  // namespace saga
