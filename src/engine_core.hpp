#pragma once
// What saga::engine asks of the core behind it. Two cores implement it while core v2 is being
// switched in (docs/internals.md, "Status"): engine_impl (src/engine.cpp) on a state_store, and
// runtime::engine_core_v2 (src/runtime/engine_v2.cpp) on a journal_store. The engine picks one
// by the store it is given; the old one goes when v2 passes every test.

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <saga/engine.hpp>

namespace saga::detail {

class engine_core {
public:
    virtual ~engine_core() = default;

    virtual result<void> add_model(std::shared_ptr<const model> m) = 0;
    virtual result<std::string> start(std::string_view name, nlohmann::json data,
                                      start_options options) = 0;
    virtual result<void> signal(std::string_view id, std::string_view name, nlohmann::json payload,
                                std::string message_id = {}) = 0;
    virtual result<instance_view> query(std::string_view id) = 0;
    virtual result<void> cancel(std::string_view id, std::string_view reason,
                                const operator_note* note) = 0;
    virtual result<void> pause(std::string_view id, const operator_note& note) = 0;
    virtual result<void> resume(std::string_view id, const operator_note& note) = 0;
    virtual result<void> retry(std::string_view id, const operator_note& note) = 0;
    virtual result<void> skip_step(std::string_view id, std::string_view step,
                                   const operator_note& note) = 0;
    virtual result<std::size_t> release_lock(std::string_view key, const operator_note& note) = 0;
    virtual result<std::vector<instance_record>> list(const list_filter& f) = 0;
    virtual result<std::vector<history_entry>> history_of(std::string_view id) = 0;
    virtual metrics_registry& metrics() = 0;
    virtual void add_waiter(const std::string& id,
                            std::function<void(result<instance_view>)> fn) = 0;
    virtual result<void> schedule(schedule_options options) = 0;
    virtual std::vector<blocked_instance> blocked() const = 0;
    virtual void set_endpoint_policy(const std::string& endpoint, endpoint_policy policy) = 0;
    virtual circuit_state endpoint_circuit(const std::string& endpoint) = 0;
    virtual void add_observer(std::shared_ptr<observer> o) = 0;
    virtual result<void> open() = 0;
    virtual result<void> run() = 0;
    virtual std::size_t run_until_idle() = 0;
    virtual result<void> run_until_settled(duration limit) = 0;
    virtual void stop() = 0;
    virtual boost::asio::any_io_executor executor() = 0;
    virtual saga::clock& clock() = 0;
    virtual std::size_t active_instances() const = 0;
};

}  // namespace saga::detail
