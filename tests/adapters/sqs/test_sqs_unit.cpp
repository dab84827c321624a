// saga::sqs without a server: SigV4 against AWS's published test vectors, credentials loading,
// queue and topic naming.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#include <saga/sqs/sigv4.hpp>
#include <saga/sqs/sqs_transport.hpp>

namespace {

using saga::sqs::credentials;
using saga::sqs::signing_request;

const credentials example{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

signing_request vanilla(std::string method) {
    return {.method = std::move(method),
            .path = "/",
            .query = "",
            .headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
            .body = ""};
}

/// Sets an environment variable for one scope, restoring it afterwards.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value)
            ::setenv(name, value, 1);
        else
            ::unsetenv(name);
    }
    ~scoped_env() {
        if (old_)
            ::setenv(name_, old_->c_str(), 1);
        else
            ::unsetenv(name_);
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("sigv4 matches the published get-vanilla vector", "[sqs][sigv4]") {
    const auto s = saga::sqs::sign_v4(vanilla("GET"), example, "us-east-1", "service");
    REQUIRE(s);
    CHECK(s.value().signature ==
          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    CHECK(s.value().authorization ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
          "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("sigv4 matches the published post-vanilla vector", "[sqs][sigv4]") {
    const auto s = saga::sqs::sign_v4(vanilla("POST"), example, "us-east-1", "service");
    REQUIRE(s);
    CHECK(s.value().signature ==
          "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST_CASE("sigv4 matches the published post-x-www-form-urlencoded vector", "[sqs][sigv4]") {
    auto r = vanilla("POST");
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.body = "Param1=value1";
    const auto s = saga::sqs::sign_v4(r, example, "us-east-1", "service");
    REQUIRE(s);
    CHECK(s.value().signature ==
          "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
    CHECK(s.value().authorization.find("SignedHeaders=content-type;host;x-amz-date") !=
          std::string::npos);
}

TEST_CASE("sigv4 refuses a request without x-amz-date", "[sqs][sigv4]") {
    signing_request r{.headers = {{"host", "example.amazonaws.com"}}};
    const auto s = saga::sqs::sign_v4(r, example, "us-east-1", "sqs");
    REQUIRE_FALSE(s);
    CHECK(s.error() == saga::errc::invalid_argument);
}

TEST_CASE("sha256 of the empty string", "[sqs][sigv4]") {
    CHECK(saga::sqs::sha256_hex("") ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("credentials come from the environment first", "[sqs][credentials]") {
    scoped_env id("AWS_ACCESS_KEY_ID", "AKIAENV");
    scoped_env secret("AWS_SECRET_ACCESS_KEY", "env-secret");
    scoped_env token("AWS_SESSION_TOKEN", "env-token");
    const auto c = saga::sqs::load_credentials();
    REQUIRE(c);
    CHECK(c.value().access_key_id == "AKIAENV");
    CHECK(c.value().secret_access_key == "env-secret");
    CHECK(c.value().session_token == "env-token");
}

TEST_CASE("credentials come from the profile of the shared credentials file",
          "[sqs][credentials]") {
    scoped_env id("AWS_ACCESS_KEY_ID", nullptr);
    scoped_env secret("AWS_SECRET_ACCESS_KEY", nullptr);
    scoped_env token("AWS_SESSION_TOKEN", nullptr);
    const std::string file = "sqs-credentials-test.ini";
    {
        std::ofstream out(file);
        out << "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key=s1\n\n"
               "# a comment\n[work]\naws_access_key_id=AKIAWORK\n"
               "aws_secret_access_key = very-secret-work-key\naws_session_token = tok\n";
    }
    scoped_env path("AWS_SHARED_CREDENTIALS_FILE", file.c_str());

    SECTION("the default profile") {
        scoped_env profile("AWS_PROFILE", nullptr);
        const auto c = saga::sqs::load_credentials();
        REQUIRE(c);
        CHECK(c.value().access_key_id == "AKIADEFAULT");
        CHECK(c.value().secret_access_key == "s1");
    }
    SECTION("AWS_PROFILE") {
        scoped_env profile("AWS_PROFILE", "work");
        const auto c = saga::sqs::load_credentials();
        REQUIRE(c);
        CHECK(c.value().access_key_id == "AKIAWORK");
        CHECK(c.value().secret_access_key == "very-secret-work-key");
        CHECK(c.value().session_token == "tok");
    }
    SECTION("a missing profile is an error that names the file, never a secret") {
        const auto c = saga::sqs::load_credentials({.profile = "nope"});
        REQUIRE_FALSE(c);
        CHECK(c.error() == saga::errc::invalid_argument);
        CHECK(c.error().message.find("[nope]") != std::string::npos);
        CHECK(c.error().message.find("very-secret-work-key") == std::string::npos);
    }
    std::remove(file.c_str());
}

TEST_CASE("queue and topic names follow the SQS and SNS rules", "[sqs][naming]") {
    saga::sqs::sqs_options o{.queue_prefix = "prod.", .topic_prefix = "prod-"};
    CHECK(saga::sqs::queue_name(o, "billing/commands").value() == "prod-billing-commands");
    CHECK(saga::sqs::topic_name(o, "campaign:published").value() == "prod-campaign-published");
    CHECK(saga::sqs::dead_letter_endpoint(o, "billing") == "billing-dlq");

    o.fifo = true;
    CHECK(saga::sqs::queue_name(o, "billing").value() == "prod-billing.fifo");
    CHECK(saga::sqs::queue_name(o, "billing.fifo").value() == "prod-billing.fifo");

    const auto empty = saga::sqs::queue_name(o, "");
    REQUIRE_FALSE(empty);
    CHECK(empty.error() == saga::errc::invalid_argument);

    const auto long_name = saga::sqs::queue_name(o, std::string(90, 'a'));
    REQUIRE_FALSE(long_name);
    CHECK(long_name.error() == saga::errc::invalid_argument);
    CHECK(long_name.error().message.find("limit is 80") != std::string::npos);
}

TEST_CASE("create refuses a missing region and a malformed endpoint", "[sqs][options]") {
    scoped_env r1("AWS_REGION", nullptr);
    scoped_env r2("AWS_DEFAULT_REGION", nullptr);
    const saga::sqs::credentials creds{"AKIAX", "secret-that-must-not-show", ""};
    auto no_region = saga::sqs::sqs_transport::create({.creds = creds});
    REQUIRE_FALSE(no_region);
    CHECK(no_region.error() == saga::errc::invalid_argument);
    CHECK(no_region.error().message.find("region") != std::string::npos);

    auto bad_url = saga::sqs::sqs_transport::create(
        {.region = "us-east-1", .sqs_endpoint = "ftp://x", .creds = creds});
    REQUIRE_FALSE(bad_url);
    CHECK(bad_url.error() == saga::errc::invalid_argument);
    CHECK(bad_url.error().message.find("secret-that-must-not-show") == std::string::npos);
}
