#pragma once
/// @file error.hpp
/// Errors and results: every public fallible call returns `saga::result<T>`.

#include <boost/outcome/basic_result.hpp>
#include <boost/outcome/policy/terminate.hpp>
#include <boost/outcome/success_failure.hpp>
#include <boost/outcome/try.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace saga {

/// The error codes of saga itself (category "saga").
enum class errc {
    /// not an error
    success = 0,
    /// a definition failed validation in `build()`
    invalid_definition,
    /// an argument of a call was malformed or out of range
    invalid_argument,
    /// no saga instance, definition or entry with that key
    not_found,
    /// an instance with that id exists already (store-level create)
    already_exists,
    /// an optimistic-concurrency check failed: the record changed since it was read
    version_conflict,
    /// a message was already processed (inbox)
    duplicate_message,
    /// the correlation key is locked by another non-terminal instance
    lock_held,
    /// the definition (or the version an instance is pinned to) is not registered
    definition_not_registered,
    /// user data could not be converted to or from JSON
    bad_data,
    /// a user step threw an exception; the message carries `what()`
    step_threw,
    /// a participant replied with a transient failure
    participant_transient,
    /// a participant replied with a permanent failure
    participant_permanent,
    /// a step did not finish before its timeout
    timeout,
    /// a wait step passed its deadline
    deadline_exceeded,
    /// the endpoint's circuit breaker is open
    circuit_open,
    /// the saga was cancelled
    cancelled,
    /// the saga is finished and cannot take this call
    saga_finished,
    /// the saga passed its pivot and can no longer be cancelled
    past_pivot,
    /// the store failed; see the message
    store_failure,
    /// the store is busy or locked; retrying may succeed
    store_busy,
    /// the transport failed to send or receive; retrying may succeed
    transport_failure,
    /// the engine is stopping and refuses new work
    shutting_down,
    /// the operation is not valid in the current state
    invalid_state,
    /// an input passed a size or nesting limit; the message says which
    limit_exceeded,
};

/// Error conditions that retry policies test: is a failure worth retrying?
enum class condition {
    /// retrying may succeed (timeouts, throttling, open circuits, busy stores)
    transient = 1,
    /// retrying cannot help (validation, business refusals, bad data)
    permanent,
};

/// The category of `saga::errc`.
[[nodiscard]] const std::error_category& saga_category() noexcept;
/// The category of `saga::condition`.
[[nodiscard]] const std::error_category& condition_category() noexcept;

/// Makes an error code of `saga_category()`.
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), saga_category()};
}
/// Makes an error condition of `condition_category()`.
[[nodiscard]] inline std::error_condition make_error_condition(condition c) noexcept {
    return {static_cast<int>(c), condition_category()};
}

}  // namespace saga

template <>
struct std::is_error_code_enum<saga::errc> : std::true_type {};
template <>
struct std::is_error_condition_enum<saga::condition> : std::true_type {};

namespace saga {

/// An error: a code (testable against `saga::errc` and `saga::condition`) and a message that
/// says what went wrong in words (which step, which saga, which file). Messages are lower case
/// with no trailing period.
struct error {
    std::error_code code;
    std::string message;

    error() = default;
    error(std::error_code c, std::string msg = {}) : code(c), message(std::move(msg)) {}
    error(errc e, std::string msg = {}) : code(make_error_code(e)), message(std::move(msg)) {}

    /// True when retrying may succeed (`code == condition::transient`).
    [[nodiscard]] bool transient() const noexcept { return code == condition::transient; }
    /// "message (category: code text)", or the code text alone when there is no message.
    [[nodiscard]] std::string what() const;

    friend bool operator==(const error& e, errc c) noexcept { return e.code == c; }
    friend bool operator==(const error& e, condition c) noexcept { return e.code == c; }
};

/// The result of every public fallible call: a `T` or an `error`. Never throws; calling
/// `.value()` on an error terminates, so test it first (or use `BOOST_OUTCOME_TRY`).
template <class T>
using result = boost::outcome_v2::basic_result<T, error, boost::outcome_v2::policy::terminate>;

/// `return saga::success();` from a `result<void>` function.
using boost::outcome_v2::success;

/// A transient error from user code: the retry policy will retry it.
[[nodiscard]] inline error transient_error(std::string msg) {
    return {errc::participant_transient, std::move(msg)};
}
/// A permanent error from user code: the step fails at once.
[[nodiscard]] inline error permanent_error(std::string msg) {
    return {errc::participant_permanent, std::move(msg)};
}

}  // namespace saga

/// Propagates an error of a `saga::result` expression: `SAGA_TRY(auto x, expr);`.
#define SAGA_TRY BOOST_OUTCOME_TRY
