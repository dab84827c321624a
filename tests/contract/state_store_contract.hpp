#pragma once
/// @file state_store_contract.hpp
/// The contract every `saga::state_store` passes. An adapter's test file instantiates it once:
///
/// ```cpp
/// #include "contract/state_store_contract.hpp"
/// SAGA_STATE_STORE_CONTRACT("[sqlite]", std::make_shared<saga::sqlite::sqlite_store>(...))
/// ```
///
/// `make_store` is evaluated once per test case (and once per section run) and must yield a
/// fresh, empty store as a `std::shared_ptr<saga::state_store>`. The suite uses nothing but the
/// `state_store` interface. Times are whole milliseconds, since stores may truncate to ms.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/state_store.hpp>
#include <saga/status.hpp>

// ---- printing, so failed assertions show values rather than {?} ----------------------------

namespace saga::contract {

inline std::string time_text(time_point t) {
    return std::to_string(t.time_since_epoch().count()) + "ns";
}

inline nlohmann::json describe(const instance_record& r) {
    return {{"id", r.id},
            {"definition", r.definition},
            {"definition_version", r.definition_version},
            {"version", r.version},
            {"status", std::string(to_string(r.status))},
            {"correlation_key", r.correlation_key},
            {"exclusive", r.exclusive},
            {"data", r.data},
            {"state", r.state},
            {"created_at", time_text(r.created_at)},
            {"updated_at", time_text(r.updated_at)}};
}

inline nlohmann::json describe(const history_entry& e) {
    return {{"saga_id", e.saga_id}, {"version", e.version}, {"at", time_text(e.at)},
            {"event", e.event},     {"step", e.step},       {"attempt", e.attempt},
            {"detail", e.detail}};
}

inline nlohmann::json describe(const timer_record& t) {
    return {
        {"saga_id", t.saga_id}, {"id", t.id}, {"due", time_text(t.due)}, {"payload", t.payload}};
}

inline nlohmann::json describe(const outbox_record& o) {
    return {{"saga_id", o.saga_id},
            {"destination", o.destination},
            {"topic", o.topic},
            {"message", nlohmann::json(o.message)}};
}

}  // namespace saga::contract

namespace Catch {
template <>
struct StringMaker<saga::error> {
    static std::string convert(const saga::error& e) { return e.what(); }
};
template <>
struct StringMaker<saga::errc> {
    static std::string convert(saga::errc e) { return saga::make_error_code(e).message(); }
};
template <class T>
struct StringMaker<saga::result<T>> {
    static std::string convert(const saga::result<T>& r) {
        return r ? std::string("success") : "error: " + r.error().what();
    }
};
template <>
struct StringMaker<saga::instance_record> {
    static std::string convert(const saga::instance_record& v) {
        return saga::contract::describe(v).dump();
    }
};
template <>
struct StringMaker<saga::history_entry> {
    static std::string convert(const saga::history_entry& v) {
        return saga::contract::describe(v).dump();
    }
};
template <>
struct StringMaker<saga::timer_record> {
    static std::string convert(const saga::timer_record& v) {
        return saga::contract::describe(v).dump();
    }
};
template <>
struct StringMaker<saga::outbox_record> {
    static std::string convert(const saga::outbox_record& v) {
        return saga::contract::describe(v).dump();
    }
};
}  // namespace Catch

// ---- helpers ---------------------------------------------------------------------------------

namespace saga::contract {

/// Makes a fresh, empty store.
using store_factory = std::function<std::shared_ptr<state_store>()>;

/// Requires `r` to succeed and returns its value (see SAGA_CONTRACT_OK).
template <class T>
T unwrap(result<T> r, const char* expr, const char* file, int line) {
    INFO(expr << " at " << file << ":" << line);
    REQUIRE(r);
    if constexpr (!std::is_void_v<T>) {
        return std::move(r).value();
    }
}

/// Requires `r` to fail with `code` and returns the error (see SAGA_CONTRACT_FAILS).
template <class T>
error expect_error(const result<T>& r, errc code, const char* expr, const char* file, int line) {
    INFO(expr << " at " << file << ":" << line);
    REQUIRE_FALSE(r);
    CHECK(r.error() == code);
    return r.error();
}

/// 2026-01-01T00:00:00Z plus `ms` milliseconds.
inline time_point at_ms(std::int64_t ms) {
    return time_point{std::chrono::sys_days{std::chrono::year{2026} / 1 / 1}} +
           std::chrono::milliseconds{ms};
}

/// A running record at version 1 with small JSON data.
inline instance_record make_record(std::string id) {
    instance_record r;
    r.id = std::move(id);
    r.definition = "publish_campaign";
    r.definition_version = 1;
    r.version = 1;
    r.status = saga_status::running;
    r.data = {{"n", 0}};
    r.state = nlohmann::json::object();
    r.created_at = at_ms(1000);
    r.updated_at = at_ms(1000);
    return r;
}

/// The transition that creates `r` (expected version 0).
inline transition create(instance_record r) {
    transition t;
    t.expected_version = 0;
    t.record = std::move(r);
    return t;
}

/// The transition that moves `current` to its next version, one millisecond later.
inline transition next(const instance_record& current) {
    transition t;
    t.expected_version = current.version;
    t.record = current;
    t.record.version = current.version + 1;
    t.record.updated_at = current.updated_at + std::chrono::milliseconds{1};
    return t;
}

/// A history entry with the saga id and version left for the store to fill in.
inline history_entry make_entry(std::string event, std::string step = {}, std::uint32_t attempt = 0,
                                nlohmann::json detail = nullptr, time_point at = at_ms(2000)) {
    history_entry e;
    e.at = at;
    e.event = std::move(event);
    e.step = std::move(step);
    e.attempt = attempt;
    e.detail = std::move(detail);
    return e;
}

/// A timer of `saga_id`.
inline timer_record make_timer(std::string saga_id, std::string id, time_point due,
                               nlohmann::json payload = nlohmann::json::object()) {
    return {std::move(saga_id), std::move(id), due, std::move(payload)};
}

/// An outbox record with every envelope field set.
inline outbox_record make_outbox(const std::string& saga_id, const std::string& message_id,
                                 std::string destination = "billing", bool topic = false) {
    envelope e;
    e.message_id = message_id;
    e.kind = message_kind::compensation;
    e.type = "release_budget";
    e.saga_id = saga_id;
    e.step = "reserve_budget";
    e.attempt = 2;
    e.idempotency_key = saga_id + "/reserve_budget/compensate";
    e.reply_to = "saga-replies";
    e.correlation_id = "campaign-42";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.status = reply_status::transient_failure;
    e.error = "budget service unavailable";
    e.headers = {{"x-tenant", "acme"}, {"x-origin", message_id}};
    e.payload = {{"amount", 125.5}, {"currency", "EUR"}, {"lines", {1, 2, 3}}};
    return {saga_id, std::move(destination), topic, std::move(e)};
}

inline std::vector<std::string> ids_of(const std::vector<instance_record>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) {
        out.push_back(r.id);
    }
    return out;
}

