// What saga::sqs promises beyond the transport contract, against a real moto_server: FIFO order
// per saga, visibility extension, redelivery after a consumer crash, dead-letter queues, poison
// messages, SNS fan-out, claim checks, signature checking (403), secrets kept out of logs, and an
// emulator killed and restarted mid-run.
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <saga/sqs/claim_check.hpp>
#include <saga/sqs/sqs_transport.hpp>

#include "contract/transport_contract.hpp"
#include "moto_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using saga::contract::inbox;
using saga::contract::numbered;
using saga::contract::run_until;
using saga::contract::settle;
using saga::sqs::sqs_options;
using saga::sqs::sqs_transport;
using saga::sqs::test::log_capture;
using saga::sqs::test::moto_options;
using saga::sqs::test::moto_server;

using saga::sqs::test::env;
using saga::sqs::test::shared_moto;
using saga::sqs::test::unique;

saga::envelope saga_message(int saga, int step) {
    saga::envelope e;
    e.message_id = "s" + std::to_string(saga) + "-m" + std::to_string(step);
    e.saga_id = "saga-" + std::to_string(saga);
    e.type = "step";
    e.payload = {{"step", step}};
    return e;
}

}  // namespace

TEST_CASE("sqs: fifo queues keep each saga's messages in order while sagas interleave",
          "[sqs][fifo]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    auto o = moto_options(moto);
    o.fifo = true;
    env e(o);
    boost::asio::io_context io;
    const auto q = unique("fifo-orders");
    constexpr int sagas = 8;
    constexpr int steps = 6;
    std::atomic<int> done{0};
    std::atomic<int> failed{0};
    for (int step = 0; step < steps; ++step)
        for (int s = 0; s < sagas; ++s)
            e.transport->async_send(q, saga_message(s, step), [&](saga::result<void> r) {
                if (!r) ++failed;
                ++done;
            });
    REQUIRE(run_until(e, io, [&] { return done == sagas * steps; }));
    REQUIRE(failed == 0);

    inbox box(true);
    auto sub = saga::contract::consume(e, io, q, box);
    REQUIRE(run_until(e, io, [&] { return box.size() >= sagas * steps; }));
    settle(e, io);
    std::map<std::string, std::vector<int>> order;
    for (std::size_t i = 0; i < box.size(); ++i) {
        const auto& m = box.at(i)->message();
        order[m.saga_id].push_back(m.payload.at("step").get<int>());
    }
    REQUIRE(order.size() == sagas);
    for (const auto& [id, seen] : order) {
        INFO("saga " << id);
        CHECK(seen == std::vector<int>{0, 1, 2, 3, 4, 5});
    }
}

TEST_CASE("sqs: extend keeps a delivery invisible past its original timeout", "[sqs][visibility]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    env e(moto_options(moto));
    boost::asio::io_context io;
    const auto q = unique("slow-handler");
    REQUIRE(saga::contract::send(e, io, q, numbered(1)));
    std::vector<std::shared_ptr<saga::delivery>> seen;
    auto sub = e.transport->consume(q, io.get_executor(),
                                    [&](std::shared_ptr<saga::delivery> d) {
                                        d->extend(4s);  // a slow handler asks for more time
                                        seen.push_back(std::move(d));
                                    },
                                    {.visibility_timeout = 1s, .max_in_flight = 4});
    REQUIRE(sub);
    REQUIRE(run_until(e, io, [&] { return seen.size() == 1; }));
    e.advance(2500ms);  // well past the original 1 s
    settle(e, io);
    CHECK(seen.size() == 1);
    seen.front()->ack();
    e.advance(2s);  // past the extension too: acked, so still nothing
    settle(e, io);
    CHECK(seen.size() == 1);
}

TEST_CASE("sqs: a message a crashed consumer never acked is delivered to the next one",
          "[sqs][redelivery]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    const auto q = unique("crash");
    boost::asio::io_context io;
    {
        env first(moto_options(moto));
        REQUIRE(saga::contract::send(first, io, q, numbered(7)));
        inbox box;  // never acks
        auto sub = saga::contract::consume(first, io, q, box);
        REQUIRE(run_until(first, io, [&] { return box.size() == 1; }));
        sub->stop();
        // the process goes away: the transport with it, the message unacked
    }
    env second(moto_options(moto));
    inbox box(true);
    auto sub = saga::contract::consume(second, io, q, box);
    REQUIRE(run_until(second, io, [&] { return box.size() == 1; }));
    CHECK(box.at(0)->message().message_id == "m-7");
    CHECK(box.at(0)->delivery_count() == 2);
}

