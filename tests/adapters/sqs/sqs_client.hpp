#pragma once
// A minimal synchronous SQS client for tests (JSON 1.0 protocol, SigV4, one kept-alive
// connection to moto), so a test can put on a queue what anyone with send rights could, and
// look into queues behind the transport's back. Not thread-safe: one per thread.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include <saga/sqs/sigv4.hpp>

namespace saga::sqs::test {

class sqs_client {
public:
    explicit sqs_client(int port) : port_(port), stream_(io_) {}

    /// Calls `op` with `body`; the answer, or an object with "__type" saying what failed.
    nlohmann::json call(std::string_view op, const nlohmann::json& body) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            try {
                return call_once(op, body);
            } catch (const std::exception& e) {
                connected_ = false;
                boost::beast::error_code ignored;
                stream_.socket().close(ignored);
                if (attempt == 1) return {{"__type", std::string{"client: "} + e.what()}};
            }
        }
        return nlohmann::json::object();
    }

private:
    nlohmann::json call_once(std::string_view op, const nlohmann::json& body) {
        namespace http = boost::beast::http;
        if (!connected_) {
            stream_.connect(boost::asio::ip::tcp::endpoint(
                boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)));
            connected_ = true;
        }
        const auto host = "127.0.0.1:" + std::to_string(port_);
        signing_request s;
        s.body = body.dump();
        s.headers = {{"host", host},
                     {"x-amz-date", amz_date_now()},
                     {"content-type", "application/x-amz-json-1.0"},
                     {"x-amz-target", "AmazonSQS." + std::string{op}}};
        auto sig = sign_v4(s, credentials{"K", "S", ""}, "us-east-1", "sqs");
        if (!sig) return {{"__type", "client: " + sig.error().message}};
        http::request<http::string_body> req{http::verb::post, "/", 11};
        for (const auto& [name, value] : s.headers) req.set(name, value);
        req.set(http::field::authorization, sig.value().authorization);
        req.keep_alive(true);
        req.body() = std::move(s.body);
        req.prepare_payload();
        http::write(stream_, req);
        boost::beast::flat_buffer buffer;
        http::response<http::string_body> res;
        http::read(stream_, buffer, res);
        if (!res.keep_alive()) {
            connected_ = false;
            boost::beast::error_code ignored;
            stream_.socket().close(ignored);
        }
        auto j = nlohmann::json::parse(res.body(), nullptr, false);
        return j.is_discarded() ? nlohmann::json{{"__type", "client: not json"}} : j;
    }

    int port_;
    boost::asio::io_context io_;
    boost::beast::tcp_stream stream_;
    bool connected_ = false;
};

}  // namespace saga::sqs::test
