// Scenario: thousands of operator actions (pause, resume, cancel, retry, skip_step), signals and
// participant replies (some failing transiently or for good) interleaved at random over many
// bookings, on a virtual clock and a fault-injecting transport. Seeded: a failure prints its seed,
// and SAGA_TEST_SEED=<n> runs that seed alone. Single-threaded (run_until_idle, reproducible)
// and on worker threads (engine.run(), operators on several threads).
//
// At the end every saga is settled, its status agrees with its history, nothing started while it
// was paused, nothing a compensated saga acquired is still held, no timer is overdue, and no
// message is left unreleased.
#include "booking_saga.hpp"

#include <boost/asio/post.hpp>

#include <cstdlib>
#include <iomanip>
#include <random>
#include <sstream>
#include <thread>

using namespace saga;
using namespace saga::test;

namespace {

/// A participant's answer, decided by the seed and the command's idempotency key and attempt
/// only, so that it does not depend on the order things happen in.
behaviour chaotic(std::uint64_t seed, double permanent, double transient) {
    return [=](const envelope& e) {
        const auto h = std::hash<std::string>{}(std::to_string(seed) + "|" + e.idempotency_key +
                                                "|" + std::to_string(e.attempt));
        const double x = static_cast<double>(h % 10000) / 10000.0;
        if (x < permanent) return participant_reply::permanent("refused (chaos)");
        if (x < permanent + transient) return participant_reply::transient("busy (chaos)");
        return participant_reply::success();
    };
}

std::vector<std::uint64_t> seeds(std::initializer_list<std::uint64_t> defaults) {
    if (const char* s = std::getenv("SAGA_TEST_SEED"); s && *s) return {std::stoull(s)};
    return defaults;
}

/// The world of one run: the bookings, the operators' tallies, and what went wrong.
class chaos {
public:
    /// bookings open at a time (of `sagas` in all)
    static constexpr std::size_t open = 25;
    static constexpr const char* steps[] = {"reserve", "approve", "flight",
                                            "hotel",   "charge",  "ship"};

    chaos(std::uint64_t seed, std::size_t sagas, engine_options options)
        : seed_(seed),
          sagas_(sagas),
          w_(inmemory::fault_plan{.seed = seed,
                                  .drop_ack = 0.02,
                                  .duplicate = 0.05,
                                  .delay = 0.1,
                                  .max_delay = std::chrono::seconds{2},
                                  .reorder = 0.05},
             std::move(options)) {
        REQUIRE(w_.eng->add(booking_definition()));
        w_.resource_service("billing", "reserve", "release", chaotic(seed, 0.05, 0.10),
                            chaotic(seed + 1, 0.02, 0.20));
        w_.resource_service("flights", "book", "cancel", chaotic(seed + 2, 0.04, 0.10),
                            chaotic(seed + 3, 0.02, 0.20));
        w_.resource_service("hotels", "book", "cancel", chaotic(seed + 4, 0.04, 0.10),
                            chaotic(seed + 5, 0.02, 0.20));
        w_.resource_service("payments", "charge", "refund", chaotic(seed + 6, 0.04, 0.10));
        w_.resource_service("shipping", "ship", "unship", chaotic(seed + 7, 0.10, 0.20));
    }

    world& w() { return w_; }

    /// Starts booking `i`.
    void start(std::size_t i) {
        auto id = w_.eng->start("booking", booking{.customer = fmt_id(i)}, {.id = fmt_id(i)});
        if (!id) fail("start " + fmt_id(i) + ": " + id.error().what());
    }

    /// Starts bookings until about `open` are not settled (on one thread at a time).
    void top_up() {
        auto busy = w_.eng->list({.statuses = {saga_status::running, saga_status::waiting,
                                               saga_status::compensating, saga_status::paused}});
        if (!busy) return fail("list: " + busy.error().what());
        for (auto n = busy.value().size(); n < open && started_ < sagas_; ++n) {
            start(started_);
            ++started_;  // only now may operators pick it
        }
    }

    /// Starts the bookings not started yet.
    void start_the_rest() {
        for (auto i = started_.load(); i < sagas_; ++i) start(i);
        started_ = sagas_;
    }

