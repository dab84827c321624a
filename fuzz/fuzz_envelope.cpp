// libFuzzer target: saga::decode of a message body as it comes off a queue, and the JSON limits
// it uses. Properties: nothing crashes or throws; a body that decodes re-encodes to text that
// decodes to the same envelope; parse_json and check_json_depth agree on depth.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <saga/envelope.hpp>
#include <saga/json_limits.hpp>

namespace {

void require(bool ok) {
    if (!ok) std::abort();  // a broken property is a finding
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto j = saga::parse_json(text, "input")) {
        require(saga::check_json_depth(j.value(), "input").has_value());
    } else {
        require(j.error() == saga::errc::limit_exceeded ||
                j.error() == saga::errc::invalid_argument);
        require(!j.error().message.empty());
    }

    auto e = saga::decode(text);
    if (!e) {
        require(!e.error().message.empty());
        return 0;
    }
    const auto once = saga::encode(e.value());
    auto again = saga::decode(once);
    require(again.has_value());
    require(saga::encode(again.value()) == once);
    return 0;
}
