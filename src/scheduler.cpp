#include "scheduler.hpp"

#include <fmt/format.h>

namespace saga::detail {

result<void> scheduler::add(schedule_options options) {
    if (options.name.empty() || options.name.find_first_of("/|@") != std::string::npos)
        return error{errc::invalid_argument,
                     fmt::format("schedule name '{}' is not valid: not empty, no '/', '|' or '@'",
                                 options.name)};
    if (options.interval.count() <= 0)
        return error{errc::invalid_argument,
                     fmt::format("schedule '{}': the interval must be positive", options.name)};
    if (!hooks_.has_definition(options.definition))
        return error{errc::definition_not_registered,
                     fmt::format("schedule '{}': definition '{}' is not registered", options.name,
                                 options.definition)};
    auto s = std::make_shared<const schedule_options>(std::move(options));
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return error{errc::shutting_down, "the engine is stopping"};
        if (!schedules_.emplace(s->name, s).second)
            return error{errc::already_exists,
                         fmt::format("a schedule named '{}' exists already", s->name)};
    }
    tick(s);
    return success();
}

void scheduler::stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
}

void scheduler::tick(const std::shared_ptr<const schedule_options>& s) {
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
    }
    const auto now = hooks_.clock->now();
    const auto since_epoch = std::chrono::duration_cast<duration>(now.time_since_epoch());
    const auto k = since_epoch.count() / s->interval.count();
    const time_point tick_start{s->interval * k};
    nlohmann::json data = nlohmann::json::object();
    bool ok = true;
    if (s->data) {
        auto d = s->data(tick_start);
        if (d) {
            data = std::move(d).value();
        } else {
            ok = false;
            hooks_.warn(fmt::format("schedule '{}': no data for tick {}: {}", s->name, k,
                                    d.error().what()));
        }
    }
    if (ok) {
        // The instance of this tick: its id makes the start happen once, whoever gets there
        // first (a start with the id of an instance of the same definition answers its id).
        auto r = hooks_.start(s->definition, std::move(data),
                              start_options{.id = fmt::format("{}@{}", s->name, k),
                                            .correlation_key = s->correlation_key});
        if (!r)
            hooks_.warn(fmt::format("schedule '{}': start of tick {} failed: {}", s->name, k,
                                    r.error().what()));
    }
    std::weak_ptr<scheduler> weak = shared_from_this();
    hooks_.clock->call_at(tick_start + s->interval, [weak, s] {
        auto self = weak.lock();
        if (!self) return;
        std::lock_guard lock(self->mutex_);
        if (self->stopped_) return;
        self->hooks_.post([weak, s] {
            if (auto again = weak.lock()) again->tick(s);
        });
    });
}

}  // namespace saga::detail
