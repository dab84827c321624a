#include "http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <optional>
#include <utility>

namespace saga::sqs::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
}

result<url> parse_url(std::string_view text) {
    url u;
    std::string_view rest;
    if (text.starts_with("https://")) {
        u.tls = true;
        rest = text.substr(8);
    } else if (text.starts_with("http://")) {
        rest = text.substr(7);
    } else {
        return error{errc::invalid_argument,
                     "sqs: endpoint url '" + std::string{text} + "' is not http:// or https://"};
    }
    const auto slash = rest.find('/');
    const auto authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) u.path = std::string{rest.substr(slash)};
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
        u.host = std::string{authority.substr(0, colon)};
        u.port = std::string{authority.substr(colon + 1)};
    } else {
        u.host = std::string{authority};
        u.port = u.tls ? "443" : "80";
    }
    if (u.host.empty() || u.port.empty())
        return error{errc::invalid_argument,
                     "sqs: endpoint url '" + std::string{text} + "' has no host or port"};
    const bool default_port = (u.tls && u.port == "443") || (!u.tls && u.port == "80");
    u.host_header = default_port ? u.host : u.host + ':' + u.port;
    return u;
}

struct http_client::connection {
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;

    beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

http_client::http_client(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
                         std::size_t max_idle)
    : io_(io), tls_(std::move(tls)), max_idle_(max_idle) {}

http_client::~http_client() = default;

void http_client::close_idle() {
    idle_.clear();
}

asio::awaitable<result<std::unique_ptr<http_client::connection>>> http_client::connect(
    const url& u, duration timeout, cancel_handle* cancel) {
    auto c = std::make_unique<connection>();
    const auto where = u.host + ':' + u.port;
    if (u.tls) {
        if (!tls_) co_return error{errc::invalid_argument, "sqs: no tls context for " + where};
        c->secure.emplace(io_, *tls_);
        // SNI, and the certificate must name the host
        if (!SSL_set_tlsext_host_name(c->secure->native_handle(), u.host.c_str()))
            co_return error{errc::transport_failure, "sqs: cannot set tls sni for " + where};
        c->secure->set_verify_callback(asio::ssl::host_name_verification(u.host));
    } else {
        c->plain.emplace(io_);
    }
    if (cancel) cancel->abort = [raw = c.get()] { raw->lowest().cancel(); };
    tcp::resolver resolver(io_);
    auto [rec, endpoints] = co_await resolver.async_resolve(u.host, u.port, nothrow);
    if (rec)
        co_return error{errc::transport_failure,
                        "sqs: cannot resolve " + where + ": " + rec.message()};
    if (cancel && cancel->cancelled) co_return error{errc::cancelled, "sqs: request cancelled"};
    c->lowest().expires_after(timeout);
    auto [cec, ep] = co_await c->lowest().async_connect(endpoints, nothrow);
    if (cec)
        co_return error{errc::transport_failure,
                        "sqs: cannot connect to " + where + ": " + cec.message()};
    if (c->secure) {
        auto [hec] = co_await c->secure->async_handshake(asio::ssl::stream_base::client, nothrow);
        if (hec)
            co_return error{errc::transport_failure,
                            "sqs: tls handshake with " + where + " failed: " + hec.message()};
    }
    co_return c;
}

asio::awaitable<result<http_response>> http_client::request(const url& u, http_request req,
                                                            duration timeout,
                                                            cancel_handle* cancel) {
    const auto key = (u.tls ? "https://" : "http://") + u.host + ':' + u.port;
    req.prepare_payload();
    for (int pass = 0; pass < 2; ++pass) {
        std::unique_ptr<connection> c;
        bool reused = false;
        if (auto it = idle_.find(key); pass == 0 && it != idle_.end() && !it->second.empty()) {
            c = std::move(it->second.back());
            it->second.pop_back();
            reused = true;
        } else {
            auto made = co_await connect(u, timeout, cancel);
            if (!made) {
                if (cancel) cancel->abort = nullptr;
                co_return std::move(made).error();
            }
            c = std::move(made).value();
        }
        if (cancel) {
            if (cancel->cancelled) {
                cancel->abort = nullptr;
                co_return error{errc::cancelled, "sqs: request cancelled"};
            }
            cancel->abort = [raw = c.get()] { raw->lowest().cancel(); };
        }
        c->lowest().expires_after(timeout);
        http::response_parser<http::string_body> parser;
        parser.body_limit(16 * 1024 * 1024);
        beast::error_code ec;
        if (c->secure) {
            auto [wec, wn] = co_await http::async_write(*c->secure, req, nothrow);
            ec = wec;
            if (!ec) {
                auto [rec, rn] = co_await http::async_read(*c->secure, c->buffer, parser, nothrow);
                ec = rec;
            }
        } else {
            auto [wec, wn] = co_await http::async_write(*c->plain, req, nothrow);
            ec = wec;
            if (!ec) {
                auto [rec, rn] = co_await http::async_read(*c->plain, c->buffer, parser, nothrow);
                ec = rec;
            }
        }
        if (cancel) cancel->abort = nullptr;
        if (ec) {
            if (cancel && cancel->cancelled)
                co_return error{errc::cancelled, "sqs: request cancelled"};
            // a kept-alive connection the server closed meanwhile: once more on a fresh one
            if (reused && ec != beast::error::timeout) continue;
            co_return error{errc::transport_failure, "sqs: http exchange with " + u.host_header +
                                                         " failed: " + ec.message()};
        }
        auto res = parser.release();
        http_response out;
        out.status = res.result_int();
        if (auto h = res.find("x-amzn-query-error"); h != res.end())
            out.query_error = std::string{h->value()};
        out.body = std::move(res.body());
        if (res.keep_alive()) {
            auto& list = idle_[key];
            if (list.size() < max_idle_) {
                c->lowest().expires_never();
                list.push_back(std::move(c));
            }
        }
        co_return out;
    }
    co_return error{errc::transport_failure,
                    "sqs: http exchange with " + u.host_header + " failed twice"};
}

}  // namespace saga::sqs::detail
