// Hostile messages on real queues (moto_server): bodies sent with a plain signed SendMessage,
// as anyone with send rights on a queue could, to the queues a participant and an engine
// consume. The consumers must refuse them and go on serving.
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <saga/definition.hpp>
#include <saga/engine.hpp>
#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/participant.hpp>
#include <saga/sqs/sqs_transport.hpp>

#include "moto_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::sqs::test::log_capture;
using saga::sqs::test::moto_options;
using saga::sqs::test::moto_server;

struct payment {
    int amount = 0;
    std::string receipt;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment, amount, receipt)

std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

/// Sends `body` as it is to the queue at `queue_url` (SendMessage signed by curl); true when
/// moto took it.
bool send_raw(const moto_server& moto, const std::string& queue_url, const std::string& body) {
    const auto file = std::filesystem::temp_directory_path() /
                      ("saga-hostile-" + std::to_string(::getpid()) + ".json");
    {
        std::ofstream out(file, std::ios::binary);
        out << json{{"QueueUrl", queue_url}, {"MessageBody", body}}.dump();
    }
    const auto answer = saga::sqs::test::shell(
        "curl -s --aws-sigv4 aws:amz:us-east-1:sqs --user K:S "
        "-H 'Content-Type: application/x-amz-json-1.0' "
        "-H 'X-Amz-Target: AmazonSQS.SendMessage' --data-binary @" +
        file.string() + " " + moto.url() + "/");
    std::filesystem::remove(file);
    return answer.find("MessageId") != std::string::npos;
}

}  // namespace

TEST_CASE("sqs: 100,000 nested arrays on the queues of a participant and an engine kill neither",
          "[sqs][hostile]") {
    moto_server moto;
    SAGA_REQUIRE_MOTO(moto);
    log_capture logs;
    auto o = moto_options(moto);
    o.log = logs.sink();
    auto created = saga::sqs::sqs_transport::create(o);
    REQUIRE(created);
    auto sqs = std::move(created).value();
    const std::string billing_endpoint = "hostile-billing";
    const std::string engine_endpoint = "hostile-engine";

    auto def = saga::definition_builder<payment>("pay", 1)
                   .remote("charge", billing_endpoint,
                           [](const payment& p) {
                               return saga::command{"charge", {{"amount", p.amount}}};
                           })
                   .on_reply([](payment& p, const json& r) {
                       p.receipt = r.value("receipt", std::string());
                   })
                   .timeout(30s)
                   .build();
    REQUIRE(def);
    saga::engine eng(std::make_shared<saga::inmemory::memory_journal_store>(), sqs,
                     {.endpoint = engine_endpoint, .log_sink = logs.sink()});
    REQUIRE(eng.add(def.value()));

    // 200 KB of brackets: bare, as an envelope's payload, and as a reply's payload
    const auto deep = nested_arrays(100'000);
    const auto billing_url = sqs->queue_url(billing_endpoint);
    const auto engine_url = sqs->queue_url(engine_endpoint);
    REQUIRE(billing_url);
    REQUIRE(engine_url);
    const auto command = json{{"message_id", "evil-command"},
                              {"kind", "command"},
                              {"type", "charge"},
                              {"saga_id", "nobody"},
                              {"idempotency_key", "evil"},
                              {"reply_to", engine_endpoint}}
                             .dump();
    const auto reply = json{
        {"message_id", "evil-reply"},
        {"kind", "reply"},
        {"type", "charge"},
        {"saga_id", "nobody"},
        {"step", "charge"}}.dump();
    const auto with_deep_payload = [&](std::string envelope) {
        envelope.pop_back();
        return envelope + R"(,"payload":)" + deep + "}";
    };
    for (const auto& [url, body] : {std::pair{billing_url.value(), deep},
                                    {billing_url.value(), with_deep_payload(command)},
                                    {engine_url.value(), deep},
                                    {engine_url.value(), with_deep_payload(reply)}}) {
        REQUIRE(body.size() >= 200'000);
        REQUIRE(send_raw(moto, url, body));
    }

    // the participant and the engine consume those queues, then a real saga runs through both
    boost::asio::thread_pool pool(1);
    saga::participant billing(sqs, billing_endpoint);
    billing.on("charge", [](const saga::envelope& e) {
        return saga::participant_reply::success(
            {{"receipt", "r-" + std::to_string(e.payload.value("amount", 0))}});
    });
    REQUIRE(billing.start(pool.get_executor()));
    std::thread runner([&] { (void)eng.run(); });
    auto id = eng.start("pay", payment{.amount = 7});
    REQUIRE(id);
    auto done = eng.wait(id.value());
    eng.stop();
    runner.join();
    billing.stop();
    pool.join();
    REQUIRE(done);
    CHECK(done.value().status == saga::saga_status::completed);
    CHECK(done.value().data.value("receipt", std::string()) == "r-7");
    CHECK(billing.stats().handled == 1);
    CHECK(logs.contains("nests deeper than the limit of 64 levels"));
}
