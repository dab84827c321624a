#include <saga/inmemory/memory_transport.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

// How it works
// - Every endpoint is a queue: `messages` holds every message not yet acked (visible, in flight
//   or delayed), `visible` the order in which visible ones are handed out.
// - Every delivery gets a receipt (a fresh token); ack, nack and extend must present the receipt
//   of the message's current delivery, so a late ack of a delivery that was already redelivered
//   is ignored (like an SQS receipt handle).
// - Every scheduled clock call (visibility timeout, nack delay, delay fault) gets a generation;
//   a call whose generation is no longer the message's is stale and does nothing, so cancelling
//   a timer is only an optimisation and never a correctness requirement.
// - One mutex guards the whole state. Work that leaves the transport (clock calls, posts to
//   executors, completion handlers) is collected under the mutex in `actions` and done after it
//   is released, so neither a clock nor an executor ever runs with the mutex held.
// - Timer callbacks, deliveries and subscriptions hold a weak_ptr to the state: the transport
//   may be destroyed while clock calls or posted deliveries are still pending.
// - Completion handlers of async_send and async_publish are called inline, on the calling
//   thread, before the call returns (no executor is involved).
// - A raw body (`inject_raw`) is decoded when it is first handed out: one that does not decode
//   leaves the queue for the endpoint's dead-letter list there and then, without taking a
//   consumer's slot; one that does becomes an ordinary message.

namespace saga::inmemory {

struct memory_transport::state : std::enable_shared_from_this<state> {
    // ---- types --------------------------------------------------------------------------

    /// One registered consumer of one endpoint.
    struct consumer {
        consumer(std::string ep, boost::asio::any_io_executor ex, delivery_handler h,
                 consumer_options o)
            : endpoint(std::move(ep)), executor(std::move(ex)), handler(std::move(h)), options(o) {}

        const std::string endpoint;
        const boost::asio::any_io_executor executor;
        const delivery_handler handler;
        const consumer_options options;

        // guarded by state::mutex
        std::size_t in_flight = 0;

        // guarded by call_mutex: which threads are running the handler right now, so that
        // stop() can wait for them (and never again start one once stopped)
        std::mutex call_mutex;
        std::condition_variable call_cv;
        bool stopped = false;
        std::vector<std::thread::id> running;
    };

    enum class where { visible, in_flight, delayed };

    struct message {
        envelope env;
        std::uint32_t delivery_count = 0;
        where at = where::visible;
        std::uint64_t receipt = 0;         // receipt of the current delivery; 0 when not in flight
        bool settled = false;              // the current delivery's ack was dropped (fault)
        std::uint64_t timer_gen = 0;       // generation of the pending clock call; 0 when none
        clock::timer_id timer = 0;         // its id, once known (0: not known yet or none)
        std::shared_ptr<consumer> holder;  // whose in-flight slot the current delivery takes
        std::optional<std::string> raw;    // an injected body, until it is decoded
    };

    struct queue {
        std::deque<std::uint64_t> visible;
        std::unordered_map<std::uint64_t, message> messages;
        std::vector<std::shared_ptr<consumer>> consumers;
        std::size_t next_consumer = 0;
    };

    struct timer_request {
        std::string endpoint;
        std::uint64_t message_id;
        std::uint64_t generation;
        time_point at;
    };

    /// Work collected under the mutex and done after it is released.
    struct actions {
        std::vector<clock::timer_id> cancels;
        std::vector<timer_request> timers;
        std::vector<std::pair<boost::asio::any_io_executor, std::function<void()>>> posts;
        std::vector<std::pair<std::string, dead_letter_reason>> dead_lettered;
        std::shared_ptr<metrics_registry> metrics;
    };

    class delivery_impl final : public delivery {
    public:
        delivery_impl(std::weak_ptr<state> s, std::string ep, std::uint64_t id,
                      std::uint64_t receipt, envelope env, std::uint32_t count)
            : state_(std::move(s)),
              endpoint_(std::move(ep)),
              id_(id),
              receipt_(receipt),
              env_(std::move(env)),
              count_(count) {}

