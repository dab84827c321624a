#pragma once
// The process environment, as the AWS SDKs read it (credentials, region, endpoints).

#include <cstdlib>
#include <string>

namespace saga::sqs::detail {

/// The value of environment variable `name`, or empty when it is not set.
inline std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string{v} : std::string{};
}

}  // namespace saga::sqs::detail
