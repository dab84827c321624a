#include <saga/error.hpp>

namespace saga {
namespace {

class saga_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "saga"; }
    std::string message(int c) const override {
        switch (static_cast<errc>(c)) {
            case errc::success: return "success";
            case errc::invalid_definition: return "invalid saga definition";
            case errc::invalid_argument: return "invalid argument";
            case errc::not_found: return "not found";
            case errc::already_exists: return "already exists";
            case errc::version_conflict: return "version conflict";
            case errc::duplicate_message: return "duplicate message";
            case errc::lock_held: return "correlation key locked by another instance";
            case errc::definition_not_registered: return "definition not registered";
            case errc::bad_data: return "bad saga data";
            case errc::step_threw: return "step threw an exception";
            case errc::participant_transient: return "participant failed transiently";
            case errc::participant_permanent: return "participant failed permanently";
            case errc::timeout: return "step timed out";
            case errc::deadline_exceeded: return "wait deadline exceeded";
            case errc::circuit_open: return "circuit breaker open";
            case errc::cancelled: return "cancelled";
            case errc::saga_finished: return "saga already finished";
            case errc::past_pivot: return "saga is past its pivot";
            case errc::store_failure: return "state store failure";
            case errc::store_busy: return "state store busy";
            case errc::transport_failure: return "transport failure";
            case errc::shutting_down: return "engine shutting down";
            case errc::invalid_state: return "invalid state for this operation";
            case errc::limit_exceeded: return "limit exceeded";
        }
        return "unknown saga error";
    }
    std::error_condition default_error_condition(int c) const noexcept override {
        switch (static_cast<errc>(c)) {
            case errc::success: return {};
            case errc::version_conflict:
            case errc::participant_transient:
            case errc::timeout:
            case errc::circuit_open:
            case errc::store_busy:
            case errc::transport_failure: return make_error_condition(condition::transient);
            default: return make_error_condition(condition::permanent);
        }
    }
};

class condition_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "saga.condition"; }
    std::string message(int c) const override {
        switch (static_cast<condition>(c)) {
            case condition::transient: return "transient failure";
            case condition::permanent: return "permanent failure";
        }
        return "unknown condition";
    }
    bool equivalent(const std::error_code& code, int cond) const noexcept override {
        if (!code) return false;
        if (code.category() == saga_category())
            return code.category().default_error_condition(code.value()) ==
                   std::error_condition(cond, *this);
        // Errors of other categories: the usual retryable system conditions are transient,
        // everything else permanent.
        const bool transient =
            code == std::errc::timed_out || code == std::errc::connection_refused ||
            code == std::errc::connection_reset || code == std::errc::connection_aborted ||
            code == std::errc::resource_unavailable_try_again ||
            code == std::errc::device_or_resource_busy || code == std::errc::network_unreachable ||
            code == std::errc::host_unreachable || code == std::errc::interrupted;
        return static_cast<condition>(cond) ==
               (transient ? condition::transient : condition::permanent);
    }
};

}  // namespace

const std::error_category& saga_category() noexcept {
    static const saga_category_impl c;
    return c;
}
const std::error_category& condition_category() noexcept {
    static const condition_category_impl c;
    return c;
}

std::string error::what() const {
    if (message.empty()) return code.message();
    return message + " (" + code.category().name() + ": " + code.message() + ")";
}

}  // namespace saga
