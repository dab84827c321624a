// Messages that can never be decoded, on real queues (moto_server): they go to the dead-letter
// queue on their first receive, with their raw body, their group, their attributes and the
// reason, and only then leave their queue; a flood of them does not starve real sagas.
// The junk is sent with plain signed calls (sqs_client.hpp), as anyone with send rights on a
// queue could.
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <saga/definition.hpp>
#include <saga/engine.hpp>
#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/metrics.hpp>
#include <saga/participant.hpp>
#include <saga/sqs/claim_check.hpp>
#include <saga/sqs/sqs_transport.hpp>

#include "contract/transport_contract.hpp"
#include "moto_fixture.hpp"
#include "sqs_client.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::sqs::test::log_capture;
using saga::sqs::test::moto_options;
using saga::sqs::test::moto_server;

using saga::sqs::test::sqs_client;

/// Visible plus in-flight messages of the queue at `url` (moto counts exactly).
long messages_in(sqs_client& aws, const std::string& url) {
    const auto a =
        aws.call("GetQueueAttributes",
                 {{"QueueUrl", url},
                  {"AttributeNames",
                   {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}}});
    if (!a.contains("Attributes")) return -1;
    const auto& at = a["Attributes"];
    return std::stol(at.value("ApproximateNumberOfMessages", std::string("0"))) +
           std::stol(at.value("ApproximateNumberOfMessagesNotVisible", std::string("0")));
}

std::string nested(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

/// The `n`th body of a junk flood: every way a body can fail to decode, in turn.
std::string junk_body(std::size_t n) {
    const auto id = "junk-" + std::to_string(n);
    switch (n % 8) {
        case 0: return "{not json " + id;
        case 1: return json{{"kind", "reply"}, {"saga_id", id}}.dump();  // no message_id
        case 2: return json{{"message_id", n}}.dump();                   // a number
        case 3: return json{{"message_id", id}, {"kind", "reply"}, {"attempt", "many"}}.dump();
        case 4: return nested(100);
        case 5:
            return R"({"message_id":")" + id + R"(","kind":"reply","payload":)" + nested(70) + "}";
        case 6: return json{{"message_id", id}, {"kind", "bogus"}}.dump();
        default: return "saga-claim-check:" + id;  // the consumer has no claim store
    }
}

/// The reason the `n`th body of a junk flood is dead-lettered for.
std::string junk_reason(std::size_t n) {
    switch (n % 8) {
        case 4:
        case 5: return "too_deep";
        case 7: return "claim_check";
        default: return "decode";
    }
}

/// Receives what the queue at `url` holds (up to `max`), with attributes, without deleting.
std::vector<json> peek(sqs_client& aws, const std::string& url, std::size_t max = 10) {
    std::vector<json> out;
    for (int round = 0; round < 5 && out.size() < max; ++round) {
        const auto a = aws.call("ReceiveMessage", {{"QueueUrl", url},
                                                   {"MaxNumberOfMessages", 10},
                                                   {"WaitTimeSeconds", 1},
                                                   {"VisibilityTimeout", 60},
                                                   {"MessageAttributeNames", {"All"}},
                                                   {"MessageSystemAttributeNames", {"All"}}});
        if (!a.contains("Messages")) continue;
        for (const auto& m : a["Messages"]) out.push_back(m);
    }
    return out;
}

std::string attribute(const json& message, const std::string& name) {
    if (!message.contains("MessageAttributes") || !message["MessageAttributes"].contains(name))
        return {};
    return message["MessageAttributes"][name].value("StringValue", std::string());
}

using saga::sqs::test::env;
using saga::sqs::test::shared_moto;
using saga::sqs::test::unique;

}  // namespace

