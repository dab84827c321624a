#include <catch2/catch.hpp>

#include <saga/clock.hpp>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// ---- virtual_clock ---------------------------------------------------------------------------

TEST_CASE("a virtual clock starts at 2026-01-01 and stands still", "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    const auto start = saga::virtual_clock::default_start();
    CHECK(clock.now() == start);
    CHECK(std::chrono::system_clock::to_time_t(start) == std::time_t{1767225600});
    CHECK(clock.now() == start);
    CHECK(clock.pending() == 0);
    CHECK_FALSE(clock.next_due().has_value());

    SECTION("or at the time it is given") {
        const saga::time_point other{std::chrono::seconds{1'000'000}};
        saga::virtual_clock c2(other);
        CHECK(c2.now() == other);
    }
}

TEST_CASE("advance runs due wake-ups in time order, each at its own time",
          "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    const auto t0 = clock.now();
    std::vector<std::string> ran;
    std::vector<saga::time_point> seen_at;
    auto record = [&](std::string what) {
        return [&, what] {
            ran.push_back(what);
            seen_at.push_back(clock.now());
        };
    };
    clock.call_at(t0 + 3s, record("c"));
    clock.call_at(t0 + 1s, record("a"));
    clock.call_at(t0 + 10s, record("later"));
    clock.call_at(t0 + 2s, record("b"));
    CHECK(clock.pending() == 4);
    CHECK(clock.next_due() == t0 + 1s);

    clock.advance(5s);
    CHECK(ran == std::vector<std::string>{"a", "b", "c"});
    CHECK(seen_at == std::vector<saga::time_point>{t0 + 1s, t0 + 2s, t0 + 3s});
    CHECK(clock.now() == t0 + 5s);
    CHECK(clock.pending() == 1);
    CHECK(clock.next_due() == t0 + 10s);

    clock.advance(4s);
    CHECK(ran.size() == 3);
    CHECK(clock.now() == t0 + 9s);

    clock.advance(1s);  // exactly due
    CHECK(ran.back() == "later");
    CHECK(clock.pending() == 0);
    CHECK_FALSE(clock.next_due().has_value());
}