inline std::vector<std::string> ids_of(const std::vector<outbox_record>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) {
        out.push_back(r.message.message_id);
    }
    return out;
}

inline std::vector<std::string> ids_of(const std::vector<timer_record>& timers) {
    std::vector<std::string> out;
    for (const auto& t : timers) {
        out.push_back(t.saga_id + "/" + t.id);
    }
    return out;
}

inline bool contains_text(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace saga::contract

/// Requires `expr` (a `saga::result`) to succeed; yields its value.
#define SAGA_CONTRACT_OK(expr) ::saga::contract::unwrap((expr), #expr, __FILE__, __LINE__)
/// Requires `expr` (a `saga::result`) to fail with `code`; yields the `saga::error`.
#define SAGA_CONTRACT_FAILS(expr, code) \
    ::saga::contract::expect_error((expr), (code), #expr, __FILE__, __LINE__)

// ---- the cases -------------------------------------------------------------------------------

namespace saga::contract {

inline void created_record_loads_back(const store_factory& make) {
    auto store = make();

    SECTION("a record with every field set") {
        instance_record r;
        r.id = "round-trip";
        r.definition = "publish_campaign";
        r.definition_version = 7;
        r.version = 1;
        r.status = saga_status::waiting;
        r.correlation_key = "campaign-42";
        r.exclusive = true;
        r.data = {
            {"campaign", "spring \"sale\""},
            {"budget", 1250.5},
            {"count", -3},
            {"big", 9007199254740993ULL},
            {"tags", {"a", "b"}},
            {"nested", {{"ok", true}, {"none", nullptr}, {"empty", nlohmann::json::object()}}},
            {"unicode", "caf\u00e9 \u2713"}};
        r.state = {{"steps", {{"reserve", {{"status", "completed"}, {"attempt", 2}}}}},
                   {"cursor", 3}};
        r.created_at = at_ms(1234);
        r.updated_at = at_ms(987654321);
        SAGA_CONTRACT_OK(store->commit(create(r)));

        CHECK(SAGA_CONTRACT_OK(store->load(r.id)) == r);
        const auto listed = SAGA_CONTRACT_OK(store->list({}));
        REQUIRE(listed.size() == 1);
        CHECK(listed[0] == r);
    }

    SECTION("a record with empty strings and null JSON") {
        instance_record r;
        r.id = "bare";
        r.version = 1;
        r.data = nullptr;
        r.state = nullptr;
        r.created_at = at_ms(0);
        r.updated_at = at_ms(0);
        SAGA_CONTRACT_OK(store->commit(create(r)));
        CHECK(SAGA_CONTRACT_OK(store->load(r.id)) == r);
    }

    SECTION("every status") {
        const std::vector<saga_status> statuses{saga_status::running,
                                                saga_status::waiting,
                                                saga_status::compensating,
                                                saga_status::completed,
                                                saga_status::compensated,
                                                saga_status::failed,
                                                saga_status::compensation_failed,
                                                saga_status::cancelled,
                                                saga_status::paused};
        for (const saga_status s : statuses) {
            instance_record r = make_record("status-" + std::string(to_string(s)));
            r.status = s;
            SAGA_CONTRACT_OK(store->commit(create(r)));
            CHECK(SAGA_CONTRACT_OK(store->load(r.id)) == r);
        }
    }

    SECTION("a record after an update that changes every field but its id") {
        instance_record r = make_record("updated");
        r.correlation_key = "old-key";
        SAGA_CONTRACT_OK(store->commit(create(r)));
        transition t = next(r);
        t.record.definition = "publish_campaign_v2";
        t.record.definition_version = 2;
        t.record.status = saga_status::compensating;
        t.record.correlation_key = "new-key";
        t.record.exclusive = true;
        t.record.data = {{"n", 41}, {"list", {1, 2}}};
        t.record.state = {{"phase", "undo"}};
        t.record.created_at = at_ms(999);
        t.record.updated_at = at_ms(5000);
        SAGA_CONTRACT_OK(store->commit(t));
        CHECK(SAGA_CONTRACT_OK(store->load(r.id)) == t.record);
    }
}

inline void async_commit_reports_to_its_handler(const store_factory& make) {
    auto store = make();
    const instance_record r = make_record("async");

    std::promise<result<void>> first;
    store->async_commit(create(r), [&first](result<void> outcome) { first.set_value(outcome); });
    SAGA_CONTRACT_OK(first.get_future().get());

    std::promise<result<void>> second;
    store->async_commit(create(r), [&second](result<void> outcome) { second.set_value(outcome); });
    SAGA_CONTRACT_FAILS(second.get_future().get(), errc::already_exists);

    CHECK(SAGA_CONTRACT_OK(store->load(r.id)) == r);
}

inline void create_of_existing_id_fails(const store_factory& make) {
    auto store = make();
    transition original = create(make_record("taken"));
    original.record.data = {{"who", "first"}};
    original.history = {make_entry("saga_started")};
    original.outbox = {make_outbox("taken", "first-out")};
    original.timers_set = {make_timer("taken", "deadline", at_ms(60000))};
    original.inbox = {"first-in"};
    SAGA_CONTRACT_OK(store->commit(original));

    transition again = create(make_record("taken"));
    again.record.data = {{"who", "second"}};
    again.record.status = saga_status::completed;
    again.history = {make_entry("saga_started_again")};
    again.outbox = {make_outbox("taken", "second-out")};
    again.timers_set = {make_timer("taken", "deadline", at_ms(1)),
                        make_timer("taken", "other", at_ms(2))};
    again.inbox = {"second-in"};
    const error e = SAGA_CONTRACT_FAILS(store->commit(again), errc::already_exists);
    CHECK(contains_text(e.message, "taken"));

    CHECK(SAGA_CONTRACT_OK(store->load("taken")) == original.record);
    const auto history = SAGA_CONTRACT_OK(store->history("taken"));
    REQUIRE(history.size() == 1);
    CHECK(history[0].event == "saga_started");
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(100))) ==
          std::vector<std::string>{"first-out"});
    const auto timers = SAGA_CONTRACT_OK(store->timers());
    REQUIRE(timers.size() == 1);
    CHECK(timers[0] == original.timers_set[0]);
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("taken", "first-in")));
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("taken", "second-in")));
}

