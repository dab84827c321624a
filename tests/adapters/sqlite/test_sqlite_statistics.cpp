// saga::sqlite's own counters (`stats()`): committed transactions, the rows the transitions
// write, and the syncs of the store's files (counted by the VFS shim, sync_counting_vfs.cpp).
// These are the figures bench/saga_bench prints per saga; here they are checked against rows
// whose count is known.
#include "contract/state_store_contract.hpp"

#include "temp_store.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <saga/sqlite/sqlite_store.hpp>

using namespace saga;
using namespace saga::contract;
using saga::sqlite::store_stats;
using saga::sqlite::synchronous;
using saga::sqlite::test::open_store;
using saga::sqlite::test::temp_path;

namespace {

/// A creating transition of 6 rows: the record, 2 history entries, 1 timer, 1 outbox message
/// and 1 inbox id.
transition six_rows(const std::string& id) {
    transition t = create(make_record(id));
    t.history = {make_entry("saga_started"), make_entry("step_started", "reserve", 1)};
    t.timers_set = {make_timer(id, "deadline", at_ms(60000))};
    t.outbox = {make_outbox(id, id + "-out")};
    t.inbox = {id + "-in"};
    return t;
}

/// `after - before`, field by field, for the fields these tests look at.
struct delta {
    std::uint64_t transactions;
    std::uint64_t row_writes;
    std::uint64_t syncs;
};
delta operator-(const store_stats& after, const store_stats& before) {
    return {after.transactions - before.transactions, after.row_writes - before.row_writes,
            after.syncs - before.syncs};
}

}  // namespace

TEST_CASE(
    "sqlite store: stats count the committed transactions, the rows each transition writes "
    "and at least one sync per commit at synchronous FULL",
    "[sqlite][stats]") {
    temp_path file;
    auto store = open_store(file.str(), {.sync = synchronous::full});
    const store_stats opened = store->stats();
    CHECK(opened.transactions == 0);
    CHECK(opened.row_writes == 0);

    constexpr std::uint64_t k = 5;
    std::vector<instance_record> records;
    for (std::uint64_t i = 0; i < k; ++i) {
        transition t = six_rows("stats-" + std::to_string(i));
        SAGA_CONTRACT_OK(store->commit(t));
        records.push_back(t.record);
    }
    // one commit at a time: each is a transaction of its own, and each transaction syncs the WAL
    const delta created = store->stats() - opened;
    CHECK(created.transactions == k);
    CHECK(created.row_writes == 6 * k);
    CHECK(created.syncs >= k);
    CHECK(store->stats().commits == k);

    SECTION("an update, a timer replaced, a timer set, a timer cleared and an ack") {
        const store_stats before = store->stats();
        transition t = next(records[0]);
        t.timers_set = {make_timer(records[0].id, "deadline", at_ms(90000)),
                        make_timer(records[0].id, "retry", at_ms(5000))};
        SAGA_CONTRACT_OK(store->commit(t));  // 1 update + 1 upsert that updates + 1 insert
        transition u = next(t.record);
        u.timers_cleared = {"retry", "no-such-timer"};  // 1 delete; the unknown id deletes nothing
        SAGA_CONTRACT_OK(store->commit(u));
        const std::vector<std::string> acked{records[1].id + "-out"};
        SAGA_CONTRACT_OK(store->ack_outbox(acked));  // 1 delete
        const delta d = store->stats() - before;
        CHECK(d.transactions == 3);
        CHECK(d.row_writes == 3 + 2 + 1);
        CHECK(d.syncs >= 3);
    }

    SECTION("a transition rolled back to its savepoint counts no rows") {
        const store_stats before = store->stats();
        // the record update runs before the inbox check fails: the savepoint undoes both
        transition duplicate = next(records[2]);
        duplicate.inbox = {records[2].id + "-in"};
        SAGA_CONTRACT_FAILS(store->commit(duplicate), errc::duplicate_message);
        SAGA_CONTRACT_FAILS(store->commit(next(next(records[3]).record)), errc::version_conflict);
        SAGA_CONTRACT_FAILS(store->commit(six_rows(records[4].id)), errc::already_exists);
        const delta d = store->stats() - before;
        CHECK(d.row_writes == 0);
        CHECK(d.transactions == 3);  // the transactions themselves committed (empty)
        CHECK(store->stats().commits == k);
    }
}

TEST_CASE(
    "sqlite store: at synchronous NORMAL commits do not sync, and each store counts only "
    "the syncs of its own file",
    "[sqlite][stats]") {
    temp_path full_file;
    temp_path normal_file;
    auto full = open_store(full_file.str(), {.sync = synchronous::full});
    auto normal = open_store(normal_file.str(), {.sync = synchronous::normal});
    const store_stats full_before = full->stats();
    const store_stats normal_before = normal->stats();

    constexpr std::uint64_t k = 8;
    for (std::uint64_t i = 0; i < k; ++i) {
        SAGA_CONTRACT_OK(normal->commit(six_rows("normal-" + std::to_string(i))));
    }
    const delta n = normal->stats() - normal_before;
    CHECK(n.transactions == k);
    CHECK(n.row_writes == 6 * k);
    CHECK(n.syncs < k);  // WAL at NORMAL syncs at checkpoints only (none for these few pages)
    CHECK((full->stats() - full_before).syncs == 0);  // the other file was not touched

    for (std::uint64_t i = 0; i < k; ++i) {
        SAGA_CONTRACT_OK(full->commit(six_rows("full-" + std::to_string(i))));
    }
    const delta f = full->stats() - full_before;
    CHECK(f.transactions == k);
    CHECK(f.syncs >= k);
    CHECK((normal->stats() - normal_before).syncs == n.syncs);
}

TEST_CASE("sqlite store: a reopened store counts from zero, and a read-only one writes nothing",
          "[sqlite][stats]") {
    temp_path file;
    {
        auto store = open_store(file.str());
        SAGA_CONTRACT_OK(store->commit(six_rows("reopened")));
        CHECK(store->stats().row_writes == 6);
    }
    auto store = open_store(file.str());
    CHECK(store->stats().transactions == 0);
    CHECK(store->stats().row_writes == 0);
    const std::uint64_t syncs_at_open = store->stats().syncs;
    SAGA_CONTRACT_OK(store->commit(next(SAGA_CONTRACT_OK(store->load("reopened")))));
    CHECK(store->stats().row_writes == 1);
    CHECK(store->stats().transactions == 1);
    CHECK(store->stats().syncs > syncs_at_open);

    auto reader = open_store(file.str(), {.read_only = true});
    CHECK(SAGA_CONTRACT_OK(reader->load("reopened")).version == 2);
    const store_stats r = reader->stats();
    CHECK(r.transactions == 0);
    CHECK(r.row_writes == 0);
}
