#include <catch2/catch.hpp>

#include <saga/definition.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

struct trip {
    std::string traveller;
    int budget = 0;
    std::vector<std::string> cities;
    std::vector<std::string> log;
    bool approved = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(trip, traveller, budget, cities, log, approved)

using builder = saga::definition_builder<trip>;
using built = saga::result<saga::definition<trip>>;
using saga::detail::action;
using saga::detail::node;
using saga::detail::node_kind;

const auto noop = [](trip&) {};
const auto make_cmd = [](const trip&) { return saga::command{.type = "do", .payload = {}}; };

/// The message of a rejected build; fails the test unless build() said invalid_definition.
std::string rejected(const built& r) {
    REQUIRE_FALSE(r);
    CHECK(r.error() == saga::errc::invalid_definition);
    return r.error().message;
}

saga::step_context context(const std::string& step) {
    return {"trip-1", step, 1, "trip-1/" + step, "ada", saga::virtual_clock::default_start()};
}

/// Runs an awaitable (local_async) action to completion.
saga::result<void> run_async(const action& a, saga::detail::data_box& box,
                             saga::step_context& ctx) {
    REQUIRE(a.kind == action::how::local_async);
    boost::asio::io_context io;
    std::optional<saga::result<void>> out;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> { out.emplace(co_await a.async(box, nullptr, ctx)); },
        boost::asio::detached);
    io.run();
    REQUIRE(out.has_value());
    return *out;
}

const node& step_named(const std::vector<node>& steps, const std::string& name) {
    for (const auto& n : steps)
        if (n.name == name) return n;
    FAIL("no step named " << name);
    throw std::logic_error("unreachable");
}

}  // namespace

// ---- every mistake build() reports --------------------------------------------------------

TEST_CASE("a definition needs a name, a version and at least one step",
          "[definition][validation]") {
    SECTION("empty saga") {
        const auto msg = rejected(builder("trip").build());
        CHECK_THAT(msg, Contains("definition 'trip'") && Contains("has no steps"));
    }
    SECTION("empty definition name") {
        CHECK_THAT(rejected(builder("").local("a", noop).build()), Contains("needs a name"));
    }
    SECTION("version 0") {
        const auto msg = rejected(builder("trip", 0).local("a", noop).build());
        CHECK_THAT(msg, Contains("definition 'trip'") && Contains("version must be at least 1"));
    }
}

TEST_CASE("step names must be unique, non-empty and free of reserved characters",
          "[definition][validation]") {
    SECTION("duplicate top-level names") {
        const auto msg = rejected(builder("trip").local("a", noop).local("a", noop).build());
        CHECK_THAT(msg, Contains("duplicate step name 'a'"));
    }
    SECTION("duplicate names across parallel branches") {
        const auto msg = rejected(builder("trip")
                                      .parallel("book",
                                                [](auto& p) {
                                                    p.branch("x").local("same", noop);
                                                    p.branch("y").local("same", noop);
                                                })
                                      .build());
        CHECK_THAT(msg, Contains("duplicate step name 'same'"));
    }
    SECTION("a branch step named like a top-level step") {
        const auto msg =
            rejected(builder("trip")
                         .local("pay", noop)
                         .parallel("book", [](auto& p) { p.branch("x").local("pay", noop); })
                         .build());
        CHECK_THAT(msg, Contains("duplicate step name 'pay'"));
    }
    SECTION("a branch step named like its group") {
        const auto msg =
            rejected(builder("trip")
                         .parallel("book", [](auto& p) { p.branch("x").local("book", noop); })
                         .build());
        CHECK_THAT(msg, Contains("duplicate step name 'book'"));
    }
    SECTION("names of different kinds collide too") {
        const auto msg = rejected(builder("trip").local("a", noop).wait("a", "go").build());
        CHECK_THAT(msg, Contains("duplicate step name 'a'"));
    }
    SECTION("empty step name") {
        CHECK_THAT(rejected(builder("trip").local("a", noop).local("", noop).build()),
                   Contains("empty name"));
    }
    SECTION("reserved characters") {
        const std::string name = GENERATE(as<std::string>{}, "a[0]", "items]", "a/b", "x#1", "[");
        CAPTURE(name);
        const auto msg = rejected(builder("trip").local(name, noop).build());
        CHECK_THAT(msg, Contains("'" + name + "'") && Contains("may not contain"));
    }
}

