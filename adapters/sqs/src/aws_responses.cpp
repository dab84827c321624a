#include "aws_responses.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include <saga/json_limits.hpp>

namespace saga::sqs::detail {

using json = nlohmann::json;

namespace {

/// The first non-empty string.
std::string first_of(std::initializer_list<std::string> values) {
    for (const auto& v : values)
        if (!v.empty()) return v;
    return {};
}

/// A receive count: a message in an answer was received at least once, so 0 reads as 1, text
/// that is not a decimal number as 1, and a number too large as the largest count.
std::uint32_t receive_count_of(std::string_view s) {
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range) return std::numeric_limits<std::uint32_t>::max();
    if (ec != std::errc{} || p != s.data() + s.size()) return 1;
    return static_cast<std::uint32_t>(
        std::clamp<std::uint64_t>(v, 1, std::numeric_limits<std::uint32_t>::max()));
}

/// The character of a numeric reference's name ("#233", "#xE9"), or -1 when it is not one.
long code_point(std::string_view name) {
    if (name.size() < 2 || name[0] != '#') return -1;
    const bool hexa = name[1] == 'x' || name[1] == 'X';
    const auto digits = name.substr(hexa ? 2 : 1);
    std::uint32_t v = 0;
    const auto [p, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), v, hexa ? 16 : 10);
    if (digits.empty() || ec != std::errc{} || p != digits.data() + digits.size()) return -1;
    if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return -1;
    return static_cast<long>(v);
}

void append_utf8(std::string& out, std::uint32_t c) {
    const auto byte = [&](std::uint32_t b) { out.push_back(static_cast<char>(b)); };
    if (c < 0x80) {
        byte(c);
    } else if (c < 0x800) {
        byte(0xC0 | (c >> 6));
        byte(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        byte(0xE0 | (c >> 12));
        byte(0x80 | ((c >> 6) & 0x3F));
        byte(0x80 | (c & 0x3F));
    } else {
        byte(0xF0 | (c >> 18));
        byte(0x80 | ((c >> 12) & 0x3F));
        byte(0x80 | ((c >> 6) & 0x3F));
        byte(0x80 | (c & 0x3F));
    }
}

}  // namespace

std::string json_string(const json& j, const char* key) {
    if (!j.is_object()) return {};
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

json parse_sqs_response(std::string_view body) {
    auto doc = parse_json(body, "sqs answer");
    if (!doc || !doc.value().is_object()) return json::object();
    return std::move(doc).value();
}

aws_error_text parse_error_response(std::string_view body) {
    aws_error_text out;
    if (auto doc = parse_json(body, "aws error"); doc && doc.value().is_object()) {
        out.code = json_string(doc.value(), "__type");
        if (const auto hash = out.code.rfind('#'); hash != std::string::npos)
            out.code = out.code.substr(hash + 1);
        out.message =
            first_of({json_string(doc.value(), "message"), json_string(doc.value(), "Message")});
    } else {
        out.code = xml_text(body, "Code");
        out.message = xml_text(body, "Message");
    }
    return out;
}

std::vector<received_message> received_messages(const json& answer) {
    std::vector<received_message> out;
    if (!answer.is_object()) return out;
    const auto messages = answer.find("Messages");
    if (messages == answer.end() || !messages->is_array()) return out;
    for (const auto& m : *messages) {
        if (!m.is_object()) continue;
        received_message r{.id = json_string(m, "MessageId"),
                           .receipt = json_string(m, "ReceiptHandle"),
                           .body = json_string(m, "Body")};
        if (const auto a = m.find("Attributes"); a != m.end()) {
            if (const auto n = json_string(*a, "ApproximateReceiveCount"); !n.empty())
                r.receive_count = receive_count_of(n);
            r.group_id = json_string(*a, "MessageGroupId");
        }
        if (const auto a = m.find("MessageAttributes"); a != m.end() && a->is_object())
            for (const auto& [name, v] : a->items()) {
                const auto type = json_string(v, "DataType");
                const auto text = json_string(v, "StringValue");
                const auto binary = json_string(v, "BinaryValue");
                if (name.empty() || type.empty() || (text.empty() && binary.empty())) continue;
                r.attributes[name] = text.empty()
                                         ? json{{"DataType", type}, {"BinaryValue", binary}}
                                         : json{{"DataType", type}, {"StringValue", text}};
            }
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<batch_failure> sqs_batch_failures(const json& answer) {
    std::vector<batch_failure> out;
    if (!answer.is_object()) return out;
    const auto failed = answer.find("Failed");
    if (failed == answer.end() || !failed->is_array()) return out;
    for (const auto& f : *failed) {
        batch_failure b{.id = json_string(f, "Id"),
                        .code = json_string(f, "Code"),
                        .message = json_string(f, "Message")};
        if (f.is_object())
            if (const auto s = f.find("SenderFault"); s != f.end() && s->is_boolean())
                b.sender_fault = s->get<bool>();
        out.push_back(std::move(b));
    }
    return out;
}

std::vector<batch_failure> sns_batch_failures(std::string_view xml) {
    std::vector<batch_failure> out;
    for (auto member : xml_members(xml, "Failed"))
        out.push_back({.id = xml_text(member, "Id"),
                       .code = xml_text(member, "Code"),
                       .message = xml_text(member, "Message"),
                       .sender_fault = xml_text(member, "SenderFault") == "true"});
    return out;
}

std::string xml_unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto semi = s[i] == '&' ? s.find(';', i) : std::string_view::npos;
        if (semi == std::string_view::npos) {
            out.push_back(s[i]);
            continue;
        }
        const auto name = s.substr(i + 1, semi - i - 1);
        if (name == "amp")
            out.push_back('&');
        else if (name == "lt")
            out.push_back('<');
        else if (name == "gt")
            out.push_back('>');
        else if (name == "quot")
            out.push_back('"');
        else if (name == "apos")
            out.push_back('\'');
        else if (const auto c = code_point(name); c >= 0)
            append_utf8(out, static_cast<std::uint32_t>(c));
        else
            out.append(s.substr(i, semi - i + 1));  // not a reference we know: as written
        i = semi;
    }
    return out;
}

std::string xml_text(std::string_view xml, std::string_view tag) {
    const auto open = "<" + std::string{tag} + ">";
    const auto close = "</" + std::string{tag} + ">";
    const auto b = xml.find(open);
    if (b == std::string_view::npos) return {};
    const auto start = b + open.size();
    const auto e = xml.find(close, start);
    if (e == std::string_view::npos) return {};
    return xml_unescape(xml.substr(start, e - start));
}

std::vector<std::string_view> xml_members(std::string_view xml, std::string_view section) {
    std::vector<std::string_view> out;
    const auto open = "<" + std::string{section} + ">";
    const auto close = "</" + std::string{section} + ">";
    const auto b = xml.find(open);
    if (b == std::string_view::npos) return out;
    const auto e = xml.find(close, b + open.size());
    if (e == std::string_view::npos) return out;
    auto body = xml.substr(b + open.size(), e - b - open.size());
    for (;;) {
        const auto mb = body.find("<member>");
        if (mb == std::string_view::npos) break;
        const auto me = body.find("</member>", mb);
        if (me == std::string_view::npos) break;
        out.push_back(body.substr(mb + 8, me - mb - 8));
        body = body.substr(me + 9);
    }
    return out;
}

}  // namespace saga::sqs::detail
