#pragma once
// A small engine for the admin server's tests: the in-memory store and transport on the system
// clock, an "order" saga with an approval wait, two participants, and `seed()`, which leaves
// instances in most statuses (completed, waiting, compensated, compensation_failed, failed,
// cancelled, paused, running). Used by the Catch2 tests and by admin_test_server (browser test).
//
//   validate (local; undo: local)
//   -> reserve (billing; undo: release, which fails for saga ids containing "stuck")
//   -> approve (wait for the signal "approval"; its payload's "by" is kept)
//   -> charge (payments; the pivot; refused for amount 13)
//   -> notify (local; fails for good when `fail_notify`)
//
// "slow" has one remote step to an endpoint nobody serves, so its instances stay running.

#include <fmt/format.h>

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

namespace saga::test::admin {

struct order {
    std::string customer = "ada";
    int amount = 100;
    bool fail_notify = false;
    std::string reservation;
    std::string approved_by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order, customer, amount, fail_notify, reservation,
                                                approved_by)

inline result<definition<order>> order_definition() {
    using namespace std::chrono_literals;
    return definition_builder<order>("order", 1)
        .local("validate",
               [](order& o) -> result<void> {
                   if (o.amount <= 0) return permanent_error("amount must be positive");
                   return success();
               })
        .compensate([](order&) {})
        .remote("reserve", "billing",
                [](const order& o) {
                    return command{"reserve", {{"amount", o.amount}}};
                })
        .on_reply([](order& o, const nlohmann::json& r) { o.reservation = r.value("id", ""); })
        .compensate_remote("billing",
                           [](const order& o) {
                               return command{"release", {{"id", o.reservation}}};
                           })
        .compensation_retry(retry_policy::exponential(2, 1ms))
        .timeout(10s)
        .wait("approve", "approval")
        .on_signal([](order& o, const nlohmann::json& p) { o.approved_by = p.value("by", ""); })
        .remote("charge", "payments",
                [](const order& o) {
                    return command{"charge", {{"amount", o.amount}}};
                })
        .retry(retry_policy::none())
        .timeout(10s)
        .pivot()
        .local("notify",
               [](order& o) -> result<void> {
                   if (o.fail_notify) return permanent_error("the mail service refused the note");
                   return success();
               })
        .retry(retry_policy::none())
        .build();
}

struct slow_data {
    int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(slow_data, n)

inline result<definition<slow_data>> slow_definition() {
    using namespace std::chrono_literals;
    return definition_builder<slow_data>("slow", 1)
        .remote("call_nobody", "nobody",
                [](const slow_data&) {
                    return command{"ping", nlohmann::json::object()};
                })
        .timeout(std::chrono::hours{1})
        .build();
}

/// An engine running on its own threads, with the participants of the order saga.
class world {
public:
    world() {
        clock_ = std::make_shared<system_clock>();
        store_ = std::make_shared<inmemory::memory_journal_store>();
        transport_ = std::make_shared<inmemory::memory_transport>(clock_);
        engine_ = std::make_unique<engine>(store_, transport_,
                                           engine_options{.workers = 2, .clock = clock_});
    }
    ~world() { stop(); }
    world(const world&) = delete;
    world& operator=(const world&) = delete;

    /// Registers the definitions, starts the participants and the engine's threads.
    result<void> open() {
        SAGA_TRY(auto d, order_definition());
        SAGA_TRY(engine_->add(d));
        SAGA_TRY(auto s, slow_definition());
        SAGA_TRY(engine_->add(s));
        billing_ = std::make_unique<participant>(transport_, "billing");
        billing_
            ->on("reserve",
                 [](const envelope& e) {
                     return participant_reply::success({{"id", "res-" + e.saga_id}});
                 })
            .on("release", [](const envelope& e) {
                if (e.saga_id.find("stuck") != std::string::npos)
                    return participant_reply::permanent("billing is down for maintenance");
                return participant_reply::success();
            });
        payments_ = std::make_unique<participant>(transport_, "payments");
        payments_->on("charge", [](const envelope& e) {
            if (e.payload.value("amount", 0) == 13)
                return participant_reply::permanent("card declined");
            return participant_reply::success({{"id", "pay-" + e.saga_id}});
        });
        SAGA_TRY(billing_->start(engine_->get_executor()));
        SAGA_TRY(payments_->start(engine_->get_executor()));
        SAGA_TRY(engine_->open());
        runner_ = std::thread([this] { (void)engine_->run(); });
        // engine::stop() before run() has started would be lost (run() restarts the context):
        // return only once the engine runs handlers.
        std::promise<void> running;
        boost::asio::post(engine_->get_executor(), [&running] { running.set_value(); });
        running.get_future().wait();
        return success();
    }