TEST_CASE("the pivot is one top-level step with no compensation on or after it",
          "[definition][validation][pivot]") {
    const auto undo = [](trip&) {};
    SECTION("compensation after the pivot") {
        const auto msg = rejected(builder("trip")
                                      .local("charge", noop)
                                      .pivot()
                                      .local("ship", noop)
                                      .compensate(undo)
                                      .build());
        CHECK_THAT(msg, Contains("step 'ship'") && Contains("after the pivot"));
    }
    SECTION("remote compensation after the pivot") {
        const auto msg = rejected(builder("trip")
                                      .local("charge", noop)
                                      .pivot()
                                      .remote("ship", "shipping", make_cmd)
                                      .compensate_remote("shipping", make_cmd)
                                      .build());
        CHECK_THAT(msg, Contains("step 'ship'") && Contains("after the pivot"));
    }
    SECTION("compensation in a parallel branch after the pivot") {
        const auto msg = rejected(
            builder("trip")
                .local("charge", noop)
                .pivot()
                .parallel("notify",
                          [&](auto& p) { p.branch("mail").local("mail", noop).compensate(undo); })
                .build());
        CHECK_THAT(msg, Contains("step 'mail'") && Contains("after the pivot"));
    }
    SECTION("for-each compensation after the pivot") {
        const auto msg = rejected(builder("trip")
                                      .local("charge", noop)
                                      .pivot()
                                      .for_each(
                                          "visit", [](const trip& t) { return t.cities; },
                                          [](auto& f) {
                                              f.local([](trip&, const std::string&) {
                                               }).compensate([](trip&, const std::string&) {});
                                          })
                                      .build());
        CHECK_THAT(msg, Contains("step 'visit'") && Contains("after the pivot"));
    }
    SECTION("compensation on the pivot") {
        const auto msg =
            rejected(builder("trip").local("charge", noop).compensate(undo).pivot().build());
        CHECK_THAT(msg, Contains("step 'charge'") && Contains("is the pivot"));
    }
    SECTION("compensation added after marking the pivot") {
        const auto msg =
            rejected(builder("trip").local("charge", noop).pivot().compensate(undo).build());
        CHECK_THAT(msg, Contains("step 'charge'") && Contains("is the pivot"));
    }
    SECTION("two pivots") {
        const auto msg =
            rejected(builder("trip").local("a", noop).pivot().local("b", noop).pivot().build());
        CHECK_THAT(msg, Contains("step 'b'") && Contains("at most one pivot"));
    }
    SECTION("pivot inside a branch") {
        const auto msg =
            rejected(builder("trip")
                         .parallel("book", [](auto& p) { p.branch("x").local("in", noop).pivot(); })
                         .build());
        CHECK_THAT(msg, Contains("step 'in'") && Contains("top-level"));
    }
    SECTION("a wait cannot be the pivot") {
        const auto msg = rejected(builder("trip").wait("approval", "ok").pivot().build());
        CHECK_THAT(msg, Contains("pivot()") && Contains("'approval'"));
    }
}

TEST_CASE("parallel groups need named, distinct, non-empty branches",
          "[definition][validation][parallel]") {
    SECTION("parallel with no branch") {
        const auto msg = rejected(builder("trip").parallel("book", [](auto&) {}).build());
        CHECK_THAT(msg, Contains("parallel group 'book'") && Contains("no branch"));
    }
    SECTION("branch with no steps") {
        const auto msg = rejected(builder("trip")
                                      .parallel("book",
                                                [](auto& p) {
                                                    p.branch("flights").local("fly", noop);
                                                    p.branch("hotels");
                                                })
                                      .build());
        CHECK_THAT(msg, Contains("branch 'hotels'") && Contains("'book'") && Contains("no steps"));
    }
    SECTION("duplicate branch names") {
        const auto msg = rejected(builder("trip")
                                      .parallel("book",
                                                [](auto& p) {
                                                    p.branch("x").local("a", noop);
                                                    p.branch("x").local("b", noop);
                                                })
                                      .build());
        CHECK_THAT(msg, Contains("'book'") && Contains("two branches named 'x'"));
    }
    SECTION("empty branch name") {
        const auto msg =
            rejected(builder("trip")
                         .parallel("book", [](auto& p) { p.branch("").local("a", noop); })
                         .build());
        CHECK_THAT(msg, Contains("'book'") && Contains("empty name"));
    }
    SECTION("a mistake inside a nested group") {
        const auto msg =
            rejected(builder("trip")
                         .parallel("outer",
                                   [](auto& p) {
                                       p.branch("x").parallel("inner", [](auto& q) {
                                           q.branch("y").local("deep", noop).local("deep", noop);
                                       });
                                   })
                         .build());
        CHECK_THAT(msg, Contains("duplicate step name 'deep'"));
    }
}

