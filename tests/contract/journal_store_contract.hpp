#pragma once
/// @file journal_store_contract.hpp
/// The contract every `saga::journal_store` passes (the lean store of core v2). An adapter's
/// test file instantiates it once:
///
/// ```cpp
/// #include "contract/journal_store_contract.hpp"
/// SAGA_JOURNAL_STORE_CONTRACT("[sqlite]",
/// std::make_shared<saga::sqlite::sqlite_journal_store>(...))
/// ```
///
/// `make_store` is evaluated once per test case (and once per section run) and must yield a
/// fresh, empty store as a `std::shared_ptr<saga::journal_store>`. The suite uses nothing but
/// the `journal_store` interface. Times are whole milliseconds, since stores may truncate.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <saga/error.hpp>
#include <saga/events.hpp>
#include <saga/journal_store.hpp>

namespace saga::journal_contract {

inline time_point at_ms(std::int64_t ms) {
    return time_point{} + std::chrono::milliseconds{1'700'000'000'000 + ms};
}

inline instance_head make_head(std::string id, saga_status status = saga_status::running) {
    instance_head h;
    h.id = std::move(id);
    h.definition = "publish";
    h.definition_version = 3;
    h.status = status;
    h.version = 1;
    h.created_at = at_ms(0);
    h.updated_at = at_ms(0);
    return h;
}

/// A record with one event of every field, so a store that drops one is caught.
inline journal_record make_record(std::string id, std::uint64_t version) {
    journal_record r;
    r.saga_id = std::move(id);
    r.version = version;
    r.at = at_ms(static_cast<std::int64_t>(version) * 10);
    event e;
    e.type = event_type::attempt_failed;
    e.unit = "feed[3]";
    e.dir = direction::compensation;
    e.attempt = 2;
    e.due = at_ms(500);
    e.error = "budget said \"no\"\n\ttab \\ and \x01 and \xc3\xa9";
    e.transient = true;
    e.uncertain = false;
    e.reply = reply_status::transient_failure;
    e.status = saga_status::compensating;
    e.name = "budget";
    e.message_id = "m-1";
    e.who = "ops";
    e.why = "looked";
    e.count = 4;
    e.payload = {{"nested", {1, 2, {{"a", nullptr}}}}};
    event plain;
    plain.type = event_type::step_completed;
    plain.unit = "validate";
    plain.attempt = 1;
    r.events = {plain, e};
    return r;
}

inline outbound_message make_output(const std::string& saga, std::string id) {
    outbound_message m;
    m.destination = "billing";
    m.message.message_id = std::move(id);
    m.message.kind = message_kind::command;
    m.message.type = "reserve";
    m.message.saga_id = saga;
    m.message.step = "reserve";
    m.message.attempt = 1;
    m.message.idempotency_key = saga + "/reserve";
    m.message.reply_to = "orchestrator";
    m.message.headers = {{"compensates", "x"}};
    m.message.payload = {{"amount", 5}};
    return m;
}

inline journal_write first_write(const std::string& id, saga_status status = saga_status::running) {
    return {make_record(id, 1), make_head(id, status)};
}

inline journal_write next_write(const std::string& id, std::uint64_t version) {
    return {make_record(id, version), std::nullopt};
}

}  // namespace saga::journal_contract

