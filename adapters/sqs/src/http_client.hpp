#pragma once
// A small HTTP/1.1 client on Boost.Beast for the SQS/SNS transport: keep-alive connections
// pooled per host, TLS (OpenSSL, verification on, SNI) for https:// URLs, plain TCP for http://.
// Every member runs on the transport's single I/O thread, so nothing here is locked.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <saga/clock.hpp>
#include <saga/error.hpp>

namespace saga::sqs::detail {

/// A parsed endpoint URL.
struct url {
    bool tls = false;
    std::string host;
    std::string port;
    /// the path to POST to ("/" for AWS endpoints)
    std::string path = "/";
    /// the Host header: host, plus ":port" when not the scheme's default
    std::string host_header;
};

/// Parses `http://host[:port][/path]` or `https://...`; `errc::invalid_argument` otherwise.
[[nodiscard]] result<url> parse_url(std::string_view text);

/// What came back.
struct http_response {
    unsigned status = 0;
    std::string body;
    /// the x-amzn-query-error header (SQS: "AWS.SimpleQueueService.NonExistentQueue;Sender")
    std::string query_error;
};

/// Lets the I/O thread abort one request in progress (the long poll of a stopping consumer).
struct cancel_handle {
    bool cancelled = false;
    std::function<void()> abort;
    void cancel() {
        cancelled = true;
        if (abort) abort();
    }
};

using http_request = boost::beast::http::request<boost::beast::http::string_body>;

class http_client {
public:
    http_client(boost::asio::io_context& io, std::shared_ptr<boost::asio::ssl::context> tls,
                std::size_t max_idle);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// Sends `req` to `u` on a pooled connection (a new one when none is idle, a second try on a
    /// fresh one when a reused connection turns out closed) and reads the response within
    /// `timeout`. Connection failures and timeouts are `errc::transport_failure`; a cancelled
    /// request is `errc::cancelled`.
    boost::asio::awaitable<result<http_response>> request(const url& u, http_request req,
                                                          duration timeout,
                                                          cancel_handle* cancel = nullptr);

    /// Closes every idle connection.
    void close_idle();

private:
    struct connection;
    boost::asio::awaitable<result<std::unique_ptr<connection>>> connect(const url& u,
                                                                        duration timeout,
                                                                        cancel_handle* cancel);
    boost::asio::io_context& io_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::size_t max_idle_;
    std::map<std::string, std::vector<std::unique_ptr<connection>>> idle_;
};

}  // namespace saga::sqs::detail