TEST_CASE("wait steps need a signal and a consistent deadline", "[definition][validation][wait]") {
    SECTION("wait without signal") {
        const auto msg = rejected(builder("trip").wait("approval", "").build());
        CHECK_THAT(msg, Contains("wait step 'approval'") && Contains("no signal"));
    }
    SECTION("on_timeout without proceed") {
        const auto msg = rejected(builder("trip")
                                      .wait("approval", "approved")
                                      .deadline(1h)
                                      .on_timeout([](trip& t) { t.approved = true; })
                                      .build());
        CHECK_THAT(msg, Contains("wait step 'approval'") && Contains("on_deadline::proceed"));
    }
    SECTION("on_timeout without any deadline") {
        const auto msg =
            rejected(builder("trip").wait("approval", "approved").on_timeout([](trip&) {}).build());
        CHECK_THAT(msg, Contains("wait step 'approval'") && Contains("on_timeout()"));
    }
    SECTION("a deadline that is not positive") {
        const auto d = GENERATE(as<saga::duration>{}, 0ms, -5s);
        const auto msg = rejected(builder("trip").wait("approval", "approved").deadline(d).build());
        CHECK_THAT(msg, Contains("wait step 'approval'") && Contains("deadline must be positive"));
    }
}

TEST_CASE("modifiers apply to the step added last, of the right kind",
          "[definition][validation][modifiers]") {
    SECTION("a modifier with no step before it") {
        CHECK_THAT(
            rejected(builder("trip").retry(saga::retry_policy::none()).local("a", noop).build()),
            Contains("retry() must follow a step"));
        CHECK_THAT(rejected(builder("trip").compensate(noop).local("a", noop).build()),
                   Contains("compensate() must follow a step"));
        CHECK_THAT(rejected(builder("trip").pivot().local("a", noop).build()),
                   Contains("pivot() must follow a step"));
        CHECK_THAT(
            rejected(
                builder("trip").when([](const trip&) { return true; }).local("a", noop).build()),
            Contains("when() must follow a step"));
    }
    SECTION("a modifier first in a branch") {
        const auto msg = rejected(
            builder("trip")
                .parallel("book", [](auto& p) { p.branch("x").timeout(1s).local("a", noop); })
                .build());
        CHECK_THAT(msg, Contains("timeout() must follow a step"));
    }
    SECTION("on_reply after a local step") {
        const auto msg = rejected(builder("trip")
                                      .local("check", noop)
                                      .on_reply([](trip&, const nlohmann::json&) {})
                                      .build());
        CHECK_THAT(msg, Contains("on_reply()") && Contains("step 'check'"));
    }
    SECTION("deadline after a remote step") {
        const auto msg =
            rejected(builder("trip").remote("pay", "billing", make_cmd).deadline(1h).build());
        CHECK_THAT(msg, Contains("deadline()") && Contains("step 'pay'"));
    }
    SECTION("on_signal after a local step") {
        const auto msg = rejected(builder("trip")
                                      .local("check", noop)
                                      .on_signal([](trip&, const nlohmann::json&) {})
                                      .build());
        CHECK_THAT(msg, Contains("on_signal()") && Contains("step 'check'"));
    }
    SECTION("on_timeout after a remote step") {
        const auto msg =
            rejected(builder("trip").remote("pay", "billing", make_cmd).on_timeout(noop).build());
        CHECK_THAT(msg, Contains("on_timeout()") && Contains("step 'pay'"));
    }
    SECTION("compensate after a wait") {
        const auto msg = rejected(builder("trip").wait("approval", "ok").compensate(noop).build());
        CHECK_THAT(msg, Contains("compensate()") && Contains("step 'approval'"));
    }
    SECTION("compensate_remote after a parallel group") {
        const auto msg =
            rejected(builder("trip")
                         .parallel("book", [](auto& p) { p.branch("x").local("a", noop); })
                         .compensate_remote("billing", make_cmd)
                         .build());
        CHECK_THAT(msg, Contains("compensate_remote()") && Contains("step 'book'"));
    }
    SECTION("retry after a wait") {
        const auto msg = rejected(
            builder("trip").wait("approval", "ok").retry(saga::retry_policy::none()).build());
        CHECK_THAT(msg, Contains("retry()") && Contains("step 'approval'"));
    }
    SECTION("timeout after a for-each (it has its own)") {
        const auto msg =
            rejected(builder("trip")
                         .for_each(
                             "visit", [](const trip& t) { return t.cities; },
                             [](auto& f) { f.local([](trip&, const std::string&) {}); })
                         .timeout(1s)
                         .build());
        CHECK_THAT(msg, Contains("timeout()") && Contains("step 'visit'"));
    }
    SECTION("compensation_retry after a wait") {
        const auto msg = rejected(builder("trip")
                                      .wait("approval", "ok")
                                      .compensation_retry(saga::retry_policy::none())
                                      .build());
        CHECK_THAT(msg, Contains("compensation_retry()") && Contains("step 'approval'"));
    }
    SECTION("the first mistake is the one reported") {
        const auto msg = rejected(builder("trip")
                                      .local("a", noop)
                                      .deadline(1s)
                                      .remote("b", "billing", make_cmd)
                                      .on_signal([](trip&, const nlohmann::json&) {})
                                      .build());
        CHECK_THAT(msg, Contains("deadline()") && Contains("step 'a'"));
    }
}