#define SAGA_JOURNAL_OK(expr)                                                 \
    [&] {                                                                     \
        auto r_ = (expr);                                                     \
        INFO(#expr << ": " << (r_ ? std::string("ok") : r_.error().message)); \
        REQUIRE(r_.has_value());                                              \
        return std::move(r_).value();                                         \
    }()

#define SAGA_JOURNAL_FAILS(expr, code)             \
    [&] {                                          \
        auto r_ = (expr);                          \
        REQUIRE_FALSE(r_.has_value());             \
        INFO(#expr << ": " << r_.error().message); \
        CHECK(r_.error() == (code));               \
        return r_.error();                         \
    }()

#define SAGA_JOURNAL_STORE_CONTRACT(TAG, make_store)                                              \
    TEST_CASE("journal store " TAG ": a written instance loads back field for field",             \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        auto w = first_write("s-1");                                                              \
        w.head->correlation_key = "campaign-7";                                                   \
        w.head->wake_at = at_ms(30'000);                                                          \
        w.record.output = {make_output("s-1", "s-1/reserve/f0/1")};                               \
        w.record.data = R"({"budget":5,"name":"caf\u00e9"})";                                     \
        SAGA_JOURNAL_OK(store->commit(w));                                                        \
        auto second = next_write("s-1", 2);                                                       \
        second.record.released_through = 1;                                                       \
        SAGA_JOURNAL_OK(store->commit(second));                                                   \
        const auto loaded = SAGA_JOURNAL_OK(store->load("s-1"));                                  \
        CHECK(loaded.head == *w.head);                                                            \
        REQUIRE(loaded.records.size() == 2);                                                      \
        CHECK(loaded.records[0] == w.record);                                                     \
        CHECK(loaded.records[1] == second.record);                                                \
        CHECK(loaded.data == w.record.data);                                                      \
        CHECK(SAGA_JOURNAL_OK(store->head("s-1")) == *w.head);                                    \
        CHECK(SAGA_JOURNAL_OK(store->journal("s-1")) == loaded.records);                          \
        CHECK(SAGA_JOURNAL_OK(store->journal("nobody")).empty());                                 \
        SAGA_JOURNAL_FAILS(store->load("nobody"), errc::not_found);                               \
        SAGA_JOURNAL_FAILS(store->head("nobody"), errc::not_found);                               \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": each record follows the newest, or is refused",             \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        SAGA_JOURNAL_OK(store->commit(first_write("s-1")));                                       \
        SAGA_JOURNAL_FAILS(store->commit(first_write("s-1")), errc::already_exists);              \
        SAGA_JOURNAL_FAILS(store->commit(next_write("s-1", 3)), errc::version_conflict);          \
        SAGA_JOURNAL_FAILS(store->commit(next_write("s-1", 1)), errc::invalid_argument);          \
        SAGA_JOURNAL_FAILS(store->commit(next_write("ghost", 2)), errc::not_found);               \
        SAGA_JOURNAL_OK(store->commit(next_write("s-1", 2)));                                     \
        SAGA_JOURNAL_FAILS(store->commit(next_write("s-1", 2)), errc::version_conflict);          \
        CHECK(SAGA_JOURNAL_OK(store->journal("s-1")).size() == 2);                                \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": a write that contradicts itself changes nothing",           \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        auto no_id = first_write("");                                                             \
        SAGA_JOURNAL_FAILS(store->commit(no_id), errc::invalid_argument);                         \
        auto other = first_write("s-1");                                                          \
        other.head->id = "s-2";                                                                   \
        SAGA_JOURNAL_FAILS(store->commit(other), errc::invalid_argument);                         \
        auto version = first_write("s-1");                                                        \
        version.head->version = 2;                                                                \
        SAGA_JOURNAL_FAILS(store->commit(version), errc::invalid_argument);                       \
        auto watermark = first_write("s-1");                                                      \
        watermark.record.released_through = 1;                                                    \
        SAGA_JOURNAL_FAILS(store->commit(watermark), errc::invalid_argument);                     \
        auto no_message_id = first_write("s-1");                                                  \
        no_message_id.record.output = {make_output("s-1", "")};                                   \
        SAGA_JOURNAL_FAILS(store->commit(no_message_id), errc::invalid_argument);                 \
        SAGA_JOURNAL_FAILS(store->load("s-1"), errc::not_found);                                  \
        SAGA_JOURNAL_FAILS(store->load("s-2"), errc::not_found);                                  \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": the head changes only when a write carries one",            \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        SAGA_JOURNAL_OK(store->commit(first_write("s-1")));                                       \
        SAGA_JOURNAL_OK(store->commit(next_write("s-1", 2)));                                     \
        CHECK(SAGA_JOURNAL_OK(store->head("s-1")).version == 1);                                  \
        auto w = next_write("s-1", 3);                                                            \
        w.head = make_head("s-1", saga_status::waiting);                                          \
        w.head->version = 3;                                                                      \
        w.head->updated_at = at_ms(30);                                                           \
        SAGA_JOURNAL_OK(store->commit(w));                                                        \
        CHECK(SAGA_JOURNAL_OK(store->head("s-1")) == *w.head);                                    \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": loading starts at the newest snapshot, data is the newest", \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        auto w1 = first_write("s-1");                                                             \
        w1.record.data = R"({"n":1})";                                                            \
        SAGA_JOURNAL_OK(store->commit(w1));                                                       \
        auto w2 = next_write("s-1", 2);                                                           \
        w2.record.snapshot = "state at 2";                                                        \
        SAGA_JOURNAL_OK(store->commit(w2));                                                       \
        SAGA_JOURNAL_OK(store->commit(next_write("s-1", 3)));                                     \
        auto w4 = next_write("s-1", 4);                                                           \
        w4.record.snapshot = "state at 4";                                                        \
        SAGA_JOURNAL_OK(store->commit(w4));                                                       \
        SAGA_JOURNAL_OK(store->commit(next_write("s-1", 5)));                                     \
        auto loaded = SAGA_JOURNAL_OK(store->load("s-1"));                                        \
        REQUIRE(loaded.records.size() == 2);                                                      \
        CHECK(loaded.records[0].version == 4);                                                    \
        CHECK(loaded.records[0].snapshot == std::optional<std::string>("state at 4"));            \
        CHECK(loaded.records[1].version == 5);                                                    \
        CHECK(loaded.data == std::optional<std::string>(R"({"n":1})"));                           \
        CHECK(SAGA_JOURNAL_OK(store->journal("s-1")).size() == 5);                                \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": an exclusive correlation key is held until terminal",       \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        auto holder = first_write("a");                                                           \
        holder.head->correlation_key = "campaign-1";                                              \
        holder.head->exclusive = true;                                                            \
        SAGA_JOURNAL_OK(store->commit(holder));                                                   \
        auto rival = first_write("b");                                                            \
        rival.head->correlation_key = "campaign-1";                                               \
        rival.head->exclusive = true;                                                             \
        const auto e = SAGA_JOURNAL_FAILS(store->commit(rival), errc::lock_held);                 \
        CHECK(e.message.find("campaign-1") != std::string::npos);                                 \
        SAGA_JOURNAL_FAILS(store->load("b"), errc::not_found);                                    \
        auto shared = first_write("c");                                                           \
        shared.head->correlation_key = "campaign-1";                                              \
        SAGA_JOURNAL_OK(store->commit(shared));                                                   \
        auto done = next_write("a", 2);                                                           \
        done.head = *holder.head;                                                                 \
        done.head->version = 2;                                                                   \
        done.head->status = saga_status::completed;                                               \
        SAGA_JOURNAL_OK(store->commit(done));                                                     \
        SAGA_JOURNAL_OK(store->commit(rival));                                                    \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": due, in_status and list find heads without the journal",    \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        auto add = [&](std::string id, saga_status s, std::optional<std::int64_t> wake) {         \
            auto w = first_write(id, s);                                                          \
            if (wake) w.head->wake_at = at_ms(*wake);                                             \
            w.head->definition = id[0] == 'x' ? "other" : "publish";                              \
            SAGA_JOURNAL_OK(store->commit(w));                                                    \
        };                                                                                        \
        add("a", saga_status::running, 300);                                                      \
        add("b", saga_status::waiting, 100);                                                      \
        add("c", saga_status::completed, 50);                                                     \
        add("d", saga_status::compensating, std::nullopt);                                        \
        add("e", saga_status::paused, 200);                                                       \
        add("x1", saga_status::running, 900);                                                     \
        CHECK(SAGA_JOURNAL_OK(store->due(at_ms(300), 10)) ==                                      \
              std::vector<std::string>{"b", "e", "a"});                                           \
        CHECK(SAGA_JOURNAL_OK(store->due(at_ms(300), 2)) == std::vector<std::string>{"b", "e"});  \
        CHECK(SAGA_JOURNAL_OK(store->due(at_ms(99), 10)).empty());                                \
        const std::vector<saga_status> busy{saga_status::running, saga_status::compensating};     \
        CHECK(SAGA_JOURNAL_OK(store->in_status(busy, "", 10)) ==                                  \
              std::vector<std::string>{"a", "d", "x1"});                                          \
        CHECK(SAGA_JOURNAL_OK(store->in_status(busy, "a", 1)) == std::vector<std::string>{"d"});  \
        head_filter f;                                                                            \
        f.definition = "publish";                                                                 \
        f.statuses = {saga_status::running, saga_status::waiting};                                \
        auto found = SAGA_JOURNAL_OK(store->list(f));                                             \
        REQUIRE(found.size() == 2);                                                               \
        CHECK(found[0].id == "a");                                                                \
        CHECK(found[1].id == "b");                                                                \
        head_filter page;                                                                         \
        page.after_id = "b";                                                                      \
        page.limit = 2;                                                                           \
        found = SAGA_JOURNAL_OK(store->list(page));                                               \
        REQUIRE(found.size() == 2);                                                               \
        CHECK(found[0].id == "c");                                                                \
        CHECK(found[1].id == "d");                                                                \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": purge deletes old terminal instances in batches",           \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        for (int i = 0; i < 5; ++i) {                                                             \
            auto w = first_write("old-" + std::to_string(i), saga_status::completed);             \
            SAGA_JOURNAL_OK(store->commit(w));                                                    \
            SAGA_JOURNAL_OK(store->commit(next_write(w.record.saga_id, 2)));                      \
        }                                                                                         \
        auto young = first_write("young", saga_status::compensated);                              \
        young.head->updated_at = at_ms(10'000);                                                   \
        SAGA_JOURNAL_OK(store->commit(young));                                                    \
        SAGA_JOURNAL_OK(store->commit(first_write("live", saga_status::waiting)));                \
        CHECK(SAGA_JOURNAL_OK(store->purge(at_ms(5'000), 3)) == 3);                               \
        CHECK(SAGA_JOURNAL_OK(store->purge(at_ms(5'000), 3)) == 2);                               \
        CHECK(SAGA_JOURNAL_OK(store->purge(at_ms(5'000), 3)) == 0);                               \
        SAGA_JOURNAL_FAILS(store->load("old-0"), errc::not_found);                                \
        CHECK(SAGA_JOURNAL_OK(store->journal("old-4")).empty());                                  \
        SAGA_JOURNAL_OK(store->load("young"));                                                    \
        SAGA_JOURNAL_OK(store->load("live"));                                                     \
        SAGA_JOURNAL_OK(store->commit(first_write("old-0")));                                     \
    }                                                                                             \
                                                                                                  \
    TEST_CASE("journal store " TAG ": concurrent writers each learn their own outcome",           \
              "[contract][journal]" TAG) {                                                        \
        using namespace saga;                                                                     \
        using namespace saga::journal_contract;                                                   \
        std::shared_ptr<journal_store> store = make_store;                                        \
        constexpr int threads = 8;                                                                \
        constexpr int instances = 25;                                                             \
        SAGA_JOURNAL_OK(store->commit(first_write("contended")));                                 \
        std::atomic<int> wins{0};                                                                 \
        std::atomic<int> conflicts{0};                                                            \
        std::atomic<int> other{0};                                                                \
        std::vector<std::thread> pool;                                                            \
        for (int t = 0; t < threads; ++t) {                                                       \
            pool.emplace_back([&, t] {                                                            \
                for (int i = 0; i < instances; ++i) {                                             \
                    const auto id = "t" + std::to_string(t) + "-" + std::to_string(i);            \
                    if (!store->commit(first_write(id))) other++;                                 \
                    for (std::uint64_t v = 2; v <= 4; ++v)                                        \
                        if (!store->commit(next_write(id, v))) other++;                           \
                    auto r = store->commit(next_write("contended", 2));                           \
                    if (r) {                                                                      \
                        wins++;                                                                   \
                    } else if (r.error() == errc::version_conflict) {                             \
                        conflicts++;                                                              \
                    } else {                                                                      \
                        other++;                                                                  \
                    }                                                                             \
                }                                                                                 \
            });                                                                                   \
        }                                                                                         \
        for (auto& th : pool) th.join();                                                          \
        CHECK(other == 0);                                                                        \
        CHECK(wins == 1);                                                                         \
        CHECK(conflicts == threads * instances - 1);                                              \
        for (int t = 0; t < threads; ++t)                                                         \
            for (int i = 0; i < instances; ++i)                                                   \
                CHECK(SAGA_JOURNAL_OK(                                                            \
                          store->journal("t" + std::to_string(t) + "-" + std::to_string(i)))      \
                          .size() == 4);                                                          \
    }
