// Writes fixtures/v1_in_flight.db: a schema version 1 store file (saga::sqlite::sqlite_store)
// made by today's engine, with the sagas of v1_fixture_sagas.hpp left in flight (waiting for a
// signal, a command out, a retry scheduled, compensating, paused, completed, holding a lock,
// a command still in the outbox). test_sqlite_v1_migration.cpp migrates a copy of it.
//
// Not run by ctest. To regenerate (only when the v1 schema or the fixture's sagas change):
//
//   cmake --build build --target make_v1_fixture
//   build/tests/adapters/sqlite/make_v1_fixture tests/adapters/sqlite/fixtures/v1_in_flight.db
//
// It refuses to overwrite an existing file: delete it first.

#include <saga/engine.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/participant.hpp>
#include <saga/sqlite/sqlite_store.hpp>

#include <SQLiteCpp/Database.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "v1_fixture_sagas.hpp"

namespace {

using namespace saga;
namespace fixture = saga::sqlite::test::v1_fixture;

/// The engine's side of the transport: loses the commands `lose` picks (the send succeeds and
/// nothing arrives) and refuses to send those `refuse` picks (the message stays in the outbox).
class lossy_transport final : public transport {
public:
    using pick = std::function<bool(const std::string& endpoint, const envelope&)>;
    lossy_transport(std::shared_ptr<transport> inner, pick lose, pick refuse)
        : inner_(std::move(inner)), lose_(std::move(lose)), refuse_(std::move(refuse)) {}

    void async_send(const std::string& endpoint, envelope m, send_handler done) override {
        if (lose_(endpoint, m)) {
            done(success());
            return;
        }
        if (refuse_(endpoint, m)) {
            done(error{errc::transport_failure, "the fixture refuses to send it"});
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
    pick lose_;
    pick refuse_;
};

int fail(const std::string& what) {
    std::fprintf(stderr, "make_v1_fixture: %s\n", what.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        return fail("usage: make_v1_fixture OUTPUT.db");
    }
    const std::string path = argv[1];
    if (std::filesystem::exists(path)) {
        return fail("'" + path + "' exists; delete it first");
    }
    {
        auto clock = std::make_shared<virtual_clock>();
        auto memory = std::make_shared<inmemory::memory_transport>(clock);
        auto engine_side = std::make_shared<lossy_transport>(
            memory,
            [](const std::string&, const envelope& e) {
                return (e.saga_id == "sent" && e.type == "reserve") ||
                       (e.saga_id == "compensating" && e.type == "release");
            },
            [](const std::string&, const envelope& e) { return e.saga_id == "unsent"; });
        auto store = sqlite::sqlite_store::open({.path = path});
        if (!store) {
            return fail(store.error().what());
        }
        engine eng(store.value(), engine_side, {.clock = clock});
        if (auto r = eng.add(fixture::order_saga()); !r) {
            return fail(r.error().what());
        }
        participant billing(memory, "billing");
        billing.on("reserve", [](const envelope& e) {
            if (e.saga_id == "retrying") {
                return participant_reply::transient("billing is busy");
            }
            return participant_reply::success({{"id", fixture::reservation_for(e)}});
        });
        billing.on("release", [](const envelope&) { return participant_reply::success(); });
        participant shipping(memory, "shipping");
        shipping.on("ship", [](const envelope& e) {
            if (e.saga_id == "compensating") {
                return participant_reply::permanent("no such address");
            }
            return participant_reply::success({{"tracking", "T-" + e.saga_id}});
        });
        if (auto r = billing.start(eng.get_executor()); !r) {
            return fail(r.error().what());
        }
        if (auto r = shipping.start(eng.get_executor()); !r) {
            return fail(r.error().what());
        }

        // the virtual clock never moves: no timeout, retry or deadline falls due
        for (const fixture::instance& i : fixture::instances) {
            start_options options{.id = std::string(i.id)};
            if (i.id == "locked") {
                options.correlation_key = std::string(fixture::locked_key);
                options.exclusive = true;
            }
            if (auto r = eng.start("order", fixture::order{}, options); !r) {
                return fail(r.error().what());
            }
            eng.run_until_idle();
            if (i.id == "done" || i.id == "compensating") {
                if (auto r = eng.signal(i.id, "approval", {{"by", "generator"}}); !r) {
                    return fail(r.error().what());
                }
            }
            if (i.id == "paused") {
                if (auto r = eng.pause(i.id, {.who = "make_v1_fixture", .why = "the fixture"});
                    !r) {
                    return fail(r.error().what());
                }
            }
            eng.run_until_idle();
        }
        for (const fixture::instance& i : fixture::instances) {
            auto v = eng.query(i.id);
            if (!v) {
                return fail(v.error().what());
            }
            if (v.value().status != i.status) {
                return fail("saga '" + std::string(i.id) + "' is " +
                            std::string(to_string(v.value().status)) + ", not " +
                            std::string(to_string(i.status)));
            }
        }
        eng.stop();
    }
    // one self-contained, compact file (no -wal beside it), and no lock file left beside it
    try {
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        db.exec("PRAGMA journal_mode = DELETE");
        db.exec("VACUUM");
    } catch (const std::exception& e) {
        return fail(e.what());
    }
    std::error_code ec;
    std::filesystem::remove(path + ".lock", ec);
    std::printf("make_v1_fixture: wrote %s (%ju bytes)\n", path.c_str(),
                static_cast<std::uintmax_t>(std::filesystem::file_size(path)));
    return 0;
}
