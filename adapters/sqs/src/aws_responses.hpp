#pragma once
// Reading what AWS answers: SQS JSON 1.0 bodies, SNS query-protocol XML, and the error bodies of
// both. Pure functions of the response text, so they can be tested and fuzzed without a server
// (fuzz/fuzz_aws_responses.cpp). The text is untrusted (an endpoint, a proxy or an emulator may
// send anything): nothing here throws, recurses on the input or copies an unbounded tree.
//
// The XML is read by substring search (the few tags the transport needs); a real XML parser is
// left to a later change.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace saga::sqs::detail {

/// AWS's error code (without the `...#` namespace of JSON `__type`) and message from an error
/// response: JSON (`__type`, `message`/`Message`) or XML (`<Code>`, `<Message>`). Empty strings
/// for what the body does not say.
struct aws_error_text {
    std::string code;
    std::string message;
};
[[nodiscard]] aws_error_text parse_error_response(std::string_view body);

/// A successful SQS JSON answer, parsed within saga's JSON limits (depth 64, 16 MiB). A body
/// that is not a JSON object, or is deeper or larger, is an empty object (the caller then finds
/// none of the members it needs and says so).
[[nodiscard]] nlohmann::json parse_sqs_response(std::string_view body);

/// One message of a ReceiveMessage answer; missing members are empty.
struct received_message {
    std::string id;
    std::string receipt;
    std::string body;
    /// ApproximateReceiveCount, at least 1 (1 when absent, 0 or not a number)
    std::uint32_t receive_count = 1;
    /// the FIFO MessageGroupId (empty on a standard queue, or when absent)
    std::string group_id;
    /// the MessageAttributes, name -> {"DataType", "StringValue" or "BinaryValue"} (strings
    /// only); attributes of another shape are left out. Always an object.
    nlohmann::json attributes = nlohmann::json::object();
};
/// The `Messages` of a ReceiveMessage answer (none when absent or not an array; entries that are
/// not objects are skipped).
[[nodiscard]] std::vector<received_message> received_messages(const nlohmann::json& answer);

/// A refused entry of a batch call (SendMessageBatch, DeleteMessageBatch, PublishBatch).
struct batch_failure {
    std::string id;
    std::string code;
    std::string message;
    /// AWS says the request was at fault (retrying it will not help unless the code is transient)
    bool sender_fault = false;
};
/// The `Failed` entries of an SQS batch answer.
[[nodiscard]] std::vector<batch_failure> sqs_batch_failures(const nlohmann::json& answer);
/// The `<Failed><member>` entries of an SNS PublishBatch answer.
[[nodiscard]] std::vector<batch_failure> sns_batch_failures(std::string_view xml);

/// The string member `key` of `j`, or empty when `j` is not an object or the member is missing
/// or not a string.
[[nodiscard]] std::string json_string(const nlohmann::json& j, const char* key);

/// The text of the first `<tag>...</tag>` in `xml` (entities decoded), or empty.
[[nodiscard]] std::string xml_text(std::string_view xml, std::string_view tag);

/// Every `<member>...</member>` inside the first `<section>...</section>` of `xml`.
[[nodiscard]] std::vector<std::string_view> xml_members(std::string_view xml,
                                                        std::string_view section);

/// `s` with the XML entities (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`) and character
/// references (`&#N;`, `&#xN;`, as UTF-8) decoded; anything else (an unknown entity, a reference
/// to no character) stays as written.
[[nodiscard]] std::string xml_unescape(std::string_view s);

}  // namespace saga::sqs::detail
