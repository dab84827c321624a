#include "durable_service.hpp"

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <thread>

#include <unistd.h>

#include "../simulation.hpp"

namespace campaign {

namespace {

using json = nlohmann::json;

std::string_view status_name(saga::reply_status s) {
    switch (s) {
        case saga::reply_status::success: return "success";
        case saga::reply_status::transient_failure: return "transient";
        case saga::reply_status::permanent_failure: return "permanent";
    }
    return "permanent";
}

saga::reply_status parse_status(std::string_view s) {
    if (s == "success") return saga::reply_status::success;
    if (s == "transient") return saga::reply_status::transient_failure;
    return saga::reply_status::permanent_failure;
}

/// The error of the tombstone recorded for a command whose compensation came first.
constexpr std::string_view compensated_first = "compensated before it was applied";

bool unwritable_wal_dir(const std::filesystem::path& path) {
    auto dir = path.parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    auto sibling = [&](const char* suffix) {
        auto p = path;
        p += suffix;
        return std::filesystem::exists(p, ec);
    };
    return ::access(dir.c_str(), W_OK) != 0 && !sibling("-wal") && !sibling("-shm");
}

/// `file:<path>?immutable=1`, the path percent-encoded where a URI needs it.
std::string immutable_uri(const std::filesystem::path& path) {
    std::string uri = "file:";
    for (const char c : path.string()) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '%' || c == '?' || c == '#' || byte < 0x20 || byte >= 0x7f)
            uri += fmt::format("%{:02x}", byte);
        else
            uri += c;
    }
    return uri + "?immutable=1";
}

std::string new_message_id() {
    static const auto prefix = fmt::format(
        "{:x}",
        std::chrono::steady_clock::now().time_since_epoch().count() ^
            static_cast<long long>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
    static std::atomic<std::uint64_t> counter{0};
    return fmt::format("svc-{}-{}", prefix, counter.fetch_add(1));
}

}  // namespace

SQLite::Database open_database(const std::filesystem::path& path, bool read_only) {
    if (read_only && !std::filesystem::exists(path))
        throw std::runtime_error(fmt::format("{}: no such file", path.string()));
    if (read_only && unwritable_wal_dir(path)) {
        // WAL mode needs a -shm file, which this directory cannot hold; with no -wal and -shm
        // there, no process is writing the file: read it as immutable (as the saga store does)
        SQLite::Database db(immutable_uri(path), SQLite::OPEN_READONLY | SQLite::OPEN_URI);
        return db;
    }
    SQLite::Database db(path.string(), read_only ? SQLite::OPEN_READONLY
                                                 : SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.setBusyTimeout(5000);
    if (!read_only) {
        db.exec("PRAGMA journal_mode = WAL");
        // a committed effect survives a crash of the process (what the demo kills)
        db.exec("PRAGMA synchronous = NORMAL");
    }
    return db;
}

durable_service::durable_service(service_options options)
    : options_(std::move(options)), db_(open_database(options_.database)) {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " payload TEXT NOT NULL, error TEXT NOT NULL)");
}

durable_service::~durable_service() {
    *alive_ = false;
    // subclasses call stop() in their destructors; this is the last line of defence
    if (subscription_) subscription_->stop();
}

saga::result<void> durable_service::start(std::shared_ptr<saga::transport> transport,
                                          boost::asio::any_io_executor executor) {
    transport_ = std::move(transport);
    executor_ = executor;
    auto sub = transport_->consume(
        options_.endpoint, executor, [this](std::shared_ptr<saga::delivery> d) { handle(d); },
        {.visibility_timeout = std::chrono::seconds{5}, .max_in_flight = 32});
    if (!sub) return sub.error();
    subscription_ = std::move(sub).value();
    started();
    return saga::success();
}

void durable_service::stop() {
    *alive_ = false;
    if (subscription_) subscription_->stop();
}

std::string durable_service::event_id(std::string_view kind, std::string_view key) {
    return fmt::format("{}|{}", kind, key);
}

std::int64_t durable_service::now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void durable_service::after_commit(std::function<void()> fn) {
    after_commit_.push_back(std::move(fn));
}