    void stop() {
        if (!runner_.joinable()) return;
        if (billing_) billing_->stop();
        if (payments_) payments_->stop();
        engine_->stop();
        runner_.join();
    }

    /// Polls until instance `id` has `status` (up to `limit`); the last status seen.
    saga_status wait_for(const std::string& id, saga_status status,
                         std::chrono::milliseconds limit = std::chrono::seconds{20}) {
        const auto until = std::chrono::steady_clock::now() + limit;
        saga_status last = saga_status::running;
        for (;;) {
            if (auto v = engine_->query(id)) last = v.value().status;
            if (last == status || std::chrono::steady_clock::now() > until) return last;
            std::this_thread::sleep_for(std::chrono::milliseconds{5});
        }
    }

    /// Starts an order.
    result<std::string> start(std::string id, order o, std::string key = {},
                              bool exclusive = false) {
        return engine_->start(
            "order", o,
            {.id = std::move(id), .correlation_key = std::move(key), .exclusive = exclusive});
    }

    /// Leaves instances in many statuses; throws std::runtime_error saying what did not happen.
    void seed() {
        auto must = [](auto r, std::string_view what) {
            if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().what()));
            return std::move(r).value();
        };
        auto expect = [this](const std::string& id, saga_status s) {
            if (auto got = wait_for(id, s); got != s)
                throw std::runtime_error(
                    fmt::format("{} is {}, expected {}", id, to_string(got), to_string(s)));
        };
        const nlohmann::json by_seed{{"by", "seed"}};
        // completed: approved at once (the signal is kept until the wait opens)
        must(start("order-1001", {.customer = "ada", .amount = 120}, "campaign-7"), "start");
        must(engine_->signal("order-1001", "approval", by_seed), "signal");
        expect("order-1001", saga_status::completed);
        // waiting for approval
        must(start("order-1002", {.customer = "grace", .amount = 80}, "campaign-8", true), "start");
        expect("order-1002", saga_status::waiting);
        must(start("order-1003", {.customer = "linus", .amount = 45}, "campaign-9"), "start");
        expect("order-1003", saga_status::waiting);
        // compensated: the card is declined after approval
        must(start("order-1004", {.customer = "barbara", .amount = 13}, "campaign-7"), "start");
        must(engine_->signal("order-1004", "approval", by_seed), "signal");
        expect("order-1004", saga_status::compensated);
        // compensation_failed: declined, and billing cannot release
        must(start("order-stuck-1005", {.customer = "ken", .amount = 13}, "campaign-10"), "start");
        must(engine_->signal("order-stuck-1005", "approval", by_seed), "signal");
        expect("order-stuck-1005", saga_status::compensation_failed);
        // failed after the pivot
        must(start("order-1006", {.customer = "margaret", .amount = 70, .fail_notify = true},
                   "campaign-11"),
             "start");
        must(engine_->signal("order-1006", "approval", by_seed), "signal");
        expect("order-1006", saga_status::failed);
        // cancelled while waiting
        must(start("order-1007", {.customer = "dennis", .amount = 60}, "campaign-12"), "start");
        expect("order-1007", saga_status::waiting);
        must(engine_->cancel("order-1007", operator_note{"seed", "customer changed their mind"}),
             "cancel");
        expect("order-1007", saga_status::cancelled);
        // paused while waiting
        must(start("order-1008", {.customer = "edsger", .amount = 30}, "campaign-13"), "start");
        expect("order-1008", saga_status::waiting);
        must(engine_->pause("order-1008", operator_note{"seed", "investigating a complaint"}),
             "pause");
        expect("order-1008", saga_status::paused);
        // running: nobody answers
        must(engine_->start("slow", slow_data{1}, {.id = "slow-1", .correlation_key = "batch-1"}),
             "start");
    }

    engine& eng() { return *engine_; }

private:
    std::shared_ptr<system_clock> clock_;
    std::shared_ptr<inmemory::memory_journal_store> store_;
    std::shared_ptr<inmemory::memory_transport> transport_;
    std::unique_ptr<engine> engine_;
    std::unique_ptr<participant> billing_;
    std::unique_ptr<participant> payments_;
    std::thread runner_;
};

}  // namespace saga::test::admin
