#pragma once
// Given/when/then harness for engine scenarios: a virtual clock, the in-memory store and
// transport (optionally fault-injecting), an engine, and simulated participant services that keep
// their own state so that tests can check "no orphan, no double effect".

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <cstdlib>
#include <string_view>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

namespace saga::test {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// What the services did, in order ("billing.reserve", "flights.cancel", "local.validate"...).
struct journal {
    std::mutex mutex;
    std::vector<std::string> entries;
    void add(std::string e) {
        std::lock_guard lock(mutex);
        entries.push_back(std::move(e));
    }
    std::vector<std::string> all() {
        std::lock_guard lock(mutex);
        return entries;
    }
    void clear() {
        std::lock_guard lock(mutex);
        entries.clear();
    }
};

/// A transport decorator that drops messages matching a predicate (to lose replies).
class dropping_transport final : public transport {
public:
    using predicate = std::function<bool(const std::string& endpoint, const envelope&)>;
    dropping_transport(std::shared_ptr<transport> inner, predicate drop)
        : inner_(std::move(inner)), drop_(std::move(drop)) {}
    void async_send(const std::string& endpoint, envelope m, send_handler done) override {
        if (drop_(endpoint, m)) {
            ++dropped;
            done(success());
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
                                                  boost::asio::any_io_executor ex,
                                                  delivery_handler h, consumer_options o) override {
        return inner_->consume(endpoint, std::move(ex), std::move(h), o);
    }
    std::atomic<int> dropped{0};

private:
    std::shared_ptr<transport> inner_;
    predicate drop_;
};

/// A simulated service with its own state: named resources held per idempotency key
/// ("reservations"), and a count of effects per idempotency key.
struct service_state {
    std::mutex mutex;
    std::map<std::string, json> held;    // resource id -> details
    std::map<std::string, int> effects;  // idempotency key -> times applied
    void apply(const std::string& key) {
        std::lock_guard lock(mutex);
        ++effects[key];
    }
    int max_effects() {
        std::lock_guard lock(mutex);
        int m = 0;
        for (auto& [k, v] : effects) m = std::max(m, v);
        return m;
    }
    std::size_t held_count() {
        std::lock_guard lock(mutex);
        return held.size();
    }
    bool holds(const std::string& id) {
        std::lock_guard lock(mutex);
        return held.contains(id);
    }
};

/// How a simulated command behaves: by default it succeeds.
using behaviour = std::function<participant_reply(const envelope&)>;

struct world {
    std::shared_ptr<virtual_clock> clock = std::make_shared<virtual_clock>();
    std::shared_ptr<inmemory::memory_journal_store> store =
        std::make_shared<inmemory::memory_journal_store>();
    std::shared_ptr<inmemory::memory_transport> transport;
    std::unique_ptr<engine> eng;
    std::vector<std::unique_ptr<participant>> participants;
    std::map<std::string, std::shared_ptr<service_state>> services;
    journal log;

    explicit world(inmemory::fault_plan faults = {}, engine_options options = {}) {
        transport = std::make_shared<inmemory::memory_transport>(clock, faults);
        options.clock = clock;
        restart(std::move(options));
    }

    /// A new engine on the same store and transport (the previous one, if any, is gone first).
    void restart(engine_options options = {}) {
        eng.reset();
        eng = another_engine(std::move(options));
    }

    /// One more engine on the world's store, transport and clock (beside `eng`).
    std::unique_ptr<engine> another_engine(engine_options options = {}) {
        options.clock = clock;
        return std::make_unique<engine>(store, transport, options);
    }

    // What the store holds, read past the engine.

    /// What the store says of instance `id` without the engine (which may not be able to read
    /// it: its definition version may be missing).
    struct stored_instance {
        saga_status status = saga_status::running;
        std::uint32_t definition_version = 0;
        std::uint64_t version = 0;
    };
    stored_instance stored(const std::string& id) {
        auto h = store->head(id);
        REQUIRE(h);
        auto records = store->journal(id);
        REQUIRE(records);
        // the head is written only when what it holds changes; the journal has every version
        return {h.value().status, h.value().definition_version,
                records.value().empty() ? h.value().version : records.value().back().version};
    }

    /// The stored version of instance `id`.
    std::uint64_t version_of(const std::string& id) { return stored(id).version; }

    /// How many forward attempts of `step` the store records as started.
    std::uint32_t attempts_recorded(const std::string& id, const std::string& step) {
        auto records = store->journal(id);
        REQUIRE(records);
        std::uint32_t n = 0;
        for (const auto& r : records.value())
            for (const auto& e : r.events)
                if (e.type == event_type::attempt_started && e.unit == step &&
                    e.dir == direction::forward)
                    n = std::max(n, e.attempt);
        return n;
    }