TEST_CASE("sqs: an undecodable message goes to the dead-letter queue on its first receive",
          "[sqs][dlq]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    sqs_client aws(moto.port());
    const bool fifo = GENERATE(false, true);
    struct kind {
        std::string body;
        std::string reason;
        std::string says;
    };
    auto claims = std::make_shared<saga::sqs::memory_claim_check_store>();
    REQUIRE(claims->put("huge", std::string((16u << 20) + 1, ' ')));
    const auto k = GENERATE(range(0, 5));
    const std::vector<kind> kinds{
        {"{not json", "decode", "not valid JSON"},
        {json{{"kind", "reply"}, {"saga_id", "s-1"}}.dump(), "decode", "message_id"},
        {nested(100), "too_deep", "64 levels"},
        {"saga-claim-check:no-such-key", "claim_check", "no-such-key"},
        {"saga-claim-check:huge", "too_big", "bytes"},
    };
    const auto& junk_kind = kinds.at(static_cast<std::size_t>(k));
    INFO("fifo " << fifo << ", reason " << junk_kind.reason);

    log_capture logs;
    auto registry = std::make_shared<saga::metrics_registry>();
    auto o = moto_options(moto);
    o.fifo = fifo;
    o.claim_checks = claims;
    o.log = logs.sink();
    env e(o);
    e.sqs->set_metrics(registry);
    const std::string endpoint = unique("undecodable");
    const auto url = e.sqs->queue_url(endpoint);
    const auto dlq_url =
        e.sqs->queue_url(saga::sqs::dead_letter_endpoint(e.sqs->options(), endpoint));
    REQUIRE(url);
    REQUIRE(dlq_url);

    json send{
        {"QueueUrl", url.value()},
        {"MessageBody", junk_kind.body},
        {"MessageAttributes", {{"origin", {{"DataType", "String"}, {"StringValue", "test"}}}}}};
    if (fifo) {
        send["MessageGroupId"] = "g-7";
        send["MessageDeduplicationId"] = "d-1";
    }
    const auto sent = aws.call("SendMessage", send);
    REQUIRE(sent.contains("MessageId"));
    const auto sqs_id = sent["MessageId"].get<std::string>();

    // a consumer whose visibility timeout is longer than the test: a redelivery (what happened
    // before) would take 5 x 30 s to reach the dead-letter queue
    boost::asio::io_context io;
    saga::contract::inbox box(true);
    auto sub = e.transport->consume(endpoint, io.get_executor(), box.handler(),
                                    {.visibility_timeout = 30s, .max_in_flight = 8});
    REQUIRE(sub);
    REQUIRE(
        saga::contract::run_until(e, io, [&] { return messages_in(aws, dlq_url.value()) == 1; }));
    REQUIRE(saga::contract::run_until(e, io, [&] { return messages_in(aws, url.value()) == 0; }));
    CHECK(box.size() == 0);  // no handler saw it

    const auto dead = peek(aws, dlq_url.value(), 1);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].value("Body", std::string()) == junk_kind.body);
    CHECK(attribute(dead[0], "saga.dead_letter.reason") == junk_kind.reason);
    CHECK(attribute(dead[0], "saga.dead_letter.detail").find(junk_kind.says) != std::string::npos);
    CHECK(attribute(dead[0], "saga.dead_letter.source") == endpoint);
    CHECK(attribute(dead[0], "saga.dead_letter.sqs_message_id") == sqs_id);
    CHECK(attribute(dead[0], "origin") == "test");
    if (fifo) CHECK(dead[0]["Attributes"].value("MessageGroupId", std::string()) == "g-7");
    CHECK(registry->value("saga_messages_dead_lettered_total",
                          {{"endpoint", endpoint}, {"reason", junk_kind.reason}}) == 1);
    CHECK(logs.contains("sqs id " + sqs_id));
    CHECK(logs.contains("moved to the dead-letter queue"));
    CHECK(claims->get("huge"));  // a claim check's body stays: the copy refers to it
}

