#include <saga/inmemory/memory_journal_store.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace saga::inmemory {

void memory_journal_store::async_commit(journal_write w, journal_commit_handler done) {
    result<void> r = success();
    {
        std::lock_guard lock(mutex_);
        r = commit_(w);
        if (r) ++commits_;
    }
    if (done) done(std::move(r));
}

result<void> memory_journal_store::check_lock_(const instance_head& h) const {
    if (!h.exclusive || h.correlation_key.empty() || is_terminal(h.status)) return success();
    for (const auto& [id, rows] : instances_) {
        const auto& o = rows.head;
        if (id != h.id && o.exclusive && !is_terminal(o.status) &&
            o.correlation_key == h.correlation_key)
            return error{errc::lock_held,
                         fmt::format("saga '{}': correlation key '{}' is locked by saga '{}'", h.id,
                                     h.correlation_key, id)};
    }
    return success();
}

result<void> memory_journal_store::commit_(journal_write& w) {
    SAGA_TRY(check_journal_write(w));
    if (fail_next_ > 0) {
        --fail_next_;
        return fail_with_;
    }
    auto& r = w.record;
    auto it = instances_.find(r.saga_id);
    if (r.version == 1) {
        if (it != instances_.end())
            return error{errc::already_exists,
                         fmt::format("saga '{}': already exists (at version {})", r.saga_id,
                                     it->second.records.back().version)};
        SAGA_TRY(check_lock_(*w.head));
        auto& rows = instances_[r.saga_id];
        rows.head = std::move(*w.head);
        rows.records.push_back(std::move(r));
        return success();
    }
    if (it == instances_.end())
        return error{errc::not_found,
                     fmt::format("saga '{}': record {} for an unknown saga", r.saga_id, r.version)};
    const auto newest = it->second.records.back().version;
    if (newest + 1 != r.version)
        return error{errc::version_conflict,
                     fmt::format("saga '{}': record {} does not follow the store's newest, {}",
                                 r.saga_id, r.version, newest)};
    if (w.head) {
        SAGA_TRY(check_lock_(*w.head));
        it->second.head = std::move(*w.head);
    }
    it->second.records.push_back(std::move(r));
    return success();
}

result<loaded_instance> memory_journal_store::load(std::string_view id) {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(id);
    if (it == instances_.end())
        return error{errc::not_found, fmt::format("saga '{}': not found", id)};
    const auto& records = it->second.records;
    loaded_instance out;
    out.head = it->second.head;
    auto from = std::find_if(records.rbegin(), records.rend(),
                             [](const journal_record& r) { return r.snapshot.has_value(); });
    const auto first = from == records.rend() ? records.begin() : std::prev(from.base());
    out.records.assign(first, records.end());
    for (auto r = records.rbegin(); r != records.rend(); ++r) {
        if (r->data) {
            out.data = r->data;
            break;
        }
    }
    return out;
}

result<instance_head> memory_journal_store::head(std::string_view id) {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(id);
    if (it == instances_.end())
        return error{errc::not_found, fmt::format("saga '{}': not found", id)};
    return it->second.head;
}

result<std::vector<instance_head>> memory_journal_store::list(const head_filter& f) {
    std::lock_guard lock(mutex_);
    std::vector<instance_head> out;
    for (auto it = instances_.upper_bound(f.after_id); it != instances_.end(); ++it) {
        if (out.size() >= f.limit) break;
        const auto& h = it->second.head;
        if (!f.statuses.empty() &&
            std::find(f.statuses.begin(), f.statuses.end(), h.status) == f.statuses.end())
            continue;
        if (!f.definition.empty() && h.definition != f.definition) continue;
        if (!f.correlation_key.empty() && h.correlation_key != f.correlation_key) continue;
        if (f.updated_before && !(h.updated_at < *f.updated_before)) continue;
        out.push_back(h);
    }
    return out;
}

result<std::vector<journal_record>> memory_journal_store::journal(std::string_view id) {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(id);
    if (it == instances_.end()) return std::vector<journal_record>{};
    return it->second.records;
}

result<std::vector<std::string>> memory_journal_store::due(time_point before, std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<time_point, std::string>> found;
    for (const auto& [id, rows] : instances_) {
        const auto& h = rows.head;
        if (!is_terminal(h.status) && h.wake_at && *h.wake_at <= before)
            found.emplace_back(*h.wake_at, id);
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& [at, id] : found) {
        if (out.size() >= limit) break;
        out.push_back(std::move(id));
    }
    return out;
}

result<std::vector<std::string>> memory_journal_store::in_status(std::vector<saga_status> statuses,
                                                                 std::string_view after_id,
                                                                 std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (auto it = instances_.upper_bound(after_id); it != instances_.end(); ++it) {
        if (out.size() >= limit) break;
        if (std::find(statuses.begin(), statuses.end(), it->second.head.status) != statuses.end())
            out.push_back(it->first);
    }
    return out;
}

result<std::size_t> memory_journal_store::purge(time_point older_than, std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (auto it = instances_.begin(); it != instances_.end() && n < limit;) {
        const auto& h = it->second.head;
        if (is_terminal(h.status) && h.updated_at < older_than) {
            it = instances_.erase(it);
            ++n;
        } else {
            ++it;
        }
    }
    return n;
}

void memory_journal_store::fail_next_commits(std::size_t n, error e) {
    std::lock_guard lock(mutex_);
    fail_next_ = n;
    fail_with_ = std::move(e);
}

std::size_t memory_journal_store::commits() const {
    std::lock_guard lock(mutex_);
    return commits_;
}

}  // namespace saga::inmemory
