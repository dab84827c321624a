#include <saga/envelope.hpp>
#include <saga/json_limits.hpp>

#include "json_writer.hpp"

namespace saga {

std::string_view to_string(message_kind k) noexcept {
    switch (k) {
        case message_kind::command: return "command";
        case message_kind::compensation: return "compensation";
        case message_kind::reply: return "reply";
        case message_kind::event: return "event";
    }
    return "unknown";
}

std::string_view to_string(reply_status s) noexcept {
    switch (s) {
        case reply_status::success: return "success";
        case reply_status::transient_failure: return "transient_failure";
        case reply_status::permanent_failure: return "permanent_failure";
    }
    return "unknown";
}

namespace {
message_kind parse_kind(const std::string& s) {
    for (auto k : {message_kind::command, message_kind::compensation, message_kind::reply,
                   message_kind::event})
        if (to_string(k) == s) return k;
    throw std::invalid_argument("unknown message kind '" + s + "'");
}
reply_status parse_status(const std::string& s) {
    for (auto k :
         {reply_status::success, reply_status::transient_failure, reply_status::permanent_failure})
        if (to_string(k) == s) return k;
    throw std::invalid_argument("unknown reply status '" + s + "'");
}
}  // namespace

void to_json(nlohmann::json& j, const envelope& e) {
    j = nlohmann::json{{"message_id", e.message_id},
                       {"kind", to_string(e.kind)},
                       {"type", e.type},
                       {"saga_id", e.saga_id},
                       {"step", e.step},
                       {"attempt", e.attempt},
                       {"idempotency_key", e.idempotency_key},
                       {"reply_to", e.reply_to},
                       {"correlation_id", e.correlation_id},
                       {"traceparent", e.traceparent},
                       {"status", to_string(e.status)},
                       {"error", e.error},
                       {"headers", e.headers},
                       {"payload", e.payload}};
}

void from_json(const nlohmann::json& j, envelope& e) {
    e.message_id = j.at("message_id").get<std::string>();
    e.kind = parse_kind(j.value("kind", std::string("command")));
    e.type = j.value("type", std::string());
    e.saga_id = j.value("saga_id", std::string());
    e.step = j.value("step", std::string());
    e.attempt = j.value("attempt", std::uint32_t{0});
    e.idempotency_key = j.value("idempotency_key", std::string());
    e.reply_to = j.value("reply_to", std::string());
    e.correlation_id = j.value("correlation_id", std::string());
    e.traceparent = j.value("traceparent", std::string());
    e.status = parse_status(j.value("status", std::string("success")));
    e.error = j.value("error", std::string());
    e.headers = j.value("headers", std::map<std::string, std::string>{});
    e.payload = j.contains("payload") ? j.at("payload") : nlohmann::json::object();
}

std::string encode(const envelope& e) {
    // Written directly, in the order (and with the text) nlohmann writes to_json's object:
    // only the payload goes through nlohmann.
    std::string out;
    out.reserve(384 + e.error.size());
    out += '{';
    detail::object_writer w(out);
    w.integer("attempt", e.attempt);
    w.string("correlation_id", e.correlation_id);
    w.string("error", e.error);
    w.strings("headers", e.headers);
    w.string("idempotency_key", e.idempotency_key);
    w.name("kind", to_string(e.kind));
    w.string("message_id", e.message_id);
    w.json("payload", e.payload);
    w.string("reply_to", e.reply_to);
    w.string("saga_id", e.saga_id);
    w.name("status", to_string(e.status));
    w.string("step", e.step);
    w.string("traceparent", e.traceparent);
    w.string("type", e.type);
    out += '}';
    return out;
}

result<envelope> decode(std::string_view text) {
    // Bounded: a message from a queue is untrusted (a deeply nested body would overflow the
    // stack when the payload is copied or destroyed).
    auto j = parse_json(text, "envelope");
    if (!j) {
        if (j.error() == errc::limit_exceeded) return std::move(j).error();
        return error{errc::invalid_argument, "malformed envelope: " + j.error().message};
    }
    try {
        return j.value().get<envelope>();
    } catch (const std::exception& ex) {
        return error{errc::invalid_argument, std::string("malformed envelope: ") + ex.what()};
    }
}

}  // namespace saga