TEST_CASE("remote steps and compensations need an endpoint", "[definition][validation][remote]") {
    SECTION("command") {
        const auto msg = rejected(builder("trip").remote("pay", "", make_cmd).build());
        CHECK_THAT(msg, Contains("step 'pay'") && Contains("no endpoint"));
    }
    SECTION("compensation") {
        const auto msg = rejected(builder("trip")
                                      .remote("pay", "billing", make_cmd)
                                      .compensate_remote("", make_cmd)
                                      .build());
        CHECK_THAT(msg, Contains("step 'pay'") && Contains("compensation has no endpoint"));
    }
    SECTION("for-each item command") {
        const auto msg =
            rejected(builder("trip")
                         .for_each(
                             "notify", [](const trip& t) { return t.cities; },
                             [](auto& f) {
                                 f.remote("", [](const trip&, const std::string& c) {
                                     return saga::command{.type = "mail", .payload = c};
                                 });
                             })
                         .build());
        CHECK_THAT(msg, Contains("step 'notify'") && Contains("no endpoint"));
    }
}

TEST_CASE("for-each steps need an item action and a concurrency of at least 1",
          "[definition][validation][for_each]") {
    const auto cities = [](const trip& t) { return t.cities; };
    SECTION("for-each without action") {
        const auto msg = rejected(builder("trip").for_each("visit", cities, [](auto&) {}).build());
        CHECK_THAT(msg, Contains("for-each step 'visit'") && Contains("no item action"));
    }
    SECTION("for-each with only a compensation") {
        const auto msg =
            rejected(builder("trip")
                         .for_each("visit", cities,
                                   [](auto& f) { f.compensate([](trip&, const std::string&) {}); })
                         .build());
        CHECK_THAT(msg, Contains("for-each step 'visit'") && Contains("no item action"));
    }
    SECTION("concurrency 0") {
        const auto msg = rejected(
            builder("trip")
                .for_each("visit", cities,
                          [](auto& f) { f.local([](trip&, const std::string&) {}).concurrency(0); })
                .build());
        CHECK_THAT(msg, Contains("for-each step 'visit'") && Contains("concurrency"));
    }
    SECTION("a bad item retry policy") {
        const auto msg = rejected(
            builder("trip")
                .for_each("visit", cities,
                          [](auto& f) {
                              f.local([](trip&, const std::string&) {}).retry({.max_attempts = 0});
                          })
                .build());
        CHECK_THAT(msg, Contains("step 'visit'") && Contains("max_attempts"));
    }
    SECTION("a non-positive item timeout") {
        const auto msg = rejected(
            builder("trip")
                .for_each("visit", cities,
                          [](auto& f) { f.local([](trip&, const std::string&) {}).timeout(0ms); })
                .build());
        CHECK_THAT(msg, Contains("step 'visit'") && Contains("timeout must be positive"));
    }
}

TEST_CASE("retry policies, timeouts and defaults are validated",
          "[definition][validation][retry]") {
    SECTION("bad step retry policies") {
        // one bad field each; the error names it
        struct bad_policy {
            std::string field;
            saga::retry_policy policy;
        };
        const auto bad = GENERATE(values<bad_policy>({
            {"max_attempts", {.max_attempts = 0}},
            {"multiplier", {.multiplier = 0.5}},
            {"jitter", {.jitter = 2}},
            {"max_backoff", {.initial_backoff = 10s, .max_backoff = 1s}},
            {"initial_backoff", {.initial_backoff = -1ms}},
        }));
        CAPTURE(bad.field);
        const auto msg = rejected(builder("trip").local("pay", noop).retry(bad.policy).build());
        CHECK_THAT(msg, Contains("step 'pay'") && Contains(bad.field));
    }
    SECTION("bad compensation retry policy") {
        const auto msg = rejected(builder("trip")
                                      .local("pay", noop)
                                      .compensate(noop)
                                      .compensation_retry({.max_attempts = 0})
                                      .build());
        CHECK_THAT(msg, Contains("step 'pay'") && Contains("compensation retry") &&
                            Contains("max_attempts"));
    }
    SECTION("bad default retry") {
        const auto msg =
            rejected(builder("trip").default_retry({.multiplier = 0.1}).local("pay", noop).build());
        CHECK_THAT(msg, Contains("definition 'trip'") && Contains("default retry") &&
                            Contains("multiplier"));
    }
    SECTION("bad default compensation retry") {
        const auto msg = rejected(
            builder("trip").default_compensation_retry({.jitter = -1}).local("pay", noop).build());
        CHECK_THAT(msg, Contains("definition 'trip'") && Contains("default compensation retry") &&
                            Contains("jitter"));
    }
    SECTION("timeout <= 0") {
        const auto d = GENERATE(as<saga::duration>{}, 0ms, -1ms, -1h);
        const auto msg =
            rejected(builder("trip").remote("pay", "billing", make_cmd).timeout(d).build());
        CHECK_THAT(msg, Contains("step 'pay'") && Contains("timeout must be positive"));
    }
}

