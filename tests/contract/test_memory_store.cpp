#include "contract/state_store_contract.hpp"

#include <saga/inmemory/memory_store.hpp>

SAGA_STATE_STORE_CONTRACT("[memory]", std::make_shared<saga::inmemory::memory_store>())

using namespace saga;
using namespace saga::contract;

TEST_CASE("memory store: fail_next_commits fails that many commits and changes nothing",
          "[contract][store][memory]") {
    auto store = std::make_shared<inmemory::memory_store>();
    transition t1 = create(make_record("hooked"));
    t1.history = {make_entry("saga_started")};
    t1.inbox = {"in-1"};
    SAGA_CONTRACT_OK(store->commit(t1));
    REQUIRE(store->commits() == 1);

    store->fail_next_commits(2, error{errc::store_busy, "injected: database is locked"});

    transition t2 = next(t1.record);
    t2.record.data = {{"n", 2}};
    t2.history = {make_entry("step_completed")};
    t2.outbox = {make_outbox("hooked", "out-1")};
    t2.timers_set = {make_timer("hooked", "deadline", at_ms(10))};
    t2.inbox = {"in-2"};

    const error first = SAGA_CONTRACT_FAILS(store->commit(t2), errc::store_busy);
    CHECK(first.message == "injected: database is locked");
    CHECK(first.transient());
    // even a create of a fresh id fails while the hook is armed
    SAGA_CONTRACT_FAILS(store->commit(create(make_record("fresh"))), errc::store_busy);

    CHECK(store->commits() == 1);
    CHECK(SAGA_CONTRACT_OK(store->load("hooked")) == t1.record);
    SAGA_CONTRACT_FAILS(store->load("fresh"), errc::not_found);
    CHECK(SAGA_CONTRACT_OK(store->history("hooked")).size() == 1);
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(10)).empty());
    CHECK(SAGA_CONTRACT_OK(store->timers(std::nullopt)).empty());
    CHECK_FALSE(SAGA_CONTRACT_OK(store->inbox_contains("hooked", "in-2")));

    // the hook is spent: the very same transition now commits
    SAGA_CONTRACT_OK(store->commit(t2));
    CHECK(store->commits() == 2);
    CHECK(SAGA_CONTRACT_OK(store->load("hooked")) == t2.record);
    CHECK(SAGA_CONTRACT_OK(store->history("hooked")).size() == 2);
    CHECK(SAGA_CONTRACT_OK(store->pending_outbox(10)).size() == 1);
    CHECK(SAGA_CONTRACT_OK(store->timers(std::nullopt)).size() == 1);
    CHECK(SAGA_CONTRACT_OK(store->inbox_contains("hooked", "in-2")));
}

TEST_CASE("memory store: commits complete before async_commit returns and are counted",
          "[contract][store][memory]") {
    inmemory::memory_store store;
    std::optional<result<void>> outcome;
    store.async_commit(create(make_record("inline")),
                       [&outcome](result<void> r) { outcome = std::move(r); });
    REQUIRE(outcome.has_value());
    SAGA_CONTRACT_OK(*outcome);

    outcome.reset();
    store.async_commit(create(make_record("inline")),
                       [&outcome](result<void> r) { outcome = std::move(r); });
    REQUIRE(outcome.has_value());
    SAGA_CONTRACT_FAILS(*outcome, errc::already_exists);

    // failed commits are not counted
    CHECK(store.commits() == 1);
    // a null handler is allowed: the commit still happens
    store.async_commit(next(make_record("inline")), nullptr);
    CHECK(SAGA_CONTRACT_OK(store.load("inline")).version == 2);
    CHECK(store.commits() == 2);
}

TEST_CASE("memory store: error messages name the saga and the versions",
          "[contract][store][memory]") {
    inmemory::memory_store store;
    instance_record r = make_record("abc");
    r.correlation_key = "campaign-1";
    r.exclusive = true;
    SAGA_CONTRACT_OK(store.commit(create(r)));
    transition t = next(r);
    for (int i = 0; i < 3; ++i) {
        SAGA_CONTRACT_OK(store.commit(t));
        t = next(t.record);
    }
    // the store is at version 4

    instance_record at3 = r;
    at3.version = 3;
    CHECK(SAGA_CONTRACT_FAILS(store.commit(next(at3)), errc::version_conflict).message ==
          "saga 'abc': expected version 3 but the store has 4");
    instance_record ghost = make_record("ghost");
    CHECK(SAGA_CONTRACT_FAILS(store.commit(next(ghost)), errc::version_conflict).message ==
          "saga 'ghost': expected version 1 but the store has no such saga");
    CHECK(SAGA_CONTRACT_FAILS(store.commit(create(make_record("abc"))), errc::already_exists)
              .message == "saga 'abc': already exists (at version 4)");
    CHECK(SAGA_CONTRACT_FAILS(store.load("nope"), errc::not_found).message ==
          "saga 'nope': not found");

    instance_record rival = make_record("rival");
    rival.correlation_key = "campaign-1";
    rival.exclusive = true;
    CHECK(SAGA_CONTRACT_FAILS(store.commit(create(rival)), errc::lock_held).message ==
          "saga 'rival': correlation key 'campaign-1' is locked by saga 'abc'");

    transition bad = next(t.record);
    bad.expected_version = 4;
    bad.record.version = 6;
    CHECK(SAGA_CONTRACT_FAILS(store.commit(bad), errc::invalid_argument).message ==
          "saga 'abc': record version 6 is not expected version 4 + 1");

    transition consume = t;
    consume.inbox = {"m-1"};
    SAGA_CONTRACT_OK(store.commit(consume));
    transition again = next(consume.record);
    again.inbox = {"m-1"};
    CHECK(SAGA_CONTRACT_FAILS(store.commit(again), errc::duplicate_message).message ==
          "saga 'abc': message 'm-1' was already consumed");
}

TEST_CASE("memory store: malformed transitions are refused with invalid_argument",
          "[contract][store][memory]") {
    inmemory::memory_store store;

    SECTION("a record without an id") {
        SAGA_CONTRACT_FAILS(store.commit(create(make_record(""))), errc::invalid_argument);
    }
    SECTION("a timer of another saga") {
        transition t = create(make_record("owner"));
        t.timers_set = {make_timer("someone-else", "deadline", at_ms(10))};
        SAGA_CONTRACT_FAILS(store.commit(t), errc::invalid_argument);
        SAGA_CONTRACT_FAILS(store.load("owner"), errc::not_found);
    }
    SECTION("an outbox message without an id") {
        transition t = create(make_record("owner"));
        t.outbox = {make_outbox("owner", "")};
        SAGA_CONTRACT_FAILS(store.commit(t), errc::invalid_argument);
        SAGA_CONTRACT_FAILS(store.load("owner"), errc::not_found);
    }
    CHECK(store.commits() == 0);
    CHECK(SAGA_CONTRACT_OK(store.timers(std::nullopt)).empty());
    CHECK(SAGA_CONTRACT_OK(store.pending_outbox(10)).empty());
}
