#include <saga/clock.hpp>

#include <unordered_map>
#include <vector>

namespace saga {

// ---- system_clock ---------------------------------------------------------------------------

// The wake-up thread shares this with the clock, so that the clock may even be destroyed from a
// callback running on that thread (the thread is then detached and finishes on its own).
struct system_clock::shared {
    using calls_map = std::multimap<time_point, std::pair<timer_id, std::function<void()>>>;
    std::mutex mutex;
    std::condition_variable cv;
    calls_map calls;
    /// where each pending call sits in `calls`: `cancel` is O(1), not a walk of every timer
    std::unordered_map<timer_id, calls_map::iterator> index;
    timer_id next_id = 1;
    bool stopping = false;
};

system_clock::system_clock() : shared_(std::make_shared<shared>()) {
    thread_ = std::thread([s = shared_] { loop(s); });
}

system_clock::~system_clock() {
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stopping = true;
        shared_->calls.clear();
        shared_->index.clear();
    }
    shared_->cv.notify_all();
    if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
    } else {
        thread_.join();
    }
}

time_point system_clock::now() const {
    return std::chrono::system_clock::now();
}

clock::timer_id system_clock::call_at(time_point at, std::function<void()> fn) {
    std::lock_guard lock(shared_->mutex);
    const auto id = shared_->next_id++;
    const bool earliest = shared_->calls.empty() || at < shared_->calls.begin()->first;
    auto it = shared_->calls.emplace(at, std::pair{id, std::move(fn)});
    try {
        shared_->index.emplace(id, it);
    } catch (...) {
        shared_->calls.erase(it);
        throw;
    }
    if (earliest) shared_->cv.notify_all();
    return id;
}

void system_clock::cancel(timer_id id) {
    std::function<void()> dropped;  // destroyed outside the lock
    std::lock_guard lock(shared_->mutex);
    const auto found = shared_->index.find(id);
    if (found == shared_->index.end()) return;  // ran already, or never was
    dropped = std::move(found->second->second.second);
    shared_->calls.erase(found->second);
    shared_->index.erase(found);
}

void system_clock::loop(const std::shared_ptr<shared>& s) {
    std::unique_lock lock(s->mutex);
    while (!s->stopping) {
        if (s->calls.empty()) {
            s->cv.wait(lock);
            continue;
        }
        const auto due = s->calls.begin()->first;
        if (std::chrono::system_clock::now() < due) {
            s->cv.wait_until(lock, due);
            continue;
        }
        auto fn = std::move(s->calls.begin()->second.second);
        s->index.erase(s->calls.begin()->second.first);
        s->calls.erase(s->calls.begin());
        lock.unlock();
        fn();
        fn = nullptr;
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
    calls_.emplace(std::pair{at, id}, std::move(fn));
    due_.emplace(id, at);
    return id;
}

void virtual_clock::cancel(timer_id id) {
    std::lock_guard lock(mutex_);
    auto it = due_.find(id);
    if (it == due_.end()) return;  // ran already, or cancelled before
    calls_.erase(std::pair{it->second, id});
    due_.erase(it);
}

void virtual_clock::run_due(time_point until) {
    for (;;) {
        std::function<void()> fn;
        {
            std::lock_guard lock(mutex_);
            if (calls_.empty() || calls_.begin()->first.first > until) {
                if (now_ < until) now_ = until;
                return;
            }
            const auto [at, id] = calls_.begin()->first;
            if (now_ < at) now_ = at;
            fn = std::move(calls_.begin()->second);
            calls_.erase(calls_.begin());
            due_.erase(id);
        }
        fn();
    }
}

void virtual_clock::advance(duration d) {
    run_due(now() + d);
}

bool virtual_clock::advance_to_next() {
    auto due = next_due();
    if (!due) return false;
    run_due(std::max(*due, now()));
    return true;
}

std::optional<time_point> virtual_clock::next_due() const {
    std::lock_guard lock(mutex_);
    if (calls_.empty()) return std::nullopt;
    return calls_.begin()->first.first;
}

std::size_t virtual_clock::pending() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
}

std::optional<clock::timer_id> virtual_clock::next_id() const {
    std::lock_guard lock(mutex_);
    if (calls_.empty()) return std::nullopt;
    return calls_.begin()->first.second;
}

}  // namespace saga