// ---- a valid definition and its model --------------------------------------------------------

namespace {

built complex_definition() {
    return builder("book_trip", 3)
        .default_retry(saga::retry_policy::exponential(4, 50ms))
        .local("validate",
               [](trip& t) -> saga::result<void> {
                   if (t.budget <= 0) return saga::permanent_error("no budget");
                   t.log.emplace_back("validate");
                   return saga::success();
               })
        .local("score",
               [](trip& t, saga::step_context& ctx) -> boost::asio::awaitable<void> {
                   t.log.emplace_back(ctx.step());
                   co_return;
               })
        .compensate([](trip& t) -> boost::asio::awaitable<saga::result<void>> {
            t.log.emplace_back("unscore");
            co_return saga::success();
        })
        .remote("reserve_budget", "billing",
                [](const trip& t) {
                    return saga::command{.type = "reserve", .payload = {{"amount", t.budget}}};
                })
        .on_reply([](trip& t, const nlohmann::json& r) {
            t.log.push_back(r.at("id").get<std::string>());
        })
        .compensate_remote("billing",
                           [](const trip&, saga::step_context& ctx) -> saga::result<saga::command> {
                               return saga::command{
                                   .type = "release",
                                   .payload = {{"key", std::string(ctx.idempotency_key())}}};
                           })
        .retry(saga::retry_policy::exponential(5, 100ms))
        .compensation_retry(saga::retry_policy::forever())
        .timeout(5s)
        .parallel("book",
                  [](saga::parallel_builder<trip>& p) {
                      p.branch("flights")
                          .remote("book_flight", "airline",
                                  [](const trip&) {
                                      return saga::command{.type = "book", .payload = {}};
                                  })
                          .compensate_remote("airline", [](const trip&) {
                              return saga::command{.type = "cancel", .payload = {}};
                          });
                      p.branch("hotels")
                          .local("book_hotel", [](trip& t) { t.log.emplace_back("hotel"); })
                          .compensate([](trip& t) { t.log.emplace_back("unhotel"); })
                          .local("confirm_hotel", noop);
                  })
        .wait("approval", "ManagerApproved")
        .deadline(48h, saga::on_deadline::proceed)
        .on_signal(
            [](trip& t, const nlohmann::json& payload) { t.approved = payload.value("ok", false); })
        .on_timeout([](trip& t) { t.approved = true; })
        .for_each(
            "visit", [](const trip& t) { return t.cities; },
            [](auto& f) {
                f.local([](trip& t, const std::string& city) { t.log.push_back("visit " + city); })
                    .compensate([](trip& t, const std::string& city) {
                        t.log.push_back("unvisit " + city);
                    })
                    .chunk(2)
                    .concurrency(2)
                    .on_failure(saga::for_each_policy::continue_on_failure)
                    .retry(saga::retry_policy::none())
                    .compensation_retry(saga::retry_policy::exponential(2, 1s))
                    .timeout(1s)
                    .on_results([](trip& t, std::span<const saga::item_result> r) {
                        t.log.push_back("results " + std::to_string(r.size()));
                    });
            })
        .local("charge", noop)
        .pivot()
        .for_each(
            "notify", [](const trip& t) { return t.cities; },
            [](auto& f) {
                f.remote("mailer", [](const trip& t, const std::string& city) {
                     return saga::command{.type = "mail",
                                          .payload = {{"to", t.traveller}, {"city", city}}};
                 }).on_reply([](trip& t, const std::string& city, const nlohmann::json&) {
                    t.log.push_back("mailed " + city);
                });
            })
        .local("archive", noop)
        .when([](const trip& t) { return t.approved; })
        .build();
}

trip sample_trip() {
    return {"ada", 1200, {"Paris", "Rome", "Oslo"}, {}, false};
}

}  // namespace

