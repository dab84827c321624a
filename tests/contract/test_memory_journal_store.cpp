#include "contract/journal_store_contract.hpp"

#include <saga/inmemory/memory_journal_store.hpp>

SAGA_JOURNAL_STORE_CONTRACT("[memory]", std::make_shared<saga::inmemory::memory_journal_store>())

TEST_CASE("memory journal store: fail_next_commits fails that many commits and changes nothing",
          "[contract][journal][memory]") {
    using namespace saga;
    using namespace saga::journal_contract;
    inmemory::memory_journal_store store;
    SAGA_JOURNAL_OK(store.commit(first_write("s-1")));
    store.fail_next_commits(2, error{errc::store_busy, "injected: database is locked"});
    const auto e = SAGA_JOURNAL_FAILS(store.commit(next_write("s-1", 2)), errc::store_busy);
    CHECK(e.transient());
    SAGA_JOURNAL_FAILS(store.commit(first_write("s-2")), errc::store_busy);
    CHECK(store.commits() == 1);
    CHECK(SAGA_JOURNAL_OK(store.journal("s-1")).size() == 1);
    SAGA_JOURNAL_OK(store.commit(next_write("s-1", 2)));
    CHECK(store.commits() == 2);
}
