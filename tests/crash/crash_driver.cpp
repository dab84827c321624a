// crash_driver: runs N trip sagas on a durable SQLite saga store, against simulated participant
// services that keep their own durable state in another SQLite file, and exits 0 once every
// saga is terminal. The crash test (test_crash.cpp) kills it with SIGKILL at random moments and
// starts it again, then checks both files.
//
//   crash_driver --store saga.db --services services.db --sagas N --seed S [--start-interval-ms 50]
//
// Saga ids are `crash-<seed>-<i>`; starts are idempotent, so a restarted driver re-issues them
// all. The in-memory transport loses its messages when the process dies: recovery relies on the
// engine re-sending its outbox and on durable step timeouts re-sending commands (same key).
#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>
#include <saga/sqlite/sqlite_journal_store.hpp>

#include "crash_model.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace crash = saga::crash;

// ---- the saga --------------------------------------------------------------------------------

struct trip {
    std::string customer;
    int amount = 100;
    std::string credit;
    std::string flight;
    std::string hotel;
    std::string charge;
    bool validated = false;
    bool notified = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(trip, customer, amount, credit, flight, hotel,
                                                charge, validated, notified)

// validate (local; undo: local) -> reserve_credit (billing; undo: release)
// -> book [flight (flights) | hotel (hotels)] (each undone by cancel)
// -> charge (payments; the pivot) -> notify (local, after the pivot)
saga::result<saga::definition<trip>> crash_trip() {
    const saga::duration timeout = 300ms;
    // Steps before the pivot give up after a dozen transient failures (timeouts included), and
    // are then compensated as uncertain; the pivot and the compensations never give up on a
    // transient failure, so that only permanent failures decide the outcome of the pivot and no
    // saga ends compensation_failed.
    const auto forward_retry = saga::retry_policy::exponential(12, 20ms, 300ms);
    const auto forever = saga::retry_policy::forever(20ms, 300ms);
    auto id_of = [](const json& r) { return r.value("id", std::string()); };
    auto branch = [&](saga::parallel_builder<trip>& p, const std::string& name,
                      const std::string& step, const std::string& endpoint,
                      std::string trip::*field) {
        p.branch(name)
            .remote(step, endpoint,
                    [](const trip& t) {
                        return saga::command{"book", {{"who", t.customer}}};
                    })
            .on_reply([id_of, field](trip& t, const json& r) { t.*field = id_of(r); })
            .compensate_remote(endpoint,
                               [field](const trip& t) {
                                   return saga::command{"cancel", {{"id", t.*field}}};
                               })
            .retry(forward_retry)
            .compensation_retry(forever)
            .timeout(timeout);
    };
    return saga::definition_builder<trip>("crash_trip", 1)
        .default_retry(forward_retry)
        .default_compensation_retry(forever)
        .local("validate",
               [](trip& t) -> saga::result<void> {
                   if (t.amount <= 0) return saga::permanent_error("amount must be positive");
                   t.validated = true;
                   return saga::success();
               })
        .compensate([](trip& t) { t.validated = false; })
        .remote("reserve_credit", "billing",
                [](const trip& t) {
                    return saga::command{"reserve", {{"amount", t.amount}}};
                })
        .on_reply([id_of](trip& t, const json& r) { t.credit = id_of(r); })
        .compensate_remote("billing",
                           [](const trip& t) {
                               return saga::command{"release", {{"id", t.credit}}};
                           })
        .retry(forward_retry)
        .compensation_retry(forever)
        .timeout(timeout)
        .parallel("book",
                  [&](saga::parallel_builder<trip>& p) {
                      branch(p, "flight", "book_flight", "flights", &trip::flight);
                      branch(p, "hotel", "book_hotel", "hotels", &trip::hotel);
                  })
        .remote("charge", "payments",
                [](const trip& t) {
                    return saga::command{"charge", {{"amount", t.amount}}};
                })
        .on_reply([id_of](trip& t, const json& r) { t.charge = id_of(r); })
        .retry(forever)
        .timeout(timeout)
        .pivot()
        .local("notify", [](trip& t) { t.notified = true; })
        .build();
}

// ---- the services ----------------------------------------------------------------------------

std::string_view status_name(saga::reply_status s) {
    switch (s) {
        case saga::reply_status::success: return "success";
        case saga::reply_status::transient_failure: return "transient";
        case saga::reply_status::permanent_failure: return "permanent";
    }
    return "permanent";
}

saga::reply_status parse_status(std::string_view s) {
    if (s == "success") return saga::reply_status::success;
    if (s == "transient") return saga::reply_status::transient_failure;
    return saga::reply_status::permanent_failure;
}

/// The durable state of every simulated service: one SQLite connection, one transaction per
/// command (check, apply and record the reply together).
class services_db {
public:
    services_db(const std::string& path, std::uint64_t seed)
        : seed_(seed), db_(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE) {
        db_.exec("PRAGMA journal_mode = WAL");
        db_.exec("PRAGMA synchronous = FULL");
        db_.setBusyTimeout(5000);
        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
        db_.exec(std::string(crash::journal_schema));
        for (const auto& s : crash::services) db_.exec(crash::schema(s.endpoint));
        tx.commit();
    }

