#include <saga/sqs/sigv4.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>

#include "environment.hpp"

namespace saga::sqs {

using detail::env;

namespace {

using digest = std::array<unsigned char, 32>;

std::string hex(const unsigned char* data, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(digits[data[i] >> 4]);
        out.push_back(digits[data[i] & 0x0f]);
    }
    return out;
}

digest hmac(std::string_view key, std::string_view data) {
    digest out{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
    return out;
}

std::string_view as_view(const digest& d) {
    return {reinterpret_cast<const char*>(d.data()), d.size()};
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

/// Trims and collapses runs of spaces, as the canonical header value wants.
std::string canonical_value(std::string_view v) {
    std::string out;
    bool space = false;
    for (char c : v) {
        if (c == ' ' || c == '\t') {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    return out;
}

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return std::string{s.substr(b, e - b + 1)};
}

}  // namespace

std::string sha256_hex(std::string_view data) {
    digest out{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
    return hex(out.data(), out.size());
}

std::string amz_date_now() {
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::array<char, 20> buf{};
    const auto n = std::strftime(buf.data(), buf.size(), "%Y%m%dT%H%M%SZ", &tm);
    return std::string{buf.data(), n};
}

result<signature_v4> sign_v4(const signing_request& request, const credentials& creds,
                             std::string_view region, std::string_view service) {
    std::map<std::string, std::string> headers;
    for (const auto& [name, value] : request.headers) {
        auto& slot = headers[lower(name)];
        if (!slot.empty()) slot += ',';
        slot += canonical_value(value);
    }
    const auto date_it = headers.find("x-amz-date");
    if (date_it == headers.end() || date_it->second.size() < 8)
        return error{errc::invalid_argument, "sigv4: the request has no x-amz-date header"};
    const std::string amz_date = date_it->second;
    const std::string date = amz_date.substr(0, 8);

    std::string canonical_headers;
    std::string signed_headers;
    for (const auto& [name, value] : headers) {
        canonical_headers += name + ':' + value + '\n';
        if (!signed_headers.empty()) signed_headers += ';';
        signed_headers += name;
    }

    signature_v4 s;
    s.canonical_request = request.method + '\n' + request.path + '\n' + request.query + '\n' +
                          canonical_headers + '\n' + signed_headers + '\n' +
                          sha256_hex(request.body);
    const std::string scope =
        date + '/' + std::string{region} + '/' + std::string{service} + "/aws4_request";
    s.string_to_sign =
        "AWS4-HMAC-SHA256\n" + amz_date + '\n' + scope + '\n' + sha256_hex(s.canonical_request);

    const auto k_date = hmac("AWS4" + creds.secret_access_key, date);
    const auto k_region = hmac(as_view(k_date), region);
    const auto k_service = hmac(as_view(k_region), service);
    const auto k_signing = hmac(as_view(k_service), "aws4_request");
    const auto sig = hmac(as_view(k_signing), s.string_to_sign);
    s.signature = hex(sig.data(), sig.size());
    s.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + '/' + scope +
                      ", SignedHeaders=" + signed_headers + ", Signature=" + s.signature;
    return s;
}

result<credentials> load_credentials(const credentials_options& options) {
    credentials c{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
    if (!c.access_key_id.empty() && !c.secret_access_key.empty()) return c;

    std::string file = options.credentials_file;
    if (file.empty()) file = env("AWS_SHARED_CREDENTIALS_FILE");
    if (file.empty()) {
        const auto home = env("HOME");
        if (!home.empty()) file = home + "/.aws/credentials";
    }
    std::string profile = options.profile;
    if (profile.empty()) profile = env("AWS_PROFILE");
    if (profile.empty()) profile = "default";

    const auto none = [&](std::string why) {
        return error{errc::invalid_argument,
                     "sqs: no aws credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are "
                     "not set and " +
                         why};
    };
    if (file.empty()) return none("there is no shared credentials file (HOME is not set)");
    std::ifstream in(file);
    if (!in) return none("the shared credentials file '" + file + "' cannot be read");

    credentials found;
    std::string line;
    bool in_profile = false;
    bool seen_profile = false;
    while (std::getline(in, line)) {
        const auto t = trim(line);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        if (t.front() == '[' && t.back() == ']') {
            in_profile = trim(std::string_view{t}.substr(1, t.size() - 2)) == profile;
            seen_profile = seen_profile || in_profile;
            continue;
        }
        if (!in_profile) continue;
        const auto eq = t.find('=');
        if (eq == std::string::npos) continue;
        const auto key = lower(trim(std::string_view{t}.substr(0, eq)));
        auto value = trim(std::string_view{t}.substr(eq + 1));
        if (key == "aws_access_key_id")
            found.access_key_id = std::move(value);
        else if (key == "aws_secret_access_key")
            found.secret_access_key = std::move(value);
        else if (key == "aws_session_token")
            found.session_token = std::move(value);
    }
    if (!seen_profile)
        return none("the shared credentials file '" + file + "' has no profile [" + profile + "]");
    if (found.access_key_id.empty() || found.secret_access_key.empty())
        return none("profile [" + profile + "] of '" + file +
                    "' lacks aws_access_key_id or aws_secret_access_key");
    return found;
}

}  // namespace saga::sqs
