// saga::sqlite reading back JSON that a corrupted or tampered file holds: every column that
// holds JSON (instance data and state, history detail, timer payload, outbox message) may be
// not JSON at all or nested 100,000 deep. The read fails with an error naming the file, the saga
// and the column (and the limit), the process does not crash, and other sagas still read.
#include "contract/state_store_contract.hpp"

#include "temp_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <string>
#include <tuple>

using namespace saga;
using namespace saga::contract;
using saga::sqlite::test::open_store;
using saga::sqlite::test::temp_path;

namespace {

/// Overwrites `column` of `table` for the rows of saga `id` with `text`, from a second connection
/// (as an editor, a disk fault or another program would).
void tamper(const std::string& path, const std::string& table, const std::string& column,
            const std::string& id_column, const std::string& id, const std::string& text) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    SQLite::Statement s(
        db, "UPDATE " + table + " SET " + column + " = ?1 WHERE " + id_column + " = ?2");
    s.bind(1, text);
    s.bind(2, id);
    REQUIRE(s.exec() >= 1);
}

}  // namespace

TEST_CASE("sqlite store: stored JSON that is corrupt or too deep is a clear error, not a crash",
          "[sqlite][failure][hostile]") {
    temp_path file;
    auto store = open_store(file.str());
    for (const char* id : {"victim", "bystander"}) {
        auto t = create(make_record(id));
        t.history.push_back(make_entry("started", "", 0, {{"who", "test"}}));
        t.timers_set.push_back(make_timer(id, "deadline", at_ms(5000)));
        t.outbox.push_back(make_outbox(id, std::string(id) + "-m1"));
        SAGA_CONTRACT_OK(store->commit(std::move(t)));
    }

    const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    struct column {
        const char* table;
        const char* name;
        const char* id_column;
    };
    for (const auto& c :
         {column{"instances", "data", "id"}, column{"instances", "state", "id"},
          column{"history", "detail", "saga_id"}, column{"timers", "payload", "saga_id"},
          column{"outbox", "message", "saga_id"}}) {
        for (const auto& [text, code, says] :
             {std::tuple{std::string("{\"n\": 1"), errc::store_failure, "not valid JSON"},
              std::tuple{deep, errc::limit_exceeded,
                         "nests deeper than the limit of 512 levels"}}) {
            DYNAMIC_SECTION(c.table << "." << c.name << ": " << says) {
                tamper(file.str(), c.table, c.name, c.id_column, "victim", text);
                const std::string table = c.table;
                error e;
                if (table == "instances") {
                    e = SAGA_CONTRACT_FAILS(store->load("victim"), code);
                    SAGA_CONTRACT_FAILS(store->list({}), code);
                } else if (table == "history") {
                    e = SAGA_CONTRACT_FAILS(store->history("victim"), code);
                } else if (table == "timers") {
                    e = SAGA_CONTRACT_FAILS(store->timers(std::nullopt), code);
                } else {
                    e = SAGA_CONTRACT_FAILS(store->pending_outbox(10), code);
                }
                INFO(e.message);
                CHECK(contains_text(e.message, file.str()));
                CHECK(contains_text(e.message, "saga 'victim'"));
                CHECK(contains_text(e.message, std::string("the stored ") + c.name));
                CHECK(contains_text(e.message, says));
                // the store goes on serving what is intact
                CHECK(SAGA_CONTRACT_OK(store->load("bystander")).data == nlohmann::json{{"n", 0}});
                CHECK(SAGA_CONTRACT_OK(store->history("bystander")).size() == 1);
            }
        }
    }
}
