// libFuzzer target: what the SQS/SNS transport reads from AWS answers (adapters/sqs/src/
// aws_responses.hpp): error bodies in JSON or XML, SQS JSON answers (received messages, failed
// batch entries) and SNS XML (failed batch entries, tag text). The input is one answer body.
// Properties: nothing crashes or throws; decoding XML references never makes text longer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "aws_responses.hpp"

namespace {

void require(bool ok) {
    if (!ok) std::abort();  // a broken property is a finding
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace detail = saga::sqs::detail;
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    const auto error = detail::parse_error_response(body);
    require(error.code.size() <= body.size() && error.message.size() <= body.size());

    const auto answer = detail::parse_sqs_response(body);
    require(answer.is_object());
    for (const auto& m : detail::received_messages(answer))
        require(m.body.size() <= body.size() && m.receive_count > 0);
    for (const auto& f : detail::sqs_batch_failures(answer)) require(f.id.size() <= body.size());
    (void)detail::json_string(answer, "QueueUrl");

    for (const auto& f : detail::sns_batch_failures(body))
        require(f.id.size() <= body.size() && f.message.size() <= body.size());
    require(detail::xml_text(body, "TopicArn").size() <= body.size());
    require(detail::xml_unescape(body).size() <= body.size());
    return 0;
}
