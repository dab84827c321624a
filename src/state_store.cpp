#include <saga/state_store.hpp>

#include <future>

namespace saga {

result<void> state_store::commit(transition t) {
    auto promise = std::make_shared<std::promise<result<void>>>();
    auto future = promise->get_future();
    async_commit(std::move(t), [promise](result<void> r) { promise->set_value(std::move(r)); });
    return future.get();
}

}  // namespace saga
