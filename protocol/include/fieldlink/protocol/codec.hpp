// fieldlink wire protocol v1: the one codec that the reader firmware and the
// gateway share. Freestanding: no heap, no exceptions, no RTTI, no I/O.
// Byte layouts are specified in docs/protocol.md; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::protocol {

inline constexpr std::uint8_t kMagic0 = 'F';
inline constexpr std::uint8_t kMagic1 = 'L';
inline constexpr std::uint8_t kVersion = 1;

// Second header byte after the version: what the message is.
enum class Kind : std::uint8_t {
    Batch = 1,      // device -> gateway, topic .../up
    Ack = 2,        // gateway -> device, topic .../ack
    Status = 3,     // device, retained, topic .../status (birth and last will)
    Telemetry = 4,  // device health, topic .../telemetry
};

inline constexpr std::size_t kCrcSize = 4;
inline constexpr std::size_t kBatchHeaderSize = 44;
inline constexpr std::size_t kRecordSize = 17;
inline constexpr std::size_t kMaxRecordsPerBatch = 512;
inline constexpr std::size_t kMaxBatchSize = kBatchHeaderSize + kMaxRecordsPerBatch * kRecordSize + kCrcSize;
inline constexpr std::size_t kAckSize = 32;
inline constexpr std::size_t kStatusFixedSize = 22;  // without the firmware version text
inline constexpr std::size_t kMaxFirmwareVersionLength = 32;
inline constexpr std::size_t kMaxStatusSize = kStatusFixedSize + kMaxFirmwareVersionLength;
inline constexpr std::size_t kTelemetrySize = 72;

inline constexpr std::uint8_t kBatchFlagOffsetKnown = 0x01;

// Result of every codec call. Decoders check in the order listed here.
enum class CodecResult : std::uint8_t {
    Ok = 0,
    Truncated,           // shorter than the fixed part, or not a whole number of records
    Oversize,            // longer than the largest valid message of its kind
    BadMagic,            // does not start with "FL"
    UnsupportedVersion,  // version byte is not 1
    WrongKind,           // a valid header of another kind (e.g. an ack on an up topic)
    BadChecksum,         // CRC-32 over the message does not match its last four bytes
    BadField,            // a field is out of range (flags, reserved, seq 0, floor > first, NaN value, text)
    EmptyBatch,          // count is 0
    TooManyRecords,      // count is above kMaxRecordsPerBatch
    CountMismatch,       // count disagrees with the number of records present
    SequenceOverflow,    // first_seq + count - 1 does not fit in 64 bits
    BufferTooSmall,      // encoder: the output buffer cannot hold the message
    InvalidArgument,     // encoder: the input would not decode (count, seq, text)
};

// Stable, human-readable name of a status ("bad_checksum", ...).
const char* to_string(CodecResult status) noexcept;

// One sensor reading. Its sequence number is implied by its place in a batch.
struct Record {
    std::uint8_t channel = 0;
    std::uint64_t mono_ms = 0;  // device monotonic time since the start of `boot`
    double value = 0.0;
};

struct BatchHeader {
    std::uint64_t incarnation = 0;
    std::uint64_t first_seq = 0;  // sequence number of record 0; never 0
    // The device will never send a reading below floor_seq again (already
    // acknowledged, or dropped by its spool policy). floor_seq <= first_seq.
    std::uint64_t floor_seq = 0;
    std::uint32_t boot = 0;           // boot counter within the incarnation
    std::int64_t wall_offset_ms = 0;  // unix_ms = mono_ms + offset, when offset_known
    bool offset_known = false;
    std::uint16_t count = 0;
};

// A validated batch that still points into the caller's buffer.
struct BatchView {
    BatchHeader header;
    const std::uint8_t* records = nullptr;  // header.count * kRecordSize bytes

    Record record(std::size_t index) const noexcept;  // index < header.count
};

struct Ack {
    std::uint64_t incarnation = 0;
    std::uint64_t watermark = 0;  // every seq in 1..watermark is committed (0: none yet)
    std::int64_t gateway_unix_ms = 0;
};

enum class DeviceState : std::uint8_t {
    Offline = 0,  // last will
    Online = 1,   // birth
};

// Device health, published periodically (QoS 0) on .../telemetry.
struct Telemetry {
    std::uint64_t incarnation = 0;
    std::uint32_t boot = 0;
    std::uint32_t reconnects = 0;             // MQTT reconnects in this boot
    std::uint64_t uptime_ms = 0;              // device monotonic time since the start of `boot`
    std::uint64_t held = 0;                   // readings in the device's store (spool depth)
    std::uint64_t oldest_unacked_age_ms = 0;  // age of the oldest held reading; 0 when none
    std::uint64_t dropped = 0;                // readings ever dropped by the store's full policy
    std::uint64_t next_seq = 0;               // seq the next reading will get
    std::uint64_t acked_through = 0;          // highest watermark the device has received
};

struct StatusMessage {
    DeviceState state = DeviceState::Offline;
    std::uint64_t incarnation = 0;
    std::uint32_t boot = 0;
    char firmware_version[kMaxFirmwareVersionLength + 1] = {};  // printable ASCII, NUL-terminated
};

// CRC-32 (IEEE 802.3, reflected, init and final xor 0xFFFFFFFF).
std::uint32_t crc32(const std::uint8_t* data, std::size_t length, std::uint32_t crc = 0) noexcept;
// The same CRC, several times faster, with 8 KiB of tables: for the gateway, not for a device's flash.
std::uint32_t crc32_fast(const std::uint8_t* data, std::size_t length, std::uint32_t crc = 0) noexcept;

// Encoders write the whole message into out[0..capacity) and set *written.
CodecResult encode_batch(const BatchHeader& header, const Record* records, std::uint8_t* out, std::size_t capacity,
                         std::size_t* written) noexcept;
CodecResult encode_ack(const Ack& ack, std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept;
CodecResult encode_status(const StatusMessage& status, std::uint8_t* out, std::size_t capacity,
                          std::size_t* written) noexcept;

// Decoders are total: any input gives Ok and a filled result, or an error.
// They never read outside data[0..length).
CodecResult decode_batch(const std::uint8_t* data, std::size_t length, BatchView* out) noexcept;
CodecResult decode_ack(const std::uint8_t* data, std::size_t length, Ack* out) noexcept;
CodecResult decode_status(const std::uint8_t* data, std::size_t length, StatusMessage* out) noexcept;

CodecResult encode_telemetry(const Telemetry& telemetry, std::uint8_t* out, std::size_t capacity,
                             std::size_t* written) noexcept;
CodecResult decode_telemetry(const std::uint8_t* data, std::size_t length, Telemetry* out) noexcept;

}  // namespace fieldlink::protocol