    /// Messages stored to be sent that the transport has not acknowledged, over all instances.
    std::size_t unreleased_messages() {
        auto heads = store->list({});
        REQUIRE(heads);
        std::size_t n = 0;
        for (const auto& h : heads.value()) {
            auto records = store->journal(h.id);
            REQUIRE(records);
            std::uint64_t released = 0;
            for (const auto& r : records.value()) released = std::max(released, r.released_through);
            for (const auto& r : records.value())
                if (r.version > released) n += r.output.size();
        }
        return n;
    }

    /// The ids of the instances the store holds, in id order.
    std::vector<std::string> instance_ids() {
        auto heads = store->list({});
        REQUIRE(heads);
        std::vector<std::string> ids;
        for (const auto& h : heads.value()) ids.push_back(h.id);
        return ids;
    }

    /// The instances whose wake-up time has come by `at` (due times are part of the state:
    /// a timer exists exactly as long as the state that needs it).
    std::vector<std::string> overdue(time_point at) {
        auto due = store->due(at, 1000000);
        REQUIRE(due);
        return due.value();
    }
    std::size_t overdue_at(time_point at) { return overdue(at).size(); }

    /// A service at `endpoint` that holds a resource on `acquire` and frees it on `release`.
    /// `acquire_behaviour` may fail the acquire (transient/permanent); the release can be made to
    /// fail with `release_behaviour`. Replies to acquire with {"id": <resource id>}.
    service_state& resource_service(const std::string& endpoint, const std::string& acquire,
                                    const std::string& release, behaviour acquire_behaviour = {},
                                    behaviour release_behaviour = {},
                                    std::shared_ptr<saga::transport> via = nullptr) {
        auto state = std::make_shared<service_state>();
        services[endpoint] = state;
        auto p = std::make_unique<participant>(via ? via : transport, endpoint);
        p->on(acquire, [this, state, endpoint, acquire, acquire_behaviour](const envelope& e) {
            if (acquire_behaviour) {
                auto r = acquire_behaviour(e);
                if (r.status != reply_status::success) return r;
            }
            state->apply(e.idempotency_key);
            const std::string id = endpoint + ":" + e.idempotency_key;
            {
                std::lock_guard lock(state->mutex);
                state->held[id] = e.payload;
            }
            log.add(endpoint + "." + acquire);
            return participant_reply::success(json{{"id", id}});
        });
        p->on(release, [this, state, endpoint, release, release_behaviour](const envelope& e) {
            if (release_behaviour) {
                auto r = release_behaviour(e);
                if (r.status != reply_status::success) return r;
            }
            state->apply(e.idempotency_key);
            // Undo by the forward command's idempotency key: the reply that carried the resource
            // id may never have reached the saga.
            const auto it = e.headers.find("compensates");
            const auto id = it != e.headers.end() ? endpoint + ":" + it->second
                                                  : e.payload.value("id", std::string());
            {
                std::lock_guard lock(state->mutex);
                state->held.erase(id);
            }
            log.add(endpoint + "." + release);
            return participant_reply::success();
        });
        REQUIRE(p->start(eng->get_executor()));
        participants.push_back(std::move(p));
        return *state;
    }

    /// Runs until nothing is left to do, skipping virtual time.
    void settle() { REQUIRE(eng->run_until_settled()); }

    std::vector<std::string> events_of(const std::string& id) {
        auto h = eng->history(id);
        REQUIRE(h);
        std::vector<std::string> out;
        for (const auto& e : h.value())
            out.push_back(e.event + (e.step.empty() ? "" : ":" + e.step));
        return out;
    }

    instance_view view(const std::string& id) {
        auto v = eng->query(id);
        REQUIRE(v);
        return v.value();
    }
};

/// Fails every call with a transient error the first `n` times, then succeeds.
inline behaviour fail_transiently(int n) {
    auto count = std::make_shared<std::atomic<int>>(0);
    return [count, n](const envelope&) {
        if (count->fetch_add(1) < n) return participant_reply::transient("busy, try later");
        return participant_reply::success();
    };
}
/// Always fails permanently.
inline behaviour fail_permanently(std::string why = "refused") {
    return [why](const envelope&) { return participant_reply::permanent(why); };
}

inline std::size_t count_of(const std::vector<std::string>& v, const std::string& what) {
    return static_cast<std::size_t>(std::count(v.begin(), v.end(), what));
}

}  // namespace saga::test
