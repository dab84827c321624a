#pragma once
// A tiny runtime for the machine's tests: it keeps the journal of an instance, carries out
// effects by hand (sends are kept until the test answers them, local steps run when the test
// says), and checks after every decision that replaying the journal rebuilds the state exactly.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <saga/definition.hpp>

#include "machine/ids.hpp"
#include "machine/machine.hpp"

namespace saga::test {

struct journal_record {
    time_point at;
    std::vector<event> events;
    std::optional<nlohmann::json> data;
};

class machine_sim {
public:
    template <class Data>
    machine_sim(const definition<Data>& d, Data data, std::string id = "s-1")
        : def_(machine::compile(d.model()).value()), initial_data_(nlohmann::json(data)) {
        cfg_.reply_to = "orchestrator";
        cfg_.default_remote_timeout = std::chrono::seconds{5};
        cfg_.seed = 7;
        state_.id = std::move(id);
        state_.correlation_key = "key-1";
        state_.exclusive = true;
        state_.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        header_.id = state_.id;  // the rest of the header comes from saga_started
        data_ = def_->model->load(initial_data_).value();
        record(machine::start(*def_, cfg_, state_, *data_, now_));
    }

    /// Decides `inputs` at the current time and records the decision.
    machine::decision feed(std::vector<machine::input> inputs) {
        auto d = machine::decide(*def_, cfg_, state_, *data_, inputs, now_);
        record(d);
        return d;
    }
    machine::decision feed(machine::input in) {
        return feed(std::vector<machine::input>{std::move(in)});
    }

    /// Moves the clock and decides a tick.
    machine::decision advance(duration d) {
        now_ += d;
        return feed(machine::tick_input{});
    }

    /// The reply to a sent command (success unless said otherwise).
    [[nodiscard]] static machine::input reply_to(
        const envelope& sent, reply_status status = reply_status::success,
        nlohmann::json payload = nlohmann::json::object()) {
        machine::reply_input r;
        r.unit = sent.step;
        r.attempt = sent.attempt;
        auto parts = machine::parse_idempotency_key(sent.idempotency_key, sent.saga_id, sent.step);
        REQUIRE(parts);
        r.dir = parts->dir;
        r.generation = parts->generation;
        r.status = status;
        if (status != reply_status::success) r.error = "no";
        r.payload = std::move(payload);
        r.message_id = "reply-of-" + sent.message_id;
        return r;
    }

    /// Runs the local step of `l` (a synchronous one) against the data, as the runtime would
    /// after the commit, and returns its `local_done`.
    machine::input run_local(const machine::run_local_effect& l) {
        const auto* n = def_->nodes.at(std::string(machine::base_name(l.unit)));
        const auto& a = l.dir == direction::forward ? n->forward : n->compensation;
        const nlohmann::json* item = nullptr;
        if (auto idx = machine::item_index(l.unit)) {
            const auto& g = state_.units.at(std::string(machine::base_name(l.unit)));
            item = &(*g.items)[*idx];
        }
        const auto& u = state_.units.at(l.unit);
        step_context ctx(state_.id, l.unit, l.attempt,
                         machine::idempotency_key(state_.id, l.unit, l.dir, u.forward_generation,
                                                  u.compensation_generation),
                         state_.correlation_key, now_, machine::item_index(l.unit),
                         l.dir == direction::compensation);
        auto r = a.local(*data_, item, ctx);
        return machine::local_done_input{l.unit, l.dir, l.attempt,
                                         r ? std::nullopt : std::optional<saga::error>(r.error())};
    }

    /// Sends not yet answered (the test removes what it answers), local steps not yet run.
    std::vector<envelope> sent;
    std::vector<machine::run_local_effect> locals;

    [[nodiscard]] const machine::instance& state() const { return state_; }
    [[nodiscard]] nlohmann::json data() const { return data_->to_json().value(); }
    [[nodiscard]] const std::vector<journal_record>& journal() const { return journal_; }
    [[nodiscard]] time_point now() const { return now_; }
    [[nodiscard]] const machine::compiled& compiled() const { return *def_; }
    /// Every event name recorded so far, in order.
    [[nodiscard]] std::vector<std::string> event_names() const {
        std::vector<std::string> out;
        for (const auto& r : journal_)
            for (const auto& e : r.events) out.emplace_back(to_string(e.type));
        return out;
    }

    /// Whether replaying the journal from the header reproduces the state and the data.
    [[nodiscard]] bool replay_matches() const {
        machine::instance r = header_;
        nlohmann::json data = initial_data_;
        for (const auto& rec : journal_) {
            for (const auto& e : rec.events) machine::apply(*def_, r, e, rec.at);
            if (rec.data) data = *rec.data;
        }
        return r == state_ && data == this->data();
    }

private:
    void record(const machine::decision& d) {
        for (const auto& e : d.effects) {
            if (const auto* s = std::get_if<machine::send_effect>(&e)) sent.push_back(s->message);
            if (const auto* l = std::get_if<machine::run_local_effect>(&e)) locals.push_back(*l);
        }
        if (d.events.empty() && !d.data_changed) return;
        journal_record rec{now_, d.events, std::nullopt};
        if (d.data_changed) rec.data = data();
        journal_.push_back(std::move(rec));
    }

    std::shared_ptr<const machine::compiled> def_;
    machine::config cfg_;
    machine::instance state_;
    machine::instance header_;
    nlohmann::json initial_data_;
    std::unique_ptr<detail::data_box> data_;
    time_point now_ = time_point{} + std::chrono::hours{1000};
    std::vector<journal_record> journal_;
};

}  // namespace saga::test