    /// One random operator action or signal, mostly on a saga it can act on: retry and skip
    /// on one that waits for an operator (or any open one), the others on an open one.
    std::function<void()> random_action(std::mt19937_64& rng) {
        const auto pick = std::uniform_int_distribution<int>(0, 99)(rng);
        std::vector<saga_status> statuses{saga_status::running, saga_status::waiting,
                                          saga_status::compensating, saga_status::paused};
        if (pick >= 60 && pick < 76 && rng() % 2)
            statuses = {saga_status::failed, saga_status::compensation_failed};
        std::string id;
        if (rng() % 10 != 0) {
            auto candidates = w_.eng->list({.statuses = statuses});
            if (candidates && !candidates.value().empty())
                id = candidates.value()[rng() % candidates.value().size()].id;
        }
        if (id.empty())  // or any saga started so far
            id = fmt_id(std::uniform_int_distribution<std::size_t>(
                0, std::max<std::size_t>(started_, 1) - 1)(rng));
        const auto step = std::string(steps[std::uniform_int_distribution<std::size_t>(0, 5)(rng)]);
        const operator_note note{"chaos", "seed " + std::to_string(seed_)};
        auto* eng = w_.eng.get();
        if (pick < 25)
            return [=, this] { record("pause", eng->pause(id, note), {errc::saga_finished}); };
        if (pick < 50)
            return [=, this] {
                record("resume", eng->resume(id, note), {errc::invalid_state, errc::saga_finished});
            };
        if (pick < 60)
            return [=, this] {
                record("cancel", eng->cancel(id, note),
                       {errc::invalid_state, errc::past_pivot, errc::saga_finished});
            };
        if (pick < 68)
            return [=, this] {
                record("retry", eng->retry(id, note), {errc::invalid_state, errc::saga_finished});
            };
        if (pick < 76)
            return [=, this] {
                record("skip_step", eng->skip_step(id, step, note),
                       {errc::invalid_state, errc::saga_finished});
            };
        if (pick < 90)
            return [=, this] {
                record("signal", eng->signal(id, "approved", json{{"by", "chaos"}}),
                       {errc::saga_finished});
            };
        return [=, this] {
            record("signal", eng->signal(id, "unrelated", json{{"n", pick}}),
                   {errc::saga_finished});
        };
    }

    /// Moves the virtual clock on by a little, now and then past a wait's deadline.
    void advance_clock(std::mt19937_64& rng) {
        if (std::uniform_int_distribution<int>(0, 19)(rng) == 0) {
            w_.clock->advance(booking_deadline + std::chrono::minutes{1});
        } else {
            w_.clock->advance(duration{std::uniform_int_distribution<int>(0, 3000)(rng)});
        }
    }

    /// Resumes every paused saga (and settles) until none is paused.
    void resume_paused_and_settle() {
        for (int round = 0; round < 5; ++round) {
            auto paused = w_.eng->list({.statuses = {saga_status::paused}});
            REQUIRE(paused);
            if (paused.value().empty()) return;
            for (const auto& rec : paused.value())
                record("resume", w_.eng->resume(rec.id, {"chaos", "final resume"}), {});
            w_.settle();
        }
        FAIL("sagas stay paused after five rounds of resume (seed " << seed_ << ")");
    }

    /// Checks every saga against its history; `final`: no saga may be paused any more.
    void check(bool final) {
        INFO("seed " << seed_ << (final ? ", after the final resume" : ", before it"));
        {
            std::lock_guard lock(mutex_);
            INFO(errors_.size() << " unexpected results, the first: "
                                << (errors_.empty() ? "" : errors_.front()));
            CHECK(errors_.empty());
        }
        for (std::size_t i = 0; i < sagas_; ++i) check_saga(fmt_id(i), final);
        std::string overdue;
        std::size_t count = 0;
        for (const auto& saga_id : w_.overdue(w_.clock->now())) {
            // A paused saga's timers wait for its resume.
            if (!final && w_.eng->query(saga_id).value().status == saga_status::paused) continue;
            ++count;
            overdue += saga_id + " (history:";
            if (auto h = w_.eng->history(saga_id))
                for (const auto& e : h.value())
                    overdue += " " + e.event + (e.step.empty() ? "" : ":" + e.step);
            overdue += "); ";
        }
        INFO("overdue timers: " << overdue);
        CHECK(count == 0);
        // Every message has gone out, and the store knows it: loading an instance again
        // (a late duplicate reply) would send nothing twice.
        if (final) CHECK(w_.unreleased_messages() == 0);
    }