inline void stale_commit_fails_and_applies_nothing(const store_factory& make) {
    auto store = make();
    transition t1 = create(make_record("stale"));
    t1.history = {make_entry("saga_started")};
    t1.timers_set = {make_timer("stale", "deadline", at_ms(60000))};
    SAGA_CONTRACT_OK(store->commit(t1));
    transition t2 = next(t1.record);
    t2.record.data = {{"n", 2}};
    t2.history = {make_entry("step_completed", "reserve", 1)};
    SAGA_CONTRACT_OK(store->commit(t2));

    auto stale_from = [](const instance_record& base) {
        transition t = next(base);
        t.record.data = {{"n", 99}};
        t.record.status = saga_status::completed;
        t.history = {make_entry("lost_update")};
        t.outbox = {make_outbox("stale", "stale-out")};
        t.timers_set = {make_timer("stale", "stale-timer", at_ms(10))};
        t.timers_cleared = {"deadline"};
        t.inbox = {"stale-in"};
        return t;
    };
    auto nothing_applied = [&] {
        CHECK(SAGA_CONTRACT_OK(store->load("stale")) == t2.record);
        const auto history = SAGA_CONTRACT_OK(store->history("stale"));
        REQUIRE(history.size() == 2);
        CHECK(history[1].event == "step_completed");
        CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).empty());
        CHECK(ids_of(SAGA_CONTRACT_OK(store->timers())) ==
              std::vector<std::string>{"stale/deadline"});
        CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("stale", "stale-in")));
    };

    SECTION("an expected version behind the store") {
        const error e =
            SAGA_CONTRACT_FAILS(store->commit(stale_from(t1.record)), errc::version_conflict);
        CHECK(contains_text(e.message, "stale"));
        nothing_applied();
    }
    SECTION("an expected version ahead of the store") {
        instance_record ahead = t2.record;
        ahead.version = 5;
        SAGA_CONTRACT_FAILS(store->commit(stale_from(ahead)), errc::version_conflict);
        nothing_applied();
    }
    SECTION("an update of an id that does not exist") {
        instance_record ghost = make_record("ghost");
        ghost.version = 3;
        const error e = SAGA_CONTRACT_FAILS(store->commit(next(ghost)), errc::version_conflict);
        CHECK(contains_text(e.message, "ghost"));
        SAGA_CONTRACT_FAILS(store->load("ghost"), errc::not_found);
        nothing_applied();
    }
}

inline void version_must_be_expected_plus_one(const store_factory& make) {
    auto store = make();
    transition t1 = create(make_record("versions"));
    SAGA_CONTRACT_OK(store->commit(t1));

    auto with_effects = [](transition t) {
        t.history = {make_entry("bad")};
        t.outbox = {make_outbox(t.record.id, "bad-out")};
        t.timers_set = {make_timer(t.record.id, "bad-timer", at_ms(10))};
        t.inbox = {"bad-in"};
        return t;
    };

    SECTION("a create at version 2") {
        instance_record r = make_record("created-at-2");
        r.version = 2;
        SAGA_CONTRACT_FAILS(store->commit(with_effects(create(r))), errc::invalid_argument);
        SAGA_CONTRACT_FAILS(store->load("created-at-2"), errc::not_found);
        CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("created-at-2", "bad-in")));
    }
    SECTION("a create at version 0") {
        instance_record r = make_record("created-at-0");
        r.version = 0;
        SAGA_CONTRACT_FAILS(store->commit(with_effects(create(r))), errc::invalid_argument);
        SAGA_CONTRACT_FAILS(store->load("created-at-0"), errc::not_found);
    }
    SECTION("an update that skips a version") {
        transition t = next(t1.record);
        t.record.version = 3;
        SAGA_CONTRACT_FAILS(store->commit(with_effects(t)), errc::invalid_argument);
        CHECK(SAGA_CONTRACT_OK(store->load("versions")) == t1.record);
        CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("versions", "bad-in")));
    }
    SECTION("an update that keeps the version") {
        transition t = next(t1.record);
        t.record.version = 1;
        SAGA_CONTRACT_FAILS(store->commit(with_effects(t)), errc::invalid_argument);
        CHECK(SAGA_CONTRACT_OK(store->load("versions")) == t1.record);
    }
    CHECK(SAGA_CONTRACT_OK(store->history("versions")).empty());
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).empty());
    CHECK(SAGA_CONTRACT_OK(store->timers()).empty());
}

