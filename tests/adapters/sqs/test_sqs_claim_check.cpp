// Claim checks kept in a journal store: a body put under a key is read back byte for byte, an
// unknown key is not_found, a key is taken once, and a body that is not UTF-8 is refused clearly.
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <saga/inmemory/memory_journal_store.hpp>
#include <saga/sqs/claim_check.hpp>

TEST_CASE("claim checks in a journal store are read back byte for byte", "[sqs][claim_check]") {
    auto store = std::make_shared<saga::inmemory::memory_journal_store>();
    saga::sqs::journal_store_claim_check claims(store);
    std::string body(300 * 1024, 'x');
    body[7] = '"';
    body[1000] = '\0';
    body += "\n{]\xc3\xa9";
    REQUIRE(claims.put("k-1", body));
    auto back = claims.get("k-1");
    REQUIRE(back);
    CHECK(back.value() == body);
    // what retention sees: a completed instance of its own definition
    auto head = store->head("sqs-claim-check/k-1");
    REQUIRE(head);
    CHECK(head.value().definition == "saga.sqs.claim_check");
    CHECK(head.value().status == saga::saga_status::completed);

    auto missing = claims.get("k-2");
    REQUIRE_FALSE(missing);
    CHECK(missing.error() == saga::errc::not_found);
    auto again = claims.put("k-1", "other");
    REQUIRE_FALSE(again);
    CHECK(again.error() == saga::errc::already_exists);
    CHECK(claims.erase("k-1"));
    CHECK(claims.erase("never-put"));

    auto not_utf8 = claims.put("k-3", std::string("ab\xff"));
    REQUIRE_FALSE(not_utf8);
    CHECK(not_utf8.error() == saga::errc::invalid_argument);
    CHECK(not_utf8.error().what().find("UTF-8") != std::string::npos);

    saga::sqs::journal_store_claim_check without(nullptr);
    auto refused = without.put("k", "b");
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == saga::errc::invalid_argument);
}