    saga::participant_reply handle(const crash::service& s, const saga::envelope& e) {
        std::lock_guard lock(mutex_);
        const std::string effects = std::string(s.endpoint) + "_effects";
        const std::string held = std::string(s.endpoint) + "_held";
        const std::string& key = e.idempotency_key;
        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);

        // A repeat (same idempotency key): the recorded reply, and nothing applied.
        {
            SQLite::Statement q(db_,
                                "SELECT status, payload, error FROM " + effects + " WHERE key = ?");
            q.bind(1, key);
            if (q.executeStep()) {
                saga::participant_reply r{parse_status(q.getColumn(0).getString()),
                                          json::parse(q.getColumn(1).getString()),
                                          q.getColumn(2).getString()};
                q.reset();
                SQLite::Statement u(
                    db_, "UPDATE " + effects + " SET repeats = repeats + 1 WHERE key = ?");
                u.bind(1, key);
                u.exec();
                tx.commit();
                ++repeats_;
                return r;
            }
        }

        if (e.kind == saga::message_kind::command) {
            if (e.type != s.forward)
                return saga::participant_reply::permanent(
                    fmt::format("unknown command '{}'", e.type));
            if (crash::transient_failure(seed_, key, e.attempt))
                return saga::participant_reply::transient("busy, try again");
            if (crash::permanent_failure_step(seed_, e.saga_id) == s.step) {
                auto r = saga::participant_reply::permanent(fmt::format("{} refused", s.forward));
                record(s, key, e.saga_id, "refused", r);
                tx.commit();
                return r;
            }
            const std::string resource = std::string(s.endpoint) + ":" + key;
            auto r = saga::participant_reply::success({{"id", resource}});
            record(s, key, e.saga_id, "forward", r);
            SQLite::Statement ins(
                db_, "INSERT INTO " + held + " (resource, saga_id, key) VALUES (?, ?, ?)");
            ins.bind(1, resource);
            ins.bind(2, e.saga_id);
            ins.bind(3, key);
            ins.exec();
            tx.commit();
            return r;
        }

        // A compensation: undo by the forward command's idempotency key.
        if (e.type != s.compensation)
            return saga::participant_reply::permanent(
                fmt::format("unknown compensation '{}'", e.type));
        const auto it = e.headers.find("compensates");
        if (it == e.headers.end() || it->second.empty())
            return saga::participant_reply::permanent(
                "compensation without a 'compensates' header");
        const std::string& forward = it->second;
        if (crash::transient_failure(seed_, key, e.attempt))
            return saga::participant_reply::transient("busy, try again");
        std::string forward_kind;
        {
            SQLite::Statement q(db_, "SELECT kind FROM " + effects + " WHERE key = ?");
            q.bind(1, forward);
            if (q.executeStep()) forward_kind = q.getColumn(0).getString();
        }
        int released = 0;
        if (forward_kind.empty()) {
            // The compensation came first: a late forward command must be refused.
            record(s, forward, e.saga_id, "tombstone",
                   saga::participant_reply::permanent(std::string(crash::compensated_first)));
        } else if (forward_kind == "forward") {
            SQLite::Statement del(db_, "DELETE FROM " + held + " WHERE key = ?");
            del.bind(1, forward);
            released = del.exec();
        }
        auto r = saga::participant_reply::success({{"released", released}});
        record(s, key, e.saga_id, "compensation", r);
        tx.commit();
        return r;
    }