TEST_CASE(
    "sqs: an undecodable message stays in its queue when it has no dead-letter queue to go to",
    "[sqs][dlq]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    sqs_client aws(moto.port());
    log_capture logs;
    auto registry = std::make_shared<saga::metrics_registry>();
    auto o = moto_options(moto);
    o.log = logs.sink();
    std::string endpoint;
    std::string expected;
    SECTION("dead_letter_queues is off") {
        o.dead_letter_queues = false;
        endpoint = unique("no-dlq");
        CHECK_FALSE(o.dead_letter_queues);
        expected = "cannot go to a dead-letter queue (dead_letter_queues is off)";
    }
    SECTION("a queue given by URL without a RedrivePolicy") {
        const auto made = aws.call("CreateQueue", {{"QueueName", unique("given-plain")}});
        REQUIRE(made.contains("QueueUrl"));
        endpoint = unique("given");
        o.queue_urls = {{endpoint, made["QueueUrl"].get<std::string>()}};
        expected = "has no dead-letter queue (its queue has no RedrivePolicy";
    }
    SECTION("a queue given by URL whose dead-letter queue was deleted") {
        const auto dlq = aws.call("CreateQueue", {{"QueueName", unique("given-gone-dlq")}});
        REQUIRE(dlq.contains("QueueUrl"));
        const auto arn = aws.call("GetQueueAttributes", {{"QueueUrl", dlq["QueueUrl"]},
                                                         {"AttributeNames", {"QueueArn"}}});
        const auto policy = json{
            {"deadLetterTargetArn", arn["Attributes"]["QueueArn"]},
            {"maxReceiveCount",
             "5"}}.dump();
        const auto made = aws.call("CreateQueue", {{"QueueName", unique("given-gone")},
                                                   {"Attributes", {{"RedrivePolicy", policy}}}});
        REQUIRE(made.contains("QueueUrl"));
        (void)aws.call("DeleteQueue", {{"QueueUrl", dlq["QueueUrl"]}});
        endpoint = unique("given-gone");
        o.queue_urls = {{endpoint, made["QueueUrl"].get<std::string>()}};
        expected = "sending it to the dead-letter queue failed";
    }
    env e(o);
    e.sqs->set_metrics(registry);
    const auto url = e.sqs->queue_url(endpoint);
    REQUIRE(url);
    REQUIRE(aws.call("SendMessage", {{"QueueUrl", url.value()}, {"MessageBody", "{junk"}})
                .contains("MessageId"));
    boost::asio::io_context io;
    saga::contract::inbox box(true);
    auto sub = e.transport->consume(endpoint, io.get_executor(), box.handler(),
                                    {.visibility_timeout = 30s, .max_in_flight = 8});
    REQUIRE(sub);
    REQUIRE(saga::contract::run_until(e, io, [&] { return logs.contains(expected); }));
    CHECK(logs.contains("poison message"));
    CHECK(messages_in(aws, url.value()) == 1);  // never lost: it comes back after 30 s
    CHECK(box.size() == 0);
    CHECK(registry->value("saga_messages_dead_lettered_total",
                          {{"endpoint", endpoint}, {"reason", "decode"}}) == 0);
}

TEST_CASE("sqs: a queue given by URL dead-letters into the queue its RedrivePolicy names",
          "[sqs][dlq]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    sqs_client aws(moto.port());
    const auto dlq = aws.call("CreateQueue", {{"QueueName", "theirs-dlq"}});
    REQUIRE(dlq.contains("QueueUrl"));
    const auto arn = aws.call("GetQueueAttributes",
                              {{"QueueUrl", dlq["QueueUrl"]}, {"AttributeNames", {"QueueArn"}}});
    const auto policy = json{
        {"deadLetterTargetArn", arn["Attributes"]["QueueArn"]},
        {"maxReceiveCount",
         "5"}}.dump();
    const auto made = aws.call(
        "CreateQueue", {{"QueueName", "theirs"}, {"Attributes", {{"RedrivePolicy", policy}}}});
    REQUIRE(made.contains("QueueUrl"));
    auto o = moto_options(moto);
    o.queue_urls = {{"theirs", made["QueueUrl"].get<std::string>()}};
    o.create_resources = false;
    env e(o);
    REQUIRE(aws.call("SendMessage", {{"QueueUrl", made["QueueUrl"]}, {"MessageBody", "[1,"}})
                .contains("MessageId"));
    boost::asio::io_context io;
    saga::contract::inbox box(true);
    auto sub = e.transport->consume("theirs", io.get_executor(), box.handler(),
                                    {.visibility_timeout = 30s, .max_in_flight = 8});
    REQUIRE(sub);
    const auto dlq_url = dlq["QueueUrl"].get<std::string>();
    REQUIRE(saga::contract::run_until(e, io, [&] { return messages_in(aws, dlq_url) == 1; }));
    CHECK(attribute(peek(aws, dlq_url, 1).at(0), "saga.dead_letter.reason") == "decode");
    REQUIRE(saga::contract::run_until(
        e, io, [&] { return messages_in(aws, made["QueueUrl"].get<std::string>()) == 0; }));
    CHECK(box.size() == 0);
}

