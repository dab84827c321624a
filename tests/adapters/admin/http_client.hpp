#pragma once
// A small blocking Beast client for the admin server's tests.

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace saga::test::admin {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct reply {
    unsigned status = 0;
    std::string content_type;
    std::string body;
    std::map<std::string, std::string> headers;
    /// the body parsed as JSON (null when it is not JSON)
    nlohmann::json json;
    bool keep_alive = false;

    [[nodiscard]] std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
    /// `error.type` of a JSON error body
    [[nodiscard]] std::string error_type() const {
        return json.is_object() && json.contains("error") ? json["error"].value("type", "") : "";
    }
    /// `error.correlation` of a JSON error body
    [[nodiscard]] std::string error_correlation() const {
        return json.is_object() && json.contains("error") ? json["error"].value("correlation", "")
                                                          : "";
    }
};

/// One keep-alive connection to 127.0.0.1:port.
class client {
public:
    explicit client(std::uint16_t port, std::string token = {}) : token_(std::move(token)) {
        socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    }

    /// Sends a request; with `token` unset the client's token is used ("" sends none).
    reply send(http::verb method, const std::string& target, const std::string& body = {},
               std::map<std::string, std::string> headers = {},
               std::optional<std::string> token = std::nullopt) {
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        const auto t = token.value_or(token_);
        if (!t.empty()) req.set(http::field::authorization, "Bearer " + t);
        for (auto& [k, v] : headers) req.set(k, v);
        if (!body.empty()) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        req.keep_alive(true);
        http::write(socket_, req);
        return read();
    }
    reply get(const std::string& target) { return send(http::verb::get, target); }
    reply post(const std::string& target, const nlohmann::json& body,
               std::map<std::string, std::string> headers = {}) {
        return send(http::verb::post, target, body.dump(), std::move(headers));
    }

    /// Writes raw bytes (for requests Beast would not build) and reads the reply.
    reply raw(const std::string& bytes) {
        boost::asio::write(socket_, boost::asio::buffer(bytes));
        return read();
    }

private:
    reply read() {
        http::response<http::string_body> res;
        http::read(socket_, buffer_, res);
        reply r;
        r.status = res.result_int();
        r.content_type = std::string(res[http::field::content_type]);
        r.body = res.body();
        r.keep_alive = res.keep_alive();
        for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
        r.json = nlohmann::json::parse(r.body, nullptr, false);
        if (r.json.is_discarded()) r.json = nullptr;
        return r;
    }

    boost::asio::io_context ioc_;
    tcp::socket socket_{ioc_};
    boost::beast::flat_buffer buffer_;
    std::string token_;
};

}  // namespace saga::test::admin
