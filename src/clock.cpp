#include <saga/clock.hpp>

#include <vector>

namespace saga {

// ---- system_clock ---------------------------------------------------------------------------

system_clock::system_clock() : thread_([this] { loop(); }) {}

system_clock::~system_clock() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

time_point system_clock::now() const { return std::chrono::system_clock::now(); }

clock::timer_id system_clock::call_at(time_point at, std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    const auto id = next_id_++;
    const bool earliest = calls_.empty() || at < calls_.begin()->first;
    calls_.emplace(at, std::pair{id, std::move(fn)});
    if (earliest) cv_.notify_all();
    return id;
}

void system_clock::cancel(timer_id id) {
    std::lock_guard lock(mutex_);
    for (auto it = calls_.begin(); it != calls_.end(); ++it)
        if (it->second.first == id) {
            calls_.erase(it);
            return;
        }
}

void system_clock::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        if (calls_.empty()) {
            cv_.wait(lock);
            continue;
        }
        const auto due = calls_.begin()->first;
        if (std::chrono::system_clock::now() < due) {
            cv_.wait_until(lock, due);
            continue;
        }
        auto fn = std::move(calls_.begin()->second.second);
        calls_.erase(calls_.begin());
        lock.unlock();
        fn();
        lock.lock();
    }
}

// ---- virtual_clock --------------------------------------------------------------------------

time_point virtual_clock::default_start() {
    // 2026-01-01T00:00:00Z
    return time_point{std::chrono::seconds{1767225600}};
}

virtual_clock::virtual_clock(time_point start) : now_(start) {}

time_point virtual_clock::now() const {
    std::lock_guard lock(mutex_);
    return now_;
}

clock::timer_id virtual_clock::call_at(time_point at, std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    const auto id = next_id_++;
    calls_.emplace(at, std::pair{id, std::move(fn)});
    return id;
}

void virtual_clock::cancel(timer_id id) {
    std::lock_guard lock(mutex_);
    for (auto it = calls_.begin(); it != calls_.end(); ++it)
        if (it->second.first == id) {
            calls_.erase(it);
            return;
        }
}

void virtual_clock::run_due(time_point until) {
    for (;;) {
        std::function<void()> fn;
        {
            std::lock_guard lock(mutex_);
            if (calls_.empty() || calls_.begin()->first > until) {
                if (now_ < until) now_ = until;
                return;
            }
            if (now_ < calls_.begin()->first) now_ = calls_.begin()->first;
            fn = std::move(calls_.begin()->second.second);
            calls_.erase(calls_.begin());
        }
        fn();
    }
}

void virtual_clock::advance(duration d) { run_due(now() + d); }

bool virtual_clock::advance_to_next() {
    auto due = next_due();
    if (!due) return false;
    run_due(std::max(*due, now()));
    return true;
}

std::optional<time_point> virtual_clock::next_due() const {
    std::lock_guard lock(mutex_);
    if (calls_.empty()) return std::nullopt;
    return calls_.begin()->first;
}

std::size_t virtual_clock::pending() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
}

}  // namespace saga