        [[nodiscard]] const envelope& message() const override { return env_; }
        [[nodiscard]] std::uint32_t delivery_count() const override { return count_; }
        void ack() override {
            if (auto s = state_.lock()) s->ack(endpoint_, id_, receipt_);
        }
        void nack(duration delay) override {
            if (auto s = state_.lock()) s->nack(endpoint_, id_, receipt_, delay, true);
        }
        void extend(duration timeout) override {
            if (auto s = state_.lock()) s->extend(endpoint_, id_, receipt_, timeout);
        }

        /// True once the transport is destroyed: its posted deliveries are dropped.
        [[nodiscard]] bool orphaned() const { return state_.expired(); }

        /// Gives the message back without the handler having seen it (consumer stopped).
        void give_back() {
            if (auto s = state_.lock()) s->nack(endpoint_, id_, receipt_, duration{0}, false);
        }

    private:
        std::weak_ptr<state> state_;
        std::string endpoint_;
        std::uint64_t id_;
        std::uint64_t receipt_;
        envelope env_;
        std::uint32_t count_;
    };

    class subscription_impl final : public subscription {
    public:
        subscription_impl(std::weak_ptr<state> s, std::shared_ptr<consumer> c)
            : state_(std::move(s)), consumer_(std::move(c)) {}
        ~subscription_impl() override { stop(); }
        subscription_impl(const subscription_impl&) = delete;
        subscription_impl& operator=(const subscription_impl&) = delete;

        /// No handler call starts after this returns, and none is running except on the calling
        /// thread (a handler may stop its own subscription). Two handlers of one consumer on
        /// two threads must not stop it at the same time while each waits for the other.
        void stop() override {
            if (auto s = state_.lock()) s->remove_consumer(consumer_);
            std::unique_lock lock(consumer_->call_mutex);
            consumer_->stopped = true;
            const auto self = std::this_thread::get_id();
            consumer_->call_cv.wait(lock, [&] {
                return std::all_of(consumer_->running.begin(), consumer_->running.end(),
                                   [&](std::thread::id t) { return t == self; });
            });
        }

    private:
        std::weak_ptr<state> state_;
        std::shared_ptr<consumer> consumer_;
    };

    // ---- data ---------------------------------------------------------------------------

    state(std::shared_ptr<saga::clock> c, fault_plan f)
        : clock(std::move(c)), faults(f), rng(f.seed) {}

    const std::shared_ptr<saga::clock> clock;
    mutable std::mutex mutex;
    bool closed = false;
    fault_plan faults;
    std::mt19937_64 rng;
    std::uint64_t send_count = 0;
    std::uint64_t next_token = 0;
    transport_stats counters;
    std::unordered_map<std::string, queue> queues;
    std::unordered_map<std::string, std::set<std::string>> topics;
    std::unordered_map<std::string, std::vector<dead_letter>> dead_letters;
    std::shared_ptr<metrics_registry> metrics;

    // ---- helpers (mutex held) -----------------------------------------------------------

    bool chance(double p) {
        if (p <= 0) return false;
        return std::uniform_real_distribution<double>{0.0, 1.0}(rng) < p;
    }

    /// Counts a send or publish; true when the fault plan says this one fails.
    bool fail_this_send() {
        ++send_count;
        return faults.fail_nth_send != 0 && send_count == faults.fail_nth_send;
    }

    message* find(const std::string& endpoint, std::uint64_t id, queue** q_out = nullptr) {
        auto q = queues.find(endpoint);
        if (q == queues.end()) return nullptr;
        auto m = q->second.messages.find(id);
        if (m == q->second.messages.end()) return nullptr;
        if (q_out) *q_out = &q->second;
        return &m->second;
    }

