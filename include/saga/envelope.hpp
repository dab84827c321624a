#pragma once
/// @file envelope.hpp
/// The message on a transport: headers every saga message carries, and a JSON payload.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <saga/error.hpp>

namespace saga {

/// What a message is for.
enum class message_kind {
    /// a forward command from the engine to a participant
    command,
    /// a compensating command from the engine to a participant
    compensation,
    /// a participant's answer to a command or compensation
    reply,
    /// a domain event or an external signal for waiting sagas
    event,
};

/// How a participant answered (meaningful on replies).
enum class reply_status {
    /// the command was carried out; the payload is its result
    success,
    /// the command failed but may succeed if sent again (same idempotency key)
    transient_failure,
    /// the command failed for good
    permanent_failure,
};

/// A message on a transport. All fields are plain data; transports carry every field.
struct envelope {
    /// unique per message (per send); the inbox deduplicates on it
    std::string message_id;
    /// command, compensation, reply or event
    message_kind kind = message_kind::command;
    /// the command or event type, e.g. "reserve_budget", "AdReviewed"
    std::string type;
    /// the saga instance this message belongs to (may be empty on events)
    std::string saga_id;
    /// the step (or step[item]) this message is about
    std::string step;
    /// 1-based attempt number of the step that sent it
    std::uint32_t attempt = 0;
    /// stable per step: `<saga id>/<step>` or `<saga id>/<step>/compensate`
    std::string idempotency_key;
    /// where replies go
    std::string reply_to;
    /// the saga's correlation key (business key), if any
    std::string correlation_id;
    /// W3C trace context
    std::string traceparent;
    /// on replies: how the participant answered
    reply_status status = reply_status::success;
    /// on failed replies: what went wrong
    std::string error;
    /// free-form string headers
    std::map<std::string, std::string> headers;
    /// the body
    nlohmann::json payload = nlohmann::json::object();

    friend bool operator==(const envelope&, const envelope&) = default;
};

/// JSON form of an envelope (field names as above; kind and status as strings).
void to_json(nlohmann::json& j, const envelope& e);
/// Reads an envelope; throws nlohmann::json exceptions on malformed input (use `decode`).
void from_json(const nlohmann::json& j, envelope& e);

/// Serialises an envelope to a compact JSON string.
[[nodiscard]] std::string encode(const envelope& e);
/// Parses an envelope; malformed text is `errc::invalid_argument` with the parser's reason.
[[nodiscard]] result<envelope> decode(std::string_view text);

/// Names of the kinds and statuses, as used in JSON and logs.
[[nodiscard]] std::string_view to_string(message_kind k) noexcept;
[[nodiscard]] std::string_view to_string(reply_status s) noexcept;

}  // namespace saga
