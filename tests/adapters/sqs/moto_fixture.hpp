#pragma once
// A moto_server (the AWS emulator) for one test process: started on a free port, killed by its
// PID when the fixture goes, restartable on the same port (moto then has lost its state).

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <saga/sqs/sqs_transport.hpp>

#include "skip_test.hpp"

namespace saga::sqs::test {

/// Output of a shell command (trimmed), or empty.
inline std::string shell(const std::string& command) {
    std::string out;
    if (FILE* p = ::popen(command.c_str(), "r")) {
        std::array<char, 4096> buf{};
        std::size_t n = 0;
        while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
        ::pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

/// Where moto_server is, or empty.
inline std::string moto_path() {
    static const std::string path = shell("command -v moto_server 2>/dev/null");
    return path;
}

inline int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

inline bool port_answers(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

class moto_server {
public:
    /// Starts moto with `env` added to its environment (e.g. INITIAL_NO_AUTH_ACTION_COUNT).
    explicit moto_server(std::map<std::string, std::string> env = {})
        : env_(std::move(env)), port_(free_port()) {
        if (!moto_path().empty()) start();
    }
    ~moto_server() { stop(SIGTERM); }
    moto_server(const moto_server&) = delete;
    moto_server& operator=(const moto_server&) = delete;

    [[nodiscard]] bool available() const { return pid_ > 0; }
    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    /// Kills moto at once (SIGKILL), as a crash would.
    void kill_hard() { stop(SIGKILL); }
    /// Starts moto again on the same port (with an empty state).
    void restart() { start(); }

    /// Wipes moto's state.
    void reset() const {
        (void)shell("curl -s -X POST " + url() + "/moto-api/reset >/dev/null 2>&1");
    }

private:
    void start() {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::setpgid(0, 0);
            // dies with the test process, even when a crash skips the destructor
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            const int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
            for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
            const auto port = std::to_string(port_);
            const auto path = moto_path();
            ::execl(path.c_str(), "moto_server", "-H", "127.0.0.1", "-p", port.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        pid_ = pid;
        for (int i = 0; i < 300 && !port_answers(port_); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds{50});
        if (!port_answers(port_)) {
            stop(SIGKILL);
            FAIL("moto_server did not start on port " << port_);
        }
    }

    void stop(int sig) {
        if (pid_ <= 0) return;
        ::kill(-pid_, sig);  // its own process group: the shim and the python it runs
        ::kill(pid_, sig);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        for (int i = 0; i < 100 && port_answers(port_); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }

    std::map<std::string, std::string> env_;
    int port_;
    pid_t pid_ = -1;
};

/// Log lines of a transport, kept for assertions.
struct log_capture {
    struct sink_t final : saga::log_sink {
        std::mutex mutex;
        std::vector<std::string> lines;
        void write(const saga::log_record& r) override {
            std::lock_guard lock(mutex);
            lines.push_back(r.message);
            if (r.level != saga::log_level::info)
                std::fprintf(stderr, "[sqs] %s\n", r.message.c_str());
        }
    };
    std::shared_ptr<sink_t> captured = std::make_shared<sink_t>();

    std::shared_ptr<saga::log_sink> sink() { return captured; }
    bool contains(std::string_view needle) {
        std::lock_guard lock(captured->mutex);
        for (const auto& l : captured->lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

/// Options for a transport talking to `moto` with fast retries and short long polls.
inline saga::sqs::sqs_options moto_options(const moto_server& moto) {
    return saga::sqs::sqs_options{
        .region = "us-east-1",
        .sqs_endpoint = moto.url(),
        .sns_endpoint = moto.url(),
        .creds = saga::sqs::credentials{"AKIDTEST", "test-secret", ""},
        .wait_time = std::chrono::seconds{1},
        .max_attempts = 4,
        .initial_backoff = std::chrono::milliseconds{50},
        .max_backoff = std::chrono::milliseconds{500},
        .request_timeout = std::chrono::seconds{5},
    };
}

/// Ends the test case as skipped when moto is missing (a failure under CI=true: see
/// tests/skip_test.hpp); the CMake side does not even build the moto tests then.
#define SAGA_REQUIRE_MOTO(moto)                                                   \
    do {                                                                          \
        if (!(moto).available()) SAGA_SKIP_TEST("moto_server not found on PATH"); \
    } while (false)

/// The moto_server of a test binary, started on first use and shared by its test cases.
inline moto_server& shared_moto() {
    static moto_server server;
    return server;
}

/// A test's view of one transport: what the contract helpers need, plus the concrete type.
struct env {
    std::shared_ptr<saga::sqs::sqs_transport> sqs;
    std::shared_ptr<saga::transport> transport;
    saga::duration visibility_timeout = std::chrono::seconds{1};
    std::chrono::milliseconds max_wait = std::chrono::seconds{60};  // a bound: CI is slow
    std::chrono::milliseconds quiet_period = std::chrono::milliseconds{300};

    explicit env(saga::sqs::sqs_options o) {
        auto t = saga::sqs::sqs_transport::create(std::move(o));
        REQUIRE(t);
        sqs = std::move(t).value();
        transport = sqs;
    }
    void advance(saga::duration d) const { std::this_thread::sleep_for(d); }
};

/// `base` with a number no earlier call of the binary returned: queue names of their own.
inline std::string unique(std::string_view base) {
    static int counter = 0;
    return std::string{base} + "-" + std::to_string(++counter);
}

}  // namespace saga::sqs::test
