// The replay property: over thousands of seeded random runs (failures, timeouts, duplicates,
// reordered replies, signals, operator actions, batches of inputs), the state after every
// decision equals the journal so far applied from scratch, and every run can be driven to a
// settled end with no overdue due time left behind.

#include <catch2/catch.hpp>

#include <random>

#include "machine/snapshot.hpp"
#include "machine_sim.hpp"

using namespace std::chrono_literals;
using saga::reply_status;
using saga::saga_status;
namespace machine = saga::machine;

namespace {

struct campaign {
    int validated = 0;
    int undone = 0;
    int announced = 0;
    std::vector<int> products{1, 2, 3, 4, 5};
    std::vector<std::string> replies;
    bool needs_approval = true;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(campaign, validated, undone, announced, products, replies,
                                   needs_approval)

saga::command cmd(const char* type) {
    return saga::command{type, {}};
}

// Shaped like the campaign-publishing saga, with every step kind and modifier in it.
saga::definition<campaign> publish(bool pivot) {
    auto b = saga::definition_builder<campaign>(pivot ? "publish_pivot" : "publish", 1);
    b.local("validate", [](campaign& c) { ++c.validated; })
        .compensate([](campaign& c) { ++c.undone; })
        .remote("reserve_budget", "budget", [](const campaign&) { return cmd("reserve"); })
        .on_reply([](campaign& c, const nlohmann::json&) -> saga::result<void> {
            c.replies.push_back("budget");
            if (c.replies.size() > 40)
                return saga::error{saga::errc::participant_permanent, "too many replies"};
            return saga::success();
        })
        .compensate_remote("budget", [](const campaign&) { return cmd("release"); })
        .retry(saga::retry_policy::exponential(3, 1s))
        .compensation_retry(saga::retry_policy::exponential(2, 1s))
        .for_each(
            "feed", [](const campaign& c) { return c.products; },
            [](saga::for_each_builder<campaign, int>& f) {
                f.remote("feeds", [](const campaign&, const int&) { return cmd("upload"); })
                    .compensate_remote("feeds",
                                       [](const campaign&, const int&) { return cmd("remove"); })
                    .chunk(2)
                    .concurrency(2)
                    .retry(saga::retry_policy::exponential(2, 500ms))
                    .on_failure(saga::for_each_policy::continue_on_failure);
            })
        .parallel(
            "submit",
            [](saga::parallel_builder<campaign>& p) {
                p.branch("google")
                    .remote("google", "google", [](const campaign&) { return cmd("submit"); })
                    .compensate_remote("google", [](const campaign&) { return cmd("withdraw"); })
                    .timeout(3s);
                p.branch("tiktok")
                    .remote("tiktok", "tiktok", [](const campaign&) { return cmd("submit"); })
                    .compensate_remote("tiktok", [](const campaign&) { return cmd("withdraw"); });
            })
        .wait("approval", "approved")
        .when([](const campaign& c) { return c.needs_approval; })
        .deadline(30s);
    if (pivot) {
        b.remote("activate", "campaigns", [](const campaign&) { return cmd("activate"); })
            .pivot()
            .retry(saga::retry_policy::exponential(2, 1s));
    } else {
        b.remote("activate", "campaigns", [](const campaign&) { return cmd("activate"); });
    }
    b.local("announce", [](campaign& c) { ++c.announced; });
    return std::move(b).build().value();
}

class run {
public:
    run(std::uint64_t seed, bool pivot)
        : rng_(seed), sim_(publish(pivot), campaign{.needs_approval = seed % 3 != 0}) {}

    /// One random thing happens; false when the run's check failed.
    bool step() {
        std::vector<machine::input> batch;
        const int n = pick(4) == 0 ? 1 + pick(3) : 1;
        for (int i = 0; i < n; ++i) {
            if (auto in = random_input()) batch.push_back(std::move(*in));
        }
        if (batch.empty()) batch.emplace_back(machine::tick_input{});
        sim_.feed(std::move(batch));
        return sim_.replay_matches() && nothing_overdue();
    }

    /// After a decision nothing is due at or before now, unless the saga is paused.
    [[nodiscard]] bool nothing_overdue() const {
        const auto& st = sim_.state();
        if (st.status == saga_status::paused) return true;
        const auto w = machine::wake_at(st);
        return !w || *w > sim_.now();
    }

    /// The end agrees with the units: a completed saga completed (or skipped) every step; a
    /// compensated or cancelled one left nothing completed that has a compensation, and
    /// nothing running.
    [[nodiscard]] bool consistent_end() const {
        const auto& st = sim_.state();
        for (const auto& [key, u] : st.units) {
            const auto* n = sim_.compiled().nodes.at(std::string(machine::base_name(key)));
            const bool has_undo =
                !n->compensation.empty() &&
                (n->kind != saga::detail::node_kind::for_each || machine::item_index(key));
            if (u.status == saga::step_status::running || u.status == saga::step_status::retrying ||
                u.status == saga::step_status::compensating)
                return false;
            if (st.status == saga_status::completed && !machine::item_index(key) &&
                u.status != saga::step_status::completed && u.status != saga::step_status::skipped)
                return false;
            if ((st.status == saga_status::compensated || st.status == saga_status::cancelled) &&
                has_undo &&
                (u.status == saga::step_status::completed ||
                 (u.uncertain && u.status == saga::step_status::failed)))
                return false;
        }
        return true;
    }

