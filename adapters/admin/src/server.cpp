// The HTTP side of the admin server: Beast, one coroutine per connection. The only TU of the
// adapter that includes Beast; requests are handed to detail::api (api.cpp).
#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <thread>

#include "api.hpp"

namespace saga::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct connection {
    explicit connection(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    bool busy = false;  // guarded by server::impl::mutex
};

/// Header names in lower case, as `detail::api` takes them.
template <class Fields>
std::map<std::string, std::string, std::less<>> headers_of(const Fields& fields) {
    std::map<std::string, std::string, std::less<>> headers;
    for (const auto& f : fields) {
        std::string name(f.name_string());
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        headers[std::move(name)] = std::string(f.value());
    }
    return headers;
}

std::string resolve_token(const server_options& o) {
    if (o.token) return *o.token;
    if (const char* env = std::getenv("SAGA_ADMIN_TOKEN")) return env;
    return {};
}

}  // namespace

struct server::impl : std::enable_shared_from_this<impl> {
    impl(saga::engine& e, server_options o)
        : options(std::move(o)), token(resolve_token(options)), api(e, options, token) {}

    server_options options;
    std::string token;
    detail::api api;

    std::mutex mutex;
    std::condition_variable idle;
    bool started = false;
    bool stopping = false;
    std::uint64_t next_connection = 0;
    std::map<std::uint64_t, std::shared_ptr<connection>> connections;

    std::unique_ptr<asio::io_context> ioc;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::thread> threads;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::atomic<std::uint16_t> port{0};

    asio::awaitable<void> accept_loop(asio::any_io_executor ex);
    asio::awaitable<void> serve(std::shared_ptr<connection> c);
    http::response<http::string_body> respond(http::request<http::string_body>& req);
    void forget(std::uint64_t id) {
        std::lock_guard lock(mutex);
        connections.erase(id);
        idle.notify_all();
    }
};

asio::awaitable<void> server::impl::accept_loop(asio::any_io_executor ex) {
    auto self = shared_from_this();
    for (;;) {
        auto [ec, socket] = co_await acceptor->async_accept(asio::make_strand(ex), use_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor->is_open()) break;
            continue;  // e.g. too many open files: try again
        }
        auto c = std::make_shared<connection>(std::move(socket));
        std::uint64_t id = 0;
        {
            std::lock_guard lock(mutex);
            if (stopping) break;
            id = ++next_connection;
            connections.emplace(id, c);
        }
        auto cex = c->stream.get_executor();
        asio::co_spawn(cex, serve(c), [self, id](std::exception_ptr) { self->forget(id); });
    }
}