    [[nodiscard]] long repeats() const { return repeats_.load(); }

private:
    // Applies an effect: a second application of one key would show as applications == 2.
    void record(const crash::service& s, const std::string& key, const std::string& saga_id,
                const std::string& kind, const saga::participant_reply& r) {
        SQLite::Statement j(db_, "INSERT INTO journal (service, key, kind) VALUES (?, ?, ?)");
        j.bind(1, std::string(s.endpoint));
        j.bind(2, key);
        j.bind(3, kind);
        j.exec();
        const auto seq = db_.getLastInsertRowid();
        SQLite::Statement ins(
            db_, "INSERT INTO " + std::string(s.endpoint) +
                     "_effects (key, saga_id, kind, applications, status, payload, error, seq)"
                     " VALUES (?, ?, ?, 1, ?, ?, ?, ?)"
                     " ON CONFLICT(key) DO UPDATE SET applications = applications + 1");
        ins.bind(1, key);
        ins.bind(2, saga_id);
        ins.bind(3, kind);
        ins.bind(4, std::string(status_name(r.status)));
        ins.bind(5, r.payload.dump());
        ins.bind(6, r.error);
        ins.bind(7, seq);
        ins.exec();
    }

    std::uint64_t seed_;
    std::mutex mutex_;
    SQLite::Database db_;
    std::atomic<long> repeats_{0};
};

std::string new_message_id() {
    static const auto prefix = fmt::format(
        "{}-{}", ::getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
    static std::atomic<std::uint64_t> counter{0};
    return fmt::format("{}-{}", prefix, counter.fetch_add(1));
}

struct arguments {
    std::string store;
    std::string services;
    std::size_t sagas = 200;
    std::uint64_t seed = 1;
    std::chrono::milliseconds start_interval{50};
};

bool parse(int argc, char** argv, arguments& a) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view k = argv[i];
        const std::string v = argv[i + 1];
        if (k == "--store")
            a.store = v;
        else if (k == "--services")
            a.services = v;
        else if (k == "--sagas")
            a.sagas = std::stoul(v);
        else if (k == "--seed")
            a.seed = std::stoull(v);
        else if (k == "--start-interval-ms")
            a.start_interval = std::chrono::milliseconds{std::stol(v)};
        else
            return false;
    }
    return argc % 2 == 1 && !a.store.empty() && !a.services.empty() && a.sagas > 0;
}

