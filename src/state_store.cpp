#include <saga/state_store.hpp>

#include <future>
#include <string>

namespace saga {

result<void> check_transition(const transition& t) {
    const instance_record& r = t.record;
    if (r.id.empty()) return error{errc::invalid_argument, "a transition needs a record id"};
    const std::string about = "saga '" + r.id + "': ";
    if (r.version != t.expected_version + 1)
        return error{errc::invalid_argument, about + "record version " + std::to_string(r.version) +
                                                 " is not expected version " +
                                                 std::to_string(t.expected_version) + " + 1"};
    for (const timer_record& timer : t.timers_set)
        if (!timer.saga_id.empty() && timer.saga_id != r.id)
            return error{errc::invalid_argument, about + "cannot set timer '" + timer.id +
                                                     "' of another saga '" + timer.saga_id + "'"};
    for (const outbox_record& o : t.outbox)
        if (o.message.message_id.empty())
            return error{errc::invalid_argument,
                         about + "an outbox message to '" + o.destination + "' has no message id"};
    return success();
}

result<void> state_store::commit(transition t) {
    auto promise = std::make_shared<std::promise<result<void>>>();
    auto future = promise->get_future();
    async_commit(std::move(t), [promise](result<void> r) { promise->set_value(std::move(r)); });
    return future.get();
}

}  // namespace saga
