#pragma once
// A fake AWS endpoint for one test: a real HTTP/1.1 server on a free loopback port whose answers
// the test writes (to see what the transport does with answers no real service gives). One
// thread accepts; each connection is served on a thread of its own until the client closes it.
// Destroy the transport (which closes its connections) before the fake.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace saga::sqs::test {

class fake_aws {
public:
    /// What to answer: an HTTP status and a body.
    struct answer {
        unsigned status = 200;
        std::string body = "{}";
    };
    /// Answers one request: `operation` is the SQS `X-Amz-Target` without "AmazonSQS." or the
    /// SNS `Action=` of the form body.
    using handler = std::function<answer(const std::string& operation, const std::string& body)>;

    explicit fake_aws(handler h) : handler_(std::move(h)) {
        acceptor_.open(tcp::v4());
        acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        accepter_ = std::thread([this] { accept_loop(); });
    }
    ~fake_aws() {
        stopping_ = true;
        // wake the blocking accept
        boost::system::error_code ec;
        tcp::socket s(io_);
        s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
        accepter_.join();
        std::lock_guard lock(mutex_);
        for (auto& t : connections_) t.join();
    }
    fake_aws(const fake_aws&) = delete;
    fake_aws& operator=(const fake_aws&) = delete;

    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// Requests answered so far.
    [[nodiscard]] std::size_t requests() const { return requests_.load(); }

private:
    using tcp = boost::asio::ip::tcp;

    void accept_loop() {
        for (;;) {
            tcp::socket s(io_);
            boost::system::error_code ec;
            acceptor_.accept(s, ec);
            if (stopping_ || ec) return;
            std::lock_guard lock(mutex_);
            connections_.emplace_back([this, sock = std::move(s)]() mutable { serve(sock); });
        }
    }

    void serve(tcp::socket& s) {
        namespace http = boost::beast::http;
        boost::beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> req;
            boost::system::error_code ec;
            http::read(s, buffer, req, ec);
            if (ec) return;
            std::string op(req["X-Amz-Target"]);
            if (const auto dot = op.find('.'); dot != std::string::npos) op = op.substr(dot + 1);
            if (op.empty()) {
                const auto& b = req.body();
                if (const auto a = b.find("Action="); a != std::string::npos)
                    op = b.substr(a + 7, b.find('&', a) - a - 7);
            }
            const auto a = handler_(op, req.body());
            ++requests_;
            http::response<http::string_body> res{static_cast<http::status>(a.status), 11};
            res.set(http::field::content_type, "application/x-amz-json-1.0");
            res.body() = a.body;
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            http::write(s, res, ec);
            if (ec || !req.keep_alive()) return;
        }
    }

    handler handler_;
    boost::asio::io_context io_;
    tcp::acceptor acceptor_{io_};
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> requests_{0};
    std::thread accepter_;
    std::mutex mutex_;
    std::vector<std::thread> connections_;
};

}  // namespace saga::sqs::test
