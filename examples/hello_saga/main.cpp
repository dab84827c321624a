// hello_saga: the smallest complete saga. Three orders are placed; inventory and payments are
// separate participants reached only through the transport; the order whose card is declined is
// compensated (its stock reservation is released).
#include <fmt/format.h>

#include <cstdio>
#include <thread>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

// [readme]
struct order {
    std::string item;
    int quantity = 1;
    std::string card;
    std::string reservation;  // filled in by the inventory's reply
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order, item, quantity, card, reservation)

saga::result<saga::definition<order>> place_order() {
    using namespace std::chrono_literals;
    return saga::definition_builder<order>("place_order", 1)
        .local("validate",
               [](order& o) -> saga::result<void> {
                   if (o.quantity <= 0) return saga::permanent_error("quantity must be positive");
                   return saga::success();
               })
        .remote("reserve_stock", "inventory",
                [](const order& o) {
                    return saga::command{"reserve", {{"item", o.item}, {"quantity", o.quantity}}};
                })
        .on_reply([](order& o, const nlohmann::json& r) { o.reservation = r.at("id"); })
        .compensate_remote("inventory",
                           [](const order& o) {
                               return saga::command{"release", {{"id", o.reservation}}};
                           })
        .retry(saga::retry_policy::exponential(5, 100ms))
        .timeout(2s)
        .remote("charge_card", "payments",
                [](const order& o) {
                    return saga::command{"charge", {{"card", o.card}}};
                })
        .pivot()
        .local("confirm", [](order& o) { fmt::print("  confirmed {} x {}\n", o.quantity, o.item); })
        .build();
}
// [/readme]

int main() {
    auto clock = std::make_shared<saga::system_clock>();
    auto store = std::make_shared<saga::inmemory::memory_journal_store>();
    auto transport = std::make_shared<saga::inmemory::memory_transport>(clock);
    saga::engine engine(store, transport, {.workers = 2, .clock = clock});

    auto definition = place_order();
    if (!definition) {
        fmt::print(stderr, "invalid definition: {}\n", definition.error().what());
        return 1;
    }
    if (auto r = engine.add(definition.value()); !r) return 1;

    // Two participant services, each with a handler per command type.
    saga::participant inventory(transport, "inventory");
    inventory
        .on("reserve",
            [](const saga::envelope& e) {
                return saga::participant_reply::success({{"id", "res-" + e.idempotency_key}});
            })
        .on("release", [](const saga::envelope&) { return saga::participant_reply::success(); });
    saga::participant payments(transport, "payments");
    payments.on("charge", [](const saga::envelope& e) {
        if (e.payload.value("card", "") == "declined-card")
            return saga::participant_reply::permanent("card declined");
        return saga::participant_reply::success();
    });
    if (!inventory.start(engine.get_executor()) || !payments.start(engine.get_executor())) return 1;

    std::thread runner([&] { (void)engine.run(); });
    fmt::print("placing 3 orders\n");
    std::vector<std::string> ids;
    for (const auto& o :
         {order{"book", 2, "visa"}, order{"lamp", 1, "declined-card"}, order{"pen", 5, "amex"}}) {
        auto id = engine.start("place_order", o);
        if (!id) {
            fmt::print(stderr, "start failed: {}\n", id.error().what());
            return 1;
        }
        ids.push_back(id.value());
    }
    int bad = 0;
    for (const auto& id : ids) {
        auto v = engine.wait(id);
        if (!v) return 1;
        const auto& view = v.value();
        fmt::print("order {}: {}{}\n", id.substr(0, 8), saga::to_string(view.status),
                   view.error.empty() ? "" : " (" + view.error + ")");
        if (view.status != saga::saga_status::completed &&
            view.status != saga::saga_status::compensated)
            ++bad;
    }
    inventory.stop();
    payments.stop();
    engine.stop();
    runner.join();
    return bad == 0 ? 0 : 1;
}