inline void load_of_unknown_id_fails(const store_factory& make) {
    auto store = make();
    SAGA_CONTRACT_OK(store->commit(create(make_record("known"))));
    const error e = SAGA_CONTRACT_FAILS(store->load("no-such-saga"), errc::not_found);
    CHECK(contains_text(e.message, "no-such-saga"));
    SAGA_CONTRACT_FAILS(store->load(""), errc::not_found);
    SAGA_CONTRACT_FAILS(store->load("know"), errc::not_found);
}

inline void history_is_in_commit_order(const store_factory& make) {
    auto store = make();
    transition t1 = create(make_record("hist"));
    t1.history = {make_entry("saga_started", "", 0, {{"by", "test"}}, at_ms(1000)),
                  make_entry("step_started", "reserve", 1, nullptr, at_ms(1001))};
    SAGA_CONTRACT_OK(store->commit(t1));

    // another saga's history in between must not mix in
    transition other = create(make_record("hist-other"));
    other.history = {make_entry("saga_started")};
    SAGA_CONTRACT_OK(store->commit(other));

    transition t2 = next(t1.record);
    t2.history = {
        make_entry("step_completed", "reserve", 1, {{"reservation", "r-1"}}, at_ms(1500))};
    SAGA_CONTRACT_OK(store->commit(t2));

    transition t3 = next(t2.record);  // no history at all
    SAGA_CONTRACT_OK(store->commit(t3));

    transition t4 = next(t3.record);
    history_entry explicit_entry = make_entry("step_failed", "publish", 3,
                                              {{"error", "timeout"}, {"retry", false}}, at_ms(900));
    explicit_entry.saga_id = "hist";
    explicit_entry.version = 4;
    t4.history = {make_entry("step_started", "publish", 3, nullptr, at_ms(1800)), explicit_entry};
    SAGA_CONTRACT_OK(store->commit(t4));

    std::vector<history_entry> expected;
    auto add = [&expected](history_entry e, std::uint64_t version) {
        e.saga_id = "hist";
        e.version = version;
        expected.push_back(std::move(e));
    };
    add(t1.history[0], 1);
    add(t1.history[1], 1);
    add(t2.history[0], 2);
    add(t4.history[0], 4);
    add(t4.history[1], 4);
    CHECK(SAGA_CONTRACT_OK(store->history("hist")) == expected);

    const auto other_history = SAGA_CONTRACT_OK(store->history("hist-other"));
    REQUIRE(other_history.size() == 1);
    CHECK(other_history[0].saga_id == "hist-other");
    CHECK(other_history[0].version == 1);

    CHECK(SAGA_CONTRACT_OK(store->history("never-seen")).empty());
}

inline void timers_are_set_replaced_cleared_and_listed(const store_factory& make) {
    auto store = make();
    transition a = create(make_record("timer-a"));
    a.timers_set = {make_timer("timer-a", "retry:reserve", at_ms(30000), {{"step", "reserve"}}),
                    make_timer("", "deadline", at_ms(10000))};  // saga id filled by the store
    SAGA_CONTRACT_OK(store->commit(a));
    transition b = create(make_record("timer-b"));
    b.timers_set = {make_timer("timer-b", "deadline", at_ms(10000), {{"kind", "deadline"}}),
                    make_timer("timer-b", "a-first", at_ms(10000))};
    SAGA_CONTRACT_OK(store->commit(b));

    // ordered by due time; ties by saga id, then timer id
    CHECK(ids_of(SAGA_CONTRACT_OK(store->timers())) ==
          std::vector<std::string>{"timer-a/deadline", "timer-b/a-first", "timer-b/deadline",
                                   "timer-a/retry:reserve"});
    const auto all = SAGA_CONTRACT_OK(store->timers(std::nullopt));
    REQUIRE(all.size() == 4);
    CHECK(all[0] == make_timer("timer-a", "deadline", at_ms(10000)));
    CHECK(all[3] == a.timers_set[0]);

    SECTION("due filtering is inclusive") {
        CHECK(SAGA_CONTRACT_OK(store->timers(at_ms(9999))).empty());
        CHECK(ids_of(SAGA_CONTRACT_OK(store->timers(at_ms(10000)))) ==
              std::vector<std::string>{"timer-a/deadline", "timer-b/a-first", "timer-b/deadline"});
        CHECK(SAGA_CONTRACT_OK(store->timers(at_ms(29999))).size() == 3);
        CHECK(SAGA_CONTRACT_OK(store->timers(at_ms(30000))).size() == 4);
    }

    SECTION("set replaces, clear removes only the saga's own timers") {
        transition a2 = next(a.record);
        a2.timers_set = {make_timer("timer-a", "retry:reserve", at_ms(5000), {{"attempt", 2}})};
        a2.timers_cleared = {"deadline", "never-set"};
        SAGA_CONTRACT_OK(store->commit(a2));

        const auto timers = SAGA_CONTRACT_OK(store->timers());
        CHECK(ids_of(timers) == std::vector<std::string>{"timer-a/retry:reserve", "timer-b/a-first",
                                                         "timer-b/deadline"});
        REQUIRE(timers.size() == 3);
        CHECK(timers[0] == a2.timers_set[0]);
        CHECK(timers[2] == b.timers_set[0]);

        // a commit that does not touch timers keeps them
        SAGA_CONTRACT_OK(store->commit(next(b.record)));
        CHECK(SAGA_CONTRACT_OK(store->timers()).size() == 3);

        // clearing a saga's last timers leaves none of it
        transition a3 = next(a2.record);
        a3.timers_cleared = {"retry:reserve"};
        SAGA_CONTRACT_OK(store->commit(a3));
        CHECK(ids_of(SAGA_CONTRACT_OK(store->timers())) ==
              std::vector<std::string>{"timer-b/a-first", "timer-b/deadline"});
    }
}

