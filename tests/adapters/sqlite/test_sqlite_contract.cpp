// The state store contract on saga::sqlite: every case on a fresh store in a fresh file.
#include "contract/state_store_contract.hpp"

#include "temp_store.hpp"

SAGA_STATE_STORE_CONTRACT("[sqlite]", saga::sqlite::test::fresh_store())
