// saga::sqs reading answers no real AWS sends (a broken proxy, an emulator, an attacker on the
// path): the parsing functions alone, and a transport talking to a fake endpoint that answers
// them. Nothing may crash, throw or wedge a queue; the fuzz target fuzz/fuzz_aws_responses.cpp
// drives the same functions with random input.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include <saga/envelope.hpp>
#include <saga/sqs/sqs_transport.hpp>

#include "aws_responses.hpp"
#include "contract/transport_contract.hpp"
#include "fake_aws.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::sqs::test::fake_aws;
namespace detail = saga::sqs::detail;

std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

/// A transport on `fake` whose queue "q" is known (no CreateQueue/GetQueueUrl calls).
struct fake_env {
    std::shared_ptr<saga::sqs::sqs_transport> sqs;
    std::shared_ptr<saga::transport> transport;
    saga::duration visibility_timeout = 30s;
    std::chrono::milliseconds max_wait = 20s;  // a bound, not an expectation
    std::chrono::milliseconds quiet_period = 0ms;

    explicit fake_env(const fake_aws& fake) {
        auto t = saga::sqs::sqs_transport::create({
            .region = "us-east-1",
            .sqs_endpoint = fake.url(),
            .sns_endpoint = fake.url(),
            .creds = saga::sqs::credentials{"AKIDTEST", "test-secret", ""},
            .queue_urls = {{"q", fake.url() + "/123456789012/q"}},
            .create_resources = false,
            .wait_time = std::chrono::seconds{0},
            .max_attempts = 3,
            .initial_backoff = 10ms,
            .max_backoff = 50ms,
            .request_timeout = 5s,
        });
        REQUIRE(t);
        sqs = std::move(t).value();
        transport = sqs;
    }
};

}  // namespace

