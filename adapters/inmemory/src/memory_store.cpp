#include <saga/inmemory/memory_store.hpp>

#include <algorithm>
#include <exception>
#include <string_view>
#include <utility>

namespace saga::inmemory {
namespace {

/// "saga 'id': ", the start of every message about one saga.
std::string about(std::string_view id) {
    std::string s = "saga '";
    s.append(id);
    s.append("': ");
    return s;
}

/// Whether `r` holds the lock on its correlation key.
bool holds_lock(const instance_record& r) noexcept {
    return r.exclusive && !r.correlation_key.empty() && !is_terminal(r.status);
}

/// The store failure reported when `op` threw (in practice only `std::bad_alloc`).
error failure(std::string_view op, const std::exception* e) noexcept {
    try {
        std::string msg = "in-memory store: ";
        msg.append(op);
        msg.append(" failed: ");
        msg.append(e != nullptr ? e->what() : "unknown exception");
        return {errc::store_failure, std::move(msg)};
    } catch (...) {
        return error{errc::store_failure};
    }
}

/// Runs `fn`, turning any exception into a store failure: nothing escapes the library.
template <class Fn>
auto guarded(std::string_view op, Fn&& fn) noexcept -> decltype(fn()) {
    try {
        return fn();
    } catch (const std::exception& e) {
        return failure(op, &e);
    } catch (...) {
        return failure(op, nullptr);
    }
}

}  // namespace

// A commit runs in two phases under the mutex: `stage_` does every allocation into private
// containers (an exception there leaves the store as it was), then `apply_` splices the
// prepared nodes into the store without allocating. So a commit is all or nothing even when
// memory runs out.
struct memory_store::staged_commit {
    std::string id;
    /// one node when the commit creates the record
    record_map new_record;
    /// the new record when the commit updates an existing one
    instance_record record;
    /// one node when the new record holds the lock on its correlation key
    lock_map new_lock;
    /// one node when the saga has no history yet
    history_map new_history;
    /// entries to append to existing history (its capacity is reserved)
    std::vector<history_entry> history;
    timer_map timers_set;
    std::vector<timer_key> timers_cleared;
    outbox_map outbox;
    outbox_index outbox_ids;
    std::uint64_t outbox_seq = 0;
    inbox_set inbox;
};

void memory_store::async_commit(transition t, commit_handler done) {
    result<void> outcome = commit_(t);
    if (done) {
        done(std::move(outcome));
    }
}

result<void> memory_store::commit_(transition& t) {
    try {
        std::lock_guard lock(mutex_);
        if (fail_next_ > 0) {
            --fail_next_;
            return fail_with_;
        }
        SAGA_TRY(check_(t));
        staged_commit staged = stage_(t);
        apply_(staged);
        return success();
    } catch (const std::exception& e) {
        return failure("commit", &e);
    } catch (...) {
        return failure("commit", nullptr);
    }
}

result<void> memory_store::check_(const transition& t) const {
    const instance_record& r = t.record;
    SAGA_TRY(check_transition(t));

    const auto it = records_.find(r.id);
    if (t.expected_version == 0) {
        if (it != records_.end()) {
            return error{errc::already_exists, about(r.id) + "already exists (at version " +
                                                   std::to_string(it->second.version) + ")"};
        }
    } else if (it == records_.end()) {
        return error{errc::version_conflict, about(r.id) + "expected version " +
                                                 std::to_string(t.expected_version) +
                                                 " but the store has no such saga"};
    } else if (it->second.version != t.expected_version) {
        return error{errc::version_conflict,
                     about(r.id) + "expected version " + std::to_string(t.expected_version) +
                         " but the store has " + std::to_string(it->second.version)};
    }

    for (const std::string& message_id : t.inbox) {
        if (inbox_.contains({r.id, message_id})) {
            return error{errc::duplicate_message,
                         about(r.id) + "message '" + message_id + "' was already consumed"};
        }
    }

    if (holds_lock(r)) {
        const auto lock = locks_.find(r.correlation_key);
        if (lock != locks_.end() && lock->second != r.id) {
            return error{errc::lock_held, about(r.id) + "correlation key '" + r.correlation_key +
                                              "' is locked by saga '" + lock->second + "'"};
        }
    }
    return success();
}

memory_store::staged_commit memory_store::stage_(transition& t) {
    staged_commit s;
    instance_record& r = t.record;
    s.id = r.id;

    for (history_entry& e : t.history) {
        if (e.saga_id.empty()) {
            e.saga_id = r.id;
        }
        if (e.version == 0) {
            e.version = r.version;
        }
    }
    if (const auto h = history_.find(r.id); h != history_.end()) {
        auto& entries = h->second;
        const std::size_t needed = entries.size() + t.history.size();
        if (entries.capacity() < needed) {
            // keep geometric growth: reserving exactly would copy the history on every commit
            entries.reserve(std::max(needed, 2 * entries.capacity()));
        }
        s.history = std::move(t.history);
    } else if (!t.history.empty()) {
        s.new_history.emplace(r.id, std::move(t.history));
    }

    for (timer_record& timer : t.timers_set) {
        if (timer.saga_id.empty()) {
            timer.saga_id = r.id;
        }
        timer_key key{timer.saga_id, timer.id};
        s.timers_set.insert_or_assign(std::move(key), std::move(timer));
    }
    s.timers_cleared.reserve(t.timers_cleared.size());
    for (std::string& id : t.timers_cleared) {
        s.timers_cleared.emplace_back(r.id, std::move(id));
    }

    std::uint64_t seq = outbox_seq_;
    for (outbox_record& o : t.outbox) {
        const std::string& message_id = o.message.message_id;
        if (outbox_index_.contains(message_id) || s.outbox_ids.contains(message_id)) {
            continue;  // already queued: the first copy stays
        }
        ++seq;
        s.outbox_ids.emplace(message_id, seq);
        s.outbox.emplace(seq, std::move(o));
    }
    s.outbox_seq = seq;

    for (std::string& message_id : t.inbox) {
        s.inbox.emplace(r.id, std::move(message_id));
    }

    if (holds_lock(r)) {
        s.new_lock.emplace(r.correlation_key, r.id);
    }
    if (t.expected_version == 0) {
        s.new_record.emplace(r.id, std::move(r));
    } else {
        s.record = std::move(r);
    }
    return s;
}

void memory_store::apply_(staged_commit& s) noexcept {
    const auto it = records_.find(s.id);

    // the lock first, while the old record is still there to say which key it held
    if (it != records_.end() && holds_lock(it->second)) {
        if (const auto lock = locks_.find(it->second.correlation_key);
            lock != locks_.end() && lock->second == s.id) {
            locks_.erase(lock);
        }
    }
    if (!s.new_lock.empty()) {
        auto inserted = locks_.insert(s.new_lock.extract(s.new_lock.begin()));
        if (!inserted.inserted) {
            inserted.position->second = std::move(inserted.node.mapped());
        }
    }

    if (!s.new_record.empty()) {
        records_.insert(s.new_record.extract(s.new_record.begin()));
    } else if (it != records_.end()) {
        it->second = std::move(s.record);
    }

    if (!s.new_history.empty()) {
        history_.insert(s.new_history.extract(s.new_history.begin()));
    } else if (!s.history.empty()) {
        if (const auto h = history_.find(s.id); h != history_.end()) {
            for (history_entry& e : s.history) {
                h->second.push_back(std::move(e));  // capacity reserved by stage_
            }
        }
    }

    while (!s.timers_set.empty()) {
        auto node = s.timers_set.extract(s.timers_set.begin());
        timers_.erase(node.key());
        timers_.insert(std::move(node));
    }
    for (const timer_key& key : s.timers_cleared) {
        timers_.erase(key);
    }

    outbox_.merge(s.outbox);
    outbox_index_.merge(s.outbox_ids);
    outbox_seq_ = s.outbox_seq;
    inbox_.merge(s.inbox);
    ++commits_;
}

result<instance_record> memory_store::load(std::string_view id) {
    return guarded("load", [&]() -> result<instance_record> {
        std::lock_guard lock(mutex_);
        const auto it = records_.find(id);
        if (it == records_.end()) {
            return error{errc::not_found, about(id) + "not found"};
        }
        return it->second;
    });
}

result<std::vector<instance_record>> memory_store::list(const list_filter& filter) {
    return guarded("list", [&]() -> result<std::vector<instance_record>> {
        std::vector<instance_record> out;
        std::lock_guard lock(mutex_);
        for (auto it = records_.upper_bound(filter.after_id);
             it != records_.end() && out.size() < filter.limit; ++it) {
            const instance_record& r = it->second;
            if (!filter.statuses.empty() &&
                std::find(filter.statuses.begin(), filter.statuses.end(), r.status) ==
                    filter.statuses.end()) {
                continue;
            }
            if (!filter.definition.empty() && r.definition != filter.definition) {
                continue;
            }
            if (!filter.correlation_key.empty() && r.correlation_key != filter.correlation_key) {
                continue;
            }
            if (filter.updated_after && r.updated_at < *filter.updated_after) {
                continue;
            }
            if (filter.updated_before && r.updated_at > *filter.updated_before) {
                continue;
            }
            out.push_back(r);
        }
        return out;
    });
}

result<std::vector<history_entry>> memory_store::history(std::string_view id) {
    return guarded("history", [&]() -> result<std::vector<history_entry>> {
        std::lock_guard lock(mutex_);
        const auto it = history_.find(id);
        if (it == history_.end()) {
            return std::vector<history_entry>{};
        }
        return it->second;
    });
}

result<std::vector<timer_record>> memory_store::timers(std::optional<time_point> due_before) {
    return guarded("timers", [&]() -> result<std::vector<timer_record>> {
        std::vector<timer_record> out;
        {
            std::lock_guard lock(mutex_);
            for (const auto& [key, timer] : timers_) {
                if (!due_before || timer.due <= *due_before) {
                    out.push_back(timer);
                }
            }
        }
        // the map is ordered by (saga id, timer id), so a stable sort keeps that for ties
        std::stable_sort(out.begin(), out.end(), [](const timer_record& a, const timer_record& b) {
            return a.due < b.due;
        });
        return out;
    });
}

result<std::vector<outbox_record>> memory_store::pending_outbox(std::size_t limit) {
    return guarded("pending_outbox", [&]() -> result<std::vector<outbox_record>> {
        std::vector<outbox_record> out;
        std::lock_guard lock(mutex_);
        for (auto it = outbox_.begin(); it != outbox_.end() && out.size() < limit; ++it) {
            out.push_back(it->second);
        }
        return out;
    });
}

result<void> memory_store::ack_outbox(std::span<const std::string> message_ids) {
    return guarded("ack_outbox", [&]() -> result<void> {
        std::lock_guard lock(mutex_);
        for (const std::string& message_id : message_ids) {
            const auto it = outbox_index_.find(message_id);
            if (it == outbox_index_.end()) {
                continue;
            }
            outbox_.erase(it->second);
            outbox_index_.erase(it);
        }
        return success();
    });
}

result<bool> memory_store::inbox_contains(std::string_view saga_id, std::string_view message_id) {
    return guarded("inbox_contains", [&]() -> result<bool> {
        std::pair<std::string, std::string> key{saga_id, message_id};
        std::lock_guard lock(mutex_);
        return inbox_.contains(key);
    });
}

void memory_store::fail_next_commits(std::size_t n, error e) {
    std::lock_guard lock(mutex_);
    fail_next_ = n;
    fail_with_ = std::move(e);
}

std::size_t memory_store::commits() const {
    std::lock_guard lock(mutex_);
    return commits_;
}

}  // namespace saga::inmemory
