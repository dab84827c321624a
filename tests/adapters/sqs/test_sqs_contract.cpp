// The transport contract on saga::sqs against a real moto_server (one per test process). Each
// case uses fresh queue and topic names; time is real, so the visibility timeout is 4 s
// (SQS counts whole seconds; 1 s is too tight for 500 messages on a loaded machine).
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "contract/transport_contract.hpp"
#include "moto_fixture.hpp"

namespace {

using namespace std::chrono_literals;

saga::sqs::test::moto_server& moto() {
    static saga::sqs::test::moto_server server;
    return server;
}

struct sqs_env {
    std::shared_ptr<saga::transport> transport = make();
    saga::duration visibility_timeout = 4s;
    std::chrono::milliseconds max_wait = 60s;  // a bound, not an expectation: CI is slow
    std::chrono::milliseconds quiet_period = 300ms;
    bool may_duplicate = true;  // standard queues: "at-least-once delivery"

    static std::shared_ptr<saga::transport> make() {
        REQUIRE(moto().available());
        auto t = saga::sqs::sqs_transport::create(saga::sqs::test::moto_options(moto()));
        REQUIRE(t);
        return std::move(t).value();
    }
    [[nodiscard]] std::string name(std::string_view base) {
        static int counter = 0;
        return std::string{base} + "-" + std::to_string(++counter);
    }
    void advance(saga::duration d) { std::this_thread::sleep_for(d); }
};

}  // namespace

SAGA_TRANSPORT_CONTRACT("[sqs]", sqs_env{})