    /// Drives the run to a settled end the way a patient operator and healthy participants
    /// would; false if it does not get there.
    bool settle() {
        for (int round = 0; round < 400; ++round) {
            const auto s = sim_.state().status;
            if (saga::is_terminal(s)) return consistent_end();
            if (s == saga_status::paused) {
                sim_.feed(op(machine::operator_action::resume));
            } else if (s == saga_status::failed || s == saga_status::compensation_failed) {
                sim_.feed(op(machine::operator_action::retry));
            } else if (!sim_.locals.empty()) {
                auto l = sim_.locals.front();
                sim_.locals.erase(sim_.locals.begin());
                sim_.feed(sim_.run_local(l));
            } else if (!sim_.sent.empty()) {
                auto e = sim_.sent.front();
                sim_.sent.erase(sim_.sent.begin());
                sim_.feed(saga::test::machine_sim::reply_to(e));
            } else if (s == saga_status::waiting) {
                sim_.feed(machine::signal_input{"approved", {}, {}});
            } else {
                sim_.advance(1s);
            }
            if (!sim_.replay_matches() || !nothing_overdue()) return false;
        }
        return false;
    }

    [[nodiscard]] const saga::test::machine_sim& sim() const { return sim_; }

private:
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

    static machine::input op(machine::operator_action a, std::string step = {}) {
        return machine::operator_input{a, "ops", "test", std::move(step)};
    }

    std::optional<machine::input> random_input() {
        switch (pick(12)) {
            case 0:
            case 1:
            case 2:
            case 3: {  // a reply, maybe a duplicate, maybe out of order, maybe a failure
                if (sim_.sent.empty()) return std::nullopt;
                const auto i = static_cast<std::size_t>(pick(static_cast<int>(sim_.sent.size())));
                const auto e = sim_.sent[i];
                if (pick(5) != 0) sim_.sent.erase(sim_.sent.begin() + static_cast<long>(i));
                const int kind = pick(10);
                const auto status = kind < 7   ? reply_status::success
                                    : kind < 9 ? reply_status::transient_failure
                                               : reply_status::permanent_failure;
                return saga::test::machine_sim::reply_to(e, status);
            }
            case 4:
            case 5: {  // a local step finishes
                if (sim_.locals.empty()) return std::nullopt;
                const auto i = static_cast<std::size_t>(pick(static_cast<int>(sim_.locals.size())));
                const auto l = sim_.locals[i];
                sim_.locals.erase(sim_.locals.begin() + static_cast<long>(i));
                return sim_.run_local(l);
            }
            case 6: {  // time passes
                sim_.advance(std::chrono::milliseconds{pick(4000)});
                return std::nullopt;
            }
            case 7:  // a signal, sometimes a redelivered one
                return machine::signal_input{"approved", {}, pick(2) ? "sig-1" : ""};
            case 8: {  // an operator
                static const machine::operator_action actions[] = {
                    machine::operator_action::pause,  machine::operator_action::resume,
                    machine::operator_action::cancel, machine::operator_action::retry,
                    machine::operator_action::skip,   machine::operator_action::release_lock};
                static const char* steps[] = {"validate", "reserve_budget", "feed[1]", "google",
                                              "approval", "activate",       "submit",  "nope"};
                return op(actions[pick(6)], steps[pick(8)]);
            }
            case 9: {  // a forged reply
                machine::reply_input r;
                r.unit = pick(2) ? "google" : "feed[0]";
                r.attempt = static_cast<std::uint32_t>(pick(4));
                r.dir = pick(2) ? saga::direction::forward : saga::direction::compensation;
                r.message_id = "forged";
                return r;
            }
            default: return std::nullopt;
        }
    }

    std::mt19937_64 rng_;
    saga::test::machine_sim sim_;
};

}  // namespace

TEST_CASE("replaying the journal reproduces the state after every decision, over 2,000 runs",
          "[machine][replay]") {
    int failures = 0;
    std::size_t decisions = 0;
    std::map<saga_status, int> ends;
    for (std::uint64_t seed = 1; seed <= 2000; ++seed) {
        run r(seed, seed % 2 == 0);
        bool ok = true;
        const int steps = 10 + static_cast<int>(seed % 60);
        for (int i = 0; i < steps && ok; ++i) ok = r.step();
        if (ok) ok = r.settle();
        decisions += r.sim().journal().size();
        if (!ok) {
            ++failures;
            UNSCOPED_INFO("seed " << seed << " failed at status "
                                  << saga::to_string(r.sim().state().status));
            continue;
        }
        ends[r.sim().state().status]++;
        // A snapshot of the end state reads back as the same state.
        auto back = machine::decode_snapshot(machine::encode_snapshot(r.sim().state()));
        if (!back || !(back.value() == r.sim().state())) {
            ++failures;
            UNSCOPED_INFO("seed " << seed << ": the snapshot does not read back");
        }
        // Nothing is due after the end.
        if (machine::wake_at(r.sim().state())) {
            ++failures;
            UNSCOPED_INFO("seed " << seed << " ended with a due time left");
        }
    }
    CHECK(failures == 0);
    CHECK(decisions > 20000);
    // The runs reach every terminal status.
    CHECK(ends[saga_status::completed] > 0);
    CHECK(ends[saga_status::compensated] > 0);
    CHECK(ends[saga_status::cancelled] > 0);
}

TEST_CASE("the same seed gives the same journal, run after run", "[machine][replay]") {
    for (std::uint64_t seed : {3u, 17u, 404u}) {
        run a(seed, true);
        run b(seed, true);
        for (int i = 0; i < 60; ++i) {
            REQUIRE(a.step());
            REQUIRE(b.step());
        }
        REQUIRE(a.settle());
        REQUIRE(b.settle());
        REQUIRE(a.sim().journal().size() == b.sim().journal().size());
        for (std::size_t i = 0; i < a.sim().journal().size(); ++i)
            CHECK(a.sim().journal()[i].events == b.sim().journal()[i].events);
    }
}
