// The admin server over an engine with instances in many statuses, for the browser test and for
// trying the dashboard by hand:
//   admin_test_server [--port N] [--token T] [--static-dir DIR]
// Prints "port=<bound port>" once it listens, then serves until SIGINT or SIGTERM.
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include <saga/admin/server.hpp>

#include "approval_world.hpp"

int main(int argc, char** argv) {
    saga::admin::server_options options{.port = 0, .token = std::string("test-token")};
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        const std::string value = argv[i + 1];
        if (flag == "--port")
            options.port = static_cast<std::uint16_t>(std::stoi(value));
        else if (flag == "--token")
            options.token = value;
        else if (flag == "--static-dir")
            options.static_dir = value;
        else {
            fmt::print(stderr, "unknown option {}\n", flag);
            return 2;
        }
    }
    // Block the stop signals before any thread starts, so only sigwait sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    saga::test::admin::world w;
    if (auto r = w.open(); !r) {
        fmt::print(stderr, "cannot open the engine: {}\n", r.error().what());
        return 1;
    }
    try {
        w.seed();
    } catch (const std::exception& e) {
        fmt::print(stderr, "cannot seed: {}\n", e.what());
        return 1;
    }
    saga::admin::server admin(w.eng(), options);
    auto port = admin.start();
    if (!port) {
        fmt::print(stderr, "cannot start the admin server: {}\n", port.error().what());
        return 1;
    }
    fmt::print("port={}\n", port.value());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    admin.stop();
    w.stop();
    return 0;
}
