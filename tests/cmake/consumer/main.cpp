// An outside program built against an installed saga: it only uses what the install provides
// (headers, saga::core, saga::inmemory and their dependencies through sagaConfig.cmake).
// Returns non-zero, saying why, if anything does not work.

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/inmemory/memory_transport.hpp>
#include <saga/saga.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <utility>

namespace {

struct order {
    std::string customer;
    int amount = 0;
    bool reserved = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order, customer, amount, reserved)

int failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "consumer: FAILED: %s\n", what);
        ++failures;
    }
}

}  // namespace

int main() {
    // A definition, built and validated.
    auto def = saga::definition_builder<order>("consumer_order", 1)
                   .local("reserve", [](order& o) { o.reserved = true; })
                   .compensate([](order& o) { o.reserved = false; })
                   .local("confirm", [](order&) -> saga::result<void> { return saga::success(); })
                   .pivot()
                   .build();
    if (!def) {
        std::fprintf(stderr, "consumer: build() failed: %s\n", def.error().what().c_str());
        return 1;
    }
    check(def.value().name() == "consumer_order", "definition name");
    check(def.value().version() == 1, "definition version");
    check(def.value().model()->steps.size() == 2, "definition has two steps");

    // A mistake is reported by build() as errc::invalid_definition.
    auto bad = saga::definition_builder<order>("consumer_order", 1).build();
    check(!bad && bad.error() == saga::errc::invalid_definition, "an empty saga is rejected");

    // A saga run by the engine on the in-memory store, on a virtual clock.
    auto clock = std::make_shared<saga::virtual_clock>();
    saga::engine eng(std::make_shared<saga::inmemory::memory_journal_store>(),
                     std::make_shared<saga::inmemory::memory_transport>(clock), {.clock = clock});
    if (auto r = eng.add(def.value()); !r) {
        std::fprintf(stderr, "consumer: add failed: %s\n", r.error().what().c_str());
        return 1;
    }
    auto id = eng.start("consumer_order", order{"ada", 42, false},
                        {.id = "order-1", .correlation_key = "customer-ada"});
    if (!id) {
        std::fprintf(stderr, "consumer: start failed: %s\n", id.error().what().c_str());
        return 1;
    }
    check(eng.run_until_settled().has_value(), "run until settled");
    auto view = eng.query("order-1");
    if (!view) {
        std::fprintf(stderr, "consumer: query failed: %s\n", view.error().what().c_str());
        return 1;
    }
    check(view.value().status == saga::saga_status::completed, "the saga completed");
    check(view.value().definition == "consumer_order", "its definition");
    check(view.value().correlation_key == "customer-ada", "its correlation key");
    check(view.value().data.get<order>().reserved, "its data");
    auto missing = eng.query("order-2");
    check(!missing && missing.error() == saga::errc::not_found, "an unknown id is not_found");

    if (failures == 0) std::printf("consumer: ok\n");
    return failures == 0 ? 0 : 1;
}
