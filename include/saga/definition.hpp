#pragma once
/// @file definition.hpp
/// Saga definitions and the fluent builder that makes them.
///
/// @code
/// auto def = saga::definition_builder<order>("place_order", 1)
///     .local("validate", [](order& o) -> saga::result<void> { ... })
///     .remote("reserve_credit", "billing", [](const order& o) {
///         return saga::command{"reserve", {{"amount", o.amount}}};
///     })
///         .on_reply([](order& o, const nlohmann::json& r) { o.reservation = r["id"]; })
///         .compensate_remote("billing", [](const order& o) {
///             return saga::command{"release", {{"id", o.reservation}}};
///         })
///         .retry(saga::retry_policy::exponential(5, 100ms))
///         .timeout(5s)
///     .local("confirm", confirm).pivot()
///     .build();   // saga::result<saga::definition<order>>
/// @endcode
///
/// Modifiers (`on_reply`, `compensate`, `retry`, `timeout`, `pivot`, `when`, `deadline`,
/// `on_signal`, ...) apply to the step added last. Every mistake is reported by `build()`.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

#include <saga/detail/callable.hpp>
#include <saga/detail/model.hpp>
#include <saga/error.hpp>
#include <saga/retry.hpp>

namespace saga {

/// A validated, immutable, versioned saga definition over `Data`. Cheap to copy.
/// `Data` must be convertible to and from nlohmann::json (`to_json`/`from_json` by ADL).
template <class Data>
class definition {
public:
    [[nodiscard]] const std::string& name() const noexcept { return model_->name; }
    [[nodiscard]] std::uint32_t version() const noexcept { return model_->version; }
    /// The engine's view; not for users.
    [[nodiscard]] const std::shared_ptr<const detail::model>& model() const noexcept {
        return model_;
    }

private:
    template <class, class>
    friend class steps_builder;
    template <class>
    friend class definition_builder;
    explicit definition(std::shared_ptr<const detail::model> m) : model_(std::move(m)) {}
    std::shared_ptr<const detail::model> model_;
};

template <class Data>
class sequence_builder;
template <class Data>
class parallel_builder;
template <class Data, class Item>
class for_each_builder;

namespace detail {
/// Shared by all builders of one definition: the mistakes found while building.
struct build_log {
    std::vector<std::string> errors;
};
}  // namespace detail

/// The step-adding and modifier methods shared by definition and branch builders.
template <class Data, class Self>
class steps_builder {
public:
    /// A local step: `fn(Data&[, step_context&])` returning void, `result<void>`, or an
    /// `asio::awaitable` of either (run on the instance's strand).
    template <class Fn>
    Self& local(std::string name, Fn fn) {
        auto& n = add(detail::node_kind::local, std::move(name));
        n.forward = detail::make_local<Data>(std::move(fn));
        return self();
    }

    /// A remote step: `make(const Data&[, step_context&])` builds the command sent to
    /// `endpoint`; the step completes when the participant's reply arrives.
    template <class Fn>
    Self& remote(std::string name, std::string endpoint, Fn make) {
        auto& n = add(detail::node_kind::remote, std::move(name));
        n.forward.kind = detail::action::how::remote;
        n.forward.endpoint = std::move(endpoint);
        n.forward.make_command = detail::make_command_fn<Data>(std::move(make));
        return self();
    }

    /// A wait step: completes when the signal (or transport event of that type) `signal`
    /// arrives for this instance. A signal that arrives before the wait starts is kept.
    Self& wait(std::string name, std::string signal) {
        auto& n = add(detail::node_kind::wait, std::move(name));
        n.signal = std::move(signal);
        return self();
    }

    /// A parallel group: `fill(parallel_builder<Data>&)` adds branches; they run concurrently
    /// and join; one failed branch fails the group.
    template <class Fill>
    Self& parallel(std::string name, Fill fill) {
        auto& n = add(detail::node_kind::parallel, std::move(name));
        parallel_builder<Data> p(log_);
        fill(p);
        n.branches = std::move(p).take();
        return self();
    }

