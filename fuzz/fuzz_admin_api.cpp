// libFuzzer target: the admin server's request handling (saga::admin::detail::api::handle, what
// the Beast side calls with every parsed request), over a seeded engine, without sockets.
//
// Input (text, so that seeds are readable):
//   METHOD SP TARGET LF
//   header-name: value LF          (any number; names are lower-cased as the server does)
//   LF
//   body
//
// Properties: nothing crashes or throws; the status is a real HTTP status; every answer has an
// X-Correlation-Id; a JSON answer is valid JSON; an error answer is
// {"error": {"type": UPPER_CASE, "message": string, "correlation": the header's id}}.
// The engine and its sagas are made again every `renew_every` inputs, since operator actions
// move the seeded sagas on (and their histories grow).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "api.hpp"
#include "approval_world.hpp"

namespace {

constexpr std::string_view token = "fuzz-token";
constexpr std::size_t renew_every = 20'000;

void require(bool ok) {
    if (!ok) std::abort();  // a broken property is a finding
}

struct fixture {
    saga::test::admin::world world;
    std::unique_ptr<saga::admin::detail::api> api;

    fixture() {
        require(world.open().has_value());
        world.seed();
        api = std::make_unique<saga::admin::detail::api>(
            world.eng(), saga::admin::server_options{.port = 0, .token = std::string(token)},
            std::string(token));
        // an added route, as an application would mount one
        require(api->add_route(
                       "POST", "/api/v1/campaigns",
                       [](const saga::admin::request& r) -> saga::result<saga::admin::response> {
                           SAGA_TRY(auto body, r.json());
                           if (!body.is_object())
                               return saga::admin::error_response(422, "UNPROCESSABLE",
                                                                  "not an object");
                           return saga::admin::response{201, {{"rest", r.rest}}};
                       })
                    .has_value());
    }
};

std::unique_ptr<fixture> current;
std::size_t runs = 0;

bool upper_case(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || c == '_')) return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (!current || ++runs % renew_every == 0) {
        current.reset();
        current = std::make_unique<fixture>();
    }
    std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto line = [&in] {
        const auto lf = in.find('\n');
        const auto l = in.substr(0, lf);
        in.remove_prefix(lf == std::string_view::npos ? in.size() : lf + 1);
        return l;
    };
    const auto request_line = line();
    const auto sp = request_line.find(' ');
    const std::string method(request_line.substr(0, sp));
    const auto target =
        sp == std::string_view::npos ? std::string_view() : request_line.substr(sp + 1);
    std::map<std::string, std::string, std::less<>> headers;
    for (auto h = line(); !h.empty(); h = line()) {
        const auto colon = h.find(':');
        std::string name(h.substr(0, colon));
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto value = colon == std::string_view::npos ? std::string_view() : h.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        headers[std::move(name)] = std::string(value);
    }

    const auto reply = current->api->handle(method, target, std::move(headers), std::string(in));

    require(reply.status >= 100 && reply.status <= 599);
    std::string correlation;
    for (const auto& [k, v] : reply.headers)
        if (k == "X-Correlation-Id") correlation = v;
    require(!correlation.empty());
    if (reply.content_type != "application/json") return 0;
    require(nlohmann::json::accept(reply.body));
    if (reply.status < 400) return 0;
    const auto body = nlohmann::json::parse(reply.body);
    require(body.is_object() && body.contains("error") && body["error"].is_object());
    const auto& e = body["error"];
    require(e.contains("type") && e["type"].is_string() &&
            upper_case(e["type"].get<std::string>()));
    require(e.contains("message") && e["message"].is_string());
    require(e.contains("correlation") && e["correlation"] == correlation);
    return 0;
}