TEST_CASE("sqs: a message nacked max_receive_count times goes to the dead-letter queue",
          "[sqs][dlq]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    log_capture logs;
    auto o = moto_options(moto);
    o.max_receive_count = 2;
    o.log = logs.sink();
    o.log_level = saga::log_level::info;
    env e(o);
    boost::asio::io_context io;
    const auto q = unique("poisoned");
    REQUIRE(saga::contract::send(e, io, q, numbered(1)));
    REQUIRE(saga::contract::send(e, io, q, numbered(2)));
    std::vector<std::string> handled;
    auto sub = e.transport->consume(q, io.get_executor(),
                                    [&](std::shared_ptr<saga::delivery> d) {
                                        handled.push_back(d->message().message_id);
                                        if (d->message().message_id == "m-1")
                                            d->nack();  // always fails
                                        else
                                            d->ack();
                                    },
                                    {.visibility_timeout = 1s});
    REQUIRE(sub);
    inbox dead(true);
    auto dlq =
        saga::contract::consume(e, io, saga::sqs::dead_letter_endpoint(e.sqs->options(), q), dead);
    REQUIRE(run_until(e, io, [&] { return dead.size() == 1; }));
    CHECK(dead.at(0)->message().message_id == "m-1");
    CHECK(std::count(handled.begin(), handled.end(), "m-1") == 2);
    CHECK(std::count(handled.begin(), handled.end(), "m-2") == 1);  // never blocked
    CHECK(logs.contains("'m-1'"));
    CHECK(logs.contains("dead-letter"));
}

TEST_CASE("sqs: a poison message is logged and never blocks the queue and ends in the DLQ",
          "[sqs][dlq]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    const auto q = unique("poison");
    boost::asio::io_context io;
    // a producer with a claim store the consumer cannot see: its reference is poison there
    auto po = moto_options(moto);
    po.max_message_size = 1024;
    po.claim_checks = std::make_shared<saga::sqs::memory_claim_check_store>();
    po.max_receive_count = 2;
    env producer(po);
    auto big = numbered(1);
    big.payload["blob"] = std::string(4096, 'x');
    REQUIRE(saga::contract::send(producer, io, q, big));
    REQUIRE(saga::contract::send(producer, io, q, numbered(2)));

    log_capture logs;
    auto co = moto_options(moto);
    co.max_receive_count = 2;
    co.log = logs.sink();
    co.log_level = saga::log_level::info;
    env consumer(co);
    inbox good(true);
    auto sub = saga::contract::consume(consumer, io, q, good);
    inbox dead(true);
    auto dlq = saga::contract::consume(
        consumer, io, saga::sqs::dead_letter_endpoint(consumer.sqs->options(), q), dead);
    REQUIRE(run_until(consumer, io, [&] { return good.size() == 1; }));
    CHECK(good.at(0)->message().message_id == "m-2");
    // it goes to the dead-letter queue on its first receive, and is logged once it is there
    REQUIRE(
        run_until(consumer, io, [&] { return logs.contains("moved to the dead-letter queue"); }));
    CHECK(logs.contains("poison message"));
    CHECK(logs.contains("claim check"));
    // the dead-letter queue has the raw reference, which its consumer cannot decode either:
    // it is logged there too, and no handler ever sees it
    const auto dead_endpoint = saga::sqs::dead_letter_endpoint(consumer.sqs->options(), q);
    REQUIRE(run_until(consumer, io, [&] {
        return logs.contains("poison message") &&
               logs.contains("on endpoint '" + dead_endpoint + "'");
    }));
    CHECK(dead.size() == 0);
    CHECK(good.size() == 1);
}

