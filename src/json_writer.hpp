#pragma once
// Writing JSON text directly, without building a tree first: the journal codec and
// encode(envelope) write their fixed fields with these, and hand nlohmann only the user's
// JSON values (payloads), which are trees already. The output is what nlohmann's `dump` writes
// for the same values (no spaces, no ensure_ascii), except that invalid UTF-8 is replaced
// (U+FFFD) instead of throwing.

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <map>
#include <string>
#include <string_view>

namespace saga::detail {

/// Appends `s` as a JSON string (quoted and escaped).
void append_json_string(std::string& out, std::string_view s);

/// nlohmann's compact `dump` of `j`, with invalid UTF-8 replaced instead of thrown.
[[nodiscard]] std::string dump_json(const nlohmann::json& j);
/// The same, appended to `out`.
void append_json(std::string& out, const nlohmann::json& j);

/// Writes the members of one JSON object (the caller writes its braces), with the commas in
/// the right places. Keys are the caller's own: they are not escaped.
class object_writer {
public:
    explicit object_writer(std::string& out) noexcept : out_(out) {}

    void string(std::string_view key, std::string_view value) {
        this->key(key);
        append_json_string(out_, value);
    }
    /// A string from a fixed table of names: nothing to escape.
    void name(std::string_view key, std::string_view value) {
        this->key(key);
        out_ += '"';
        out_ += value;
        out_ += '"';
    }
    template <class Int>
    void integer(std::string_view key, Int value) {
        this->key(key);
        const fmt::format_int text(value);
        out_.append(text.data(), text.size());
    }
    void boolean(std::string_view key, bool value) {
        this->key(key);
        out_ += value ? "true" : "false";
    }
    /// An object of strings (its keys escaped).
    void strings(std::string_view key, const std::map<std::string, std::string>& members) {
        this->key(key);
        out_ += '{';
        bool first = true;
        for (const auto& [k, v] : members) {
            if (!first) out_ += ',';
            first = false;
            append_json_string(out_, k);
            out_ += ':';
            append_json_string(out_, v);
        }
        out_ += '}';
    }
    /// A user's JSON value.
    void json(std::string_view key, const nlohmann::json& value) {
        this->key(key);
        append_json(out_, value);
    }
    /// JSON text written by someone else (encode(envelope)).
    void raw(std::string_view key, std::string_view json) {
        this->key(key);
        out_ += json;
    }

private:
    void key(std::string_view k) {
        if (!first_) out_ += ',';
        first_ = false;
        out_ += '"';
        out_ += k;
        out_ += "\":";
    }
    std::string& out_;
    bool first_ = true;
};

}  // namespace saga::detail
