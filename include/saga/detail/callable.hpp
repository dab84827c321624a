#pragma once
// Adapts user callables (with or without a step_context, returning void, a value or a
// result, plain or as an Asio awaitable) to the type-erased signatures of detail/model.hpp.
// User exceptions become errc::step_threw carrying what().

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include <saga/detail/model.hpp>

namespace saga::detail {

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<boost::asio::awaitable<T, E>> : std::true_type {};

template <class T>
struct awaitable_value;
template <class T, class E>
struct awaitable_value<boost::asio::awaitable<T, E>> {
    using type = T;
};

template <class T>
struct is_result : std::false_type {};
template <class T>
struct is_result<result<T>> : std::true_type {};

/// Calls fn(args..., ctx) if that is well-formed, else fn(args...).
template <class Fn, class... Args>
decltype(auto) call_with_optional_context(Fn& fn, step_context& ctx, Args&&... args) {
    if constexpr (std::is_invocable_v<Fn&, Args..., step_context&>) {
        return std::invoke(fn, std::forward<Args>(args)..., ctx);
    } else {
        static_assert(
            std::is_invocable_v<Fn&, Args...>,
            "the step function does not accept these arguments (see docs/definitions.md)");
        return std::invoke(fn, std::forward<Args>(args)...);
    }
}

template <class Fn, class... Args>
using call_result_t = decltype(call_with_optional_context(
    std::declval<Fn&>(), std::declval<step_context&>(), std::declval<Args>()...));

inline error thrown_error(std::string_view what_step, const char* what) {
    return {errc::step_threw, std::string(what_step) + " threw: " + what};
}

/// Turns void / result<void> into result<void>.
template <class Fn>
result<void> as_void_result(Fn&& call) {
    using R = decltype(call());
    if constexpr (std::is_void_v<R>) {
        call();
        return success();
    } else {
        static_assert(std::is_convertible_v<R, result<void>>,
                      "a step function must return void or saga::result<void>");
        return call();
    }
}

/// Guards a call: exceptions become errc::step_threw.
template <class Fn>
result<void> guarded_void(const step_context& ctx, Fn&& call) {
    try {
        return as_void_result(std::forward<Fn>(call));
    } catch (const std::exception& e) {
        return thrown_error(ctx.step(), e.what());
    } catch (...) {
        return thrown_error(ctx.step(), "an unknown exception");
    }
}

template <class Data, class Fn>
boost::asio::awaitable<result<void>> run_awaitable(Fn& fn, data_box& box, step_context& ctx) {
    try {
        using A = call_result_t<Fn, Data&>;
        using V = typename awaitable_value<A>::type;
        if constexpr (std::is_void_v<V>) {
            co_await call_with_optional_context(fn, ctx, static_cast<typed_box<Data>&>(box).value);
            co_return success();
        } else {
            co_return co_await call_with_optional_context(fn, ctx,
                                                          static_cast<typed_box<Data>&>(box).value);
        }
    } catch (const std::exception& e) {
        co_return thrown_error(ctx.step(), e.what());
    }
}

/// A local step on Data: fn(Data&[, step_context&]) -> void | result<void> | awaitable<...>.
template <class Data, class Fn>
action make_local(Fn fn) {
    action a;
    using R = call_result_t<Fn, Data&>;
    if constexpr (is_awaitable<R>::value) {
        a.kind = action::how::local_async;
        a.async = [fn = std::move(fn)](
                      data_box& box, const nlohmann::json*,
                      step_context& ctx) mutable -> boost::asio::awaitable<result<void>> {
            return run_awaitable<Data>(fn, box, ctx);
        };
    } else {
        a.kind = action::how::local;
        a.local = [fn = std::move(fn)](data_box& box, const nlohmann::json*,
                                       step_context& ctx) mutable -> result<void> {
            return guarded_void(ctx, [&] {
                return call_with_optional_context(fn, ctx,
                                                  static_cast<typed_box<Data>&>(box).value);
            });
        };
    }
    return a;
}

/// Converts a JSON item back to Item.
template <class Item>
result<Item> item_from_json(const nlohmann::json& j) {
    try {
        return j.get<Item>();
    } catch (const std::exception& e) {
        return error{errc::bad_data, std::string("cannot read for-each item: ") + e.what()};
    }
}

/// A local for-each item step: fn(Data&, const Item&[, step_context&]).
template <class Data, class Item, class Fn>
action make_local_item(Fn fn) {
    action a;
    a.kind = action::how::local;
    a.local = [fn = std::move(fn)](data_box& box, const nlohmann::json* item,
                                   step_context& ctx) mutable -> result<void> {
        auto it = item_from_json<Item>(*item);
        if (!it) return it.error();
        return guarded_void(ctx, [&] {
            return call_with_optional_context(fn, ctx, static_cast<typed_box<Data>&>(box).value,
                                              std::as_const(it.value()));
        });
    };
    return a;
}

template <class R>
result<command> as_command_result(R&& r) {
    if constexpr (std::is_convertible_v<R, command>) {
        return command(std::forward<R>(r));
    } else {
        static_assert(std::is_convertible_v<R, result<command>>,
                      "a command builder must return saga::command or saga::result<saga::command>");
        return std::forward<R>(r);
    }
}

template <class Fn>
result<command> guarded_command(const step_context& ctx, Fn&& call) {
    try {
        return as_command_result(call());
    } catch (const std::exception& e) {
        return thrown_error(ctx.step(), e.what());
    } catch (...) {
        return thrown_error(ctx.step(), "an unknown exception");
    }
}

/// fn(const Data&[, step_context&]) -> command | result<command>.
template <class Data, class Fn>
command_fn make_command_fn(Fn fn) {
    return [fn = std::move(fn)](const data_box& box, const nlohmann::json*,
                                step_context& ctx) mutable -> result<command> {
        return guarded_command(ctx, [&] {
            return call_with_optional_context(fn, ctx,
                                              static_cast<const typed_box<Data>&>(box).value);
        });
    };
}

/// fn(const Data&, const Item&[, step_context&]) -> command | result<command>.
template <class Data, class Item, class Fn>
command_fn make_item_command_fn(Fn fn) {
    return [fn = std::move(fn)](const data_box& box, const nlohmann::json* item,
                                step_context& ctx) mutable -> result<command> {
        auto it = item_from_json<Item>(*item);
        if (!it) return it.error();
        return guarded_command(ctx, [&] {
            return call_with_optional_context(
                fn, ctx, static_cast<const typed_box<Data>&>(box).value, std::as_const(it.value()));
        });
    };
}

/// fn(Data&, const json&[, step_context&]) -> void | result<void>.
template <class Data, class Fn>
reply_fn make_reply_fn(Fn fn) {
    return [fn = std::move(fn)](data_box& box, const nlohmann::json*, const nlohmann::json& reply,
                                step_context& ctx) mutable -> result<void> {
        return guarded_void(ctx, [&] {
            return call_with_optional_context(fn, ctx, static_cast<typed_box<Data>&>(box).value,
                                              reply);
        });
    };
}

/// fn(Data&, const Item&, const json&[, step_context&]) -> void | result<void>.
template <class Data, class Item, class Fn>
reply_fn make_item_reply_fn(Fn fn) {
    return
        [fn = std::move(fn)](data_box& box, const nlohmann::json* item, const nlohmann::json& reply,
                             step_context& ctx) mutable -> result<void> {
            auto it = item_from_json<Item>(*item);
            if (!it) return it.error();
            return guarded_void(ctx, [&] {
                return call_with_optional_context(fn, ctx, static_cast<typed_box<Data>&>(box).value,
                                                  std::as_const(it.value()), reply);
            });
        };
}

}  // namespace saga::detail
