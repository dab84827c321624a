// The journal store contract on saga::sqlite::sqlite_journal_store: every case on a fresh store
// in a fresh file.
#include "contract/journal_store_contract.hpp"

#include "temp_store.hpp"

SAGA_JOURNAL_STORE_CONTRACT("[sqlite]", saga::sqlite::test::fresh_journal_store())
