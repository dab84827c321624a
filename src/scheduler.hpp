#pragma once
// The engine's schedules (engine::schedule), for either core: each tick of a schedule starts its
// saga once, with the id `<name>@<tick number>`, whichever engine on the store gets there first
// (the start is idempotent by id).

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include <saga/clock.hpp>
#include <saga/engine.hpp>
#include <saga/error.hpp>

namespace saga::detail {

class scheduler : public std::enable_shared_from_this<scheduler> {
public:
    /// What a schedule needs of its engine.
    struct hooks {
        saga::clock* clock = nullptr;
        /// whether a definition of this name is registered
        std::function<bool(const std::string&)> has_definition;
        /// starts an instance (the engine's own `start`)
        std::function<result<std::string>(const std::string& definition, nlohmann::json data,
                                          start_options)>
            start;
        /// runs `fn` on the engine's executor (a tick starts outside the clock's thread: the
        /// start commits and may wait for the store)
        std::function<void(std::function<void()>)> post;
        /// a warning of the engine's own
        std::function<void(const std::string&)> warn;
    };

    explicit scheduler(hooks h) : hooks_(std::move(h)) {}

    /// Checks and adds a schedule and starts its current tick.
    [[nodiscard]] result<void> add(schedule_options options);
    /// No tick starts after this returns.
    void stop();

private:
    void tick(const std::shared_ptr<const schedule_options>& s);

    hooks hooks_;
    std::mutex mutex_;
    bool stopped_ = false;
    std::map<std::string, std::shared_ptr<const schedule_options>> schedules_;
};

}  // namespace saga::detail
