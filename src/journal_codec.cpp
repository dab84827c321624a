#include <saga/journal_codec.hpp>

#include "json_writer.hpp"

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <limits>
#include <utility>

namespace saga {
namespace {

using namespace std::string_view_literals;

// ---- writing ----------------------------------------------------------------------------------

using detail::object_writer;

// ---- reading ----------------------------------------------------------------------------------

/// What `read_*` found wrong; turned into an `error` naming the text, the element and the field.
struct bad_field {
    std::string_view key;
    std::string_view field;
    std::string problem;
};

template <class Int>
bool read_unsigned(const nlohmann::json& v, Int& out) noexcept {
    if (!v.is_number_unsigned()) return false;  // the parser reads integers >= 0 as unsigned
    const auto u = v.get<std::uint64_t>();
    if (u > std::numeric_limits<Int>::max()) return false;
    out = static_cast<Int>(u);
    return true;
}

bool read_time(const nlohmann::json& v, time_point& out) noexcept {
    std::int64_t micros = 0;
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
        micros = static_cast<std::int64_t>(u);
    } else if (v.is_number_integer()) {
        micros = v.get<std::int64_t>();
    } else {
        return false;
    }
    const auto t = from_unix_micros(micros);
    if (!t) return false;
    out = *t;
    return true;
}

std::string describe(const nlohmann::json& v) {
    switch (v.type()) {
        case nlohmann::json::value_t::string: return "a string";
        case nlohmann::json::value_t::boolean: return "a boolean";
        case nlohmann::json::value_t::number_integer:
        case nlohmann::json::value_t::number_unsigned: return v.dump();
        case nlohmann::json::value_t::number_float: return "a fraction";
        case nlohmann::json::value_t::null: return "null";
        case nlohmann::json::value_t::object: return "an object";
        case nlohmann::json::value_t::array: return "an array";
        default: return std::string(v.type_name());
    }
}

/// Reads one event's members into `e`; a problem is thrown as `bad_field` (caught below, never
/// leaves this file).
void read_event(const nlohmann::json& j, event& e) {
    bool typed = false;
    for (auto it = j.begin(); it != j.end(); ++it) {
        // not a structured binding: clang 14 cannot capture one in a lambda
        const std::string& key = it.key();
        const nlohmann::json& v = it.value();
        auto need = [&](std::string_view field, std::string_view what) {
            throw bad_field{key, field, fmt::format("must be {}, not {}", what, describe(v))};
        };
        auto text = [&](std::string& out, std::string_view field) {
            if (!v.is_string()) need(field, "a string");
            out = v.get_ref<const std::string&>();
        };
        if (key.size() == 1) {
            switch (key[0]) {
                case 't': {
                    if (!v.is_string()) need("type", "a string");
                    const auto& name = v.get_ref<const std::string&>();
                    const auto type = parse_event_type(name);
                    if (!type)
                        throw bad_field{key, "type",
                                        fmt::format("'{}' is not an event type", name)};
                    e.type = *type;
                    typed = true;
                    continue;
                }
                case 'u': text(e.unit, "unit"); continue;
                case 'd': {
                    const std::string_view name =
                        v.is_string() ? std::string_view(v.get_ref<const std::string&>()) : ""sv;
                    if (name == to_string(direction::compensation)) {
                        e.dir = direction::compensation;
                    } else if (name == to_string(direction::forward)) {
                        e.dir = direction::forward;
                    } else {
                        need("dir", "\"forward\" or \"compensation\"");
                    }
                    continue;
                }
                case 'a':
                    if (!read_unsigned(v, e.attempt)) need("attempt", "an unsigned 32-bit integer");
                    continue;
                case 'e': text(e.error, "error"); continue;
                case 'r': {
                    bool found = false;
                    if (v.is_string()) {
                        for (auto s : {reply_status::success, reply_status::transient_failure,
                                       reply_status::permanent_failure}) {
                            if (v.get_ref<const std::string&>() == to_string(s)) {
                                e.reply = s;
                                found = true;
                            }
                        }
                    }
                    if (!found) need("reply", "a reply status name");
                    continue;
                }
                case 's': {
                    const auto status = v.is_string()
                                            ? parse_saga_status(v.get_ref<const std::string&>())
                                            : std::nullopt;
                    if (!status) need("status", "a saga status name");
                    e.status = *status;
                    continue;
                }
                case 'n': text(e.name, "name"); continue;
                case 'm': text(e.message_id, "message_id"); continue;
                case 'c':
                    if (!read_unsigned(v, e.count)) need("count", "an unsigned 64-bit integer");
                    continue;
                case 'p': e.payload = v; continue;
                default: break;
            }
        } else if (key == "due"sv) {
            time_point t{};
            if (!read_time(v, t)) need("due", "an integer of microseconds since the epoch");
            e.due = t;
            continue;
        } else if (key == "tr"sv) {
            if (!v.is_boolean()) need("transient", "a boolean");
            e.transient = v.get<bool>();
            continue;
        } else if (key == "unc"sv) {
            if (!v.is_boolean()) need("uncertain", "a boolean");
            e.uncertain = v.get<bool>();
            continue;
        } else if (key == "who"sv) {
            text(e.who, "who");
            continue;
        } else if (key == "why"sv) {
            text(e.why, "why");
            continue;
        }
        throw bad_field{key, {}, "is not a field of an event"};
    }
    if (!typed) throw bad_field{"t", "type", "is missing"};
}

void read_message(const nlohmann::json& j, outbound_message& m) {
    bool has_message = false;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& key = it.key();
        const nlohmann::json& v = it.value();
        if (key == "to"sv) {
            if (!v.is_string())
                throw bad_field{key, "destination",
                                fmt::format("must be a string, not {}", describe(v))};
            m.destination = v.get_ref<const std::string&>();
        } else if (key == "topic"sv) {
            if (!v.is_boolean())
                throw bad_field{key, "topic",
                                fmt::format("must be a boolean, not {}", describe(v))};
            m.topic = v.get<bool>();
        } else if (key == "msg"sv) {
            if (!v.is_object())
                throw bad_field{key, "message",
                                fmt::format("must be an envelope object, not {}", describe(v))};
            try {
                m.message = v.get<envelope>();  // what decode(envelope) does after parsing
            } catch (const std::exception& ex) {
                throw bad_field{key, "message", fmt::format("malformed envelope: {}", ex.what())};
            }
            has_message = true;
        } else {
            throw bad_field{key, {}, "is not a field of a released message"};
        }
    }
    if (!has_message) throw bad_field{"msg", "message", "is missing"};
}

