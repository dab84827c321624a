#pragma once
// The engine core on the pure machine and the runtime (src/runtime/engine_v2.cpp).

#include <memory>

#include <saga/engine.hpp>
#include <saga/journal_store.hpp>

#include "../engine_core.hpp"

namespace saga::runtime {

[[nodiscard]] std::shared_ptr<detail::engine_core> make_engine_core_v2(
    std::shared_ptr<journal_store> store, std::shared_ptr<transport> transport,
    engine_options options);

}  // namespace saga::runtime