TEST_CASE("wake-ups due at the same time run in the order they were scheduled",
          "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    std::vector<int> ran;
    for (int i = 0; i < 5; ++i) clock.call_at(clock.now() + 1s, [&ran, i] { ran.push_back(i); });
    clock.advance(1s);
    CHECK(ran == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("a wake-up scheduled by a wake-up runs in the same advance when it falls due",
          "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    const auto t0 = clock.now();
    std::vector<std::string> ran;
    clock.call_at(t0 + 1s, [&] {
        ran.push_back("first");
        clock.call_at(clock.now() + 1s, [&] { ran.push_back("inside"); });
        clock.call_at(clock.now() + 1h, [&] { ran.push_back("outside"); });
    });
    clock.advance(5s);
    CHECK(ran == std::vector<std::string>{"first", "inside"});
    CHECK(clock.pending() == 1);
}

TEST_CASE("a wake-up in the past runs on the next advance", "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    bool ran = false;
    clock.call_at(clock.now() - 1min, [&] { ran = true; });
    CHECK_FALSE(ran);  // nothing runs inside call_at
    clock.advance(0ms);
    CHECK(ran);
}

TEST_CASE("advance_to_next jumps to the earliest wake-up", "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    const auto t0 = clock.now();

    SECTION("with nothing pending it does nothing") {
        CHECK_FALSE(clock.advance_to_next());
        CHECK(clock.now() == t0);
    }
    SECTION("it runs the earliest wake-up and those due at the same time, no later ones") {
        std::vector<int> ran;
        clock.call_at(t0 + 7s, [&] { ran.push_back(2); });
        clock.call_at(t0 + 5s, [&] { ran.push_back(1); });
        clock.call_at(t0 + 5s, [&] { ran.push_back(11); });
        CHECK(clock.advance_to_next());
        CHECK(clock.now() == t0 + 5s);
        CHECK(ran == std::vector<int>{1, 11});
        CHECK(clock.advance_to_next());
        CHECK(clock.now() == t0 + 7s);
        CHECK(ran == std::vector<int>{1, 11, 2});
        CHECK_FALSE(clock.advance_to_next());
        CHECK(clock.now() == t0 + 7s);
    }
    SECTION("a wake-up in the past runs without moving time back") {
        clock.advance(1h);
        bool ran = false;
        clock.call_at(t0, [&] { ran = true; });
        CHECK(clock.advance_to_next());
        CHECK(ran);
        CHECK(clock.now() == t0 + 1h);
    }
}

TEST_CASE("a cancelled wake-up does not run", "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    const auto t0 = clock.now();
    std::vector<int> ran;
    const auto a = clock.call_at(t0 + 1s, [&] { ran.push_back(1); });
    const auto b = clock.call_at(t0 + 2s, [&] { ran.push_back(2); });
    CHECK(a != b);
    CHECK(clock.pending() == 2);

    clock.cancel(a);
    CHECK(clock.pending() == 1);
    CHECK(clock.next_due() == t0 + 2s);

    clock.cancel(a);        // twice: no effect
    clock.cancel(b + 100);  // unknown: no effect
    CHECK(clock.pending() == 1);

    clock.advance(10s);
    CHECK(ran == std::vector<int>{2});
    clock.cancel(b);  // already run: no effect
    CHECK(clock.pending() == 0);

    SECTION("a wake-up can cancel a later one") {
        ran.clear();
        saga::clock::timer_id later = 0;
        clock.call_at(clock.now() + 1s, [&] { clock.cancel(later); });
        later = clock.call_at(clock.now() + 2s, [&] { ran.push_back(3); });
        clock.advance(5s);
        CHECK(ran.empty());
    }
}

TEST_CASE("cancelling among many wake-ups keeps the rest in order, same times included",
          "[clock][virtual_clock]") {
    saga::virtual_clock clock;
    const auto t0 = clock.now();
    std::vector<int> ran;
    std::vector<saga::clock::timer_id> ids;
    for (int i = 0; i < 2000; ++i)  // ten wake-ups share each due time
        ids.push_back(clock.call_at(t0 + std::chrono::seconds{(i * 7) % 200},
                                    [&ran, i] { ran.push_back(i); }));
    for (std::size_t i = 0; i < ids.size(); i += 2) clock.cancel(ids[i]);
    CHECK(clock.pending() == 1000);
    clock.advance(1h);
    REQUIRE(ran.size() == 1000);
    for (std::size_t k = 0; k + 1 < ran.size(); ++k) {
        const auto due_a = (ran[k] * 7) % 200;
        const auto due_b = (ran[k + 1] * 7) % 200;
        CHECK(ran[k] % 2 == 1);
        // by due time, then in the order they were scheduled
        CHECK((due_a < due_b || (due_a == due_b && ran[k] < ran[k + 1])));
    }
    CHECK(clock.pending() == 0);
}

TEST_CASE("a virtual clock is usable through the clock interface", "[clock][virtual_clock]") {
    saga::virtual_clock vc;
    saga::clock& c = vc;
    bool ran = false;
    c.call_at(c.now() + 1s, [&] { ran = true; });
    vc.advance(1s);
    CHECK(ran);
}

// ---- system_clock ----------------------------------------------------------------------------

namespace {

/// Records calls and lets a test wait (bounded) for a number of them.
struct latch {
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<int> calls;

    void hit(int i) {
        std::lock_guard lock(mutex);
        calls.push_back(i);
        cv.notify_all();
    }
    bool wait_for(std::size_t n, std::chrono::seconds limit = 10s) {
        std::unique_lock lock(mutex);
        return cv.wait_for(lock, limit, [&] { return calls.size() >= n; });
    }
    std::vector<int> seen() {
        std::lock_guard lock(mutex);
        return calls;
    }
};

/// Holds the clock's thread inside a call until opened (at most 10 s), so that a test can
/// schedule and cancel while nothing fires: no assertion then depends on timing.
struct gate {
    std::mutex mutex;
    std::condition_variable cv;
    bool is_open = false;

    void pass() {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, 10s, [&] { return is_open; });
    }
    void open() {
        {
            std::lock_guard lock(mutex);
            is_open = true;
        }
        cv.notify_all();
    }
};

}  // namespace

TEST_CASE("the system clock tells the system time", "[clock][system_clock]") {
    saga::system_clock clock;
    const auto before = std::chrono::system_clock::now();
    const auto now = clock.now();
    const auto after = std::chrono::system_clock::now();
    CHECK(before <= now);
    CHECK(now <= after);
}

TEST_CASE("the system clock fires a scheduled call", "[clock][system_clock]") {
    latch l;
    saga::system_clock clock;
    clock.call_at(clock.now() + 20ms, [&] { l.hit(1); });
    REQUIRE(l.wait_for(1));
    CHECK(l.seen() == std::vector<int>{1});
}

TEST_CASE("the system clock fires calls in due order, whatever order they came in",
          "[clock][system_clock]") {
    latch l;
    gate g;
    saga::system_clock clock;
    clock.call_at(clock.now() - 1s, [&] {
        l.hit(0);
        g.pass();
    });
    REQUIRE(l.wait_for(1));  // the clock's thread is held in the gate
    clock.call_at(clock.now() + 30ms, [&] { l.hit(3); });
    clock.call_at(clock.now() + 10ms, [&] { l.hit(2); });
    clock.call_at(clock.now() - 1s, [&] { l.hit(1); });
    g.open();
    REQUIRE(l.wait_for(4));
    CHECK(l.seen() == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("the system clock does not fire a cancelled call", "[clock][system_clock]") {
    latch l;
    gate g;
    saga::system_clock clock;
    clock.call_at(clock.now() - 1s, [&] {
        l.hit(0);
        g.pass();
    });
    REQUIRE(l.wait_for(1));
    const auto id = clock.call_at(clock.now() - 1s, [&] { l.hit(1); });  // due, but held
    clock.cancel(id);
    clock.call_at(clock.now() + 10ms, [&] { l.hit(2); });
    g.open();
    REQUIRE(l.wait_for(2));
    CHECK(l.seen() == std::vector<int>{0, 2});
}

TEST_CASE("destroying the system clock drops calls not yet due", "[clock][system_clock]") {
    latch l;
    {
        saga::system_clock clock;
        clock.call_at(clock.now() + 1h, [&] { l.hit(1); });
    }  // must not wait an hour, nor run the call
    CHECK(l.seen().empty());
}