    /// The message's current delivery, if `receipt` names it and it is still open.
    message* find_delivery(const std::string& endpoint, std::uint64_t id, std::uint64_t receipt,
                           queue** q_out) {
        if (closed) return nullptr;
        auto* m = find(endpoint, id, q_out);
        if (!m || m->at != where::in_flight || m->receipt != receipt || m->settled) return nullptr;
        return m;
    }

    static void release_slot(message& m) {
        if (m.holder) {
            --m.holder->in_flight;
            m.holder.reset();
        }
    }

    /// Forgets the pending clock call of `m` (cancelling it if its id is known).
    static void drop_timer(message& m, actions& a) {
        if (m.timer != 0) a.cancels.push_back(m.timer);
        m.timer = 0;
        m.timer_gen = 0;
    }

    /// Schedules "make `m` visible at `at`" (a visibility timeout or a delay).
    void arm_timer(const std::string& endpoint, std::uint64_t id, message& m, time_point at,
                   actions& a) {
        drop_timer(m, a);
        m.timer_gen = ++next_token;
        a.timers.push_back({endpoint, id, m.timer_gen, at});
    }

    /// Hands visible messages to consumers with room, round-robin.
    void dispatch(const std::string& endpoint, queue& q, actions& a) {
        if (closed || q.consumers.empty() || q.visible.empty()) return;
        const auto now = clock->now();
        while (!q.visible.empty()) {
            std::shared_ptr<consumer> c;
            const auto n = q.consumers.size();
            for (std::size_t i = 0; i < n; ++i) {
                const auto index = (q.next_consumer + i) % n;
                if (q.consumers[index]->in_flight < q.consumers[index]->options.max_in_flight) {
                    c = q.consumers[index];
                    q.next_consumer = (index + 1) % n;
                    break;
                }
            }
            if (!c) return;
            const auto id = q.visible.front();
            q.visible.pop_front();
            auto it = q.messages.find(id);
            if (it == q.messages.end()) continue;
            auto& m = it->second;
            if (m.raw && !decode_raw(endpoint, q, it, a)) continue;
            ++m.delivery_count;
            m.at = where::in_flight;
            m.receipt = ++next_token;
            m.settled = false;
            m.holder = c;
            ++c->in_flight;
            ++counters.delivered;
            if (m.delivery_count > 1) ++counters.redelivered;
            arm_timer(endpoint, id, m, now + c->options.visibility_timeout, a);
            auto d = std::make_shared<delivery_impl>(weak_from_this(), endpoint, id, m.receipt,
                                                     m.env, m.delivery_count);
            a.posts.emplace_back(c->executor, [c, d] { invoke(c, d); });
        }
    }

    /// Decodes the injected body of `it` on its first receive: true when it became an envelope;
    /// false when it went to the dead-letter list (and out of the queue).
    bool decode_raw(const std::string& endpoint, queue& q,
                    std::unordered_map<std::uint64_t, message>::iterator it, actions& a) {
        auto& m = it->second;
        auto decoded = decode(*m.raw);
        if (decoded) {
            m.env = std::move(decoded).value();
            m.raw.reset();
            return true;
        }
        const auto reason = dead_letter_reason_of(decoded.error(), m.raw->size());
        dead_letters[endpoint].push_back(
            {endpoint, std::move(*m.raw), reason, decoded.error().message});
        drop_timer(m, a);
        q.messages.erase(it);
        ++counters.dead_lettered;
        a.dead_lettered.emplace_back(endpoint, reason);
        a.metrics = metrics;
        return false;
    }

