#include "json_writer.hpp"

namespace saga::detail {
namespace {

/// The length of the well-formed UTF-8 sequence starting at `s[i]` (a byte >= 0x80), or 0 when
/// it is not one: the rules of Unicode's table 3-7, which nlohmann's decoder also applies (no
/// overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto at = [&](std::size_t k) -> unsigned {
        return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0U;
    };
    const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
        const unsigned b = at(k);
        return i + k < s.size() && b >= lo && b <= hi;
    };
    const unsigned b0 = at(0);
    if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
    if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
    if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
}

/// Appends `s` as a JSON string, exactly as nlohmann's `dump` (no ensure_ascii, invalid UTF-8
/// replaced) writes it: the common case in one pass, and invalid UTF-8 handed to nlohmann
/// itself so that the replacements are its own.
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    const std::size_t start = out.size();
    out += '"';
    std::size_t plain = 0;  // start of the run not yet copied
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            const std::size_t n = utf8_sequence(s, i);
            if (n == 0) {
                out.resize(start);
                out += nlohmann::json(std::string(s))
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                return;
            }
            i += n;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        out.append(s.data() + plain, i - plain);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\f': out += "\\f"; break;
            case '\r': out += "\\r"; break;
            default: {
                constexpr char hex[] = "0123456789abcdef";
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xf];
            }
        }
        plain = ++i;
    }
    out.append(s.data() + plain, s.size() - plain);
    out += '"';
}

std::string dump_json(const nlohmann::json& j) {
    std::string out;
    append_json(out, j);
    return out;
}

void append_json(std::string& out, const nlohmann::json& j) {
    // Containers, strings and integers directly: a data dump is mostly these, and nlohmann's
    // serializer writes through an output adapter a few characters at a time. Floats (their
    // shortest round-trip text is nlohmann's own), binary values and the rest go to nlohmann.
    switch (j.type()) {
        case nlohmann::json::value_t::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, value] : j.get_ref<const nlohmann::json::object_t&>()) {
                if (!first) out += ',';
                first = false;
                append_json_string(out, key);
                out += ':';
                append_json(out, value);
            }
            out += '}';
            return;
        }
        case nlohmann::json::value_t::array: {
            out += '[';
            bool first = true;
            for (const auto& value : j.get_ref<const nlohmann::json::array_t&>()) {
                if (!first) out += ',';
                first = false;
                append_json(out, value);
            }
            out += ']';
            return;
        }
        case nlohmann::json::value_t::string:
            append_json_string(out, j.get_ref<const std::string&>());
            return;
        case nlohmann::json::value_t::number_integer: {
            const fmt::format_int text(j.get<std::int64_t>());
            out.append(text.data(), text.size());
            return;
        }
        case nlohmann::json::value_t::number_unsigned: {
            const fmt::format_int text(j.get<std::uint64_t>());
            out.append(text.data(), text.size());
            return;
        }
        case nlohmann::json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
        case nlohmann::json::value_t::null: out += "null"; return;
        default: out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
}

}  // namespace saga::detail
