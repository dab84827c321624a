#include <catch2/catch.hpp>

#include <saga/journal_codec.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using namespace std::string_literals;

namespace {

saga::time_point at_us(std::int64_t micros) {
    return saga::time_point{std::chrono::microseconds{micros}};
}

/// An event of type `t` with every field set to something other than its default.
saga::event full_event(saga::event_type t) {
    saga::event e;
    e.type = t;
    e.unit = "feed[12]";
    e.dir = saga::direction::compensation;
    e.attempt = std::numeric_limits<std::uint32_t>::max();
    e.due = at_us(1'767'225'600'123'456);
    e.error = "network said \"no\"";
    e.transient = true;
    e.uncertain = false;
    e.reply = saga::reply_status::permanent_failure;
    e.status = saga::saga_status::compensation_failed;
    e.name = "google_ads";
    e.message_id = "campaign-42/feed[12]/c1/3";
    e.who = "ops@example.com";
    e.why = "stuck since Monday";
    e.count = std::numeric_limits<std::uint64_t>::max();
    e.payload = {{"items", {1, 2.5, "three", nullptr, true}}, {"nested", {{"k", "v"}}}};
    return e;
}

/// One event of every type (the enumerators count up from 0; the first without a name ends them).
std::vector<saga::event> every_type() {
    std::vector<saga::event> events;
    for (unsigned i = 0; i < 256; ++i) {
        const auto t = static_cast<saga::event_type>(i);
        if (saga::to_string(t) == "unknown") break;
        events.push_back(full_event(t));
    }
    REQUIRE(events.size() > static_cast<std::size_t>(saga::event_type::saga_cancelled));
    return events;
}

std::vector<saga::event> decoded(const std::string& text) {
    auto back = saga::decode_events(text);
    INFO(text);
    if (!back) FAIL(back.error().message);
    return back.value();
}

saga::error refused(const std::string& text, saga::errc code = saga::errc::invalid_argument) {
    auto back = saga::decode_events(text);
    INFO(text);
    REQUIRE_FALSE(back);
    CHECK(back.error() == code);
    CHECK_FALSE(back.error().message.empty());
    return back.error();
}

saga::error output_refused(const std::string& text) {
    auto back = saga::decode_output(text);
    INFO(text);
    REQUIRE_FALSE(back);
    CHECK(back.error() == saga::errc::invalid_argument);
    return back.error();
}

/// nlohmann's own rendering of `s` as a JSON string (invalid UTF-8 replaced).
std::string nlohmann_string(const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

saga::envelope codec_envelope() {
    saga::envelope e;
    e.message_id = "campaign-42/submit[google_ads]/f1/2";
    e.kind = saga::message_kind::compensation;
    e.type = "withdraw_ad";
    e.saga_id = "campaign-42";
    e.step = "submit[google_ads]";
    e.attempt = 2;
    e.idempotency_key = "campaign-42/submit[google_ads]/compensate";
    e.reply_to = "saga.engine";
    e.correlation_id = "acme-spring-sale";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.status = saga::reply_status::transient_failure;
    e.error = "throttled";
    e.headers = {{"tenant", "acme"}, {"empty", ""}};
    e.payload = {{"ad", "caf\xc3\xa9 \"quoted\""}, {"budget", 1250.5}};
    return e;
}

}  // namespace

TEST_CASE("every event type survives a round trip with every field set", "[journal][codec]") {
    const std::vector<saga::event> events = every_type();
    const std::string text = saga::encode_events(events);
    const std::vector<saga::event> back = decoded(text);
    REQUIRE(back.size() == events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        INFO(saga::to_string(events[i].type));
        CHECK(back[i] == events[i]);
    }
    // each by its name
    CHECK_THAT(text, Contains(R"("t":"step_skipped_by_operator")"));
    CHECK_THAT(text, Contains(R"("t":"saga_cancelled")"));
}

TEST_CASE("an event writes only the fields that differ from their default", "[journal][codec]") {
    CHECK(saga::encode_events({}) == "[]");
    CHECK(decoded("[]").empty());

    saga::event plain;
    plain.type = saga::event_type::step_completed;
    CHECK(saga::encode_events({&plain, 1}) == R"([{"t":"step_completed"}])");
    CHECK(decoded(R"([{"t":"step_completed"}])") == std::vector{plain});

    saga::event e;
    e.type = saga::event_type::attempt_failed;
    e.unit = "reserve_budget";
    e.attempt = 1;
    e.due = at_us(1'767'225'600'000'000);
    e.error = "timeout";
    e.transient = true;
    e.uncertain = true;
    saga::event f;
    f.type = saga::event_type::status_changed;
    f.status = saga::saga_status::waiting;
    f.reply = saga::reply_status::transient_failure;
    f.count = 3;
    f.payload = nlohmann::json::object();
    const std::vector<saga::event> both{e, f};
    const std::string text = saga::encode_events(both);
    CHECK(text == R"([{"t":"attempt_failed","u":"reserve_budget","a":1,"due":1767225600000000,)"
                  R"("e":"timeout","tr":true,"unc":true},)"
                  R"({"t":"status_changed","r":"transient_failure","s":"waiting","c":3,"p":{}}])");
    CHECK(decoded(text) == both);

    // an uncertain flag that is set to false is written (it is a change), unset is not
    e.uncertain = false;
    CHECK_THAT(saga::encode_events({&e, 1}), Contains(R"("unc":false)"));
    e.uncertain.reset();
    CHECK_THAT(saga::encode_events({&e, 1}), !Contains("unc"));
}

TEST_CASE("strings are escaped as nlohmann escapes them", "[journal][codec]") {
    std::vector<std::string> samples = {
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "tab\tnewline\ncr\rbackspace\bformfeed\f",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80 \xe2\x80\xa8 del\x7f",
        std::string("nul\0inside", 10),
        "\\u0041 is not unescaped",
    };
    std::string controls;
    for (char c = 0; c < 0x20; ++c) controls += c;
    samples.push_back(controls);

    for (const std::string& s : samples) {
        INFO(nlohmann_string(s));
        saga::event e;
        e.type = saga::event_type::signal_received;
        e.name = s;
        e.error = s;
        e.who = s;
        e.unit = s;
        e.message_id = s;
        e.why = s;
        const std::string text = saga::encode_events({&e, 1});
        // the same bytes nlohmann writes for the string (an empty one is not written)
        if (!s.empty()) CHECK_THAT(text, Contains(R"("n":)" + nlohmann_string(s)));
        const std::vector<saga::event> back = decoded(text);
        REQUIRE(back.size() == 1);
        CHECK(back[0] == e);
        CHECK(back[0].name.size() == s.size());
    }
    // control characters other than the named ones as \u00xx, in lower case
    saga::event e;
    e.name = "\x01\x1f";
    CHECK_THAT(saga::encode_events({&e, 1}), Contains(R"("n":"\u0001\u001f")"));
}

TEST_CASE("invalid UTF-8 becomes U+FFFD, as nlohmann's replace handler does", "[journal][codec]") {
    const std::vector<std::string> samples = {
        "\xff",
        "ab\xc3",               // truncated at the end
        "\xc3(",                // a lead byte then ASCII (the ASCII survives)
        "\xe0\x80\xaf",         // overlong
        "\xed\xa0\x80",         // a surrogate
        "\xf4\x90\x80\x80",     // above U+10FFFF
        "ok \xc3\xa9 \x80 ok",  // valid around a stray continuation byte
    };
    for (const std::string& s : samples) {
        INFO(nlohmann_string(s));
        saga::event e;
        e.type = saga::event_type::attempt_failed;
        e.error = s;
        e.payload = {{"bad", s}};
        const std::string text = saga::encode_events({&e, 1});
        CHECK_THAT(text, Contains(R"("e":)" + nlohmann_string(s)));
        const std::vector<saga::event> back = decoded(text);
        REQUIRE(back.size() == 1);
        CHECK_THAT(back[0].error, Contains("\xef\xbf\xbd"));
        CHECK(back[0].error == nlohmann::json::parse(nlohmann_string(s)).get<std::string>());
        CHECK(back[0].payload.at("bad") == back[0].error);
    }
}

TEST_CASE("times are microseconds since the epoch", "[journal][codec]") {
    saga::event e;
    e.type = saga::event_type::retry_scheduled;
    SECTION("finer parts are dropped") {
        e.due = at_us(1'000'000) + std::chrono::nanoseconds{999};
        CHECK_THAT(saga::encode_events({&e, 1}), Contains(R"("due":1000000})"));
        CHECK(decoded(saga::encode_events({&e, 1}))[0].due == at_us(1'000'000));
    }
    SECTION("before the epoch, rounded down") {
        e.due = at_us(-5) - std::chrono::nanoseconds{1};
        CHECK_THAT(saga::encode_events({&e, 1}), Contains(R"("due":-6})"));
        CHECK(decoded(saga::encode_events({&e, 1}))[0].due == at_us(-6));
    }
    SECTION("the epoch itself is a time, not an absent one") {
        e.due = at_us(0);
        CHECK(decoded(saga::encode_events({&e, 1}))[0].due == at_us(0));
    }
    CHECK(saga::to_unix_micros(at_us(42)) == 42);
    CHECK(saga::from_unix_micros(42) == at_us(42));
    CHECK_FALSE(saga::from_unix_micros(std::numeric_limits<std::int64_t>::max()).has_value());
    CHECK_FALSE(saga::from_unix_micros(std::numeric_limits<std::int64_t>::min()).has_value());
}

TEST_CASE("malformed events are refused naming the event and the field", "[journal][codec]") {
    SECTION("not JSON") {
        CHECK_THAT(refused(R"([{"t":"saga_started"})").message, Contains("not valid JSON"));
        refused("");
    }
    SECTION("not an array of objects") {
        CHECK_THAT(refused(R"({"t":"saga_started"})").message,
                   Contains("must be an array of events, not an object"));
        CHECK_THAT(refused(R"([{"t":"saga_started"},3])").message,
                   Contains("[1] must be an object (event), not 3"));
        refused("null");
    }
    SECTION("a missing or unknown type") {
        CHECK_THAT(refused(R"([{"u":"x"}])").message, Contains("[0].t (type) is missing"));
        CHECK_THAT(refused(R"([{"t":"saga_exploded"}])").message,
                   Contains("[0].t (type) 'saga_exploded' is not an event type"));
        CHECK_THAT(refused(R"([{"t":7}])").message,
                   Contains("[0].t (type) must be a string, not 7"));
    }
    SECTION("an unknown field") {
        CHECK_THAT(refused(R"([{"t":"saga_started","zz":1}])").message,
                   Contains("[0].zz is not a field of an event"));
    }
    SECTION("wrong types") {
        const std::string ok = R"({"t":"saga_started"},)";
        CHECK_THAT(refused("[" + ok + R"({"t":"attempt_started","a":"1"}])").message,
                   Contains("journal events: [1].a (attempt) must be an unsigned 32-bit integer, "
                            "not a string"));
        CHECK_THAT(refused(R"([{"t":"attempt_started","a":-1}])").message,
                   Contains("[0].a (attempt)"));
        CHECK_THAT(refused(R"([{"t":"attempt_started","a":4294967296}])").message,
                   Contains("[0].a (attempt)"));
        CHECK_THAT(refused(R"([{"t":"attempt_started","a":1.5}])").message,
                   Contains("not a fraction"));
        CHECK_THAT(refused(R"([{"t":"group_started","c":18446744073709551616}])").message,
                   Contains("[0].c (count)"));
        CHECK_THAT(refused(R"([{"t":"retry_scheduled","due":"2026-01-01"}])").message,
                   Contains("[0].due must be an integer of microseconds since the epoch"));
        CHECK_THAT(refused(R"([{"t":"retry_scheduled","due":9223372036854775807}])").message,
                   Contains("[0].due"));
        CHECK_THAT(refused(R"([{"t":"attempt_failed","tr":1}])").message,
                   Contains("[0].tr (transient) must be a boolean, not 1"));
        CHECK_THAT(refused(R"([{"t":"attempt_failed","unc":null}])").message,
                   Contains("[0].unc (uncertain) must be a boolean, not null"));
        CHECK_THAT(refused(R"([{"t":"attempt_failed","d":"backward"}])").message,
                   Contains("[0].d (dir)"));
        CHECK_THAT(refused(R"([{"t":"reply_received","r":"maybe"}])").message,
                   Contains("[0].r (reply) must be a reply status name"));
        CHECK_THAT(refused(R"([{"t":"status_changed","s":"sleeping"}])").message,
                   Contains("[0].s (status) must be a saga status name"));
        for (const char* key : {"u", "e", "n", "m", "who", "why"}) {
            INFO(key);
            CHECK_THAT(refused(R"([{"t":"saga_paused",")"s + key + R"(":["x"]}])").message,
                       Contains("must be a string, not an array"));
        }
    }
    SECTION("too deep or too large") {
        std::string deep = R"([{"t":"signal_received","p":)";
        for (int i = 0; i < 600; ++i) deep += '[';
        for (int i = 0; i < 600; ++i) deep += ']';
        deep += "}]";
        CHECK_THAT(refused(deep, saga::errc::limit_exceeded).message,
                   Contains("journal events nests deeper than the limit of 512 levels"));
        // within the limits passed
        auto small = saga::decode_events(R"([{"t":"signal_received","p":[[1]]}])",
                                         saga::json_limits{.max_depth = 3});
        REQUIRE_FALSE(small);
        CHECK(small.error() == saga::errc::limit_exceeded);
        auto big = saga::decode_events(R"([{"t":"saga_started","n":"0123456789"}])",
                                       saga::json_limits{.max_bytes = 16});
        REQUIRE_FALSE(big);
        CHECK(big.error() == saga::errc::limit_exceeded);
        CHECK_THAT(big.error().message, Contains("over the limit of 16 bytes"));
    }
}

TEST_CASE("released messages survive a round trip", "[journal][codec]") {
    std::vector<saga::outbound_message> messages(3);
    messages[0].destination = "ads.google";
    messages[0].message = codec_envelope();
    messages[1].destination = "campaign.events";
    messages[1].topic = true;
    messages[1].message.message_id = "campaign-42/published";
    messages[1].message.kind = saga::message_kind::event;
    messages[2].destination = "q \"odd\" \xe6\x97\xa5";
    messages[2].message.message_id = "m-3";
    messages[2].message.payload = nullptr;

    const std::string text = saga::encode_output(messages);
    auto back = saga::decode_output(text);
    REQUIRE(back);
    CHECK(back.value() == messages);
    // the envelope is written by encode(envelope), unchanged
    CHECK_THAT(text, Contains(R"("msg":)" + saga::encode(messages[0].message)));
    CHECK_THAT(text, Contains(R"({"to":"campaign.events","topic":true,"msg":{)"));
    CHECK_THAT(text, !Contains(R"("topic":false)"));

    CHECK(saga::encode_output({}) == "[]");
    auto none = saga::decode_output("[]");
    REQUIRE(none);
    CHECK(none.value().empty());
}

TEST_CASE("a released message with invalid UTF-8 is written with U+FFFD", "[journal][codec]") {
    saga::outbound_message m;
    m.destination = "bad\xff";
    m.message.message_id = "m-1";
    m.message.error = "bad\xc3";
    m.message.payload = {{"k", "v\xff"}};
    const std::string text = saga::encode_output({&m, 1});
    auto back = saga::decode_output(text);
    REQUIRE(back);
    REQUIRE(back.value().size() == 1);
    CHECK(back.value()[0].destination == "bad\xef\xbf\xbd");
    CHECK(back.value()[0].message.error == "bad\xef\xbf\xbd");
    CHECK(back.value()[0].message.payload.at("k") == "v\xef\xbf\xbd");
}

TEST_CASE("malformed released messages are refused naming the field", "[journal][codec]") {
    CHECK_THAT(output_refused(R"([{"to":"q"}])").message,
               Contains("journal output: [0].msg (message) is missing"));
    CHECK_THAT(output_refused(R"([{"to":"q","msg":"x"}])").message,
               Contains("[0].msg (message) must be an envelope object, not a string"));
    CHECK_THAT(output_refused(R"([{"to":1,"msg":{"message_id":"m"}}])").message,
               Contains("[0].to (destination) must be a string, not 1"));
    CHECK_THAT(output_refused(R"([{"to":"q","topic":"yes","msg":{"message_id":"m"}}])").message,
               Contains("[0].topic must be a boolean, not a string"));
    CHECK_THAT(output_refused(R"([{"to":"q","msg":{"kind":"command"}}])").message,
               Contains("[0].msg (message) malformed envelope"));
    CHECK_THAT(output_refused(R"([{"to":"q","msg":{"message_id":"m","kind":"shout"}}])").message,
               Contains("unknown message kind 'shout'"));
    CHECK_THAT(output_refused(R"([{"to":"q","msg":{"message_id":"m"},"x":0}])").message,
               Contains("[0].x is not a field of a released message"));
    CHECK_THAT(output_refused(R"({"to":"q"})").message,
               Contains("must be an array of released messages"));
    auto deep = saga::decode_output(R"([{"to":"q","msg":{"message_id":"m","payload":[[[1]]]}}])",
                                    saga::json_limits{.max_depth = 4});
    REQUIRE_FALSE(deep);
    CHECK(deep.error() == saga::errc::limit_exceeded);
}