    /// Adds one sent or published message to `endpoint`, with the faults of the plan.
    void enqueue(const std::string& endpoint, const envelope& env, actions& a) {
        auto& q = queues[endpoint];
        int copies = 1;
        if (chance(faults.duplicate)) {
            copies = 2;
            ++counters.duplicated;
        }
        for (int i = 0; i < copies; ++i) {
            const auto id = ++next_token;
            auto& m = q.messages.try_emplace(id).first->second;
            m.env = env;
            if (faults.max_delay.count() > 0 && chance(faults.delay)) {
                const auto d = duration{
                    std::uniform_int_distribution<duration::rep>{1, faults.max_delay.count()}(rng)};
                m.at = where::delayed;
                arm_timer(endpoint, id, m, clock->now() + d, a);
                ++counters.delayed;
                continue;
            }
            if (chance(faults.reorder) && !q.visible.empty()) {
                const auto pos =
                    std::uniform_int_distribution<std::size_t>{0, q.visible.size() - 1}(rng);
                q.visible.insert(q.visible.begin() + static_cast<std::ptrdiff_t>(pos), id);
                ++counters.reordered;
            } else {
                q.visible.push_back(id);
            }
        }
        dispatch(endpoint, q, a);
    }

    // ---- operations (each takes the mutex, then does the collected work) ----------------

    /// Does what was collected under the mutex; call without it.
    void run(actions& a) {
        for (auto id : a.cancels) clock->cancel(id);
        if (!a.timers.empty()) {
            std::vector<clock::timer_id> ids;
            ids.reserve(a.timers.size());
            for (auto& t : a.timers) {
                ids.push_back(clock->call_at(t.at, [w = weak_from_this(), ep = t.endpoint,
                                                    id = t.message_id, gen = t.generation] {
                    if (auto s = w.lock()) s->on_timer(ep, id, gen);
                }));
            }
            // Remember the ids so that ack/nack can cancel them; a call that is stale already
            // (the message moved on while we were scheduling) is cancelled at once.
            std::vector<clock::timer_id> stale;
            {
                std::lock_guard lock(mutex);
                for (std::size_t i = 0; i < a.timers.size(); ++i) {
                    auto* m = find(a.timers[i].endpoint, a.timers[i].message_id);
                    if (!closed && m && m->timer_gen == a.timers[i].generation)
                        m->timer = ids[i];
                    else
                        stale.push_back(ids[i]);
                }
            }
            for (auto id : stale) clock->cancel(id);
        }
        for (auto& [executor, fn] : a.posts) boost::asio::post(executor, std::move(fn));
        if (a.metrics)
            for (const auto& [endpoint, reason] : a.dead_lettered)
                a.metrics->add(dead_lettered_metric, {{"endpoint", endpoint},
                                                      {"reason", std::string{to_string(reason)}}});
    }

    static void invoke(const std::shared_ptr<consumer>& c,
                       const std::shared_ptr<delivery_impl>& d) {
        if (d->orphaned()) return;
        const auto self = std::this_thread::get_id();
        bool started = false;
        {
            std::lock_guard lock(c->call_mutex);
            started = !c->stopped;
            if (started) c->running.push_back(self);
        }
        if (!started) {
            d->give_back();
            return;
        }
        try {
            c->handler(d);
        } catch (...) {
            // A throwing handler neither acked nor nacked: the visibility timeout brings the
            // message back. Nothing escapes into the executor.
        }
        {
            std::lock_guard lock(c->call_mutex);
            c->running.erase(std::find(c->running.begin(), c->running.end(), self));
        }
        c->call_cv.notify_all();
    }

    void on_timer(const std::string& endpoint, std::uint64_t id, std::uint64_t gen) {
        actions a;
        {
            std::lock_guard lock(mutex);
            if (closed) return;
            queue* q = nullptr;
            auto* m = find(endpoint, id, &q);
            if (!m || m->timer_gen != gen) return;
            m->timer_gen = 0;
            m->timer = 0;
            if (m->at == where::in_flight) {
                release_slot(*m);
                m->receipt = 0;
                m->settled = false;
            }
            m->at = where::visible;
            q->visible.push_back(id);
            dispatch(endpoint, *q, a);
        }
        run(a);
    }

