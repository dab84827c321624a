#include <catch2/catch.hpp>

#include <saga/envelope.hpp>
#include <saga/json_limits.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using Catch::Matchers::Contains;

namespace {

/// An envelope with every field set to something other than its default.
saga::envelope full_envelope() {
    saga::envelope e;
    e.message_id = "msg-0001";
    e.kind = saga::message_kind::compensation;
    e.type = "release_budget";
    e.saga_id = "campaign-42";
    e.step = "reserve_budget[3]";
    e.attempt = 7;
    e.idempotency_key = "campaign-42/reserve_budget[3]/compensate";
    e.reply_to = "saga.engine";
    e.correlation_id = "acme-spring-sale";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.status = saga::reply_status::permanent_failure;
    e.error = "budget already released";
    e.headers = {{"tenant", "acme"}, {"content-language", "fr"}, {"empty", ""}};
    e.payload = {{"amount", 1250.5},
                 {"currency", "EUR"},
                 {"lines", nlohmann::json::array({1, 2, 3})},
                 {"note", "caf\xc3\xa9 \"quoted\" \\ slash"},
                 {"nested", {{"ok", true}, {"none", nullptr}}}};
    return e;
}

}  // namespace

TEST_CASE("an envelope survives a JSON round trip with every field", "[envelope][json]") {
    const auto e = full_envelope();
    const std::string text = saga::encode(e);
    auto back = saga::decode(text);
    REQUIRE(back);
    CHECK(back.value() == e);

    // field by field, so that a failure says which one
    const auto& b = back.value();
    CHECK(b.message_id == e.message_id);
    CHECK(b.kind == e.kind);
    CHECK(b.type == e.type);
    CHECK(b.saga_id == e.saga_id);
    CHECK(b.step == e.step);
    CHECK(b.attempt == e.attempt);
    CHECK(b.idempotency_key == e.idempotency_key);
    CHECK(b.reply_to == e.reply_to);
    CHECK(b.correlation_id == e.correlation_id);
    CHECK(b.traceparent == e.traceparent);
    CHECK(b.status == e.status);
    CHECK(b.error == e.error);
    CHECK(b.headers == e.headers);
    CHECK(b.payload == e.payload);
}

TEST_CASE("an envelope's JSON uses the documented field names and string enums",
          "[envelope][json]") {
    const auto j = nlohmann::json(full_envelope());
    CHECK(j.at("message_id") == "msg-0001");
    CHECK(j.at("kind") == "compensation");
    CHECK(j.at("type") == "release_budget");
    CHECK(j.at("saga_id") == "campaign-42");
    CHECK(j.at("step") == "reserve_budget[3]");
    CHECK(j.at("attempt") == 7);
    CHECK(j.at("idempotency_key") == "campaign-42/reserve_budget[3]/compensate");
    CHECK(j.at("reply_to") == "saga.engine");
    CHECK(j.at("correlation_id") == "acme-spring-sale");
    CHECK(j.at("traceparent").get<std::string>().starts_with("00-"));
    CHECK(j.at("status") == "permanent_failure");
    CHECK(j.at("error") == "budget already released");
    CHECK(j.at("headers").at("tenant") == "acme");
    CHECK(j.at("payload").at("currency") == "EUR");
    CHECK(j.size() == 14);
}

TEST_CASE("encode writes what nlohmann writes for the envelope's JSON, without a tree",
          "[envelope][json]") {
    auto e = full_envelope();
    e.headers = {{"b\"q", "line\nbreak"}, {"a", "caf\xc3\xa9"}, {"ctl", std::string("\x01", 1)}};
    CHECK(saga::encode(e) == nlohmann::json(e).dump());
    CHECK(saga::encode(saga::envelope{}) == nlohmann::json(saga::envelope{}).dump());
    e.payload = {{"big", 18446744073709551615ULL}, {"neg", -42}, {"f", 0.1}, {"s", "x"}};
    CHECK(saga::encode(e) == nlohmann::json(e).dump());
    e.payload = "just a string";
    CHECK(saga::encode(e) == nlohmann::json(e).dump());
}

