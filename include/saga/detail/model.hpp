#pragma once
// The type-erased form of a definition that the (non-template) engine interprets.
// Built by saga::definition_builder; users never see it.

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <saga/error.hpp>
#include <saga/retry.hpp>
#include <saga/status.hpp>
#include <saga/step_context.hpp>

namespace saga {

/// A command for a participant: its type and JSON payload.
struct command {
    std::string type;
    nlohmann::json payload = nlohmann::json::object();
};

/// What happens when a wait step passes its deadline.
enum class on_deadline {
    /// the step fails with `errc::deadline_exceeded` (compensation, before the pivot)
    fail,
    /// the step completes without the signal (its `on_timeout` function runs, if any)
    proceed,
};

/// What a for-each step does when an item fails for good.
enum class for_each_policy {
    /// stop starting items, let running ones settle, and fail the step
    fail_fast,
    /// run every item; the step completes and reports per-item results
    continue_on_failure,
};

/// The outcome of one for-each item, as handed to `on_results` and shown by `query`.
struct item_result {
    std::size_t index = 0;
    nlohmann::json item;
    step_status status = step_status::pending;
    std::uint32_t attempts = 0;
    std::string error;
};

namespace detail {

/// The user's Data, type-erased.
struct data_box {
    virtual ~data_box() = default;
    [[nodiscard]] virtual result<nlohmann::json> to_json() const = 0;
};

template <class Data>
struct typed_box final : data_box {
    explicit typed_box(Data d) : value(std::move(d)) {}
    [[nodiscard]] result<nlohmann::json> to_json() const override {
        try {
            return nlohmann::json(value);
        } catch (const std::exception& e) {
            return error{errc::bad_data,
                         std::string("cannot convert saga data to json: ") + e.what()};
        }
    }
    Data value;
};

using local_fn = std::function<result<void>(data_box&, const nlohmann::json* item, step_context&)>;
using async_fn = std::function<boost::asio::awaitable<result<void>>(
    data_box&, const nlohmann::json* item, step_context&)>;
using command_fn =
    std::function<result<command>(const data_box&, const nlohmann::json* item, step_context&)>;
using reply_fn = std::function<result<void>(data_box&, const nlohmann::json* item,
                                            const nlohmann::json& reply, step_context&)>;
using predicate_fn = std::function<bool(const data_box&)>;
using items_fn = std::function<result<std::vector<nlohmann::json>>(const data_box&)>;
using results_fn = std::function<result<void>(data_box&, std::span<const item_result>)>;

/// One unit of work: run locally (sync or as a coroutine) or send a command to an endpoint.
struct action {
    enum class how { none, local, local_async, remote };
    how kind = how::none;
    local_fn local;
    async_fn async;
    std::string endpoint;
    command_fn make_command;
    reply_fn on_reply;  // optional, remote only

    [[nodiscard]] bool empty() const noexcept { return kind == how::none; }
};

enum class node_kind { local, remote, wait, parallel, for_each };

struct node;

struct branch {
    std::string name;
    std::vector<node> steps;
};

struct node {
    node_kind kind = node_kind::local;
    std::string name;
    action forward;
    action compensation;
    std::optional<retry_policy> retry;
    std::optional<retry_policy> compensation_retry;
    std::optional<duration> timeout;
    bool pivot = false;
    predicate_fn when;
    // wait
    std::string signal;
    std::optional<duration> deadline;
    on_deadline deadline_action = on_deadline::fail;
    reply_fn on_signal;  // item is null; reply is the signal payload
    local_fn on_timeout;
    // parallel
    std::vector<branch> branches;
    // for_each
    items_fn items;
    std::size_t chunk_size = 0;  // 0: one chunk of everything
    std::size_t concurrency = 1;
    for_each_policy policy = for_each_policy::fail_fast;
    results_fn on_results;
};

using load_fn = std::function<result<std::unique_ptr<data_box>>(const nlohmann::json&)>;

struct model {
    std::string name;
    std::uint32_t version = 1;
    std::vector<node> steps;
    load_fn load;
    retry_policy default_retry;
    retry_policy default_compensation_retry;
};

/// Checks a model; the first problem found, as `errc::invalid_definition` naming the step.
[[nodiscard]] result<void> validate(const model& m, const std::vector<std::string>& build_errors);

}  // namespace detail
}  // namespace saga
