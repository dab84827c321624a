// A for-each step: one unit per item of a collection frozen when the step starts ("name[i]"),
// run in chunks with a concurrency limit, under a partial-failure policy.

#include "../context.hpp"

namespace saga::machine {
namespace {

struct tally {
    std::size_t settled = 0;
    bool any_failed = false;
};

tally count(context& c, const detail::node& n, std::size_t items) {
    tally t;
    for (std::size_t i = 0; i < items; ++i) {
        const auto s = c.unit_of(item_key(n.name, i)).status;
        if (is_done(s)) ++t.settled;
        if (s == step_status::failed) t.any_failed = true;
    }
    return t;
}

bool in_flight(step_status s) {
    return s == step_status::running || s == step_status::retrying;
}

}  // namespace

progress drive_for_each(context& c, const detail::node& n) {
    if (c.unit_of(n.name).status == step_status::pending) {
        auto items = n.items(c.data);
        if (!items) {
            event started;
            started.type = event_type::group_started;
            started.unit = n.name;
            started.payload = nlohmann::json::array();
            c.emit(std::move(started));
            fail_now(c, n, n.name, items.error());
            return progress::failed;
        }
        event started;
        started.type = event_type::group_started;
        started.unit = n.name;
        started.count = items.value().size();
        started.payload = nlohmann::json(std::move(items).value());
        c.emit(std::move(started));
    }
    if (c.unit_of(n.name).status != step_status::running)
        return progress_of(c.unit_of(n.name).status);

    const std::size_t items = c.unit_of(n.name).items->size();
    const std::size_t chunk = n.chunk_size ? n.chunk_size : std::max<std::size_t>(items, 1);
    const bool fail_fast = n.policy == for_each_policy::fail_fast;
    auto t = count(c, n, items);
    if (!c.halted() && !(fail_fast && t.any_failed) && t.settled < items) {
        // The current chunk is the first with an unsettled item.
        std::size_t first = 0;
        while (first < items && is_done(c.unit_of(item_key(n.name, first)).status)) ++first;
        const std::size_t begin = (first / chunk) * chunk;
        const std::size_t end = std::min(items, begin + chunk);
        std::size_t running = 0;
        for (std::size_t i = begin; i < end; ++i)
            if (in_flight(c.unit_of(item_key(n.name, i)).status)) ++running;
        for (std::size_t i = begin; i < end && running < n.concurrency && !c.halted(); ++i) {
            const auto key = item_key(n.name, i);
            if (c.unit_of(key).status != step_status::pending) continue;
            start_attempt(c, n, key, direction::forward);
            if (in_flight(c.unit_of(key).status)) ++running;
        }
        t = count(c, n, items);
    }
    if (fail_fast && t.any_failed) {
        if (c.unit_of(n.name).status == step_status::running) {
            event e;
            e.type = event_type::step_failed;
            e.unit = n.name;
            e.attempt = 1;
            e.error = "an item failed";
            c.emit(std::move(e));
        }
        return progress::failed;
    }
    if (t.settled < items) return progress::blocked;
    std::size_t failed_items = 0;
    if (n.on_results || n.policy == for_each_policy::continue_on_failure) {
        std::vector<item_result> results;
        results.reserve(items);
        const auto& frozen = *c.unit_of(n.name).items;
        for (std::size_t i = 0; i < items; ++i) {
            const auto& iu = c.unit_of(item_key(n.name, i));
            if (iu.status == step_status::failed) ++failed_items;
            results.push_back({i, frozen[i], iu.status, iu.attempts, iu.error});
        }
        if (n.on_results) {
            c.data_touched();
            if (auto r = n.on_results(c.data, results); !r) {
                fail_now(c, n, n.name, r.error());
                return progress::failed;
            }
        }
    }
    // Under continue_on_failure, query shows how many items failed.
    complete_unit(
        c, n, n.name,
        failed_items ? fmt::format("{} of {} items failed", failed_items, items) : std::string());
    return progress::done;
}

}  // namespace saga::machine