namespace {

struct shipped_payment {
    int amount = 0;
    std::string receipt;
    std::string shipment;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(shipped_payment, amount, receipt, shipment)

/// What a flood run saw.
struct flood_run {
    std::vector<double> saga_seconds;  // each saga, from its start to its end
    double flood_seconds = 0;          // first junk sent to the last one out of the DLQs
    bool sagas_ended_during_flood = false;
};

/// Runs `sagas` real sagas (two remote steps each, over SQS FIFO) while `junk` undecodable
/// messages in 100 groups go to the engine's queue (10 of every 11 batches) and to the
/// participant's (the rest), with SendMessageBatch. Checks that every saga completes, that
/// every junk message reaches a dead-letter queue (a drainer takes them out and counts them
/// by their original SQS message id) and that none is left in its queue.
///
/// moto, not saga, sets the pace: it serves about 25 requests a second here at 100% of a core
/// (each costs it milliseconds, and a FIFO receive rescans the queue while it waits), and it
/// recomputes a FIFO queue's attributes (three scans of all its messages) six times for every
/// message sent to it, so a send to a queue holding N messages costs O(N): 5,000 junk messages
/// queued up front take moto over ten minutes just to accept, and a window of 30 instead of 10
/// made this test three times slower. So the sender sends as fast as the junk goes, keeping at
/// most `window` junk messages not yet dead-lettered (one batch by default), and the drainers
/// long-poll the dead-letter queues (polling them in a loop took half of moto's time).
flood_run flood(const moto_server& moto, std::size_t junk, int sagas, std::size_t window = 10) {
    log_capture logs;
    auto o = moto_options(moto);
    o.fifo = true;
    o.log = logs.sink();
    auto created = saga::sqs::sqs_transport::create(o);
    REQUIRE(created);
    auto sqs = std::move(created).value();
    const std::string engine_endpoint = "flood-engine";
    const std::string billing_endpoint = "flood-billing";

    auto def = saga::definition_builder<shipped_payment>("pay", 1)
                   .remote("charge", billing_endpoint,
                           [](const shipped_payment& p) {
                               return saga::command{"charge", {{"amount", p.amount}}};
                           })
                   .on_reply([](shipped_payment& p, const json& r) {
                       p.receipt = r.value("receipt", std::string());
                   })
                   .timeout(10min)
                   .remote("ship", billing_endpoint,
                           [](const shipped_payment& p) {
                               return saga::command{"ship", {{"amount", p.amount}}};
                           })
                   .on_reply([](shipped_payment& p, const json& r) {
                       p.shipment = r.value("shipment", std::string());
                   })
                   .timeout(10min)
                   .build();
    REQUIRE(def);
    saga::engine eng(std::make_shared<saga::inmemory::memory_journal_store>(), sqs,
                     {.endpoint = engine_endpoint, .log_sink = logs.sink()});
    REQUIRE(eng.add(def.value()));
    const std::vector<std::string> endpoints{engine_endpoint, billing_endpoint};
    std::vector<std::string> urls;
    std::vector<std::string> dlq_urls;
    for (const auto& ep : endpoints) {
        auto u = sqs->queue_url(ep);
        auto d = sqs->queue_url(saga::sqs::dead_letter_endpoint(o, ep));
        REQUIRE(u);
        REQUIRE(d);
        urls.push_back(u.value());
        dlq_urls.push_back(d.value());
    }
    const auto dead_lettered = [&] {
        double n = 0;
        for (const auto& ep : endpoints)
            for (const auto* reason : {"decode", "too_deep", "too_big", "claim_check"})
                n += eng.metrics().value("saga_messages_dead_lettered_total",
                                         {{"endpoint", ep}, {"reason", reason}});
        return static_cast<std::size_t>(n);
    };

    boost::asio::thread_pool pool(1);
    saga::participant billing(sqs, billing_endpoint);
    billing.on("charge", [](const saga::envelope& e) {
        return saga::participant_reply::success(
            {{"receipt", "r-" + std::to_string(e.payload.value("amount", 0))}});
    });
    billing.on("ship", [](const saga::envelope& e) {
        return saga::participant_reply::success(
            {{"shipment", "s-" + std::to_string(e.payload.value("amount", 0))}});
    });
    REQUIRE(billing.start(pool.get_executor()));
    std::thread runner([&] { (void)eng.run(); });
    using clock = std::chrono::steady_clock;
    const auto secs = [](clock::time_point a, clock::time_point b) {
        return std::chrono::duration<double>(b - a).count();
    };

    // the flood: a sender, and a drainer that empties the dead-letter queues as they fill
    struct shared_state {
        std::mutex mutex;
        std::set<std::string> sent;               // SQS message ids of the junk
        std::size_t refused = 0;                  // entries SQS did not take
        std::map<std::string, std::string> dead;  // original SQS message id -> reason
        std::size_t dead_copies = 0;              // messages taken out of the DLQs
        std::atomic<std::size_t> sent_count{0};
        std::atomic<bool> stop{false};
    } st;
    const auto flood_began = clock::now();
    std::thread sender([&] {
        if (junk == 0) return;
        sqs_client aws(moto.port());
        // a bound, so that a slow machine fails the checks below instead of the ctest timeout
        // (sending without the window would fill the queues and slow moto down for good)
        const auto give_up = clock::now() + 5min;
        for (std::size_t n = 0, batch = 0; n < junk && !st.stop; ++batch) {
            while (st.sent_count - std::min(st.sent_count.load(), dead_lettered()) > window &&
                   clock::now() < give_up && !st.stop)
                std::this_thread::sleep_for(2ms);
            if (clock::now() >= give_up) break;
            json entries = json::array();
            for (std::size_t k = 0; k < 10 && n < junk; ++k, ++n)
                entries.push_back({{"Id", std::to_string(k)},
                                   {"MessageBody", junk_body(n)},
                                   {"MessageGroupId", "junk-group-" + std::to_string(n % 100)},
                                   {"MessageDeduplicationId", "junk-" + std::to_string(n)}});
            const auto& url = urls[batch % 11 == 10 ? 1 : 0];
            const auto a = aws.call("SendMessageBatch", {{"QueueUrl", url}, {"Entries", entries}});
            std::lock_guard lock(st.mutex);
            std::size_t taken = 0;
            if (a.contains("Successful"))
                for (const auto& m : a["Successful"]) {
                    st.sent.insert(m.value("MessageId", std::string()));
                    ++taken;
                }
            st.refused += entries.size() - taken;
            st.sent_count += taken;
        }
    });
    // one drainer per dead-letter queue, long-polling: polling empty queues in a loop would
    // take most of moto's time (each request costs it milliseconds) from the flood itself
    const auto drain_queue = [&](const std::string& url) {
        if (junk == 0) return;
        sqs_client aws(moto.port());
        while (!st.stop) {
            const auto a = aws.call("ReceiveMessage", {{"QueueUrl", url},
                                                       {"MaxNumberOfMessages", 10},
                                                       {"WaitTimeSeconds", 1},
                                                       {"VisibilityTimeout", 60},
                                                       {"MessageAttributeNames", {"All"}}});
            if (!a.contains("Messages") || a["Messages"].empty()) continue;
            json receipts = json::array();
            {
                std::lock_guard lock(st.mutex);
                for (const auto& m : a["Messages"]) {
                    st.dead[attribute(m, "saga.dead_letter.sqs_message_id")] =
                        attribute(m, "saga.dead_letter.reason");
                    ++st.dead_copies;
                    receipts.push_back({{"Id", std::to_string(receipts.size())},
                                        {"ReceiptHandle", m.value("ReceiptHandle", "")}});
                }
            }
            (void)aws.call("DeleteMessageBatch", {{"QueueUrl", url}, {"Entries", receipts}});
        }
    };
    std::vector<std::thread> drainers;
    for (const auto& url : dlq_urls) drainers.emplace_back(drain_queue, url);

    // the sagas start once the flood is well under way
    while (junk > 0 && st.sent_count < std::min<std::size_t>(junk / 5, 1000) &&
           clock::now() < flood_began + 2min)
        std::this_thread::sleep_for(5ms);
    const auto began = clock::now();
    std::vector<std::string> ids;
    for (int i = 1; i <= sagas; ++i) {
        auto id = eng.start("pay", shipped_payment{.amount = i});
        REQUIRE(id);
        ids.push_back(id.value());
    }
    // a bound, not an expectation (before junk was dead-lettered at once, 10,000 of it kept 4
    // sagas waiting for over 8 minutes)
    const auto deadline = began + 4min;
    flood_run run;
    std::vector<saga::saga_status> status(ids.size(), saga::saga_status::running);
    run.saga_seconds.assign(ids.size(), 0);
    for (bool all = false; !all && clock::now() < deadline;) {
        all = true;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (saga::is_terminal(status[i])) continue;
            auto v = eng.query(ids[i]);
            REQUIRE(v);
            status[i] = v.value().status;
            if (saga::is_terminal(status[i]))
                run.saga_seconds[i] = secs(began, clock::now());
            else
                all = false;
        }
        if (!all) std::this_thread::sleep_for(20ms);
    }
    run.sagas_ended_during_flood = junk > 0 && st.sent_count < junk;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        INFO("saga " << ids[i]);
        CHECK(status[i] == saga::saga_status::completed);
        auto v = eng.query(ids[i]);
        REQUIRE(v);
        CHECK(v.value().data.value("receipt", std::string()) == "r-" + std::to_string(i + 1));
        CHECK(v.value().data.value("shipment", std::string()) == "s-" + std::to_string(i + 1));
    }

