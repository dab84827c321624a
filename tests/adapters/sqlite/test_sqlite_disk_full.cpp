// The SQLite store and an engine on it when the disk fills up and space comes back.
// `PRAGMA max_page_count` (set through detail::store_access) makes SQLite fail every write that
// needs a new page with SQLITE_FULL, "database or disk is full", as a full disk does.
#include "contract/state_store_contract.hpp"

#include "temp_store.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>
#include <saga/sqlite/detail/schema.hpp>
#include <saga/sqlite/sqlite_store.hpp>

using namespace saga;
using namespace saga::contract;
using namespace std::chrono_literals;
using saga::sqlite::test::open_store;
using saga::sqlite::test::temp_path;

namespace {

/// SQLite's default (SQLITE_MAX_PAGE_COUNT): "no limit".
constexpr std::int64_t unlimited_pages = 1073741823;

struct job {
    std::string padding;
    int grown = 0;
    std::string receipt;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(job, padding, grown, receipt)

/// Polls `condition` until it holds or `limit` passes (a bound for a broken build, not a
/// timing assumption: the caller requires the condition).
template <class Fn>
bool eventually(Fn condition, std::chrono::seconds limit = 60s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return condition();
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

/// The service's side of the transport: swallows its replies while `silent`, as a network that
/// loses them would (the engine then times out and sends the command again).
class muffled_transport final : public transport {
public:
    explicit muffled_transport(std::shared_ptr<transport> inner) : inner_(std::move(inner)) {}
    std::atomic<bool> silent{true};

    void async_send(const std::string& endpoint, envelope m, send_handler done) override {
        if (silent) {
            done(success());
            return;
        }
        inner_->async_send(endpoint, std::move(m), std::move(done));
    }
    void async_publish(const std::string& topic, envelope m, send_handler done) override {
        inner_->async_publish(topic, std::move(m), std::move(done));
    }
    result<void> subscribe(const std::string& topic, const std::string& endpoint) override {
        return inner_->subscribe(topic, endpoint);
    }
    result<std::unique_ptr<subscription>> consume(const std::string& endpoint,
                                                  boost::asio::any_io_executor executor,
                                                  delivery_handler handler,
                                                  consumer_options options) override {
        return inner_->consume(endpoint, std::move(executor), std::move(handler), options);
    }

private:
    std::shared_ptr<transport> inner_;
};

}  // namespace

TEST_CASE(
    "sqlite store: a transaction that fails with disk full fails its callers and applies "
    "nothing, and the writer reopens its connection and commits once space is back",
    "[sqlite][disk-full]") {
    temp_path file;
    auto store = open_store(file.str());
    const instance_record base = make_record("full-base");
    SAGA_CONTRACT_OK(store->commit(create(base)));

    // a transition that needs many new pages, and a small one in the same batch
    transition big = next(base);
    big.record.data = {{"padding", std::string(200000, 'p')}};
    big.history = {make_entry("step_completed", "grow")};
    transition small = create(make_record("full-small"));
    small.outbox = {make_outbox("full-small", "full-out")};

    sqlite::detail::store_access::set_max_page_count(*store, 1);
    const sqlite::store_stats before = store->stats();
    std::promise<result<void>> big_done;
    std::promise<result<void>> small_done;
    store->async_commit(big, [&](result<void> r) { big_done.set_value(std::move(r)); });
    store->async_commit(small, [&](result<void> r) { small_done.set_value(std::move(r)); });
    const result<void> big_outcome = big_done.get_future().get();
    REQUIRE_FALSE(big_outcome);
    INFO(big_outcome.error().what());
    CHECK(big_outcome.error() == errc::store_failure);
    CHECK(contains_text(big_outcome.error().message, "database or disk is full"));
    CHECK(contains_text(big_outcome.error().message, file.str()));
    (void)small_done.get_future().get();  // it may have shared the failed transaction
    CHECK(SAGA_CONTRACT_OK(store->load("full-base")) == base);
    CHECK(store->stats().failed_batches > before.failed_batches);

    // space is back: the very same transitions commit, on a fresh writer connection
    sqlite::detail::store_access::set_max_page_count(*store, unlimited_pages);
    SAGA_CONTRACT_OK(store->commit(big));
    if (!store->load("full-small")) {
        SAGA_CONTRACT_OK(store->commit(small));
    }
    CHECK(store->stats().reconnects > before.reconnects);
    CHECK(SAGA_CONTRACT_OK(store->load("full-base")) == big.record);
    CHECK(SAGA_CONTRACT_OK(store->history("full-base")).size() == 1);
    CHECK(SAGA_CONTRACT_OK(store->load("full-small")) == small.record);
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(10))) ==
          std::vector<std::string>{"full-out"});
}