    void ack(const std::string& endpoint, std::uint64_t id, std::uint64_t receipt) {
        actions a;
        {
            std::lock_guard lock(mutex);
            queue* q = nullptr;
            auto* m = find_delivery(endpoint, id, receipt, &q);
            if (!m) return;
            release_slot(*m);
            if (chance(faults.drop_ack)) {
                // lost on the way: the message stays in flight until its visibility timeout
                m->settled = true;
                ++counters.acks_dropped;
            } else {
                drop_timer(*m, a);
                q->messages.erase(id);
                ++counters.acked;
            }
            dispatch(endpoint, *q, a);
        }
        run(a);
    }

    void nack(const std::string& endpoint, std::uint64_t id, std::uint64_t receipt, duration delay,
              bool seen) {
        actions a;
        {
            std::lock_guard lock(mutex);
            queue* q = nullptr;
            auto* m = find_delivery(endpoint, id, receipt, &q);
            if (!m) return;
            release_slot(*m);
            drop_timer(*m, a);
            m->receipt = 0;
            if (seen) {
                ++counters.nacked;
            } else {
                // never reached the handler: this delivery does not count
                --m->delivery_count;
                --counters.delivered;
                if (m->delivery_count > 0) --counters.redelivered;
            }
            if (delay.count() <= 0) {
                m->at = where::visible;
                q->visible.push_back(id);
            } else {
                m->at = where::delayed;
                arm_timer(endpoint, id, *m, clock->now() + delay, a);
            }
            dispatch(endpoint, *q, a);
        }
        run(a);
    }

    void extend(const std::string& endpoint, std::uint64_t id, std::uint64_t receipt,
                duration timeout) {
        actions a;
        {
            std::lock_guard lock(mutex);
            auto* m = find_delivery(endpoint, id, receipt, nullptr);
            if (!m) return;
            arm_timer(endpoint, id, *m, clock->now() + std::max(timeout, duration{0}), a);
        }
        run(a);
    }

    void remove_consumer(const std::shared_ptr<consumer>& c) {
        std::lock_guard lock(mutex);
        auto q = queues.find(c->endpoint);
        if (q == queues.end()) return;
        auto& list = q->second.consumers;
        auto it = std::find(list.begin(), list.end(), c);
        if (it == list.end()) return;
        list.erase(it);
        if (q->second.next_consumer >= list.size()) q->second.next_consumer = 0;
    }