/// Parses `text` as an array of objects and reads each with `read`.
template <class T, class Read>
result<std::vector<T>> decode_array(std::string_view text, std::string_view what,
                                    std::string_view element, const json_limits& limits,
                                    Read read) noexcept {
    try {
        auto parsed = parse_json(text, what, limits);
        if (!parsed) return std::move(parsed).error();
        const nlohmann::json& j = parsed.value();
        if (!j.is_array())
            return error{errc::invalid_argument, fmt::format("{} must be an array of {}s, not {}",
                                                             what, element, describe(j))};
        std::vector<T> out;
        out.reserve(j.size());
        for (std::size_t i = 0; i < j.size(); ++i) {
            const nlohmann::json& item = j[i];
            if (!item.is_object())
                return error{errc::invalid_argument,
                             fmt::format("{}: [{}] must be an object ({}), not {}", what, i,
                                         element, describe(item))};
            try {
                read(item, out.emplace_back());
            } catch (const bad_field& bad) {
                return error{errc::invalid_argument,
                             bad.field.empty() || bad.field == bad.key
                                 ? fmt::format("{}: [{}].{} {}", what, i, bad.key, bad.problem)
                                 : fmt::format("{}: [{}].{} ({}) {}", what, i, bad.key, bad.field,
                                               bad.problem)};
            }
        }
        return out;
    } catch (const std::exception& e) {
        try {
            return error{errc::invalid_argument, fmt::format("{}: {}", what, e.what())};
        } catch (...) {
            return error{errc::invalid_argument};
        }
    }
}

}  // namespace

// ---- the API ----------------------------------------------------------------------------------

std::int64_t to_unix_micros(time_point t) noexcept {
    return std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::optional<time_point> from_unix_micros(std::int64_t micros) noexcept {
    using rep = time_point::duration::rep;
    constexpr auto per_micro =
        std::chrono::duration_cast<time_point::duration>(std::chrono::microseconds{1}).count();
    static_assert(per_micro >= 1, "time_point must be at least as fine as microseconds");
    if (micros > std::numeric_limits<rep>::max() / per_micro ||
        micros < std::numeric_limits<rep>::min() / per_micro)
        return std::nullopt;
    return time_point{time_point::duration{static_cast<rep>(micros) * per_micro}};
}

std::string encode_events(std::span<const event> events) {
    std::string out;
    out.reserve(24 + 96 * events.size());
    out += '[';
    bool first = true;
    for (const event& e : events) {
        if (!first) out += ',';
        first = false;
        out += '{';
        object_writer w(out);
        w.name("t", to_string(e.type));
        if (!e.unit.empty()) w.string("u", e.unit);
        if (e.dir != direction::forward) w.name("d", to_string(e.dir));
        if (e.attempt != 0) w.integer("a", e.attempt);
        if (e.due) w.integer("due", to_unix_micros(*e.due));
        if (!e.error.empty()) w.string("e", e.error);
        if (e.transient) w.boolean("tr", true);
        if (e.uncertain) w.boolean("unc", *e.uncertain);
        if (e.reply != reply_status::success) w.name("r", to_string(e.reply));
        if (e.status != saga_status::running) w.name("s", to_string(e.status));
        if (!e.name.empty()) w.string("n", e.name);
        if (!e.message_id.empty()) w.string("m", e.message_id);
        if (!e.who.empty()) w.string("who", e.who);
        if (!e.why.empty()) w.string("why", e.why);
        if (e.count != 0) w.integer("c", e.count);
        if (!e.payload.is_null()) w.json("p", e.payload);
        out += '}';
    }
    out += ']';
    return out;
}

result<std::vector<event>> decode_events(std::string_view text, const json_limits& limits) {
    return decode_array<event>(text, "journal events", "event", limits, read_event);
}

std::string encode_output(std::span<const outbound_message> messages) {
    std::string out;
    out.reserve(16 + 512 * messages.size());
    out += '[';
    bool first = true;
    for (const outbound_message& m : messages) {
        if (!first) out += ',';
        first = false;
        out += '{';
        object_writer w(out);
        w.string("to", m.destination);
        if (m.topic) w.boolean("topic", true);
        w.raw("msg", encode(m.message));
        out += '}';
    }
    out += ']';
    return out;
}

result<std::vector<outbound_message>> decode_output(std::string_view text,
                                                    const json_limits& limits) {
    return decode_array<outbound_message>(text, "journal output", "released message", limits,
                                          read_message);
}

}  // namespace saga