void durable_service::send_event(const std::string& endpoint, saga::envelope e) {
    if (e.message_id.empty()) e.message_id = new_message_id();
    e.kind = saga::message_kind::event;
    auto copy = e;
    transport_->async_send(
        endpoint, std::move(e),
        [this, alive = alive_, endpoint, copy = std::move(copy)](saga::result<void> r) mutable {
            if (r || !*alive) return;
            auto timer = std::make_shared<boost::asio::steady_timer>(
                executor_, std::chrono::milliseconds{100});
            timer->async_wait([this, alive, timer, endpoint, copy](auto) mutable {
                if (*alive) send_event(endpoint, std::move(copy));
            });
        });
}

void durable_service::publish_event(const std::string& topic, saga::envelope e) {
    if (e.message_id.empty()) e.message_id = new_message_id();
    e.kind = saga::message_kind::event;
    auto copy = e;
    transport_->async_publish(
        topic, std::move(e),
        [this, alive = alive_, topic, copy = std::move(copy)](saga::result<void> r) mutable {
            if (r || !*alive) return;
            auto timer = std::make_shared<boost::asio::steady_timer>(
                executor_, std::chrono::milliseconds{100});
            timer->async_wait([this, alive, timer, topic, copy](auto) mutable {
                if (*alive) publish_event(topic, std::move(copy));
            });
        });
}

std::optional<saga::participant_reply> durable_service::recorded(const std::string& key) {
    SQLite::Statement q(db_, "SELECT status, payload, error FROM replies WHERE key = ?");
    q.bind(1, key);
    if (!q.executeStep()) return std::nullopt;
    return saga::participant_reply{parse_status(q.getColumn(0).getString()),
                                   json::parse(q.getColumn(1).getString()),
                                   q.getColumn(2).getString()};
}

void durable_service::record(const std::string& key, const saga::participant_reply& r) {
    SQLite::Statement ins(db_,
                          "INSERT OR REPLACE INTO replies (key, status, payload, error)"
                          " VALUES (?, ?, ?, ?)");
    ins.bind(1, key);
    ins.bind(2, std::string(status_name(r.status)));
    ins.bind(3, r.payload.dump());
    ins.bind(4, r.error);
    ins.exec();
}

void durable_service::handle(const std::shared_ptr<saga::delivery>& d) {
    const saga::envelope& e = d->message();
    if (e.kind != saga::message_kind::command && e.kind != saga::message_kind::compensation) {
        d->ack();
        return;
    }
    if (options_.latency.count() > 0) std::this_thread::sleep_for(options_.latency);
    const std::string key = e.idempotency_key.empty() ? e.message_id : e.idempotency_key;

    saga::participant_reply answer;
    std::vector<std::function<void()>> events;
    try {
        std::lock_guard lock(mutex_);
        after_commit_.clear();
        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
        if (auto r = recorded(key)) {
            answer = std::move(*r);  // a repeat: the recorded reply, nothing applied
        } else if (chance(options_.seed, fmt::format("{}|{}|{}", options_.endpoint, key,
                                                     e.attempt)) < options_.failure_rate) {
            answer = saga::participant_reply::transient(
                fmt::format("503 {} unavailable (injected)", options_.endpoint));
        } else {
            if (e.kind == saga::message_kind::compensation) {
                // what this undoes; if it never ran, it never may
                if (auto it = e.headers.find("compensates");
                    it != e.headers.end() && !it->second.empty() && !recorded(it->second))
                    record(it->second,
                           saga::participant_reply::permanent(std::string(compensated_first)));
            }
            answer = apply(e);
            if (answer.status != saga::reply_status::transient_failure) {
                record(key, answer);
                tx.commit();
                events = std::move(after_commit_);
            }
        }
        after_commit_.clear();
    } catch (const std::exception& ex) {
        // the database failed (busy, disk): the command comes back later
        d->nack(std::chrono::milliseconds{100});
        return;
    }
    for (auto& fn : events) fn();

    if (e.reply_to.empty()) {
        d->ack();
        return;
    }
    saga::envelope out;
    out.message_id = new_message_id();
    out.kind = saga::message_kind::reply;
    out.type = e.type;
    out.saga_id = e.saga_id;
    out.step = e.step;
    out.attempt = e.attempt;
    out.idempotency_key = e.idempotency_key;
    out.correlation_id = e.correlation_id;
    out.traceparent = e.traceparent;
    out.status = answer.status;
    out.error = answer.error;
    out.payload = answer.payload;
    transport_->async_send(e.reply_to, std::move(out), [d](saga::result<void> sent) {
        if (sent)
            d->ack();
        else
            d->nack(std::chrono::milliseconds{100});
    });
}

}  // namespace campaign