inline void outbox_releases_oldest_first(const store_factory& make) {
    auto store = make();
    transition a = create(make_record("out-a"));
    a.outbox = {make_outbox("out-a", "m1", "billing"),
                make_outbox("out-a", "m2", "campaign-events", true)};
    SAGA_CONTRACT_OK(store->commit(a));
    transition b = create(make_record("out-b"));
    b.outbox = {make_outbox("out-b", "m3", "review")};
    SAGA_CONTRACT_OK(store->commit(b));
    transition a2 = next(a.record);
    // m1 again (to another destination) is a duplicate: the queued one stays as it was
    a2.outbox = {make_outbox("out-a", "m4", "billing"), make_outbox("out-a", "m1", "elsewhere")};
    SAGA_CONTRACT_OK(store->commit(a2));

    const auto pending = SAGA_CONTRACT_OK(store->pending_outbox(100));
    REQUIRE(ids_of(pending) == std::vector<std::string>{"m1", "m2", "m3", "m4"});
    CHECK(pending[0] == a.outbox[0]);
    CHECK(pending[1] == a.outbox[1]);
    CHECK(pending[2] == b.outbox[0]);
    CHECK(pending[3] == a2.outbox[0]);

    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(2))) ==
          std::vector<std::string>{"m1", "m2"});
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(0)).empty());

    // reading does not release anything
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).size() == 4);

    const std::vector<std::string> first_ack{"m2", "unknown-id"};
    SAGA_CONTRACT_OK(store->ack_outbox(first_ack));
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(100))) ==
          std::vector<std::string>{"m1", "m3", "m4"});

    // unacknowledged messages survive later commits
    transition b2 = next(b.record);
    b2.outbox = {make_outbox("out-b", "m5", "review")};
    SAGA_CONTRACT_OK(store->commit(b2));
    CHECK(ids_of(SAGA_CONTRACT_OK(store->pending_outbox(100))) ==
          std::vector<std::string>{"m1", "m3", "m4", "m5"});

    const std::vector<std::string> rest{"m1", "m3", "m4", "m5", "m2"};
    SAGA_CONTRACT_OK(store->ack_outbox(rest));
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).empty());
    SAGA_CONTRACT_OK(store->ack_outbox(rest));  // acknowledging again is harmless
    SAGA_CONTRACT_OK(store->ack_outbox({}));
}

inline void inbox_consumes_a_message_once_per_saga(const store_factory& make) {
    auto store = make();
    transition t1 = create(make_record("inbox-a"));
    t1.inbox = {"msg-1"};
    SAGA_CONTRACT_OK(store->commit(t1));

    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("inbox-a", "msg-1")));
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("inbox-a", "msg-2")));
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("inbox-b", "msg-1")));
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("unknown", "msg-1")));

    // a transition that carries a consumed id fails whole, even next to a fresh id
    transition dup = next(t1.record);
    dup.record.data = {{"n", 1}};
    dup.inbox = {"msg-2", "msg-1"};
    dup.history = {make_entry("reply_received")};
    dup.outbox = {make_outbox("inbox-a", "dup-out")};
    dup.timers_set = {make_timer("inbox-a", "dup-timer", at_ms(10))};
    const error e = SAGA_CONTRACT_FAILS(store->commit(dup), errc::duplicate_message);
    CHECK(contains_text(e.message, "inbox-a"));
    CHECK(SAGA_CONTRACT_OK(store->load("inbox-a")) == t1.record);
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("inbox-a", "msg-2")));
    CHECK(SAGA_CONTRACT_OK(store->history("inbox-a")).empty());
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).empty());
    CHECK(SAGA_CONTRACT_OK(store->timers()).empty());

    // the same message id consumed by another saga is fine
    transition b = create(make_record("inbox-b"));
    b.inbox = {"msg-1"};
    SAGA_CONTRACT_OK(store->commit(b));
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("inbox-b", "msg-1")));

    // without the consumed id the same change goes through
    transition ok = next(t1.record);
    ok.inbox = {"msg-2", "msg-3"};
    SAGA_CONTRACT_OK(store->commit(ok));
    CHECK(SAGA_CONTRACT_OK(store->load("inbox-a")).version == 2);
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("inbox-a", "msg-2")));
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("inbox-a", "msg-3")));
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("inbox-a", "msg-1")));

    // consumed ids stay consumed across later commits
    transition again = next(ok.record);
    again.inbox = {"msg-3"};
    SAGA_CONTRACT_FAILS(store->commit(again), errc::duplicate_message);
    CHECK(SAGA_CONTRACT_OK(store->load("inbox-a")).version == 2);
}

