#pragma once
/// @file sigv4.hpp
/// AWS Signature Version 4 and AWS credentials, as the SQS/SNS transport uses them. Public so
/// that the published test vectors can be checked, and so a user can sign a request of their own.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <saga/error.hpp>

namespace saga::sqs {

/// AWS credentials. The secret is never written to a log line or an error message.
struct credentials {
    /// the access key id (AKIA..., ASIA...)
    std::string access_key_id;
    /// the secret access key
    std::string secret_access_key;
    /// the session token of temporary credentials; empty for long-term keys
    std::string session_token;
};

/// Where to look for credentials, beyond the environment.
struct credentials_options {
    /// the profile of the shared credentials file; empty: `AWS_PROFILE`, else "default"
    std::string profile;
    /// the shared credentials file; empty: `AWS_SHARED_CREDENTIALS_FILE`, else
    /// `$HOME/.aws/credentials`
    std::string credentials_file;
};

/// Loads credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`)
/// from the environment when both are set, else the profile of the shared credentials file.
/// `errc::invalid_argument` saying where it looked when none are found (never the secret).
[[nodiscard]] result<credentials> load_credentials(const credentials_options& options = {});

/// One HTTP request to sign. Header names may be in any case; `host` and `x-amz-date` must be
/// among them.
struct signing_request {
    /// "GET", "POST"
    std::string method = "POST";
    /// the URI path, already encoded ("/")
    std::string path = "/";
    /// the canonical query string (sorted, encoded), empty for POST requests
    std::string query;
    /// every header to sign, as sent
    std::vector<std::pair<std::string, std::string>> headers;
    /// the body, exactly as sent
    std::string body;
};

/// What signing produced: the value of the `Authorization` header, and the intermediate
/// strings (handy when a server rejects a signature).
struct signature_v4 {
    std::string authorization;
    std::string signature;
    std::string canonical_request;
    std::string string_to_sign;
};

/// Signs `request` for `region` and `service` ("sqs", "sns") with `creds`; the request's
/// `x-amz-date` header gives the time. `errc::invalid_argument` when it lacks that header.
[[nodiscard]] result<signature_v4> sign_v4(const signing_request& request, const credentials& creds,
                                           std::string_view region, std::string_view service);

/// Lower-case hex of the SHA-256 of `data`.
[[nodiscard]] std::string sha256_hex(std::string_view data);

/// The current UTC time as `YYYYMMDDTHHMMSSZ` (the `x-amz-date` format).
[[nodiscard]] std::string amz_date_now();

}  // namespace saga::sqs
