// runtime_bench: the core v2 runtime (src/runtime, on the pure machine) alone, on the
// campaign-shaped saga of saga_bench (campaign_saga.hpp, variant A), over the in-memory journal
// store and transport, on one thread with the virtual clock. It answers one question early: how
// many instructions a saga costs in the new core, before the engine runs on it.
//
//   runtime_bench [--sagas N] [--inflight N]
//
// For instructions per saga, run it under callgrind twice and take the difference
// (bench/instructions.sh --runtime does).

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/participant.hpp>

#include "campaign_saga.hpp"
#include "runtime/runtime.hpp"

namespace {

using bench::campaign;
using bench::platforms;

long arg(int argc, char** argv, std::string_view name, long fallback) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == name) return std::strtol(argv[i + 1], nullptr, 10);
    return fallback;
}

}  // namespace

int main(int argc, char** argv) {
    const long sagas = arg(argc, argv, "--sagas", 2000);
    const long inflight = arg(argc, argv, "--inflight", 64);
    boost::asio::io_context io;
    auto clock = std::make_shared<saga::virtual_clock>();
    auto store = std::make_shared<saga::inmemory::memory_journal_store>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
    auto rt = saga::runtime::runtime::create(
                  {.store = store, .transport = transport, .clock = clock.get(), .io = &io})
                  .value();
    if (!rt->add(bench::publish_campaign().value().model()) || !rt->open()) return 1;

    std::vector<std::unique_ptr<saga::participant>> participants;
    auto answer = [&](const std::string& endpoint, std::initializer_list<const char*> types) {
        auto p = std::make_unique<saga::participant>(transport, endpoint);
        for (const char* t : types)
            p->on(t, [](const saga::envelope& e) {
                return saga::participant_reply::success({{"id", e.idempotency_key}});
            });
        if (!p->start(io.get_executor())) std::exit(1);
        participants.push_back(std::move(p));
    };
    answer("budget", {"reserve", "release"});
    answer("feeds", {"ensure"});
    for (const auto platform : platforms) answer(std::string(platform), {"submit", "withdraw"});
    answer("campaigns", {"activate"});

    long started = 0;
    long done = 0;
    long completed = 0;
    auto start_one = [&] {
        const auto id = fmt::format("c-{}", started++);
        if (!rt->start({.definition = "publish_campaign",
                        .data = campaign{.campaign_id = id, .budget = 100},
                        .id = id}))
            std::exit(1);
        rt->when_settled(id, [&](saga::result<saga::runtime::runtime::inspection> s) {
            ++done;
            if (s && s.value().state.status == saga::saga_status::completed) ++completed;
        });
    };
    const auto t0 = std::chrono::steady_clock::now();
    while (done < sagas) {
        while (started < sagas && started - done < inflight) start_one();
        io.restart();
        const auto ran = io.poll();
        clock->advance(std::chrono::milliseconds{0});
        if (ran == 0 && clock->pending() == 0 && started - done >= inflight) break;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto stats = rt->stats();
    fmt::print(
        "runtime_bench: {} sagas ({} completed), {} in flight, {:.3f} s, {:.0f} sagas/s on "
        "one thread; {:.2f} records per saga, {} evicted\n",
        done, completed, inflight, secs, static_cast<double>(done) / secs,
        static_cast<double>(stats.commits) / static_cast<double>(sagas), stats.evicted);
    return completed == sagas ? 0 : 2;
}