    /// Marks the state closed and cancels every pending clock call (the transport is going).
    void close() {
        actions a;
        {
            std::lock_guard lock(mutex);
            closed = true;
            for (auto& [name, q] : queues) {
                for (auto& [id, m] : q.messages) {
                    if (m.timer != 0) a.cancels.push_back(m.timer);
                    m.holder.reset();
                }
                q.consumers.clear();
            }
            queues.clear();
        }
        for (auto id : a.cancels) clock->cancel(id);
    }
};

// ---- memory_transport -----------------------------------------------------------------------

memory_transport::memory_transport(std::shared_ptr<saga::clock> clock, fault_plan faults)
    : state_(std::make_shared<state>(
          clock ? std::move(clock) : std::make_shared<saga::system_clock>(), faults)) {}

memory_transport::~memory_transport() {
    state_->close();
}

namespace {
// Send and publish differ only in where the message is queued: `what` names the operation for
// errors ("send", "publish"), `counter` is the stat to bump, `enqueue` queues under the lock.
template <class State, class Enqueue>
void send_or_publish(State& st, std::string_view what, const std::string& name,
                     std::uint64_t transport_stats::*counter, send_handler& done, Enqueue enqueue) {
    result<void> r = success();
    if (name.empty()) {
        r = error{errc::invalid_argument,
                  "memory transport: " + std::string(what) + " to an empty name"};
    } else {
        typename State::actions a;
        {
            std::lock_guard lock(st.mutex);
            if (st.fail_this_send()) {
                ++st.counters.sends_failed;
                r = error{errc::transport_failure, "memory transport: injected failure of " +
                                                       std::string(what) + " to '" + name + "'"};
            } else {
                ++(st.counters.*counter);
                enqueue(a);
            }
        }
        st.run(a);
    }
    if (done) done(std::move(r));
}
}  // namespace

void memory_transport::async_send(const std::string& endpoint, envelope message,
                                  send_handler done) {
    send_or_publish(*state_, "send", endpoint, &transport_stats::sent, done,
                    [&](state::actions& a) { state_->enqueue(endpoint, message, a); });
}

void memory_transport::async_publish(const std::string& topic, envelope message,
                                     send_handler done) {
    send_or_publish(*state_, "publish", topic, &transport_stats::published, done,
                    [&](state::actions& a) {
                        if (auto t = state_->topics.find(topic); t != state_->topics.end())
                            for (const auto& endpoint : t->second)
                                state_->enqueue(endpoint, message, a);
                    });
}

result<void> memory_transport::subscribe(const std::string& topic, const std::string& endpoint) {
    if (topic.empty() || endpoint.empty())
        return error{errc::invalid_argument, "memory transport: empty topic or endpoint name"};
    std::lock_guard lock(state_->mutex);
    state_->topics[topic].insert(endpoint);
    state_->queues.try_emplace(endpoint);
    return success();
}

result<std::unique_ptr<subscription>> memory_transport::consume(
    const std::string& endpoint, boost::asio::any_io_executor executor, delivery_handler handler,
    consumer_options options) {
    if (endpoint.empty())
        return error{errc::invalid_argument, "memory transport: empty endpoint name"};
    if (!executor || !handler)
        return error{errc::invalid_argument,
                     "memory transport: consume needs an executor and a handler"};
    if (options.max_in_flight == 0 || options.visibility_timeout.count() <= 0)
        return error{errc::invalid_argument,
                     "memory transport: max_in_flight and visibility_timeout must be positive"};
    auto c = std::make_shared<state::consumer>(endpoint, std::move(executor), std::move(handler),
                                               options);
    state::actions a;
    {
        std::lock_guard lock(state_->mutex);
        auto& q = state_->queues[endpoint];
        q.consumers.push_back(c);
        state_->dispatch(endpoint, q, a);
    }
    state_->run(a);
    return std::unique_ptr<subscription>{
        std::make_unique<state::subscription_impl>(state_, std::move(c))};
}

void memory_transport::set_metrics(std::shared_ptr<metrics_registry> metrics) {
    if (metrics) describe_transport_metrics(*metrics);
    std::lock_guard lock(state_->mutex);
    state_->metrics = std::move(metrics);
}

result<void> memory_transport::inject_raw(const std::string& endpoint, std::string body) {
    if (endpoint.empty())
        return error{errc::invalid_argument, "memory transport: inject_raw to an empty name"};
    state::actions a;
    {
        std::lock_guard lock(state_->mutex);
        if (state_->closed) return success();
        auto& q = state_->queues[endpoint];
        const auto id = ++state_->next_token;
        auto& m = q.messages.try_emplace(id).first->second;
        m.raw = std::move(body);
        q.visible.push_back(id);
        state_->dispatch(endpoint, q, a);
    }
    state_->run(a);
    return success();
}

void memory_transport::set_faults(fault_plan faults) {
    std::lock_guard lock(state_->mutex);
    state_->faults = faults;
    state_->rng.seed(faults.seed);
    state_->send_count = 0;
}

std::size_t memory_transport::pending(const std::string& endpoint) const {
    std::lock_guard lock(state_->mutex);
    auto q = state_->queues.find(endpoint);
    return q == state_->queues.end() ? 0 : q->second.messages.size();
}

std::vector<dead_letter> memory_transport::dead_letters(const std::string& endpoint) const {
    std::lock_guard lock(state_->mutex);
    auto it = state_->dead_letters.find(endpoint);
    return it == state_->dead_letters.end() ? std::vector<dead_letter>{} : it->second;
}

transport_stats memory_transport::stats() const {
    std::lock_guard lock(state_->mutex);
    return state_->counters;
}

}  // namespace saga::inmemory