TEST_CASE("a definition with every kind of step builds", "[definition][model]") {
    const auto def = complex_definition();
    if (!def) FAIL(def.error().what());
    CHECK(def.value().name() == "book_trip");
    CHECK(def.value().version() == 3);

    const auto& m = *def.value().model();
    CHECK(m.name == "book_trip");
    CHECK(m.version == 3);
    CHECK(m.default_retry.max_attempts == 4);
    CHECK(m.default_retry.initial_backoff == 50ms);
    CHECK(m.default_compensation_retry.max_attempts == 10);  // the builder's default

    REQUIRE(m.steps.size() == 9);
    std::vector<std::string> names;
    std::vector<node_kind> kinds;
    for (const auto& n : m.steps) {
        names.push_back(n.name);
        kinds.push_back(n.kind);
    }
    CHECK(names == std::vector<std::string>{"validate", "score", "reserve_budget", "book",
                                            "approval", "visit", "charge", "notify", "archive"});
    CHECK(kinds == std::vector<node_kind>{node_kind::local, node_kind::local, node_kind::remote,
                                          node_kind::parallel, node_kind::wait, node_kind::for_each,
                                          node_kind::local, node_kind::for_each, node_kind::local});

    SECTION("local steps, sync and awaitable") {
        const auto& validate = step_named(m.steps, "validate");
        CHECK(validate.forward.kind == action::how::local);
        CHECK(validate.compensation.empty());
        CHECK_FALSE(validate.retry.has_value());
        const auto& score = step_named(m.steps, "score");
        CHECK(score.forward.kind == action::how::local_async);
        CHECK(score.compensation.kind == action::how::local_async);
    }
    SECTION("the remote step and its modifiers") {
        const auto& n = step_named(m.steps, "reserve_budget");
        CHECK(n.forward.kind == action::how::remote);
        CHECK(n.forward.endpoint == "billing");
        CHECK(static_cast<bool>(n.forward.make_command));
        CHECK(static_cast<bool>(n.forward.on_reply));
        CHECK(n.compensation.kind == action::how::remote);
        CHECK(n.compensation.endpoint == "billing");
        REQUIRE(n.retry.has_value());
        CHECK(n.retry->max_attempts == 5);
        CHECK(n.retry->initial_backoff == 100ms);
        REQUIRE(n.compensation_retry.has_value());
        CHECK(n.compensation_retry->max_attempts == saga::retry_policy::unlimited);
        CHECK(n.timeout == std::optional<saga::duration>(5s));
        CHECK_FALSE(n.pivot);
    }
    SECTION("the parallel group and its branches") {
        const auto& n = step_named(m.steps, "book");
        REQUIRE(n.branches.size() == 2);
        CHECK(n.branches[0].name == "flights");
        REQUIRE(n.branches[0].steps.size() == 1);
        CHECK(n.branches[0].steps[0].name == "book_flight");
        CHECK(n.branches[0].steps[0].kind == node_kind::remote);
        CHECK(n.branches[0].steps[0].forward.endpoint == "airline");
        CHECK(n.branches[0].steps[0].compensation.endpoint == "airline");
        CHECK(n.branches[1].name == "hotels");
        REQUIRE(n.branches[1].steps.size() == 2);
        CHECK(n.branches[1].steps[0].name == "book_hotel");
        CHECK(n.branches[1].steps[0].compensation.kind == action::how::local);
        CHECK(n.branches[1].steps[1].name == "confirm_hotel");
        CHECK(n.branches[1].steps[1].compensation.empty());
    }
    SECTION("the wait step") {
        const auto& n = step_named(m.steps, "approval");
        CHECK(n.signal == "ManagerApproved");
        CHECK(n.deadline == std::optional<saga::duration>(48h));
        CHECK(n.deadline_action == saga::on_deadline::proceed);
        CHECK(static_cast<bool>(n.on_signal));
        CHECK(static_cast<bool>(n.on_timeout));
        CHECK(n.forward.empty());
    }
    SECTION("the for-each steps") {
        const auto& visit = step_named(m.steps, "visit");
        CHECK(static_cast<bool>(visit.items));
        CHECK(visit.forward.kind == action::how::local);
        CHECK(visit.compensation.kind == action::how::local);
        CHECK(visit.chunk_size == 2);
        CHECK(visit.concurrency == 2);
        CHECK(visit.policy == saga::for_each_policy::continue_on_failure);
        REQUIRE(visit.retry.has_value());
        CHECK(visit.retry->max_attempts == 1);
        REQUIRE(visit.compensation_retry.has_value());
        CHECK(visit.compensation_retry->max_attempts == 2);
        CHECK(visit.timeout == std::optional<saga::duration>(1s));
        CHECK(static_cast<bool>(visit.on_results));

        const auto& notify = step_named(m.steps, "notify");
        CHECK(notify.forward.kind == action::how::remote);
        CHECK(notify.forward.endpoint == "mailer");
        CHECK(static_cast<bool>(notify.forward.on_reply));
        CHECK(notify.compensation.empty());
        CHECK(notify.chunk_size == 0);
        CHECK(notify.concurrency == 1);
        CHECK(notify.policy == saga::for_each_policy::fail_fast);
    }
    SECTION("exactly one pivot, where it was marked") {
        int pivots = 0;
        for (const auto& n : m.steps) pivots += n.pivot ? 1 : 0;
        CHECK(pivots == 1);
        CHECK(step_named(m.steps, "charge").pivot);
    }
    SECTION("a condition only where when() was used") {
        CHECK(static_cast<bool>(step_named(m.steps, "archive").when));
        CHECK_FALSE(static_cast<bool>(step_named(m.steps, "charge").when));
    }
}