    // every junk message comes out of a dead-letter queue, and none is left where it was sent
    sender.join();
    sqs_client aws(moto.port());
    const auto drained = [&] {
        {
            std::lock_guard lock(st.mutex);
            if (st.dead.size() < st.sent.size()) return false;
        }
        return messages_in(aws, urls[0]) == 0 && messages_in(aws, urls[1]) == 0;
    };
    const auto bound = clock::now() + 90s;
    while (!drained() && clock::now() < bound) std::this_thread::sleep_for(100ms);
    run.flood_seconds = secs(flood_began, clock::now());
    st.stop = true;
    for (auto& t : drainers) t.join();
    eng.stop();
    runner.join();
    billing.stop();
    pool.join();

    std::lock_guard lock(st.mutex);
    CHECK(st.refused == 0);
    CHECK(st.sent.size() == junk);
    CHECK(st.dead.size() == st.sent.size());
    CHECK(st.dead_copies == st.dead.size());  // each exactly once
    std::size_t missing = 0;
    for (const auto& id : st.sent) missing += st.dead.contains(id) ? 0 : 1;
    CHECK(missing == 0);
    std::map<std::string, std::size_t> reasons;
    for (const auto& [id, reason] : st.dead) ++reasons[reason];
    std::map<std::string, std::size_t> expected;
    for (std::size_t n = 0; n < junk; ++n) ++expected[junk_reason(n)];
    CHECK(reasons == expected);
    for (const auto& url : urls) CHECK(messages_in(aws, url) == 0);
    for (const auto& url : dlq_urls) CHECK(messages_in(aws, url) == 0);  // all taken out
    CHECK(billing.stats().handled == static_cast<std::size_t>(2 * sagas));
    CHECK(dead_lettered() == junk);  // counted by the engine's registry
    std::printf("[flood] %zu junk (window %zu): sagas took", junk, window);
    for (auto t : run.saga_seconds) std::printf(" %.2f", t);
    std::printf(" s; ended %s the flood; the flood took %.1f s\n",
                run.sagas_ended_during_flood ? "during" : "after", run.flood_seconds);
    return run;
}

}  // namespace

// Under a sanitizer (CI's ASan and TSan suites) the flood is smaller: the same paths run, and
// moto, not saga, sets the pace (a request costs it milliseconds; see flood()).
#if defined(SAGA_TEST_SANITIZED)
constexpr std::size_t flood_size = 1000;
#else
constexpr std::size_t flood_size = 5000;
#endif

TEST_CASE("sqs: a flood of 5,000 undecodable messages in 100 groups does not starve real sagas",
          "[sqs][dlq][flood]") {
    moto_server moto;  // its own: the flood fills it
    SAGA_REQUIRE_MOTO(moto);
    const auto run = flood(moto, flood_size, 4);
    CHECK(run.saga_seconds.size() == 4);
}

TEST_CASE("sqs: the sagas of the flood test without a flood (its baseline)", "[sqs][dlq][flood]") {
    moto_server moto;
    SAGA_REQUIRE_MOTO(moto);
    const auto run = flood(moto, 0, 4);
    CHECK(run.saga_seconds.size() == 4);
}