inline void exclusive_records_lock_their_correlation_key(const store_factory& make) {
    auto store = make();
    auto exclusive = [](std::string id, std::string key,
                        saga_status status = saga_status::running) {
        instance_record r = make_record(std::move(id));
        r.correlation_key = std::move(key);
        r.exclusive = true;
        r.status = status;
        return r;
    };
    const instance_record holder = exclusive("lock-a", "campaign-1");
    SAGA_CONTRACT_OK(store->commit(create(holder)));

    SECTION("a second exclusive record on the key is refused and nothing of it is applied") {
        transition t = create(exclusive("lock-b", "campaign-1"));
        t.history = {make_entry("saga_started")};
        t.outbox = {make_outbox("lock-b", "lock-out")};
        t.timers_set = {make_timer("lock-b", "deadline", at_ms(10))};
        t.inbox = {"lock-in"};
        const error e = SAGA_CONTRACT_FAILS(store->commit(t), errc::lock_held);
        CHECK(contains_text(e.message, "lock-b"));
        SAGA_CONTRACT_FAILS(store->load("lock-b"), errc::not_found);
        CHECK(SAGA_CONTRACT_OK(store->history("lock-b")).empty());
        CHECK(SAGA_CONTRACT_OK(store->pending_outbox(100)).empty());
        CHECK(SAGA_CONTRACT_OK(store->timers()).empty());
        CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("lock-b", "lock-in")));
    }
    SECTION("the holder keeps committing") {
        transition t = next(holder);
        t.record.status = saga_status::waiting;
        SAGA_CONTRACT_OK(store->commit(t));
        SAGA_CONTRACT_OK(store->commit(next(t.record)));
        SAGA_CONTRACT_FAILS(store->commit(create(exclusive("lock-b", "campaign-1"))),
                            errc::lock_held);
    }
    SECTION("every non-terminal status holds the lock") {
        const std::vector<saga_status> holding{
            saga_status::waiting, saga_status::compensating, saga_status::failed,
            saga_status::compensation_failed, saga_status::paused};
        for (const saga_status s : holding) {
            const std::string name(to_string(s));
            SAGA_CONTRACT_OK(store->commit(create(exclusive("holder-" + name, "key-" + name, s))));
            SAGA_CONTRACT_FAILS(store->commit(create(exclusive("other-" + name, "key-" + name))),
                                errc::lock_held);
        }
    }
    SECTION("a terminal holder releases the key") {
        const std::vector<saga_status> terminal{saga_status::completed, saga_status::compensated,
                                                saga_status::cancelled};
        for (const saga_status s : terminal) {
            const std::string name(to_string(s));
            const instance_record r = exclusive("holder-" + name, "key-" + name);
            SAGA_CONTRACT_OK(store->commit(create(r)));
            SAGA_CONTRACT_FAILS(store->commit(create(exclusive("other-" + name, "key-" + name))),
                                errc::lock_held);
            transition done = next(r);
            done.record.status = s;
            SAGA_CONTRACT_OK(store->commit(done));
            SAGA_CONTRACT_OK(store->commit(create(exclusive("other-" + name, "key-" + name))));
        }
        // a record created terminal holds nothing either
        SAGA_CONTRACT_OK(
            store->commit(create(exclusive("born-done", "campaign-1", saga_status::completed))));
    }
    SECTION("the holder moving to another key or dropping exclusivity releases the key") {
        transition moved = next(holder);
        moved.record.correlation_key = "campaign-2";
        SAGA_CONTRACT_OK(store->commit(moved));
        SAGA_CONTRACT_OK(store->commit(create(exclusive("lock-b", "campaign-1"))));
        SAGA_CONTRACT_FAILS(store->commit(create(exclusive("lock-c", "campaign-2"))),
                            errc::lock_held);

        transition relaxed = next(moved.record);
        relaxed.record.exclusive = false;
        SAGA_CONTRACT_OK(store->commit(relaxed));
        SAGA_CONTRACT_OK(store->commit(create(exclusive("lock-c", "campaign-2"))));
    }
    SECTION("records that are not exclusive neither take nor respect the lock") {
        instance_record shared = make_record("shared-1");
        shared.correlation_key = "campaign-1";
        SAGA_CONTRACT_OK(store->commit(create(shared)));

        instance_record first = make_record("shared-2");
        first.correlation_key = "campaign-3";
        SAGA_CONTRACT_OK(store->commit(create(first)));
        SAGA_CONTRACT_OK(store->commit(create(exclusive("lock-c", "campaign-3"))));
    }
    SECTION("an update that takes a held key is refused") {
        const instance_record other = exclusive("lock-b", "campaign-9");
        SAGA_CONTRACT_OK(store->commit(create(other)));
        transition grab = next(other);
        grab.record.correlation_key = "campaign-1";
        SAGA_CONTRACT_FAILS(store->commit(grab), errc::lock_held);
        CHECK(SAGA_CONTRACT_OK(store->load("lock-b")) == other);
    }
    SECTION("an empty correlation key locks nothing") {
        SAGA_CONTRACT_OK(store->commit(create(exclusive("empty-1", ""))));
        SAGA_CONTRACT_OK(store->commit(create(exclusive("empty-2", ""))));
    }
}