TEST_CASE("the model's type-erased functions call the user's code", "[definition][model]") {
    const auto def = complex_definition();
    REQUIRE(def);
    const auto& m = *def.value().model();
    saga::detail::typed_box<trip> box(sample_trip());
    auto& data = box.value;

    SECTION("load reads the data from JSON, or says bad_data") {
        auto loaded = m.load(nlohmann::json(sample_trip()));
        REQUIRE(loaded);
        auto json = loaded.value()->to_json();
        REQUIRE(json);
        CHECK(json.value() == nlohmann::json(sample_trip()));
        auto bad = m.load(nlohmann::json{{"budget", "lots"}});
        REQUIRE_FALSE(bad);
        CHECK(bad.error() == saga::errc::bad_data);
    }
    SECTION("a sync local step returning a result") {
        auto ctx = context("validate");
        const auto& fn = step_named(m.steps, "validate").forward.local;
        CHECK(fn(box, nullptr, ctx));
        CHECK(data.log == std::vector<std::string>{"validate"});
        data.budget = 0;
        auto r = fn(box, nullptr, ctx);
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::participant_permanent);
        CHECK(r.error().message == "no budget");
    }
    SECTION("an awaitable local step and its awaitable compensation") {
        auto ctx = context("score");
        const auto& n = step_named(m.steps, "score");
        CHECK(run_async(n.forward, box, ctx));
        CHECK(run_async(n.compensation, box, ctx));
        CHECK(data.log == std::vector<std::string>{"score", "unscore"});
    }
    SECTION("a remote step's command, reply and compensation") {
        auto ctx = context("reserve_budget");
        const auto& n = step_named(m.steps, "reserve_budget");
        auto cmd = n.forward.make_command(box, nullptr, ctx);
        REQUIRE(cmd);
        CHECK(cmd.value().type == "reserve");
        CHECK(cmd.value().payload == nlohmann::json{{"amount", 1200}});
        CHECK(n.forward.on_reply(box, nullptr, nlohmann::json{{"id", "r-9"}}, ctx));
        CHECK(data.log == std::vector<std::string>{"r-9"});

        saga::step_context undo("trip-1", "reserve_budget", 1, "trip-1/reserve_budget/compensate",
                                "", saga::virtual_clock::default_start(), std::nullopt, true);
        auto release = n.compensation.make_command(box, nullptr, undo);
        REQUIRE(release);
        CHECK(release.value().type == "release");
        CHECK(release.value().payload.at("key") == "trip-1/reserve_budget/compensate");
    }
    SECTION("a reply handler that throws becomes step_threw") {
        auto ctx = context("reserve_budget");
        const auto& n = step_named(m.steps, "reserve_budget");
        auto r = n.forward.on_reply(box, nullptr, nlohmann::json::object(), ctx);  // no "id"
        REQUIRE_FALSE(r);
        CHECK(r.error() == saga::errc::step_threw);
        CHECK_THAT(r.error().message, Contains("reserve_budget"));
    }
    SECTION("the wait step's signal and timeout handlers") {
        auto ctx = context("approval");
        const auto& n = step_named(m.steps, "approval");
        CHECK(n.on_signal(box, nullptr, nlohmann::json{{"ok", true}}, ctx));
        CHECK(data.approved);
        data.approved = false;
        CHECK(n.on_timeout(box, nullptr, ctx));
        CHECK(data.approved);
    }
    SECTION("for-each items, item actions and results") {
        const auto& n = step_named(m.steps, "visit");
        auto items = n.items(box);
        REQUIRE(items);
        CHECK(items.value() == std::vector<nlohmann::json>{"Paris", "Rome", "Oslo"});

        saga::step_context ctx("trip-1", "visit[1]", 1, "trip-1/visit[1]", "",
                               saga::virtual_clock::default_start(), 1);
        const nlohmann::json rome = "Rome";
        CHECK(n.forward.local(box, &rome, ctx));
        CHECK(n.compensation.local(box, &rome, ctx));
        const std::vector<saga::item_result> results(3);
        CHECK(n.on_results(box, results));
        CHECK(data.log == std::vector<std::string>{"visit Rome", "unvisit Rome", "results 3"});

        const nlohmann::json not_a_city = 42;
        auto bad = n.forward.local(box, &not_a_city, ctx);
        REQUIRE_FALSE(bad);
        CHECK(bad.error() == saga::errc::bad_data);
    }
    SECTION("remote for-each items build one command each and apply their replies") {
        const auto& n = step_named(m.steps, "notify");
        auto ctx = context("notify[0]");
        const nlohmann::json paris = "Paris";
        auto cmd = n.forward.make_command(box, &paris, ctx);
        REQUIRE(cmd);
        CHECK(cmd.value().type == "mail");
        CHECK(cmd.value().payload == nlohmann::json{{"to", "ada"}, {"city", "Paris"}});
        CHECK(n.forward.on_reply(box, &paris, nlohmann::json::object(), ctx));
        CHECK(data.log == std::vector<std::string>{"mailed Paris"});
    }
    SECTION("a condition sees the data") {
        const auto& when = step_named(m.steps, "archive").when;
        CHECK_FALSE(when(box));
        data.approved = true;
        CHECK(when(box));
    }
}