    /// How many times `action` succeeded.
    int succeeded(const std::string& action) {
        std::lock_guard lock(mutex_);
        return ok_[action];
    }

    std::uint64_t seed() const { return seed_; }

    /// Every saga's status and timeline (events, steps, attempts and virtual times), as one text.
    std::string digest() {
        std::string out;
        for (std::size_t i = 0; i < sagas_; ++i) {
            const auto id = fmt_id(i);
            out += id + " " + std::string(to_string(w_.eng->query(id).value().status)) + ":";
            auto h = w_.eng->history(id);
            REQUIRE(h);
            for (const auto& e : h.value())
                out += " " + e.event + "/" + e.step + "/" + std::to_string(e.attempt) + "@" +
                       std::to_string(e.at.time_since_epoch().count());
            out += "\n";
        }
        return out;
    }

private:
    static std::string fmt_id(std::size_t i) {
        std::ostringstream s;
        s << "b-" << std::setw(3) << std::setfill('0') << i;
        return s.str();
    }

    void fail(std::string what) {
        std::lock_guard lock(mutex_);
        errors_.push_back(std::move(what));
    }

    void record(const std::string& action, const result<void>& r,
                std::initializer_list<errc> allowed) {
        if (r) {
            std::lock_guard lock(mutex_);
            ++ok_[action];
            return;
        }
        // Under contention an operator action may give up after many concurrent updates.
        if (r.error() == errc::version_conflict) return;
        for (auto e : allowed)
            if (r.error() == e) return;
        fail(action + ": " + r.error().what());
    }

    void check_saga(const std::string& id, bool final) {
        auto v = w_.eng->query(id);
        REQUIRE(v);
        const auto status = v.value().status;
        auto h = w_.eng->history(id);
        REQUIRE(h);
        std::string timeline;
        for (const auto& e : h.value())
            timeline += e.event + (e.step.empty() ? "" : ":" + e.step) + " ";
        INFO("saga " << id << " is " << to_string(status) << "; history: " << timeline);

        CHECK(is_settled(status));
        if (final) CHECK(status != saga_status::paused);

        bool paused = false;
        bool started_while_paused = false;
        bool compensation = false;
        bool cancel = false;
        bool skipped = false;
        std::string last_settle;
        for (const auto& e : h.value()) {
            const auto& ev = e.event;
            if (ev == "saga_paused") paused = true;
            if (ev == "saga_resumed" || ev == "cancel_requested") paused = false;
            if (paused && (ev == "step_started" || ev == "compensation_step_started"))
                started_while_paused = true;
            if (ev == "compensation_started") compensation = true;
            if (ev == "cancel_requested") cancel = true;
            if (ev == "step_skipped_by_operator" || ev == "compensation_skipped") skipped = true;
            if (ev == "saga_completed" || ev == "saga_compensated" || ev == "saga_cancelled" ||
                ev == "saga_failed" || ev == "saga_compensation_failed")
                last_settle = ev;
        }
        CHECK(paused == (status == saga_status::paused));
        CHECK_FALSE(started_while_paused);
        const bool compensation_status =
            status == saga_status::compensating || status == saga_status::compensated ||
            status == saga_status::cancelled || status == saga_status::compensation_failed;
        if (compensation) CHECK((compensation_status || status == saga_status::paused));
        if (compensation_status) CHECK(compensation);
        if (status == saga_status::cancelled) CHECK(cancel);
        if (status == saga_status::compensated) CHECK_FALSE(cancel);
        if (status != saga_status::paused)
            CHECK(last_settle == "saga_" + std::string(to_string(status)));

        // A compensated saga holds nothing it acquired (unless an operator skipped a step or
        // a compensation). The pivot, `charge`, has no compensation; `ship` comes after it.
        if ((status == saga_status::compensated || status == saga_status::cancelled) && !skipped) {
            std::string held;
            for (const auto* endpoint : {"billing", "flights", "hotels"}) {
                auto& s = *w_.services[endpoint];
                std::lock_guard lock(s.mutex);
                const auto prefix = std::string(endpoint) + ":" + id + "/";
                for (auto it = s.held.lower_bound(prefix);
                     it != s.held.end() && it->first.starts_with(prefix); ++it)
                    held += it->first + " ";
            }
            INFO("still held: " << held);
            CHECK(held.empty());
        }
    }

