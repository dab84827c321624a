#pragma once
/// @file step_context.hpp
/// What a step function knows about the run it belongs to.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <saga/clock.hpp>

namespace saga {

/// Passed to every step, compensation, command builder and reply handler.
class step_context {
public:
    step_context(std::string saga_id, std::string step, std::uint32_t attempt,
                 std::string idempotency_key, std::string correlation_key, time_point now,
                 std::optional<std::size_t> item = std::nullopt, bool compensating = false)
        : saga_id_(std::move(saga_id)),
          step_(std::move(step)),
          idempotency_key_(std::move(idempotency_key)),
          correlation_key_(std::move(correlation_key)),
          now_(now),
          item_(item),
          attempt_(attempt),
          compensating_(compensating) {}

    /// The saga instance id.
    [[nodiscard]] std::string_view saga_id() const noexcept { return saga_id_; }
    /// The step name (for a for-each item, `name[index]`).
    [[nodiscard]] std::string_view step() const noexcept { return step_; }
    /// 1-based attempt of this step (or of its compensation, when compensating).
    [[nodiscard]] std::uint32_t attempt() const noexcept { return attempt_; }
    /// Stable across attempts: `<saga id>/<step>`, or `<saga id>/<step>/compensate`.
    /// Participants use it to apply an effect once.
    [[nodiscard]] std::string_view idempotency_key() const noexcept { return idempotency_key_; }
    /// The instance's correlation key (business key); may be empty.
    [[nodiscard]] std::string_view correlation_key() const noexcept { return correlation_key_; }
    /// The engine clock's time when the step was started.
    [[nodiscard]] time_point now() const noexcept { return now_; }
    /// For a for-each item, its index in the collection.
    [[nodiscard]] std::optional<std::size_t> item_index() const noexcept { return item_; }
    /// True inside a compensation.
    [[nodiscard]] bool compensating() const noexcept { return compensating_; }

private:
    std::string saga_id_;
    std::string step_;
    std::string idempotency_key_;
    std::string correlation_key_;
    time_point now_;
    std::optional<std::size_t> item_;
    std::uint32_t attempt_;
    bool compensating_;
};

}  // namespace saga
