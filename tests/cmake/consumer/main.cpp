// An outside program built against an installed saga: it only uses what the install provides
// (headers, saga::core, saga::inmemory and their dependencies through sagaConfig.cmake).
// Returns non-zero, saying why, if anything does not work.

#include <saga/inmemory/memory_store.hpp>
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

    // A record committed to the in-memory store and loaded back.
    saga::inmemory::memory_store store;
    const order data{"ada", 42, true};
    saga::transition t;
    t.record.id = "order-1";
    t.record.definition = def.value().name();
    t.record.definition_version = def.value().version();
    t.record.version = 1;
    t.record.correlation_key = "customer-ada";
    t.record.data = data;
    t.expected_version = 0;
    t.history.push_back({.saga_id = "order-1", .version = 1, .event = "saga_started"});
    if (auto r = store.commit(std::move(t)); !r) {
        std::fprintf(stderr, "consumer: commit failed: %s\n", r.error().what().c_str());
        return 1;
    }
    auto loaded = store.load("order-1");
    if (!loaded) {
        std::fprintf(stderr, "consumer: load failed: %s\n", loaded.error().what().c_str());
        return 1;
    }
    check(loaded.value().version == 1, "loaded version");
    check(loaded.value().definition == "consumer_order", "loaded definition");
    check(loaded.value().correlation_key == "customer-ada", "loaded correlation key");
    check(loaded.value().data.get<order>().amount == 42, "loaded data");
    auto missing = store.load("order-2");
    check(!missing && missing.error() == saga::errc::not_found, "an unknown id is not_found");

    if (failures == 0) std::printf("consumer: ok\n");
    return failures == 0 ? 0 : 1;
}