TEST_CASE(
    "sqlite store: after the disk was full, a running engine commits again and finishes its "
    "sagas with no restart and no lost input",
    "[sqlite][disk-full]") {
    temp_path file;
    auto store = open_store(file.str());
    auto clock = std::make_shared<system_clock>();
    auto transport = std::make_shared<inmemory::memory_transport>(clock);
    engine eng(store, transport, {.workers = 2, .clock = clock});

    // grow -> work (a remote step that times out until the service runs) -> grow again; the
    // local steps make the record bigger, so its transitions need new pages
    auto def =
        definition_builder<job>("disk_full_job", 1)
            .local("grow", [](job& j) { j.padding += std::string(3000, 'x'), ++j.grown; })
            .remote("work", "disk-full-service",
                    [](const job&) {
                        return command{"work", {}};
                    })
            .on_reply([](job& j, const nlohmann::json& r) { j.receipt = r.at("receipt"); })
            .retry(retry_policy::forever(20ms, 50ms))
            .timeout(100ms)
            .local("grow_again", [](job& j) { j.padding += std::string(3000, 'y'), ++j.grown; })
            .build();
    REQUIRE(def);
    REQUIRE(eng.add(def.value()));
    std::atomic<int> handled{0};
    auto service_side = std::make_shared<muffled_transport>(transport);
    participant service(service_side, "disk-full-service");
    service.on("work", [&](const envelope& e) {
        ++handled;
        return participant_reply::success({{"receipt", "r-" + e.idempotency_key}});
    });
    REQUIRE(service.start(eng.get_executor()));
    std::thread runner([&] { (void)eng.run(); });

    constexpr int n = 16;
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
        auto id = eng.start("disk_full_job", job{});
        REQUIRE(id);
        ids.push_back(id.value());
    }
    auto step_status_of = [&](const std::string& id, std::string_view step) {
        auto v = eng.query(id);
        const auto* s = v ? v.value().step(step) : nullptr;
        return s ? s->status : step_status::pending;
    };
    // every saga has sent its command; the replies are lost, so its attempts time out and retry
    REQUIRE(eventually([&] {
        for (const auto& id : ids)
            if (step_status_of(id, "grow") != step_status::completed) return false;
        return true;
    }));

    // the disk is full: the timeouts' transitions (history, a new timer, the command again)
    // cannot commit; wait until a good number of them failed
    const sqlite::store_stats before = store->stats();
    sqlite::detail::store_access::set_max_page_count(*store, 1);
    REQUIRE(eventually([&] { return store->stats().failed_batches >= before.failed_batches + n; }));

    // space is back and the replies arrive: every saga finishes in this engine
    sqlite::detail::store_access::set_max_page_count(*store, unlimited_pages);
    service_side->silent = false;
    const bool all_completed = eventually([&] {
        for (const auto& id : ids) {
            auto v = eng.query(id);
            if (!v || v.value().status != saga_status::completed) return false;
        }
        return true;
    });
    for (const auto& id : ids) {
        auto v = eng.query(id);
        REQUIRE(v);
        INFO(id << " is " << to_string(v.value().status) << " " << v.value().error);
        CHECK(v.value().status == saga_status::completed);
        CHECK(v.value().data.at("grown") == 2);
        CHECK(v.value().data.at("receipt") != "");
    }
    CHECK(all_completed);
    CHECK(handled.load() >= n);
    // no timer left behind (a timer dropped by a failed commit would stay here, overdue)
    CHECK(store->timers().value().empty());

    service.stop();
    eng.stop();
    runner.join();
}
