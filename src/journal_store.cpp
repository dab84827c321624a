#include <saga/journal_store.hpp>

#include <fmt/format.h>

#include <future>
#include <memory>

namespace saga {

result<void> check_journal_write(const journal_write& w) {
    const auto& r = w.record;
    if (r.saga_id.empty()) return error{errc::invalid_argument, "a journal record needs a saga id"};
    if (r.version == 0)
        return error{
            errc::invalid_argument,
            fmt::format("saga '{}': journal record version 0 (versions start at 1)", r.saga_id)};
    if (r.version == 1 && !w.head)
        return error{errc::invalid_argument,
                     fmt::format("saga '{}': the first record needs a head", r.saga_id)};
    if (w.head) {
        if (w.head->id != r.saga_id)
            return error{errc::invalid_argument,
                         fmt::format("saga '{}': the head is of saga '{}'", r.saga_id, w.head->id)};
        if (w.head->version != r.version)
            return error{errc::invalid_argument,
                         fmt::format("saga '{}': head version {} is not record version {}",
                                     r.saga_id, w.head->version, r.version)};
        if (w.head->definition.empty())
            return error{errc::invalid_argument,
                         fmt::format("saga '{}': the head needs a definition", r.saga_id)};
    }
    if (r.released_through >= r.version)
        return error{errc::invalid_argument,
                     fmt::format("saga '{}': record {} says output up to {} was released",
                                 r.saga_id, r.version, r.released_through)};
    for (const auto& m : r.output) {
        if (m.message.message_id.empty())
            return error{errc::invalid_argument,
                         fmt::format("saga '{}': an output message without an id", r.saga_id)};
        if (m.destination.empty())
            return error{errc::invalid_argument,
                         fmt::format("saga '{}': output message '{}' has no destination", r.saga_id,
                                     m.message.message_id)};
    }
    return success();
}

result<void> journal_store::commit(journal_write w) {
    // shared: the store's thread may still be inside set_value when get() returns here
    auto p = std::make_shared<std::promise<result<void>>>();
    auto f = p->get_future();
    async_commit(std::move(w), [p](result<void> r) { p->set_value(std::move(r)); });
    return f.get();
}

}  // namespace saga