    /// A for-each step over the collection `items(const Data&)` (any range of JSON-convertible
    /// items, frozen when the step starts); `fill(for_each_builder<Data, Item>&)` says what to do
    /// per item, in chunks, how many at once and what to do on failure.
    template <class ItemsFn, class Fill>
    Self& for_each(std::string name, ItemsFn items, Fill fill) {
        using range_t = std::remove_cvref_t<std::invoke_result_t<ItemsFn&, const Data&>>;
        using Item = std::ranges::range_value_t<range_t>;
        auto& n = add(detail::node_kind::for_each, std::move(name));
        n.items = [items = std::move(items)](
                      const detail::data_box& box) -> result<std::vector<nlohmann::json>> {
            try {
                std::vector<nlohmann::json> out;
                for (const auto& it : items(static_cast<const detail::typed_box<Data>&>(box).value))
                    out.emplace_back(it);
                return out;
            } catch (const std::exception& e) {
                return error{errc::step_threw, std::string("for-each items threw: ") + e.what()};
            }
        };
        for_each_builder<Data, Item> b(n, *log_);
        fill(b);
        return self();
    }

    // ---- modifiers of the step added last -------------------------------------------------

    /// Remote (or for-each remote): `fn(Data&, const json& reply[, step_context&])` applies a
    /// success reply to the data; an error it returns fails the step.
    template <class Fn>
    Self& on_reply(Fn fn) {
        if (auto* n = last("on_reply", {detail::node_kind::remote}))
            n->forward.on_reply = detail::make_reply_fn<Data>(std::move(fn));
        return self();
    }

    /// A local compensation: `fn(Data&[, step_context&])`, sync or awaitable.
    template <class Fn>
    Self& compensate(Fn fn) {
        if (auto* n = last("compensate", {detail::node_kind::local, detail::node_kind::remote}))
            n->compensation = detail::make_local<Data>(std::move(fn));
        return self();
    }

    /// A remote compensation: `make(const Data&[, step_context&])` builds the command sent to
    /// `endpoint` with idempotency key `<saga id>/<step>/compensate`.
    template <class Fn>
    Self& compensate_remote(std::string endpoint, Fn make) {
        if (auto* n =
                last("compensate_remote", {detail::node_kind::local, detail::node_kind::remote})) {
            n->compensation.kind = detail::action::how::remote;
            n->compensation.endpoint = std::move(endpoint);
            n->compensation.make_command = detail::make_command_fn<Data>(std::move(make));
        }
        return self();
    }

    /// The retry policy of the step (default: the definition's, 3 attempts; after the pivot,
    /// `retry_policy::forever()`).
    Self& retry(retry_policy p) {
        if (auto* n = last("retry", {detail::node_kind::local, detail::node_kind::remote}))
            n->retry = p;
        return self();
    }

    /// The retry policy of the step's compensation (default: the definition's, 10 attempts).
    Self& compensation_retry(retry_policy p) {
        if (auto* n =
                last("compensation_retry", {detail::node_kind::local, detail::node_kind::remote}))
            n->compensation_retry = p;
        return self();
    }

    /// Timeout of each attempt: a remote command is sent again (same idempotency key) and an
    /// awaitable local step is cancelled; the attempt counts as a transient failure.
    Self& timeout(duration d) {
        if (auto* n = last("timeout", {detail::node_kind::local, detail::node_kind::remote}))
            n->timeout = d;
        return self();
    }

    /// Marks the step as the pivot: once it completes, the saga only goes forward. Only a
    /// top-level local or remote step without a compensation can be the pivot.
    Self& pivot() {
        if (auto* n = last("pivot", {detail::node_kind::local, detail::node_kind::remote}))
            n->pivot = true;
        return self();
    }

    /// Runs the step only when `pred(const Data&)` is true when it is reached (else skipped).
    template <class Pred>
    Self& when(Pred pred) {
        if (nodes_.empty()) {
            log_->errors.emplace_back("when() must follow a step");
        } else {
            nodes_.back().when = [pred = std::move(pred)](const detail::data_box& box) {
                return static_cast<bool>(
                    pred(static_cast<const detail::typed_box<Data>&>(box).value));
            };
        }
        return self();
    }

    /// Wait: fail (default) or proceed when the signal has not come `d` after the wait began.
    Self& deadline(duration d, on_deadline what = on_deadline::fail) {
        if (auto* n = last("deadline", {detail::node_kind::wait})) {
            n->deadline = d;
            n->deadline_action = what;
        }
        return self();
    }

