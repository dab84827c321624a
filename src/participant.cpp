#include <saga/participant.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <random>
#include <string_view>
#include <thread>

namespace saga {

namespace {

/// How long a delivery waits when its idempotency key is being handled by another delivery.
constexpr duration busy_retry_delay{10};
/// How long a delivery waits when its reply could not be sent (or something unexpected threw).
constexpr duration send_retry_delay{100};
/// The error of the reply recorded for a forward command whose compensation came first.
constexpr std::string_view compensated_first = "compensated before it was applied";

std::mt19937_64 seeded_generator() {
    std::seed_seq::result_type extra = 0;
    try {
        std::random_device rd;
        extra = rd();
    } catch (...) {
        // no entropy source: the time and the thread still make the seed unique enough
    }
    const auto now = static_cast<std::uint64_t>(
        std::chrono::high_resolution_clock::now().time_since_epoch().count());
    const auto thread = std::hash<std::thread::id>{}(std::this_thread::get_id());
    std::seed_seq seq{extra, static_cast<std::seed_seq::result_type>(now),
                      static_cast<std::seed_seq::result_type>(now >> 32),
                      static_cast<std::seed_seq::result_type>(thread),
                      static_cast<std::seed_seq::result_type>(thread >> 32)};
    return std::mt19937_64{seq};
}

/// A random 128-bit message id, as 32 lower-case hex digits.
std::string new_message_id() {
    thread_local std::mt19937_64 generator = seeded_generator();
    const auto high = generator();
    const auto low = generator();
    return fmt::format("{:016x}{:016x}", high, low);
}

}  // namespace

// ---- memory_reply_store ---------------------------------------------------------------------

std::optional<participant_reply> memory_reply_store::find(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = replies_.find(key);
    if (it == replies_.end()) return std::nullopt;
    return it->second;
}

void memory_reply_store::save(const std::string& key, const participant_reply& reply) {
    std::lock_guard lock(mutex_);
    replies_.insert_or_assign(key, reply);
}

// ---- participant ----------------------------------------------------------------------------

participant::participant(std::shared_ptr<transport> t, std::string endpoint,
                         participant_options options)
    : transport_(std::move(t)), endpoint_(std::move(endpoint)), options_(std::move(options)) {
    if (!options_.replies) options_.replies = std::make_shared<memory_reply_store>();
}

participant::~participant() {
    stop();
}

participant& participant::on(std::string type, command_handler handler) {
    std::lock_guard lock(mutex_);
    handlers_.insert_or_assign(std::move(type), std::move(handler));
    return *this;
}

result<void> participant::start(boost::asio::any_io_executor executor) {
    if (!transport_) return error{errc::invalid_argument, "participant has no transport"};
    std::lock_guard lock(mutex_);
    if (subscription_)
        return error{errc::invalid_state,
                     fmt::format("participant on '{}' already started", endpoint_)};
    // The handler captures `this`: stopping the subscription (in stop() and the destructor)
    // waits for running handler calls and prevents new ones. Consume never calls the handler
    // inline, so holding mutex_ here is safe.
    auto sub = transport_->consume(
        endpoint_, std::move(executor), [this](std::shared_ptr<delivery> d) { handle(d); },
        options_.consumer);
    if (!sub) return sub.error();
    subscription_ = std::move(sub).value();
    return success();
}

void participant::stop() {
    std::unique_ptr<subscription> sub;
    {
        std::lock_guard lock(mutex_);
        sub = std::move(subscription_);
    }
    // outside mutex_: stop() waits for running handlers, which take mutex_
    if (sub) sub->stop();
}

participant_stats participant::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void participant::handle(const std::shared_ptr<delivery>& d) {
    const envelope& command = d->message();
    if (command.kind != message_kind::command && command.kind != message_kind::compensation) {
        d->ack();  // replies and events are not for a participant
        return;
    }
    const std::string key =
        command.idempotency_key.empty() ? command.message_id : command.idempotency_key;
    // A compensation names the forward command it undoes: that key is claimed too, so that the
    // forward command cannot run while its compensation decides whether it was applied.
    std::string forward;
    if (command.kind == message_kind::compensation) {
        if (auto it = command.headers.find("compensates");
            it != command.headers.end() && it->second != key)
            forward = it->second;
    }

    command_handler handler;
    {
        std::lock_guard lock(mutex_);
        if (in_progress_.contains(key) || (!forward.empty() && in_progress_.contains(forward))) {
            // another delivery of this command (or of its forward command) is being handled
            d->nack(busy_retry_delay);
            return;
        }
        in_progress_.insert(key);
        if (!forward.empty()) in_progress_.insert(forward);
        if (auto it = handlers_.find(command.type); it != handlers_.end()) handler = it->second;
    }
    auto release = [&] {
        std::lock_guard lock(mutex_);
        in_progress_.erase(key);
        if (!forward.empty()) in_progress_.erase(forward);
    };

    participant_reply answer;
    try {
        if (auto recorded = options_.replies->find(key)) {
            const bool refused = recorded->status == reply_status::permanent_failure &&
                                 recorded->error == compensated_first;
            {
                std::lock_guard lock(mutex_);
                if (refused)
                    ++stats_.refused;
                else
                    ++stats_.deduplicated;
            }
            answer = std::move(*recorded);
        } else {
            if (!forward.empty() && !options_.replies->find(forward))
                options_.replies->save(
                    forward, participant_reply::permanent(std::string{compensated_first}));
            if (!handler) {
                // not recorded: a handler registered later can still carry out a retry
                answer = participant_reply::permanent(fmt::format(
                    "no handler for command type '{}' on '{}'", command.type, endpoint_));
                std::lock_guard lock(mutex_);
                ++stats_.unknown_type;
            } else {
                try {
                    answer = handler(command);
                } catch (const std::exception& e) {
                    answer = participant_reply::transient(e.what());
                } catch (...) {
                    answer = participant_reply::transient("handler threw an unknown exception");
                }
                {
                    std::lock_guard lock(mutex_);
                    ++stats_.handled;
                }
                if (answer.status != reply_status::transient_failure)
                    options_.replies->save(key, answer);
            }
        }
    } catch (...) {
        // the reply store threw: let the command come back later
        release();
        d->nack(send_retry_delay);
        return;
    }
    release();
    try {
        reply(command, answer, d);
    } catch (...) {
        d->nack(send_retry_delay);
    }
}

void participant::reply(const envelope& command, const participant_reply& r,
                        const std::shared_ptr<delivery>& d) {
    if (command.reply_to.empty()) {
        d->ack();  // nobody to answer; the outcome is recorded (unless transient)
        return;
    }
    envelope out;
    out.message_id = new_message_id();
    out.kind = message_kind::reply;
    out.type = command.type;
    out.saga_id = command.saga_id;
    out.step = command.step;
    out.attempt = command.attempt;
    out.idempotency_key = command.idempotency_key;
    out.correlation_id = command.correlation_id;
    out.traceparent = command.traceparent;
    out.status = r.status;
    out.error = r.error;
    out.payload = r.payload;
    // The completion may run on any thread, after this participant is gone: it only touches
    // the delivery.
    transport_->async_send(command.reply_to, std::move(out), [d](result<void> sent) {
        if (sent)
            d->ack();
        else
            d->nack(send_retry_delay);
    });
}

}  // namespace saga