TEST_CASE("sqs: a publication fans out to two subscribed queues, batched", "[sqs][sns]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    env e(moto_options(moto));
    boost::asio::io_context io;
    const auto topic = unique("campaign-events");
    const auto a = unique("billing");
    const auto b = unique("reporting");
    REQUIRE(e.transport->subscribe(topic, a));
    REQUIRE(e.transport->subscribe(topic, b));
    constexpr int count = 25;
    std::atomic<int> done{0};
    std::atomic<int> failed{0};
    for (int i = 0; i < count; ++i)
        e.transport->async_publish(topic, numbered(i), [&](saga::result<void> r) {
            if (!r) ++failed;
            ++done;
        });
    REQUIRE(run_until(e, io, [&] { return done == count; }));
    REQUIRE(failed == 0);
    inbox ba(true);
    inbox bb(true);
    auto sa = saga::contract::consume(e, io, a, ba);
    auto sb = saga::contract::consume(e, io, b, bb);
    REQUIRE(run_until(e, io, [&] { return ba.size() >= count && bb.size() >= count; }));
    settle(e, io);
    auto ids_a = ba.message_ids();
    auto ids_b = bb.message_ids();
    std::sort(ids_a.begin(), ids_a.end());
    std::sort(ids_b.begin(), ids_b.end());
    CHECK(ids_a.size() == count);
    CHECK(ids_a == ids_b);
}

TEST_CASE("sqs: a message over the size limit travels as a claim check", "[sqs][claim-check]") {
    auto& moto = shared_moto();
    SAGA_REQUIRE_MOTO(moto);
    boost::asio::io_context io;
    const auto q = unique("large");
    auto big = saga::contract::full_envelope("big-1");
    big.payload["blob"] = std::string(300 * 1024, 'z');  // over SQS's 256 KiB

    SECTION("with a claim store: the whole envelope comes back and the claim is released") {
        auto store = std::make_shared<saga::sqs::memory_claim_check_store>();
        auto o = moto_options(moto);
        o.claim_checks = store;
        env e(o);
        REQUIRE(saga::contract::send(e, io, q, big));
        CHECK(store->size() == 1);
        inbox box(true);
        auto sub = saga::contract::consume(e, io, q, box);
        REQUIRE(run_until(e, io, [&] { return box.size() == 1; }));
        CHECK(box.at(0)->message() == big);
        REQUIRE(run_until(e, io, [&] { return store->size() == 0; }));
    }
    SECTION("without one: refused at once, permanently, naming the size and the limit") {
        env e(moto_options(moto));
        const auto r = saga::contract::send(e, io, q, big);
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::invalid_argument);
        CHECK(r.error() == saga::condition::permanent);
        CHECK(r.error().message.find("262144") != std::string::npos);
        CHECK(r.error().message.find("big-1") != std::string::npos);
    }
}