TEST_CASE("aws answers: a body too deep, too odd or not JSON reads as nothing", "[sqs][hostile]") {
    SECTION("100,000 nested arrays") {
        const auto deep = nested_arrays(100'000);
        CHECK(detail::parse_sqs_response(deep) == json::object());
        CHECK(detail::parse_sqs_response(R"({"Messages":)" + deep + "}") == json::object());
        const auto e = detail::parse_error_response(R"({"__type":)" + deep + "}");
        CHECK(e.code.empty());
        CHECK(e.message.empty());
    }
    SECTION("not JSON, or JSON that is not an object") {
        for (const auto* body : {"", "null", "[1,2]", "\"text\"", "{\"a\":", "\xff\xfe"})
            CHECK(detail::parse_sqs_response(body) == json::object());
    }
    SECTION("members of the wrong type") {
        const auto doc = detail::parse_sqs_response(R"({
            "Messages": [7, "x", null, [], {"MessageId": 5, "ReceiptHandle": ["r"], "Body": {},
                          "Attributes": "none"},
                         {"MessageId": "m", "ReceiptHandle": "r", "Body": "b",
                          "Attributes": {"ApproximateReceiveCount": "many"}},
                         {"Attributes": {"ApproximateReceiveCount": "99999999999999999999999"}},
                         {"Attributes": {"ApproximateReceiveCount": "0"}}],
            "Failed": [{"Id": "0", "SenderFault": "yes", "Code": 3}, 42, null,
                       {"Id": "1", "SenderFault": true, "Code": "InvalidParameterValue"}]})");
        const auto messages = detail::received_messages(doc);
        REQUIRE(messages.size() == 4);
        CHECK(messages[0].id.empty());
        CHECK(messages[0].receipt.empty());
        CHECK(messages[0].receive_count == 1);
        CHECK(messages[1].id == "m");
        CHECK(messages[1].receive_count == 1);
        CHECK(messages[2].receive_count == std::numeric_limits<std::uint32_t>::max());
        // found by fuzz_aws_responses (fuzz/corpus/aws_responses/receive_count_zero.json): a
        // message in an answer was received at least once
        CHECK(messages[3].receive_count == 1);
        const auto failed = detail::sqs_batch_failures(doc);
        REQUIRE(failed.size() == 4);
        CHECK(failed[0].id == "0");
        CHECK_FALSE(failed[0].sender_fault);
        CHECK(failed[0].code.empty());
        CHECK(failed[1].id.empty());
        CHECK(failed[3].sender_fault);
        CHECK(failed[3].code == "InvalidParameterValue");
        CHECK(detail::received_messages(json::array()).empty());
        CHECK(detail::sqs_batch_failures(json{{"Failed", "all"}}).empty());
    }
    SECTION("a message's group and attributes, kept when they are strings") {
        const auto doc = detail::parse_sqs_response(R"({"Messages": [
            {"MessageId": "m", "Body": "b",
             "Attributes": {"MessageGroupId": "g-1", "ApproximateReceiveCount": "2"},
             "MessageAttributes": {
                 "text": {"DataType": "String", "StringValue": "v"},
                 "bytes": {"DataType": "Binary", "BinaryValue": "AAE="},
                 "empty": {"DataType": "String", "StringValue": ""},
                 "no-type": {"StringValue": "v"},
                 "odd": {"DataType": "String", "StringValue": 7},
                 "list": [1, 2], "null": null}},
            {"MessageId": "n", "Attributes": {"MessageGroupId": 5}, "MessageAttributes": "all"}]})");
        const auto messages = detail::received_messages(doc);
        REQUIRE(messages.size() == 2);
        CHECK(messages[0].group_id == "g-1");
        CHECK(messages[0].receive_count == 2);
        CHECK(messages[0].attributes ==
              json{{"text", {{"DataType", "String"}, {"StringValue", "v"}}},
                   {"bytes", {{"DataType", "Binary"}, {"BinaryValue", "AAE="}}}});
        CHECK(messages[1].group_id.empty());
        CHECK(messages[1].attributes == json::object());
    }
    SECTION("an error body in JSON or XML") {
        auto j = detail::parse_error_response(
            R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"})");
        CHECK(j.code == "QueueDoesNotExist");
        CHECK(j.message == "gone");
        auto x = detail::parse_error_response(
            "<ErrorResponse><Error><Code>NotFound</Code><Message>a &amp; b &#60;&#x3e;"
            "</Message></Error></ErrorResponse>");
        CHECK(x.code == "NotFound");
        CHECK(x.message == "a & b <>");
    }
    SECTION("truncated or odd XML") {
        for (const auto* xml : {"", "<", "<Code>", "<Code>X", "</Code><Code>",
                                "<Message>&#x;&;&unknown;&</Message>"}) {
            const auto e = detail::parse_error_response(xml);
            CHECK(e.code.size() <= 1);
        }
        // a reference that is not a character stays as written; others become UTF-8
        CHECK(detail::xml_text("<M>&#99999999999999999999;&#x;&#;&#xD800;&;&unknown;&</M>", "M") ==
              "&#99999999999999999999;&#x;&#;&#xD800;&;&unknown;&");
        CHECK(detail::xml_text("<M>&#xD;&#233;&#x20AC;&#x1F600;</M>", "M") ==
              "\r\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        const auto failed = detail::sns_batch_failures(
            "<Failed><member><Id>0</Id><SenderFault>true</SenderFault></member><member><Id>1"
            "</member><member></Failed>");
        REQUIRE(failed.size() == 2);
        CHECK(failed[0].sender_fault);
        CHECK(failed[1].id.empty());
        CHECK(detail::sns_batch_failures("<Failed><member>").empty());
        CHECK(detail::sns_batch_failures("</Failed><Failed>").empty());
    }
}

