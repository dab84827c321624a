#pragma once
/// @file clock.hpp
/// Time as the engine sees it: an injectable clock that also schedules wake-ups, so that tests
/// can use `virtual_clock` and skip hours of backoff and deadlines in no wall time.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace saga {

/// Wall-clock time points: durable timers are stored as wall time so they survive restarts.
using time_point = std::chrono::system_clock::time_point;
/// Durations are milliseconds everywhere in the API.
using duration = std::chrono::milliseconds;

/// The engine's source of time and wake-ups. Implementations must be thread-safe.
class clock {
public:
    /// Identifies a scheduled call, for `cancel`.
    using timer_id = std::uint64_t;

    virtual ~clock() = default;
    /// The current time.
    [[nodiscard]] virtual time_point now() const = 0;
    /// Arranges for `fn` to be called once, at or after `at`, on an unspecified thread.
    /// `fn` must be quick: post real work to an executor.
    virtual timer_id call_at(time_point at, std::function<void()> fn) = 0;
    /// Cancels a scheduled call; a call already running or done is not affected.
    virtual void cancel(timer_id id) = 0;
};

/// The real clock: `std::chrono::system_clock`, with one thread that fires wake-ups.
class system_clock final : public clock {
public:
    system_clock();
    ~system_clock() override;
    system_clock(const system_clock&) = delete;
    system_clock& operator=(const system_clock&) = delete;

    [[nodiscard]] time_point now() const override;
    timer_id call_at(time_point at, std::function<void()> fn) override;
    void cancel(timer_id id) override;

private:
    struct shared;
    static void loop(const std::shared_ptr<shared>& s);
    std::shared_ptr<shared> shared_;
    std::thread thread_;
};

/// A clock for tests: time stands still until `advance` moves it, and then every wake-up that
/// falls due runs, in time order, on the thread that called `advance`.
class virtual_clock final : public clock {
public:
    /// Starts at `start` (by default 2026-01-01T00:00:00Z, so logs are stable).
    explicit virtual_clock(time_point start = default_start());

    [[nodiscard]] time_point now() const override;
    timer_id call_at(time_point at, std::function<void()> fn) override;
    void cancel(timer_id id) override;

    /// Moves time forward by `d`, running every wake-up that falls due on the way.
    void advance(duration d);
    /// Moves time to the earliest pending wake-up and runs it (and any due at the same time).
    /// Returns false, doing nothing, when no wake-up is pending.
    bool advance_to_next();
    /// The time of the earliest pending wake-up, if any.
    [[nodiscard]] std::optional<time_point> next_due() const;
    /// How many wake-ups are pending.
    [[nodiscard]] std::size_t pending() const;
    /// The id of the earliest pending wake-up (the first scheduled among those due together).
    [[nodiscard]] std::optional<timer_id> next_id() const;

    [[nodiscard]] static time_point default_start();

private:
    void run_due(time_point until);
    mutable std::mutex mutex_;
    time_point now_;
    /// by due time, then by id (the order they were scheduled in); and each id's due time, so
    /// that cancel finds its call in O(log n)
    std::map<std::pair<time_point, timer_id>, std::function<void()>> calls_;
    std::unordered_map<timer_id, time_point> due_;
    timer_id next_id_ = 1;
};

}  // namespace saga