inline void list_filters_records(const store_factory& make) {
    auto store = make();
    auto add = [&](std::string id, std::string definition, saga_status status, std::string key,
                   std::int64_t updated_ms) {
        instance_record r = make_record(std::move(id));
        r.definition = std::move(definition);
        r.status = status;
        r.correlation_key = std::move(key);
        r.updated_at = at_ms(updated_ms);
        SAGA_CONTRACT_OK(store->commit(create(r)));
        return r;
    };
    // created out of id order: list orders by id
    const auto r3 = add("list-03", "refund_order", saga_status::running, "c1", 3000);
    const auto r1 = add("list-01", "publish_campaign", saga_status::running, "c1", 1000);
    const auto r5 = add("list-05", "publish_campaign", saga_status::waiting, "c1", 5000);
    const auto r2 = add("list-02", "publish_campaign", saga_status::completed, "c2", 2000);
    const auto r4 = add("list-04", "refund_order", saga_status::failed, "", 4000);

    auto ids = [&](const list_filter& f) { return ids_of(SAGA_CONTRACT_OK(store->list(f))); };
    using names = std::vector<std::string>;
    // (designated initialisers that leave fields out trip g++ 12's -Wmissing-field-initializers)
    auto with_statuses = [](std::vector<saga_status> statuses) {
        list_filter f;
        f.statuses = std::move(statuses);
        return f;
    };
    auto with_definition = [](std::string definition) {
        list_filter f;
        f.definition = std::move(definition);
        return f;
    };
    auto with_key = [](std::string key) {
        list_filter f;
        f.correlation_key = std::move(key);
        return f;
    };
    auto updated = [](std::optional<time_point> after, std::optional<time_point> before) {
        list_filter f;
        f.updated_after = after;
        f.updated_before = before;
        return f;
    };
    auto page = [](std::string after_id, std::size_t limit) {
        list_filter f;
        f.after_id = std::move(after_id);
        f.limit = limit;
        return f;
    };

    SECTION("no filter lists everything by id") {
        CHECK(SAGA_CONTRACT_OK(store->list({})) ==
              std::vector<instance_record>{r1, r2, r3, r4, r5});
    }
    SECTION("by status") {
        CHECK(ids(with_statuses({saga_status::running})) == names{"list-01", "list-03"});
        CHECK(ids(with_statuses({saga_status::waiting, saga_status::running})) ==
              names{"list-01", "list-03", "list-05"});
        CHECK(ids(with_statuses({saga_status::cancelled})).empty());
    }
    SECTION("by definition") {
        CHECK(ids(with_definition("refund_order")) == names{"list-03", "list-04"});
        CHECK(ids(with_definition("refund")).empty());
    }
    SECTION("by correlation key") {
        CHECK(ids(with_key("c1")) == names{"list-01", "list-03", "list-05"});
        CHECK(ids(with_key("c2")) == names{"list-02"});
    }
    SECTION("by update time, bounds inclusive") {
        CHECK(ids(updated(at_ms(2000), std::nullopt)) ==
              names{"list-02", "list-03", "list-04", "list-05"});
        CHECK(ids(updated(std::nullopt, at_ms(2000))) == names{"list-01", "list-02"});
        CHECK(ids(updated(at_ms(2000), at_ms(4000))) == names{"list-02", "list-03", "list-04"});
        CHECK(ids(updated(at_ms(2001), at_ms(2999))).empty());
    }
    SECTION("filters combine") {
        list_filter f = with_statuses({saga_status::running, saga_status::waiting});
        f.definition = "publish_campaign";
        f.correlation_key = "c1";
        CHECK(ids(f) == names{"list-01", "list-05"});

        list_filter g = with_statuses({saga_status::running});
        g.correlation_key = "c1";
        g.updated_after = at_ms(1500);
        CHECK(ids(g) == names{"list-03"});
    }
    SECTION("after_id and limit apply after filtering") {
        CHECK(ids(page("", 2)) == names{"list-01", "list-02"});
        CHECK(ids(page("list-02", 1000)) == names{"list-03", "list-04", "list-05"});
        CHECK(ids(page("list-02x", 1000)) == names{"list-03", "list-04", "list-05"});
        list_filter f = page("list-01", 1);
        f.correlation_key = "c1";
        CHECK(ids(f) == names{"list-03"});
        CHECK(ids(page("list-05", 1000)).empty());
        CHECK(ids(page("", 0)).empty());
    }
}

inline void list_pages_by_id(const store_factory& make) {
    auto store = make();
    std::vector<std::string> expected;
    for (int i = 24; i >= 0; --i) {
        const std::string id = std::string("page-") + (i < 10 ? "0" : "") + std::to_string(i);
        SAGA_CONTRACT_OK(store->commit(create(make_record(id))));
        expected.push_back(id);
    }
    std::sort(expected.begin(), expected.end());

    std::vector<std::string> seen;
    std::vector<std::size_t> page_sizes;
    list_filter filter;
    filter.limit = 10;
    for (;;) {
        const auto page = SAGA_CONTRACT_OK(store->list(filter));
        if (page.empty()) {
            break;
        }
        page_sizes.push_back(page.size());
        for (const auto& r : page) {
            seen.push_back(r.id);
        }
        filter.after_id = page.back().id;
        REQUIRE(page_sizes.size() <= 3);  // a store ignoring after_id would loop forever
    }
    CHECK(page_sizes == std::vector<std::size_t>{10, 10, 5});
    CHECK(seen == expected);
}