TEST_CASE("exceptions from user code become step_threw carrying what()", "[definition][model]") {
    auto def =
        builder("boom")
            .local("explode", [](trip&) { throw std::runtime_error("kaboom"); })
            .remote("send", "x",
                    [](const trip&) -> saga::command { throw std::runtime_error("no command"); })
            .for_each(
                "each",
                [](const trip&) -> std::vector<int> { throw std::runtime_error("no items"); },
                [](auto& f) { f.local([](trip&, const int&) {}); })
            .build();
    REQUIRE(def);
    const auto& m = *def.value().model();
    saga::detail::typed_box<trip> box(sample_trip());

    auto ctx = context("explode");
    auto r = m.steps[0].forward.local(box, nullptr, ctx);
    REQUIRE_FALSE(r);
    CHECK(r.error() == saga::errc::step_threw);
    CHECK_THAT(r.error().message, Contains("explode") && Contains("kaboom"));

    auto send_ctx = context("send");
    auto c = m.steps[1].forward.make_command(box, nullptr, send_ctx);
    REQUIRE_FALSE(c);
    CHECK(c.error() == saga::errc::step_threw);
    CHECK_THAT(c.error().message, Contains("no command"));

    auto items = m.steps[2].items(box);
    REQUIRE_FALSE(items);
    CHECK(items.error() == saga::errc::step_threw);
    CHECK_THAT(items.error().message, Contains("no items"));
}

TEST_CASE("a builder kept in a variable builds the same way", "[definition]") {
    builder b("stepwise", 2);
    b.local("one", noop);
    b.remote("two", "svc", make_cmd).timeout(2s);
    b.local("three", noop).pivot();
    auto def = b.build();
    REQUIRE(def);
    CHECK(def.value().version() == 2);
    REQUIRE(def.value().model()->steps.size() == 3);
    CHECK(def.value().model()->steps[2].pivot);
}

TEST_CASE("definitions are cheap copies sharing one model", "[definition]") {
    auto def = builder("copyable").local("a", noop).build();
    REQUIRE(def);
    const saga::definition<trip> copy = def.value();
    CHECK(copy.model() == def.value().model());
    CHECK(copy.name() == "copyable");
}

TEST_CASE("steps after the pivot may not compensate but may retry and time out",
          "[definition][pivot]") {
    auto def = builder("after_pivot")
                   .local("reserve", noop)
                   .compensate(noop)
                   .remote("charge", "billing", make_cmd)
                   .pivot()
                   .remote("ship", "shipping", make_cmd)
                   .retry(saga::retry_policy::forever())
                   .timeout(30s)
                   .wait("delivered", "Delivered")
                   .deadline(24h)
                   .build();
    REQUIRE(def);
    CHECK(def.value().model()->steps[1].pivot);
}

TEST_CASE("a for-each step with on_reply on a local item action is refused",
          "[definition][for_each]") {
    auto r = saga::definition_builder<nlohmann::json>("each", 1)
                 .for_each(
                     "items",
                     [](const nlohmann::json&) {
                         return std::vector<int>{1, 2};
                     },
                     [](saga::for_each_builder<nlohmann::json, int>& e) {
                         e.on_reply([](nlohmann::json&, const int&, const nlohmann::json&) {
                          }).local([](nlohmann::json&, const int&) {});
                     })
                 .build();
    REQUIRE(!r);
    CHECK(r.error() == saga::errc::invalid_definition);
    CHECK(r.error().message.find("on_reply() applies to remote actions only") != std::string::npos);
}