TEST_CASE(
    "aws answers: malformed Failed entries of a batch answer retry the send, never wedge "
    "the queue",
    "[sqs][hostile]") {
    // The first SendMessage is held until three more messages wait behind it, so they go out
    // together as one SendMessageBatch, answered with entries of the wrong types.
    std::mutex mutex;
    std::condition_variable cv;
    bool queued = false;
    std::size_t batches = 0;
    fake_aws fake([&](const std::string& op, const std::string&) -> fake_aws::answer {
        if (op == "SendMessage") {
            std::unique_lock lock(mutex);
            cv.wait_for(lock, 20s, [&] { return queued; });
            return {200, R"({"MessageId":"x"})"};
        }
        if (op == "SendMessageBatch") {
            std::lock_guard lock(mutex);
            if (++batches == 1)
                return {200, R"({"Successful":[{"Id":"1"}],
                                 "Failed":[{"Id":"0","SenderFault":"yes","Code":"InternalError"},
                                           42, null, {"Id":"2","SenderFault":1}]})"};
            return {200, R"({"Successful":[{"Id":"0"},{"Id":"1"}]})"};
        }
        return {400, R"({"__type":"UnsupportedOperation","message":"not faked"})"};
    });
    {
        fake_env e(fake);
        boost::asio::io_context io;
        struct outcome {
            std::mutex mutex;
            std::vector<saga::result<void>> results;
        };
        auto out = std::make_shared<outcome>();
        for (int i = 1; i <= 4; ++i)
            e.transport->async_send("q", saga::contract::numbered(i), [out](saga::result<void> r) {
                std::lock_guard lock(out->mutex);
                out->results.push_back(std::move(r));
            });
        {
            std::lock_guard lock(mutex);
            queued = true;
        }
        cv.notify_all();
        REQUIRE(saga::contract::run_until(e, io, [&] {
            std::lock_guard lock(out->mutex);
            return out->results.size() == 4;
        }));
        {
            std::lock_guard lock(out->mutex);
            for (const auto& r : out->results) CHECK(r);
        }
        {
            std::lock_guard lock(mutex);
            CHECK(batches >= 1);
        }
        // and the queue still takes messages
        CHECK(saga::contract::send(e, io, "q", saga::contract::numbered(5)));
    }
}

TEST_CASE("aws answers: junk in a ReceiveMessage answer is skipped and the good message delivered",
          "[sqs][hostile]") {
    saga::envelope good = saga::contract::numbered(1);
    const std::string deep_envelope =
        R"({"message_id":"deep","type":"x","payload":)" + nested_arrays(100'000) + "}";
    std::mutex mutex;
    int receives = 0;
    fake_aws fake([&](const std::string& op, const std::string&) -> fake_aws::answer {
        if (op == "ReceiveMessage") {
            std::lock_guard lock(mutex);
            if (++receives > 1) return {200, "{}"};
            json messages = json::array();
            messages.push_back(7);
            messages.push_back({{"MessageId", "a"}, {"ReceiptHandle", "ra"}, {"Body", 12}});
            messages.push_back({{"MessageId", "b"},
                                {"ReceiptHandle", "rb"},
                                {"Body", deep_envelope},
                                {"Attributes", {{"ApproximateReceiveCount", "x"}}}});
            messages.push_back(
                {{"MessageId", "c"}, {"ReceiptHandle", "rc"}, {"Body", saga::encode(good)}});
            return {200, json{{"Messages", messages}}.dump()};
        }
        if (op == "ReceiveMessage" || op == "DeleteMessage" || op == "DeleteMessageBatch" ||
            op == "ChangeMessageVisibility")
            return {200, "{}"};
        // an answer too deep to be a real one
        return {200, nested_arrays(100'000)};
    });
    {
        fake_env e(fake);
        boost::asio::io_context io;
        saga::contract::inbox box(true);
        auto sub = saga::contract::consume(e, io, "q", box);
        REQUIRE(saga::contract::run_until(e, io, [&] { return box.size() == 1; }));
        CHECK(box.at(0)->message().message_id == "m-1");
        sub->stop();
    }
}