inline void concurrent_commits_are_serialised(const store_factory& make) {
    auto store = make();
    constexpr std::size_t thread_count = 8;
    constexpr std::uint64_t transitions = 200;
    const std::string shared_id = "race-shared";

    transition start = create(make_record(shared_id));
    start.record.data = {{"count", 0}};
    start.history = {make_entry("saga_started")};
    SAGA_CONTRACT_OK(store->commit(start));

    std::mutex problems_mutex;
    std::vector<std::string> problems;  // Catch2 assertions are not thread-safe: collect
    auto problem = [&](std::string what) {
        std::lock_guard lock(problems_mutex);
        problems.push_back(std::move(what));
    };
    std::vector<std::vector<std::uint64_t>> won(thread_count);  // shared versions each thread won
    std::latch ready(static_cast<std::ptrdiff_t>(thread_count));

    auto work = [&](std::size_t i) {
        ready.arrive_and_wait();
        const std::string own_id = "race-own-" + std::to_string(i);
        instance_record own = make_record(own_id);
        for (std::uint64_t n = 1; n <= transitions; ++n) {
            // this thread's own saga: never contended
            transition t = n == 1 ? create(own) : next(own);
            t.record.data = {{"n", n}};
            t.history = {make_entry("step", "own", static_cast<std::uint32_t>(n))};
            if (auto r = store->commit(t); !r) {
                problem(own_id + " commit " + std::to_string(n) + ": " + r.error().what());
                return;
            }
            own = t.record;

            // the shared saga: read, change, commit with the version read; retry on conflict
            for (;;) {
                auto current = store->load(shared_id);
                if (!current) {
                    problem("load " + shared_id + ": " + current.error().what());
                    return;
                }
                transition s = next(current.value());
                s.record.data = {{"count", current.value().data.value("count", 0) + 1}};
                s.history = {make_entry("bumped", "", 0, {{"thread", i}})};
                auto r = store->commit(s);
                if (r) {
                    won[i].push_back(s.record.version);
                    break;
                }
                if (r.error() == errc::version_conflict) {
                    continue;  // another thread won this version: read again
                }
                problem("commit " + shared_id + ": " + r.error().what());
                return;
            }
        }
    };
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < thread_count; ++i) {
        threads.emplace_back(work, i);
    }
    for (auto& t : threads) {
        t.join();
    }
    REQUIRE(problems == std::vector<std::string>{});

    // exactly one winner for every version of the shared saga: no version won twice, none lost
    std::vector<std::uint64_t> all_wins;
    for (const auto& w : won) {
        CHECK(w.size() == transitions);
        all_wins.insert(all_wins.end(), w.begin(), w.end());
    }
    std::sort(all_wins.begin(), all_wins.end());
    std::vector<std::uint64_t> every_version;
    for (std::uint64_t v = 2; v <= 1 + thread_count * transitions; ++v) {
        every_version.push_back(v);
    }
    CHECK(all_wins == every_version);

    const auto shared = SAGA_CONTRACT_OK(store->load(shared_id));
    CHECK(shared.version == 1 + thread_count * transitions);
    CHECK(shared.data.value("count", 0) == static_cast<int>(thread_count * transitions));

    const auto shared_history = SAGA_CONTRACT_OK(store->history(shared_id));
    REQUIRE(shared_history.size() == 1 + thread_count * transitions);
    std::map<std::size_t, std::uint64_t> per_thread;
    bool in_order = true;
    for (std::size_t k = 0; k < shared_history.size(); ++k) {
        in_order = in_order && shared_history[k].version == k + 1;
        if (k > 0) {
            ++per_thread[shared_history[k].detail.value("thread", std::size_t{999})];
        }
    }
    CHECK(in_order);
    for (std::size_t i = 0; i < thread_count; ++i) {
        CHECK(per_thread[i] == transitions);
    }

    for (std::size_t i = 0; i < thread_count; ++i) {
        const std::string own_id = "race-own-" + std::to_string(i);
        const auto own = SAGA_CONTRACT_OK(store->load(own_id));
        CHECK(own.version == transitions);
        CHECK(own.data.value("n", std::uint64_t{0}) == transitions);
        const auto own_history = SAGA_CONTRACT_OK(store->history(own_id));
        REQUIRE(own_history.size() == transitions);
        for (std::uint64_t v = 1; v <= transitions; ++v) {
            CHECK(own_history[v - 1].version == v);
        }
    }
}

}  // namespace saga::contract

/// Instantiates the state store contract: Catch2 test cases tagged `[contract][store]` and
/// `tag`, each on a fresh store from `make_store` (an expression yielding
/// `std::shared_ptr<saga::state_store>`). Use once per test binary.
#define SAGA_STATE_STORE_CONTRACT(tag, make_store)                                                 \
    SAGA_STATE_STORE_CONTRACT_CASE_("a created record loads back with every field", tag,           \
                                    make_store, created_record_loads_back)                         \
    SAGA_STATE_STORE_CONTRACT_CASE_("async_commit reports the outcome to its handler", tag,        \
                                    make_store, async_commit_reports_to_its_handler)               \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "creating an id that exists fails with already_exists and leaves the original", tag,       \
        make_store, create_of_existing_id_fails)                                                   \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "a commit with a stale expected version fails with version_conflict and applies nothing",  \
        tag, make_store, stale_commit_fails_and_applies_nothing)                                   \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "a record version other than expected version plus one fails with invalid_argument", tag,  \
        make_store, version_must_be_expected_plus_one)                                             \
    SAGA_STATE_STORE_CONTRACT_CASE_("loading an unknown id fails with not_found", tag, make_store, \
                                    load_of_unknown_id_fails)                                      \
    SAGA_STATE_STORE_CONTRACT_CASE_("history lists entries in commit order with their versions",   \
                                    tag, make_store, history_is_in_commit_order)                   \
    SAGA_STATE_STORE_CONTRACT_CASE_("timers are set, replaced, cleared and listed by due time",    \
                                    tag, make_store, timers_are_set_replaced_cleared_and_listed)   \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "the outbox yields pending messages oldest first until they are acknowledged", tag,        \
        make_store, outbox_releases_oldest_first)                                                  \
    SAGA_STATE_STORE_CONTRACT_CASE_("the inbox lets a saga consume a message id only once", tag,   \
                                    make_store, inbox_consumes_a_message_once_per_saga)            \
    SAGA_STATE_STORE_CONTRACT_CASE_("an exclusive non-terminal record locks its correlation key",  \
                                    tag, make_store, exclusive_records_lock_their_correlation_key) \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "list filters by status, definition, correlation key and update time", tag, make_store,    \
        list_filters_records)                                                                      \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "list pages through all records by id with after_id and limit", tag, make_store,           \
        list_pages_by_id)                                                                          \
    SAGA_STATE_STORE_CONTRACT_CASE_(                                                               \
        "concurrent commits lose nothing and let exactly one writer win each version", tag,        \
        make_store, concurrent_commits_are_serialised)

/// One test case of the contract (an implementation detail of SAGA_STATE_STORE_CONTRACT).
#define SAGA_STATE_STORE_CONTRACT_CASE_(name, tag, make_store, fn)                 \
    TEST_CASE(name, "[contract][store]" tag) {                                     \
        ::saga::contract::fn(                                                      \
            [&]() -> std::shared_ptr<::saga::state_store> { return make_store; }); \
    }