int run(const arguments& args) {
    services_db sdb(args.services, args.seed);

    auto opened = saga::sqlite::sqlite_journal_store::open(
        {.path = args.store, .sync = saga::sqlite::synchronous::full});
    if (!opened) {
        fmt::print(stderr, "crash_driver: cannot open the store: {}\n", opened.error().what());
        return 1;
    }
    std::shared_ptr<saga::sqlite::sqlite_journal_store> store = opened.value();
    auto clock = std::make_shared<saga::system_clock>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
    saga::engine engine(
        store, transport,
        {.workers = 2, .clock = clock, .default_remote_timeout = 300ms, .seed = args.seed});
    auto def = crash_trip();
    if (!def) {
        fmt::print(stderr, "crash_driver: invalid definition: {}\n", def.error().what());
        return 1;
    }
    if (auto r = engine.add(def.value()); !r) {
        fmt::print(stderr, "crash_driver: {}\n", r.error().what());
        return 1;
    }

    // The services run on their own threads, so that their fsyncs do not hold the engine's.
    boost::asio::thread_pool service_threads(2);
    std::vector<std::unique_ptr<saga::subscription>> subscriptions;
    std::atomic<long> service_errors{0};
    for (const auto& s : crash::services) {
        auto sub = transport->consume(
            std::string(s.endpoint), service_threads.get_executor(),
            [&sdb, &s, &service_errors, t = transport.get()](std::shared_ptr<saga::delivery> d) {
                const saga::envelope& e = d->message();
                if (e.kind != saga::message_kind::command &&
                    e.kind != saga::message_kind::compensation) {
                    d->ack();
                    return;
                }
                saga::participant_reply r;
                try {
                    r = sdb.handle(s, e);
                } catch (const std::exception& ex) {
                    ++service_errors;
                    fmt::print(stderr, "crash_driver: {} failed on {}: {}\n", s.endpoint,
                               e.idempotency_key, ex.what());
                    d->nack(100ms);
                    return;
                }
                if (e.reply_to.empty()) {
                    d->ack();
                    return;
                }
                saga::envelope out;
                out.message_id = new_message_id();
                out.kind = saga::message_kind::reply;
                out.type = e.type;
                out.saga_id = e.saga_id;
                out.step = e.step;
                out.attempt = e.attempt;
                out.idempotency_key = e.idempotency_key;
                out.correlation_id = e.correlation_id;
                out.traceparent = e.traceparent;
                out.status = r.status;
                out.error = r.error;
                out.payload = r.payload;
                t->async_send(e.reply_to, std::move(out), [d](saga::result<void> sent) {
                    if (sent)
                        d->ack();
                    else
                        d->nack(100ms);
                });
            },
            {.visibility_timeout = 5s});
        if (!sub) {
            fmt::print(stderr, "crash_driver: cannot consume {}: {}\n", s.endpoint,
                       sub.error().what());
            return 1;
        }
        subscriptions.push_back(std::move(sub).value());
    }

    std::thread runner([&] {
        if (auto r = engine.run(); !r)
            fmt::print(stderr, "crash_driver: run failed: {}\n", r.error().what());
    });

    // Starts, in order. A saga already in the store (from an earlier run) is started again at
    // once (idempotent: nothing happens); a new one is paced, so that the work spreads over
    // seconds and a kill can land at any step of any saga.
    const auto start = std::chrono::steady_clock::now();
    std::size_t reissued = 0;
    for (std::size_t i = 0; i < args.sagas; ++i) {
        const auto id = crash::saga_id(args.seed, i);
        const bool known = store->load(id).has_value();
        trip data{.customer = fmt::format("customer-{}", i),
                  .amount = 100 + static_cast<int>(i % 50)};
        for (int tries = 0;; ++tries) {
            auto started = engine.start("crash_trip", data, {.id = id});
            if (started) break;
            if (tries == 50) {
                fmt::print(stderr, "crash_driver: start {} failed: {}\n", id,
                           started.error().what());
                std::fflush(stderr);
                std::_Exit(1);
            }
            std::this_thread::sleep_for(20ms);
        }
        if (known)
            ++reissued;
        else
            std::this_thread::sleep_for(args.start_interval);
    }

    // Until every saga is settled.
    std::map<saga::saga_status, std::size_t> counts;
    for (;;) {
        auto all = store->list({.limit = args.sagas + 1000});
        if (all) {
            counts.clear();
            std::size_t settled = 0;
            for (const auto& r : all.value()) {
                ++counts[r.status];
                if (saga::is_settled(r.status)) ++settled;
            }
            if (all.value().size() >= args.sagas && settled == all.value().size()) break;
        }
        std::this_thread::sleep_for(50ms);
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);

    for (auto& s : subscriptions) s->stop();
    engine.stop();
    runner.join();
    service_threads.join();

    const auto completed = counts[saga::saga_status::completed];
    const auto compensated = counts[saga::saga_status::compensated];
    const auto others = args.sagas - completed - compensated;
    fmt::print(
        "crash_driver: seed={} sagas={} completed={} compensated={} other={} restarted={} "
        "repeats={} "
        "service_errors={} ms={}\n",
        args.seed, args.sagas, completed, compensated, others, reissued, sdb.repeats(),
        service_errors.load(), ms.count());
    std::fflush(stdout);
    return others == 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
    arguments args;
    try {
        if (!parse(argc, argv, args)) {
            fmt::print(
                stderr,
                "usage: crash_driver --store saga.db --services services.db --sagas N --seed S "
                "[--start-interval-ms 50]\n");
            return 2;
        }
        return run(args);
    } catch (const std::exception& e) {
        fmt::print(stderr, "crash_driver: {}\n", e.what());
        return 1;
    }
}