    std::uint64_t seed_;
    std::size_t sagas_;
    world w_;
    std::atomic<std::size_t> started_{0};
    std::mutex mutex_;
    std::vector<std::string> errors_;
    std::map<std::string, int> ok_;
};

/// The tallies a run must reach for it to have tested anything.
void check_exercised(chaos& c) {
    INFO("seed " << c.seed());
    CHECK(c.succeeded("pause") > 30);
    CHECK(c.succeeded("resume") > 30);
    CHECK(c.succeeded("cancel") > 5);
    CHECK(c.succeeded("signal") > 30);
    CHECK(c.succeeded("skip_step") + c.succeeded("retry") > 0);
}

/// One run on this thread (run_until_idle between actions, half of which are posted between the
/// engine's handlers); returns its digest.
std::string run_on_one_thread(std::uint64_t seed) {
    chaos c(seed, 800, {.seed = seed, .log_level = log_level::off});
    auto& w = c.w();
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 3000; ++i) {
        if (i % 20 == 0) c.top_up();
        auto action = c.random_action(rng);
        if (rng() % 2) {
            boost::asio::post(w.eng->get_executor(), std::move(action));
        } else {
            action();
        }
        const auto next = rng() % 10;
        if (next < 3) w.eng->run_until_idle();
        if (next == 3) {
            c.advance_clock(rng);
            w.eng->run_until_idle();
        }
    }
    c.start_the_rest();
    w.settle();
    c.check(false);
    c.resume_paused_and_settle();
    c.check(true);
    check_exercised(c);
    return c.digest();
}

/// One run with the engine on three worker threads and operators on three threads of their own
/// (the first also moves the clock and starts sagas); settled on this thread at the end.
void run_on_threads(std::uint64_t seed) {
    chaos c(seed, 400, {.workers = 3, .seed = seed, .log_level = log_level::off});
    auto& w = c.w();
    c.top_up();
    bool ran = false;
    std::thread runner([&] { ran = w.eng->run().has_value(); });
    std::vector<std::thread> operators;
    for (std::uint64_t k = 0; k < 3; ++k) {
        operators.emplace_back([&c, seed, k] {
            std::mt19937_64 rng(seed * 100 + k);
            for (int i = 0; i < 1000; ++i) {
                if (k == 0 && i % 20 == 0) c.top_up();
                c.random_action(rng)();
                if (k == 0 && rng() % 8 == 0) c.advance_clock(rng);
            }
        });
    }
    for (auto& t : operators) t.join();
    c.start_the_rest();
    w.eng->stop();
    runner.join();
    CHECK(ran);
    w.settle();
    c.check(false);
    c.resume_paused_and_settle();
    c.check(true);
    check_exercised(c);
}

}  // namespace

TEST_CASE("randomized operator actions, signals and replies leave every saga consistent",
          "[engine][operations][races][randomized]") {
    SECTION("on one thread, reproducibly") {
        const auto all = seeds({1, 2});
        for (const auto seed : all) {
            const auto digest = run_on_one_thread(seed);
            if (seed == all.front()) {
                INFO("seed " << seed << " run twice");
                CHECK(run_on_one_thread(seed) == digest);
            }
        }
    }
    SECTION("on worker threads, with operators on several threads") {
        for (const auto seed : seeds({11})) run_on_threads(seed);
    }
}
