// Decodes device messages: an MQTT message (topic + payload) becomes what the
// store keeps (device_messages.hpp): a batch of readings, a device status,
// device telemetry (health), or a rejection for the dead-letter table.
// Binary messages go through the shared codec (fieldlink::protocol); the JSON
// batch form is docs/protocol.md §6. Nothing here throws or crashes on input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fieldlink/gateway/ingest/lru_map.hpp"
#include "fieldlink/gateway/store/device_messages.hpp"
#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::gateway {

// Payloads above this are rejected as `oversize` before any parsing. A binary
// batch is at most protocol::kMaxBatchSize; this leaves room for JSON batches
// of 512 readings.
inline constexpr std::size_t kMaxUpPayloadSize = 64 * 1024;
// Dead letters keep at most this many payload bytes (a whole binary batch fits).
inline constexpr std::size_t kMaxDeadLetterPayload = 16 * 1024;

// Error names of rejections made by the gateway itself; the codec's own come
// from protocol::to_string ("truncated", "bad_checksum", ...).
inline constexpr std::string_view kErrorBadJson = "bad_json";
inline constexpr std::string_view kErrorBadTopic = "bad_topic";
inline constexpr std::string_view kErrorOversize = "oversize";
// A sequence number above 2^63 - 1: SQLite integers are signed 64-bit, and
// the watermark logic needs seq to sort as a number.
inline constexpr std::string_view kErrorSeqOutOfRange = "seq_out_of_range";
// A value SQLite cannot store (NaN becomes NULL), mono_ms above 2^63 - 1, or a
// telemetry count above 2^63 - 1.
inline constexpr std::string_view kErrorBadValue = "bad_value";

// A message whose incarnation belongs to another device (DeviceMessageDecoder).
inline constexpr std::string_view kErrorDeviceMismatch = "device_mismatch";

// Valid but nothing to store (an empty retained status: someone cleared it).
struct Ignored {
    std::string reason;
};

using Inbound = std::variant<ReadingBatch, DeviceStatus, DeviceTelemetry, Rejected, Ignored>;

// Decodes one message received on fieldlink/v1/+/{up,status,telemetry}.
Inbound decode_message(std::string_view topic, std::span<const std::uint8_t> payload);

// decode_message() plus the check that a message arrives on the topic of the
// device it claims. No payload names its device (docs/protocol.md: the topic
// does); what a batch, status or telemetry message carries is its incarnation,
// a random 64-bit id that one device picks when it formats its store. So the
// first device whose topic carries a valid message of an incarnation owns it,
// and a message of that incarnation on another device's topic is rejected as
// device_mismatch (dead-lettered, never stored, never acked). Owners live in
// memory, at most `max_incarnations` of them (the least recently seen is
// forgotten first, and relearnt from its next message); they do not survive a
// gateway restart. Safe to call from several threads.
class DeviceMessageDecoder {
public:
    // Throws std::invalid_argument when max_incarnations is 0.
    explicit DeviceMessageDecoder(std::size_t max_incarnations);

    Inbound decode(std::string_view topic, std::span<const std::uint8_t> payload);

    std::size_t owners() const;

private:
    mutable std::mutex mutex_;
    LruMap<std::uint64_t, std::string> owners_;
};

// The JSON batch form. Returns true and fills *out, or false with a reason in
// *error_detail (error name bad_json). Never throws.
bool decode_json_batch(std::string_view text, BatchBody* out, std::string* error_detail) noexcept;

// True when the payload is to be read as JSON: its first non-blank byte is '{'.
bool looks_like_json(std::span<const std::uint8_t> payload) noexcept;

}  // namespace fieldlink::gateway