    /// Wait: `fn(Data&, const json& payload[, step_context&])` applies the signal's payload.
    template <class Fn>
    Self& on_signal(Fn fn) {
        if (auto* n = last("on_signal", {detail::node_kind::wait}))
            n->on_signal = detail::make_reply_fn<Data>(std::move(fn));
        return self();
    }

    /// Wait with `on_deadline::proceed`: `fn(Data&[, step_context&])` runs when the deadline
    /// passes.
    template <class Fn>
    Self& on_timeout(Fn fn) {
        if (auto* n = last("on_timeout", {detail::node_kind::wait}))
            n->on_timeout = detail::make_local<Data>(std::move(fn)).local;
        return self();
    }

protected:
    explicit steps_builder(std::shared_ptr<detail::build_log> log) : log_(std::move(log)) {}

    Self& self() { return static_cast<Self&>(*this); }

    detail::node& add(detail::node_kind kind, std::string name) {
        auto& n = nodes_.emplace_back();
        n.kind = kind;
        n.name = std::move(name);
        return n;
    }

    detail::node* last(const char* what, std::initializer_list<detail::node_kind> kinds) {
        if (nodes_.empty()) {
            log_->errors.push_back(std::string(what) + "() must follow a step");
            return nullptr;
        }
        auto& n = nodes_.back();
        for (auto k : kinds)
            if (n.kind == k) return &n;
        log_->errors.push_back(std::string(what) + "() does not apply to step '" + n.name + "'");
        return nullptr;
    }

    std::shared_ptr<detail::build_log> log_;
    std::vector<detail::node> nodes_;
};

/// The steps of one parallel branch.
template <class Data>
class sequence_builder final : public steps_builder<Data, sequence_builder<Data>> {
public:
    explicit sequence_builder(std::shared_ptr<detail::build_log> log)
        : steps_builder<Data, sequence_builder<Data>>(std::move(log)) {}
    std::vector<detail::node> take() && { return std::move(this->nodes_); }
};

/// Adds the branches of a parallel group.
template <class Data>
class parallel_builder {
public:
    explicit parallel_builder(std::shared_ptr<detail::build_log> log) : log_(std::move(log)) {}

    /// Adds a branch named `name`; add its steps to the returned builder.
    sequence_builder<Data>& branch(std::string name) {
        names_.push_back(std::move(name));
        return *branches_.emplace_back(std::make_unique<sequence_builder<Data>>(log_));
    }

    std::vector<detail::branch> take() && {
        std::vector<detail::branch> out;
        for (std::size_t i = 0; i < branches_.size(); ++i)
            out.push_back({std::move(names_[i]), std::move(*branches_[i]).take()});
        return out;
    }

private:
    std::shared_ptr<detail::build_log> log_;
    std::vector<std::string> names_;
    std::vector<std::unique_ptr<sequence_builder<Data>>> branches_;
};

/// Says what a for-each step does with each item.
template <class Data, class Item>
class for_each_builder {
public:
    for_each_builder(detail::node& n, detail::build_log& log) : node_(n), log_(log) {}

