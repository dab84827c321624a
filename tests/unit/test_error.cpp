#include <catch2/catch.hpp>

#include <saga/error.hpp>

#include <cctype>
#include <cerrno>
#include <set>
#include <string>
#include <system_error>

namespace {

constexpr saga::errc first_error = saga::errc::invalid_definition;
constexpr saga::errc last_error = saga::errc::invalid_state;

const std::set<saga::errc> transient_codes{
    saga::errc::version_conflict, saga::errc::participant_transient,
    saga::errc::timeout,          saga::errc::circuit_open,
    saga::errc::store_busy,       saga::errc::transport_failure,
};

}  // namespace

TEST_CASE("exactly the retryable saga errors are transient, the others permanent",
          "[error][condition]") {
    for (int v = static_cast<int>(first_error); v <= static_cast<int>(last_error); ++v) {
        const auto e = static_cast<saga::errc>(v);
        const std::error_code code = e;
        CAPTURE(v, code.message());
        const bool transient = transient_codes.count(e) == 1;
        CHECK((code == saga::condition::transient) == transient);
        CHECK((code == saga::condition::permanent) == !transient);
        CHECK(saga::error{e}.transient() == transient);
        CHECK(code.default_error_condition() ==
              (transient ? saga::condition::transient : saga::condition::permanent));
    }
}

TEST_CASE("success is neither transient nor permanent", "[error][condition]") {
    const std::error_code ok = saga::errc::success;
    CHECK_FALSE(ok);
    CHECK_FALSE(ok == saga::condition::transient);
    CHECK_FALSE(ok == saga::condition::permanent);
    CHECK_FALSE(saga::error{}.transient());
}

TEST_CASE("system errors worth retrying are transient", "[error][condition]") {
    for (auto e : {std::errc::timed_out, std::errc::connection_refused, std::errc::connection_reset,
                   std::errc::connection_aborted, std::errc::resource_unavailable_try_again,
                   std::errc::device_or_resource_busy, std::errc::network_unreachable,
                   std::errc::host_unreachable, std::errc::interrupted}) {
        const auto code = std::make_error_code(e);
        CAPTURE(code.message());
        CHECK(code == saga::condition::transient);
        CHECK_FALSE(code == saga::condition::permanent);
        CHECK(saga::error{code}.transient());
    }
    SECTION("also through the system category") {
        const std::error_code code(ETIMEDOUT, std::system_category());
        CHECK(code == saga::condition::transient);
    }
}

TEST_CASE("other system errors are permanent", "[error][condition]") {
    for (auto e : {std::errc::invalid_argument, std::errc::permission_denied,
                   std::errc::no_such_file_or_directory, std::errc::not_supported}) {
        const auto code = std::make_error_code(e);
        CAPTURE(code.message());
        CHECK(code == saga::condition::permanent);
        CHECK_FALSE(code == saga::condition::transient);
    }
}

TEST_CASE("saga errors compare with errc and condition", "[error]") {
    const saga::error e{saga::errc::timeout, "step 'pay' timed out after 5000 ms"};
    CHECK(e == saga::errc::timeout);
    CHECK_FALSE(e == saga::errc::cancelled);
    CHECK(e == saga::condition::transient);
    CHECK(e.code.category() == saga::saga_category());

    CHECK(saga::transient_error("busy") == saga::errc::participant_transient);
    CHECK(saga::transient_error("busy").transient());
    CHECK(saga::transient_error("busy").message == "busy");
    CHECK(saga::permanent_error("no") == saga::errc::participant_permanent);
    CHECK_FALSE(saga::permanent_error("no").transient());
}

TEST_CASE("error::what() is the message with the category and code text", "[error]") {
    SECTION("with a message") {
        const saga::error e{saga::errc::invalid_definition, "definition 'trip': duplicate step"};
        CHECK(e.what() == "definition 'trip': duplicate step (saga: invalid saga definition)");
    }
    SECTION("without a message, the code text alone") {
        CHECK(saga::error{saga::errc::not_found}.what() == "not found");
        CHECK(saga::error{saga::errc::circuit_open}.what() == "circuit breaker open");
    }
    SECTION("with a code of another category") {
        const saga::error e{std::make_error_code(std::errc::timed_out), "sqs receive"};
        CHECK(e.what() == "sqs receive (generic: " +
                              std::make_error_code(std::errc::timed_out).message() + ")");
    }
}

TEST_CASE("every saga error code has its own lower-case message", "[error]") {
    std::set<std::string> messages;
    for (int v = static_cast<int>(saga::errc::success); v <= static_cast<int>(last_error); ++v) {
        const std::string m = saga::make_error_code(static_cast<saga::errc>(v)).message();
        CAPTURE(v, m);
        CHECK_FALSE(m.empty());
        CHECK(m != "unknown saga error");
        CHECK(m.back() != '.');
        CHECK(std::islower(static_cast<unsigned char>(m.front())));
        messages.insert(m);
    }
    CHECK(messages.size() == static_cast<std::size_t>(last_error) + 1);
    CHECK(saga::saga_category().message(9999) == "unknown saga error");
}

TEST_CASE("the categories have names", "[error]") {
    CHECK(std::string(saga::saga_category().name()) == "saga");
    CHECK(std::string(saga::condition_category().name()) == "saga.condition");
    CHECK(saga::make_error_condition(saga::condition::transient).message() == "transient failure");
    CHECK(saga::make_error_condition(saga::condition::permanent).message() == "permanent failure");
}

TEST_CASE("SAGA_TRY propagates an error and unwraps a value", "[error]") {
    auto half = [](int x) -> saga::result<int> {
        if (x % 2 != 0) return saga::error{saga::errc::invalid_argument, "odd"};
        return x / 2;
    };
    auto quarter = [&](int x) -> saga::result<int> {
        SAGA_TRY(auto h, half(x));
        SAGA_TRY(auto q, half(h));
        return q;
    };
    REQUIRE(quarter(8));
    CHECK(quarter(8).value() == 2);
    const auto r = quarter(6);
    REQUIRE_FALSE(r);
    CHECK(r.error() == saga::errc::invalid_argument);
    CHECK(r.error().message == "odd");
}
