#include <saga/sqs/sqs_transport.hpp>

#include <cctype>

namespace saga::sqs {

namespace {

constexpr std::string_view fifo_suffix = ".fifo";

/// Letters, digits, '-' and '_' stay; everything else becomes '-'.
std::string sanitise(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(std::isalnum(u) || c == '-' || c == '_' ? c : '-');
    }
    return out;
}

result<std::string> make_name(std::string_view what, std::string_view prefix, std::string_view name,
                              bool fifo, std::size_t limit) {
    if (name.empty())
        return error{errc::invalid_argument, "sqs: empty " + std::string{what} + " name"};
    std::string base{name};
    if (base.ends_with(fifo_suffix)) base.resize(base.size() - fifo_suffix.size());
    std::string out = sanitise(std::string{prefix} + base);
    if (fifo) out += fifo_suffix;
    if (out.size() > limit)
        return error{errc::invalid_argument,
                     "sqs: " + std::string{what} + " name '" + out + "' (from '" +
                         std::string{name} + "') is " + std::to_string(out.size()) +
                         " characters; the limit is " + std::to_string(limit)};
    return out;
}

}  // namespace

result<std::string> queue_name(const sqs_options& options, std::string_view endpoint) {
    return make_name("queue", options.queue_prefix, endpoint, options.fifo, 80);
}

result<std::string> topic_name(const sqs_options& options, std::string_view topic) {
    return make_name("topic", options.topic_prefix, topic, options.fifo, 256);
}

std::string dead_letter_endpoint(const sqs_options& options, std::string_view endpoint) {
    std::string base{endpoint};
    if (base.ends_with(fifo_suffix)) base.resize(base.size() - fifo_suffix.size());
    return base + options.dead_letter_suffix;
}

}  // namespace saga::sqs