    /// Each item runs `fn(Data&, const Item&[, step_context&])` locally.
    template <class Fn>
    for_each_builder& local(Fn fn) {
        auto on_reply = std::move(node_.forward.on_reply);  // kept so build() can report it
        node_.forward = detail::make_local_item<Data, Item>(std::move(fn));
        node_.forward.on_reply = std::move(on_reply);
        return *this;
    }
    /// Each item sends `make(const Data&, const Item&[, step_context&])` to `endpoint`.
    template <class Fn>
    for_each_builder& remote(std::string endpoint, Fn make) {
        node_.forward.kind = detail::action::how::remote;
        node_.forward.endpoint = std::move(endpoint);
        node_.forward.make_command = detail::make_item_command_fn<Data, Item>(std::move(make));
        return *this;
    }
    /// Applies an item's success reply: `fn(Data&, const Item&, const json&[, step_context&])`.
    template <class Fn>
    for_each_builder& on_reply(Fn fn) {
        node_.forward.on_reply = detail::make_item_reply_fn<Data, Item>(std::move(fn));
        return *this;
    }
    /// Undoes a completed item locally: `fn(Data&, const Item&[, step_context&])`.
    template <class Fn>
    for_each_builder& compensate(Fn fn) {
        node_.compensation = detail::make_local_item<Data, Item>(std::move(fn));
        return *this;
    }
    /// Undoes a completed item remotely.
    template <class Fn>
    for_each_builder& compensate_remote(std::string endpoint, Fn make) {
        node_.compensation.kind = detail::action::how::remote;
        node_.compensation.endpoint = std::move(endpoint);
        node_.compensation.make_command = detail::make_item_command_fn<Data, Item>(std::move(make));
        return *this;
    }
    /// Items are started chunk by chunk: a chunk settles before the next starts (0: one chunk).
    for_each_builder& chunk(std::size_t n) {
        node_.chunk_size = n;
        return *this;
    }
    /// At most `n` items run at once.
    for_each_builder& concurrency(std::size_t n) {
        node_.concurrency = n;
        return *this;
    }
    /// Fail fast (default) or continue and report per-item results.
    for_each_builder& on_failure(for_each_policy p) {
        node_.policy = p;
        return *this;
    }
    /// Retry policy of each item.
    for_each_builder& retry(retry_policy p) {
        node_.retry = p;
        return *this;
    }
    /// Retry policy of each item's compensation.
    for_each_builder& compensation_retry(retry_policy p) {
        node_.compensation_retry = p;
        return *this;
    }
    /// Timeout of each item attempt.
    for_each_builder& timeout(duration d) {
        node_.timeout = d;
        return *this;
    }
    /// When the step settles: `fn(Data&, std::span<const item_result>)` sees every item's outcome.
    template <class Fn>
    for_each_builder& on_results(Fn fn) {
        node_.on_results = [fn = std::move(fn)](detail::data_box& box,
                                                std::span<const item_result> r) -> result<void> {
            step_context ctx("", "on_results", 0, "", "", {});
            return detail::guarded_void(
                ctx, [&] { return fn(static_cast<detail::typed_box<Data>&>(box).value, r); });
        };
        return *this;
    }

private:
    detail::node& node_;
    [[maybe_unused]] detail::build_log& log_;
};

/// Builds a `definition<Data>` named `name` at `version`.
template <class Data>
class definition_builder final : public steps_builder<Data, definition_builder<Data>> {
public:
    explicit definition_builder(std::string name, std::uint32_t version = 1)
        : steps_builder<Data, definition_builder<Data>>(std::make_shared<detail::build_log>()),
          name_(std::move(name)),
          version_(version) {}

    /// The retry policy of steps that do not set one.
    definition_builder& default_retry(retry_policy p) {
        default_retry_ = p;
        return *this;
    }
    /// The retry policy of compensations that do not set one.
    definition_builder& default_compensation_retry(retry_policy p) {
        default_compensation_retry_ = p;
        return *this;
    }

    /// Validates and returns the definition, or `errc::invalid_definition` saying what is wrong
    /// (duplicate or empty step names, an empty saga or branch, a compensation on or after the
    /// pivot, a misplaced modifier, a bad retry policy, ...).
    [[nodiscard]] result<definition<Data>> build() && {
        auto m = std::make_shared<detail::model>();
        m->name = name_;
        m->version = version_;
        m->steps = std::move(this->nodes_);
        m->default_retry = default_retry_;
        m->default_compensation_retry = default_compensation_retry_;
        m->load = [](const nlohmann::json& j) -> result<std::unique_ptr<detail::data_box>> {
            try {
                return std::unique_ptr<detail::data_box>(
                    std::make_unique<detail::typed_box<Data>>(j.get<Data>()));
            } catch (const std::exception& e) {
                return error{errc::bad_data,
                             std::string("cannot read saga data from json: ") + e.what()};
            }
        };
        SAGA_TRY(detail::validate(*m, this->log_->errors));
        return definition<Data>(std::move(m));
    }
    /// Same, for an lvalue builder (the builder is left empty).
    [[nodiscard]] result<definition<Data>> build() & { return std::move(*this).build(); }

private:
    std::string name_;
    std::uint32_t version_;
    retry_policy default_retry_{};
    retry_policy default_compensation_retry_{.max_attempts = 10,
                                             .initial_backoff = std::chrono::milliseconds{200},
                                             .max_backoff = std::chrono::seconds{60}};
};

}  // namespace saga