http::response<http::string_body> server::impl::respond(http::request<http::string_body>& req) {
    std::string method(req.method_string());
    const bool head = req.method() == http::verb::head;
    auto reply =
        api.handle(head ? "GET" : method, req.target(), headers_of(req), std::move(req.body()));
    http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
    res.set(http::field::server, "saga-admin");
    res.set(http::field::content_type, reply.content_type);
    res.set("X-Content-Type-Options", "nosniff");
    if (reply.content_type.starts_with("text/html"))
        res.set("Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "frame-ancestors 'none'");
    for (auto& [k, v] : reply.headers) res.set(k, v);
    res.keep_alive(req.keep_alive() && !reply.close);
    res.body() = std::move(reply.body);
    res.prepare_payload();
    if (head) res.body().clear();
    return res;
}

asio::awaitable<void> server::impl::serve(std::shared_ptr<connection> c) {
    beast::flat_buffer buffer;
    for (;;) {
        // stop() cancels the reads of idle connections; one that was busy (or not started) then
        // sees `stopping` here, before it reads again.
        {
            std::lock_guard lock(mutex);
            if (stopping) break;
        }
        http::request_parser<http::string_body> parser;
        parser.body_limit(options.body_limit);
        parser.header_limit(64 * 1024);
        c->stream.expires_after(options.idle_timeout);
        auto [ec, n] = co_await http::async_read(c->stream, buffer, parser, use_tuple);
        std::optional<detail::http_reply> failure;
        // what was read of the request (its headers carry the correlation id), for the answer
        const auto refuse = [&](unsigned status, std::string_view type, std::string message) {
            const auto& m = parser.get();  // as far as it was read
            return api.refuse(std::string(m.method_string()), m.target(), headers_of(m), status,
                              type, message);
        };
        if (ec == http::error::body_limit)
            failure = refuse(413, "LIMIT_EXCEEDED",
                             fmt::format("the request body is larger than the limit of {} bytes",
                                         options.body_limit));
        else if (ec == http::error::header_limit)
            failure = refuse(431, "HEADERS_TOO_LARGE", "the request headers are too large");
        else if (ec &&
                 ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message)
            failure =
                refuse(400, "BAD_REQUEST", fmt::format("malformed HTTP request: {}", ec.message()));
        else if (ec)
            break;  // closed, timed out or cancelled by stop()
        if (failure) {
            http::response<http::string_body> res{static_cast<http::status>(failure->status), 11};
            res.set(http::field::server, "saga-admin");
            res.set(http::field::content_type, failure->content_type);
            for (auto& [k, v] : failure->headers) res.set(k, v);
            res.keep_alive(false);
            res.body() = std::move(failure->body);
            res.prepare_payload();
            co_await http::async_write(c->stream, res, use_tuple);
            break;
        }
        {
            std::lock_guard lock(mutex);
            c->busy = true;
        }
        auto req = parser.release();
        auto res = respond(req);
        bool stop_now = false;
        {
            std::lock_guard lock(mutex);
            stop_now = stopping;
        }
        if (stop_now) res.keep_alive(false);
        const bool keep_alive = res.keep_alive();
        auto [wec, wn] = co_await http::async_write(c->stream, res, use_tuple);
        {
            std::lock_guard lock(mutex);
            c->busy = false;
        }
        if (wec || !keep_alive) break;
    }
    beast::error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c->stream.socket().close(ignored);
}

server::server(saga::engine& engine, server_options options)
    : impl_(std::make_shared<impl>(engine, std::move(options))) {}

server::~server() {
    stop();
}

result<void> server::add_route(std::string method, std::string prefix, route_handler handler) {
    return impl_->api.add_route(std::move(method), std::move(prefix), std::move(handler));
}

std::uint16_t server::port() const noexcept {
    return impl_->port.load();
}

result<std::uint16_t> server::start() {
    auto& s = *impl_;
    {
        std::lock_guard lock(s.mutex);
        if (s.started) return error{errc::invalid_state, "the admin server is already started"};
    }
    if (s.token.empty() && !s.options.allow_no_auth)
        return error{errc::invalid_argument,
                     "no admin token: set SAGA_ADMIN_TOKEN or server_options::token (or "
                     "server_options::allow_no_auth for an unauthenticated development server)"};
    if (s.options.threads == 0 && !s.options.executor)
        return error{errc::invalid_argument, "server_options::threads must be at least 1"};
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(s.options.address, ec);
    if (ec)
        return error{errc::invalid_argument,
                     fmt::format("bad admin address '{}': {}", s.options.address, ec.message())};

    asio::any_io_executor ex;
    if (s.options.executor) {
        ex = *s.options.executor;
    } else {
        s.ioc = std::make_unique<asio::io_context>(static_cast<int>(s.options.threads));
        s.work.emplace(s.ioc->get_executor());
        ex = s.ioc->get_executor();
    }
    auto acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(ex));
    const tcp::endpoint endpoint{address, s.options.port};
    auto fail = [&](std::string_view what) -> result<std::uint16_t> {
        acceptor.reset();  // before the io_context its socket belongs to
        s.work.reset();
        s.ioc.reset();
        return error{ec, fmt::format("admin server cannot {} {}:{}: {}", what, s.options.address,
                                     s.options.port, ec.message())};
    };
    if (acceptor->open(endpoint.protocol(), ec); ec) return fail("open");
    if (acceptor->set_option(asio::socket_base::reuse_address(true), ec); ec)
        return fail("configure");
    if (acceptor->bind(endpoint, ec); ec) return fail("bind");
    if (acceptor->listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
    const auto bound = acceptor->local_endpoint(ec).port();
    if (ec) return fail("read the port of");
    s.port = bound;
    s.acceptor = std::move(acceptor);
    {
        std::lock_guard lock(s.mutex);
        s.started = true;
        s.stopping = false;
    }
    auto self = impl_;
    asio::co_spawn(s.acceptor->get_executor(), s.accept_loop(ex), [self](std::exception_ptr) {});
    if (s.ioc)
        for (std::size_t i = 0; i < s.options.threads; ++i)
            s.threads.emplace_back([io = s.ioc.get()] { io->run(); });
    return bound;
}

void server::stop() {
    auto& s = *impl_;
    std::vector<std::shared_ptr<connection>> to_close;
    {
        std::lock_guard lock(s.mutex);
        if (!s.started || s.stopping) return;
        s.stopping = true;
        for (auto& [id, c] : s.connections) to_close.push_back(c);
    }
    if (s.acceptor)
        asio::post(s.acceptor->get_executor(), [self = impl_] {
            beast::error_code ignored;
            self->acceptor->close(ignored);
        });
    // Idle connections wait in a read: close them. Busy ones finish their reply and then close.
    for (auto& c : to_close)
        asio::post(c->stream.get_executor(), [self = impl_, c] {
            bool busy = false;
            {
                std::lock_guard lock(self->mutex);
                busy = c->busy;
            }
            if (!busy) c->stream.cancel();
        });
    {
        std::unique_lock lock(s.mutex);
        s.idle.wait_for(lock, std::chrono::seconds{5}, [&] { return s.connections.empty(); });
    }
    // Our references to the connections go before the io_context: a connection's socket uses
    // the context's strand service when it is destroyed.
    to_close.clear();
    if (s.ioc) {
        s.work.reset();
        // Whatever did not finish in time is abandoned: stop, join, then destroy the context
        // (which destroys the pending coroutines and their connections).
        bool abandoned = false;
        {
            std::lock_guard lock(s.mutex);
            abandoned = !s.connections.empty();
        }
        if (abandoned) s.ioc->stop();
        for (auto& t : s.threads) t.join();
        s.threads.clear();
        s.ioc->stop();
        std::lock_guard lock(s.mutex);
        s.connections.clear();
    }
    if (s.ioc) s.acceptor.reset();  // on an outside executor the accept loop may still hold it
    s.ioc.reset();
    std::lock_guard lock(s.mutex);
    s.started = false;
    s.stopping = false;
    s.port = 0;
}

}  // namespace saga::admin
