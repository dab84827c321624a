// libFuzzer target: the journal codec (saga/journal_codec.hpp) on text as a store might hold it.
// Properties: nothing crashes or throws; text that decodes (as events or as released messages)
// re-encodes to text that decodes to the same values and encodes to the same text again; any
// bytes used as an event's string are written exactly as nlohmann's dump (invalid UTF-8
// replaced) writes them, and read back as nlohmann reads that.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <saga/journal_codec.hpp>

namespace {

void require(bool ok) {
    if (!ok) std::abort();  // a broken property is a finding
}

template <class Decode, class Encode>
void round_trip(std::string_view text, Decode decode, Encode encode) {
    auto first = decode(text);
    if (!first) {
        require(first.error() == saga::errc::invalid_argument ||
                first.error() == saga::errc::limit_exceeded);
        require(!first.error().message.empty());
        return;
    }
    const std::string once = encode(first.value());
    auto again = decode(once);
    require(again.has_value());
    require(again.value() == first.value());
    require(encode(again.value()) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    round_trip(
        text, [](std::string_view t) { return saga::decode_events(t); },
        [](const auto& v) { return saga::encode_events(v); });
    round_trip(
        text, [](std::string_view t) { return saga::decode_output(t); },
        [](const auto& v) { return saga::encode_output(v); });

    // the input's bytes as a string field: escaped as nlohmann escapes them
    const std::string bytes(text);
    saga::event e;
    e.type = saga::event_type::signal_received;
    e.name = bytes;
    const std::string encoded = saga::encode_events({&e, 1});
    const std::string expected =
        bytes.empty() ? std::string(R"([{"t":"signal_received"}])")
                      : R"([{"t":"signal_received","n":)" +
                            nlohmann::json(bytes).dump(-1, ' ', false,
                                                       nlohmann::json::error_handler_t::replace) +
                            "}]";
    require(encoded == expected);
    auto back = saga::decode_events(encoded);
    require(back.has_value() && back.value().size() == 1);
    require(back.value()[0].name == nlohmann::json::parse(expected)[0].value("n", std::string()));
    return 0;
}