namespace {

/// A random JSON value of every kind, nested up to `depth` levels.
nlohmann::json random_json(std::mt19937& rng, int depth) {
    static const std::vector<std::string> strings = {"",
                                                     "plain",
                                                     "quote \" backslash \\",
                                                     "tab\tnl\n",
                                                     "caf\xc3\xa9 \xf0\x9f\x9a\x80",
                                                     std::string("nul\0in", 7),
                                                     "\x01\x1f",
                                                     "key with spaces"};
    const auto pick = [&](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    switch (pick(depth > 0 ? 9 : 7)) {
        case 0: return nullptr;
        case 1: return pick(2) == 0;
        case 2: return static_cast<std::int64_t>(rng()) - static_cast<std::int64_t>(rng()) * 4096;
        case 3: return static_cast<std::uint64_t>(rng()) << 32 | rng();
        case 4: return std::vector<double>{0.1, -0.0, 1e300, 2.5, -1.0 / 3}[pick(5)];
        case 5:
        case 6: return strings[pick(strings.size())];
        case 7: {
            auto a = nlohmann::json::array();
            for (std::size_t i = pick(5); i > 0; --i) a.push_back(random_json(rng, depth - 1));
            return a;
        }
        default: {
            auto o = nlohmann::json::object();
            for (std::size_t i = pick(5); i > 0; --i)
                o[strings[pick(strings.size())] + std::to_string(i)] = random_json(rng, depth - 1);
            return o;
        }
    }
}

}  // namespace

TEST_CASE("encode writes nlohmann's text for payloads of every kind and nesting",
          "[envelope][json]") {
    std::mt19937 rng(20261208);
    auto e = full_envelope();
    for (int i = 0; i < 2000; ++i) {
        e.payload = random_json(rng, 4);
        INFO(e.payload.dump());
        REQUIRE(saga::encode(e) == nlohmann::json(e).dump());
    }
}

TEST_CASE("encode replaces invalid UTF-8 instead of throwing", "[envelope][json][errors]") {
    auto e = full_envelope();
    e.error = "bad \xff byte";
    e.payload = {{"note", "also \xc3 bad"}};
    const auto text = saga::encode(e);  // nlohmann's dump would throw here
    auto back = saga::decode(text);
    REQUIRE(back);
    CHECK(back.value().error == "bad \xef\xbf\xbd byte");
    CHECK(back.value().payload["note"] == "also \xef\xbf\xbd bad");
}

TEST_CASE("every message kind and reply status round-trips", "[envelope][json]") {
    const auto kind = GENERATE(saga::message_kind::command, saga::message_kind::compensation,
                               saga::message_kind::reply, saga::message_kind::event);
    const auto status = GENERATE(saga::reply_status::success, saga::reply_status::transient_failure,
                                 saga::reply_status::permanent_failure);
    saga::envelope e;
    // not a one-character literal: g++ 12.2 at -O3 reports assigning one to a std::string as a
    // memcpy overlap (-Wrestrict, GCC bug 105329, fixed in 12.3) when it inlines the assignment
    e.message_id = "m-1";
    e.kind = kind;
    e.status = status;
    auto back = saga::decode(saga::encode(e));
    REQUIRE(back);
    CHECK(back.value().kind == kind);
    CHECK(back.value().status == status);
    CHECK(back.value() == e);
}

TEST_CASE("kinds and statuses have names", "[envelope]") {
    CHECK(saga::to_string(saga::message_kind::command) == "command");
    CHECK(saga::to_string(saga::message_kind::compensation) == "compensation");
    CHECK(saga::to_string(saga::message_kind::reply) == "reply");
    CHECK(saga::to_string(saga::message_kind::event) == "event");
    CHECK(saga::to_string(saga::reply_status::success) == "success");
    CHECK(saga::to_string(saga::reply_status::transient_failure) == "transient_failure");
    CHECK(saga::to_string(saga::reply_status::permanent_failure) == "permanent_failure");
}

TEST_CASE("a default envelope round-trips", "[envelope][json]") {
    saga::envelope e;
    auto back = saga::decode(saga::encode(e));
    REQUIRE(back);
    CHECK(back.value() == e);
    CHECK(back.value().payload == nlohmann::json::object());
}

TEST_CASE("decoding fills absent optional fields with their defaults", "[envelope][json]") {
    auto e = saga::decode(R"({"message_id": "m-1"})");
    REQUIRE(e);
    CHECK(e.value().message_id == "m-1");
    CHECK(e.value().kind == saga::message_kind::command);
    CHECK(e.value().status == saga::reply_status::success);
    CHECK(e.value().attempt == 0);
    CHECK(e.value().type.empty());
    CHECK(e.value().headers.empty());
    CHECK(e.value().payload == nlohmann::json::object());
}

TEST_CASE("decoding malformed text is invalid_argument", "[envelope][json][errors]") {
    const std::string text = GENERATE(as<std::string>{},
                                      "",                                 // nothing
                                      "not json",                         // not JSON
                                      R"({"message_id": "m")",            // truncated
                                      R"({"message_id": "m"} trailing)",  // garbage after
                                      "[]",                               // not an object
                                      "42",                               // not an object
                                      "null",                             // not an object
                                      R"({"kind": "command"})",           // no message_id
                                      R"({"message_id": 17})",            // wrong type
                                      R"({"message_id": "m", "attempt": "three"})",
                                      R"({"message_id": "m", "headers": {"a": 1}})",
                                      R"({"message_id": "m", "kind": 3})");
    CAPTURE(text);
    auto e = saga::decode(text);
    REQUIRE_FALSE(e);
    CHECK(e.error() == saga::errc::invalid_argument);
    CHECK(e.error() == saga::condition::permanent);
    CHECK_THAT(e.error().message, Contains("malformed envelope"));
}

TEST_CASE("decoding rejects an unknown kind or status", "[envelope][json][errors]") {
    SECTION("kind") {
        auto e = saga::decode(R"({"message_id": "m", "kind": "telegram"})");
        REQUIRE_FALSE(e);
        CHECK(e.error() == saga::errc::invalid_argument);
        CHECK_THAT(e.error().message, Contains("telegram"));
        CHECK_THAT(e.error().message, Contains("kind"));
    }
    SECTION("status") {
        auto e = saga::decode(R"({"message_id": "m", "status": "maybe"})");
        REQUIRE_FALSE(e);
        CHECK(e.error() == saga::errc::invalid_argument);
        CHECK_THAT(e.error().message, Contains("maybe"));
        CHECK_THAT(e.error().message, Contains("status"));
    }
    SECTION("names are case-sensitive") {
        auto e = saga::decode(R"({"message_id": "m", "kind": "Command"})");
        CHECK_FALSE(e);
    }
}

TEST_CASE("decoding a deeply nested envelope is refused with the limit named",
          "[envelope][json][limits]") {
    // 100,000 nested arrays: 200 KB, well under SQS's 256 KiB; copying or destroying such a
    // value would overflow the stack.
    const std::string deep(100000, '[');
    const std::string text =
        R"({"message_id": "m", "payload": )" + deep + std::string(100000, ']') + "}";
    auto e = saga::decode(text);
    REQUIRE_FALSE(e);
    CHECK(e.error() == saga::errc::limit_exceeded);
    CHECK_THAT(e.error().message, Contains("envelope nests deeper than the limit of 64 levels"));
}

TEST_CASE("parse_json bounds depth and size and checks values in memory", "[json][limits]") {
    SECTION("depth 64 is accepted, 65 is not") {
        const auto nest = [](std::size_t n) { return std::string(n, '[') + std::string(n, ']'); };
        CHECK(saga::parse_json(nest(64), "body"));
        auto r = saga::parse_json(nest(65), "body");
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::limit_exceeded);
        CHECK_THAT(r.error().message, Contains("body nests deeper than the limit of 64 levels"));
    }
    SECTION("size") {
        auto r = saga::parse_json(R"({"a": "0123456789"})", "signal payload",
                                  saga::json_limits{.max_bytes = 10});
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::limit_exceeded);
        CHECK_THAT(r.error().message, Contains("over the limit of 10 bytes"));
    }
    SECTION("malformed text is invalid_argument") {
        auto r = saga::parse_json("{", "body");
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::invalid_argument);
    }
    SECTION("values built in memory") {
        nlohmann::json v = nlohmann::json::array();
        nlohmann::json* at = &v;
        for (int i = 0; i < 70; ++i) {
            at->push_back(nlohmann::json::array());
            at = &at->back();
        }
        CHECK(saga::check_json_depth(nlohmann::json{{"a", 1}}, "data"));
        auto r = saga::check_json_depth(v, "data");
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::limit_exceeded);
    }
}
