#pragma once
/// @file server.hpp
/// The admin server: an HTTP/1.1 JSON API over an engine (list, inspect, timeline, cancel,
/// pause, resume, retry, skip a step, release a lock, signal, metrics) and the web dashboard,
/// for any service that embeds saga to mount.
///
/// ```cpp
/// saga::admin::server admin(engine, {.port = 8081});   // token from SAGA_ADMIN_TOKEN
/// admin.add_route("POST", "/api/v1/campaigns", [&](const saga::admin::request& r)
///                 -> saga::result<saga::admin::response> { ... });
/// auto port = admin.start();        // result<std::uint16_t>: the bound port
/// ...
/// admin.stop();                     // graceful
/// ```
///
/// Beast stays inside the library: this header needs only Asio's executor type.

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <saga/error.hpp>
#include <saga/log.hpp>

namespace saga {
class engine;
}

namespace saga::admin {

/// Options of an admin server.
struct server_options {
    /// the address to listen on (IPv4 or IPv6 literal); default: loopback only
    std::string address = "127.0.0.1";
    /// the port; 0 picks any free port (`start()` returns the one bound)
    std::uint16_t port = 8081;
    /// the bearer token every request but `/healthz` and the dashboard's static files must
    /// carry (`Authorization: Bearer <token>`); nullopt: the environment variable
    /// `SAGA_ADMIN_TOKEN`. With neither, `start()` fails unless `allow_no_auth` is set.
    std::optional<std::string> token;
    /// serve without authentication when no token is configured (development only)
    bool allow_no_auth = false;
    /// the largest request body accepted; larger is 413
    std::size_t body_limit = 1024 * 1024;
    /// the request header naming the operator, recorded as `who` of operator actions
    std::string operator_header = "X-Saga-Operator";
    /// `who` when the request has no operator header
    std::string default_operator = "api";
    /// serve the dashboard's files from this directory instead of the copies built into the
    /// library (for working on the dashboard without rebuilding); empty: built-in files
    std::string static_dir;
    /// threads of the server's own io_context (>= 1); ignored with `executor`
    std::size_t threads = 2;
    /// run on this executor instead of an own io_context. Handlers call the engine's blocking
    /// API, so it must not be the engine's own executor.
    std::optional<boost::asio::any_io_executor> executor;
    /// longest a connection may stay idle or take to send a request
    std::chrono::milliseconds idle_timeout{30'000};
    /// where one line per request goes (`msg` "GET /api/v1/sagas 200", the correlation id, and
    /// `fields` method, path, status, duration_ms, operator, bytes and the error type of an
    /// error); 5xx answers at level `error`, the rest `info`. Default: none.
    std::shared_ptr<saga::log_sink> access_log;
};

/// An HTTP request as a route handler sees it.
struct request {
    /// "GET", "POST", ...
    std::string method;
    /// the path, percent-decoded, without the query string
    std::string path;
    /// for routes added with `add_route`: the path after the route's prefix ("" or "/...")
    std::string rest;
    /// query parameters, percent-decoded (a repeated name keeps the last value)
    std::map<std::string, std::string, std::less<>> query;
    /// request headers, names in lower case
    std::map<std::string, std::string, std::less<>> headers;
    /// the raw body
    std::string body;
    /// the operator: the operator header's value, else `server_options::default_operator`
    std::string operator_name;
    /// the request's correlation id: its `X-Correlation-Id` header when that is 1 to 128
    /// printable ASCII characters, else a new random UUID. The server sends it back in the
    /// `X-Correlation-Id` response header, in error bodies and in the access log.
    std::string correlation_id;

    /// The body as JSON (an empty body is an empty object), or `errc::invalid_argument` saying
    /// where it is malformed.
    [[nodiscard]] result<nlohmann::json> json() const;
    /// The query parameter `name`, or `fallback`.
    [[nodiscard]] std::string query_or(std::string_view name, std::string fallback = {}) const;
};

/// An HTTP response of a route handler: a status and a JSON body.
struct response {
    /// the HTTP status code
    unsigned status = 200;
    /// the body, sent as `application/json`
    nlohmann::json body = nlohmann::json::object();
};

/// Handles one request. An error result becomes the JSON error response of its type and
/// status (`error_type`, `http_status_of`); an exception becomes 500 `INTERNAL`.
using route_handler = std::function<result<response>(const request&)>;

/// The HTTP status a saga error maps to: not_found 404; invalid_state, saga_finished,
/// past_pivot, lock_held, already_exists, version_conflict 409; limit_exceeded 413;
/// invalid_argument, bad_data, invalid_definition, definition_not_registered 400;
/// shutting_down, store_busy 503; others 500.
[[nodiscard]] unsigned http_status_of(const error& e) noexcept;

/// The stable type of a saga error in JSON error bodies: the `saga::errc` name in upper case
/// ("NOT_FOUND", "LOCK_HELD", "VERSION_CONFLICT", ...); "INTERNAL" for other categories.
[[nodiscard]] std::string_view error_type(const error& e) noexcept;

/// A JSON error response: `{"error": {"type": type, "message": message}}`. The server adds
/// `"correlation"`, the request's correlation id, to every error body that lacks one.
[[nodiscard]] response error_response(unsigned status, std::string_view type,
                                      std::string_view message);

/// The admin HTTP server of one engine. Thread-safe; the engine must outlive it.
class server {
public:
    /// A server over `engine`; nothing listens before `start()`.
    explicit server(saga::engine& engine, server_options options = {});
    /// Stops the server if it runs.
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Adds a route: requests with `method` whose path is `prefix` or starts with `prefix/`
    /// go to `handler` (after authentication), with `request::rest` the remainder. Built-in
    /// routes take precedence; among added routes the longest prefix wins.
    /// `errc::invalid_argument` for an empty method, a prefix not starting with '/', or a
    /// prefix and method added twice.
    result<void> add_route(std::string method, std::string prefix, route_handler handler);

    /// Binds, listens and starts serving; returns the bound port. `errc::invalid_argument`
    /// when no token is configured and `allow_no_auth` is not set, or for a bad address;
    /// `errc::invalid_state` when already started; the socket error when binding fails.
    result<std::uint16_t> start();

    /// Graceful stop: stops accepting, closes idle connections, lets requests being handled
    /// finish (up to 5 s), then joins the server's threads. Idempotent.
    void stop();

    /// The bound port (0 before `start()`).
    [[nodiscard]] std::uint16_t port() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace saga::admin