TEST_CASE(
    "sqs: moto checks our signatures and a wrong secret is a permanent 403 that is never logged",
    "[sqs][auth]") {
    if (saga::sqs::test::moto_path().empty()) {
        SAGA_SKIP_TEST("moto_server not found on PATH");
    }
    // the first 3 calls are not checked: they make an IAM user with a key and a policy
    moto_server moto(std::map<std::string, std::string>{{"INITIAL_NO_AUTH_ACTION_COUNT", "3"}});
    REQUIRE(moto.available());
    const auto iam = "curl -s --aws-sigv4 aws:amz:us-east-1:iam --user K:S " + moto.url() + "/ ";
    (void)saga::sqs::test::shell(iam + "-d 'Action=CreateUser&UserName=saga&Version=2010-05-08'");
    const auto key_xml = saga::sqs::test::shell(
        iam + "-d 'Action=CreateAccessKey&UserName=saga&Version=2010-05-08'");
    (void)saga::sqs::test::shell(
        iam +
        "-d 'Action=PutUserPolicy&UserName=saga&PolicyName=all&Version=2010-05-08' "
        "--data-urlencode 'PolicyDocument={\"Version\":\"2012-10-17\",\"Statement\":[{"
        "\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}'");
    const auto between = [&](std::string_view open, std::string_view close) {
        const auto b = key_xml.find(open);
        const auto e = key_xml.find(close);
        REQUIRE(b != std::string::npos);
        REQUIRE(e != std::string::npos);
        return key_xml.substr(b + open.size(), e - b - open.size());
    };
    const auto key_id = between("<AccessKeyId>", "</AccessKeyId>");
    const auto secret = between("<SecretAccessKey>", "</SecretAccessKey>");
    boost::asio::io_context io;

    SECTION("the right key works") {
        auto o = moto_options(moto);
        o.creds = saga::sqs::credentials{key_id, secret, ""};
        env e(o);
        const auto q = unique("signed");
        REQUIRE(saga::contract::send(e, io, q, numbered(1)));
        inbox box(true);
        auto sub = saga::contract::consume(e, io, q, box);
        REQUIRE(run_until(e, io, [&] { return box.size() == 1; }));
    }
    SECTION("a wrong secret is refused permanently, and the secret shows nowhere") {
        const std::string wrong = "WRONG-secret-9f8e7d6c5b4a";
        log_capture logs;
        auto o = moto_options(moto);
        o.creds = saga::sqs::credentials{key_id, wrong, ""};
        o.log = logs.sink();
        o.log_level = saga::log_level::info;
        o.log_level = saga::log_level::info;
        env e(o);
        const auto r = saga::contract::send(e, io, unique("unsigned"), numbered(1));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == saga::sqs::aws_errc::access_denied);
        CHECK(r.error() == saga::condition::permanent);
        CHECK(r.error().message.find("403") != std::string::npos);
        CHECK(r.error().what().find(wrong) == std::string::npos);
        const auto sub = e.sqs->queue_url(unique("unsigned"));
        REQUIRE_FALSE(sub);
        CHECK(sub.error().message.find(wrong) == std::string::npos);
        std::lock_guard lock(logs.captured->mutex);
        for (const auto& line : logs.captured->lines) CHECK(line.find(wrong) == std::string::npos);
    }
}

TEST_CASE("sqs: moto killed and restarted mid-run makes sends retry and loses nothing acknowledged",
          "[sqs][restart]") {
    if (saga::sqs::test::moto_path().empty()) {
        SAGA_SKIP_TEST("moto_server not found on PATH");
    }
    moto_server moto;  // its own: this test kills it
    REQUIRE(moto.available());
    log_capture logs;
    auto o = moto_options(moto);
    o.max_attempts = 30;  // 50 ms .. 500 ms backoff: about 12 s of retries, for a slow restart
    o.log = logs.sink();
    o.log_level = saga::log_level::info;
    env e(o);
    boost::asio::io_context io;
    const auto q = unique("survivor");
    inbox box(true);
    auto sub = saga::contract::consume(e, io, q, box);
    REQUIRE(saga::contract::send(e, io, q, numbered(0)));
    REQUIRE(run_until(e, io, [&] { return box.size() == 1; }));

    moto.kill_hard();
    struct outcome {
        std::mutex mutex;
        std::map<std::string, saga::result<void>> results;
    };
    auto out = std::make_shared<outcome>();
    constexpr int count = 10;
    for (int i = 1; i <= count; ++i)
        e.transport->async_send(q, numbered(i), [out, id = numbered(i).message_id](auto r) {
            std::lock_guard lock(out->mutex);
            out->results.emplace(id, std::move(r));
        });
    std::this_thread::sleep_for(700ms);  // the sends are retrying against a dead port
    moto.restart();                      // empty: the queue is gone and gets created again

    REQUIRE(run_until(e, io, [&] {
        std::lock_guard lock(out->mutex);
        return out->results.size() == count;
    }));
    std::set<std::string> acknowledged;
    {
        std::lock_guard lock(out->mutex);
        for (const auto& [id, r] : out->results) {
            if (r)
                acknowledged.insert(id);
            else
                CHECK(r.error() == saga::condition::transient);
        }
    }
    CHECK(!acknowledged.empty());
    CHECK(logs.contains("creating it again"));
    // every send that reported success arrives
    REQUIRE(run_until(e, io, [&] {
        const auto ids = box.message_ids();
        const std::set<std::string> got(ids.begin(), ids.end());
        return std::includes(got.begin(), got.end(), acknowledged.begin(), acknowledged.end());
    }));
}
