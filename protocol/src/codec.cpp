#include "fieldlink/protocol/codec.hpp"

#include <bit>
#include <cstring>

#include "fieldlink/protocol/little_endian.hpp"
#include "fieldlink/protocol/values.hpp"

namespace fieldlink::protocol {
namespace {

using le::get_u16;
using le::get_u32;
using le::get_u64;
using le::put_u16;
using le::put_u32;
using le::put_u64;

void put_header(std::uint8_t* p, Kind kind) noexcept {
    p[0] = kMagic0;
    p[1] = kMagic1;
    p[2] = kVersion;
    p[3] = static_cast<std::uint8_t>(kind);
}

// Checks magic, version and kind (in that order) of a message of at least four bytes.
CodecResult check_header(const std::uint8_t* data, Kind kind) noexcept {
    if (data[0] != kMagic0 || data[1] != kMagic1) return CodecResult::BadMagic;
    if (data[2] != kVersion) return CodecResult::UnsupportedVersion;
    if (data[3] != static_cast<std::uint8_t>(kind)) return CodecResult::WrongKind;
    return CodecResult::Ok;
}

bool crc_matches(const std::uint8_t* data, std::size_t length) noexcept {
    const std::size_t body = length - kCrcSize;
    return crc32(data, body) == get_u32(data + body);
}

void seal(std::uint8_t* data, std::size_t body_length) noexcept {
    put_u32(data + body_length, crc32(data, body_length));
}

bool is_printable(char c) noexcept { return c >= 0x20 && c <= 0x7e; }

std::size_t bounded_length(const char* text, std::size_t max) noexcept {
    std::size_t n = 0;
    while (n < max && text[n] != '\0') ++n;
    return n;
}

}  // namespace

const char* to_string(CodecResult status) noexcept {
    switch (status) {
        case CodecResult::Ok: return "ok";
        case CodecResult::Truncated: return "truncated";
        case CodecResult::Oversize: return "oversize";
        case CodecResult::BadMagic: return "bad_magic";
        case CodecResult::UnsupportedVersion: return "unsupported_version";
        case CodecResult::WrongKind: return "wrong_kind";
        case CodecResult::BadChecksum: return "bad_checksum";
        case CodecResult::BadField: return "bad_field";
        case CodecResult::EmptyBatch: return "empty_batch";
        case CodecResult::TooManyRecords: return "too_many_records";
        case CodecResult::CountMismatch: return "count_mismatch";
        case CodecResult::SequenceOverflow: return "sequence_overflow";
        case CodecResult::BufferTooSmall: return "buffer_too_small";
        case CodecResult::InvalidArgument: return "invalid_argument";
    }
    return "unknown";
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t length, std::uint32_t crc) noexcept {
    // Nibble table: 64 bytes of flash instead of 1 KiB, fast enough for MCU links.
    static constexpr std::uint32_t kTable[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
        0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    crc = ~crc;
    for (std::size_t i = 0; i < length; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ kTable[crc & 0x0Fu];
        crc = (crc >> 4) ^ kTable[crc & 0x0Fu];
    }
    return ~crc;
}

Record BatchView::record(std::size_t index) const noexcept {
    const std::uint8_t* p = records + index * kRecordSize;
    Record r;
    r.channel = p[0];
    r.mono_ms = get_u64(p + 1);
    r.value = value_from_bits(get_u64(p + 9));
    return r;
}

CodecResult encode_batch(const BatchHeader& header, const Record* records, std::uint8_t* out, std::size_t capacity,
                         std::size_t* written) noexcept {
    if (header.count == 0 || header.count > kMaxRecordsPerBatch || records == nullptr) {
        return CodecResult::InvalidArgument;
    }
    if (header.first_seq == 0 || header.floor_seq > header.first_seq) return CodecResult::InvalidArgument;
    if (header.first_seq - 1 > UINT64_MAX - header.count) return CodecResult::InvalidArgument;
    for (std::size_t i = 0; i < header.count; ++i) {
        if (is_nan(records[i].value)) return CodecResult::InvalidArgument;
    }
    const std::size_t length = kBatchHeaderSize + header.count * kRecordSize + kCrcSize;
    if (out == nullptr || capacity < length) return CodecResult::BufferTooSmall;

    put_header(out, Kind::Batch);
    put_u64(out + 4, header.incarnation);
    put_u64(out + 12, header.first_seq);
    put_u64(out + 20, header.floor_seq);
    put_u32(out + 28, header.boot);
    put_u64(out + 32, static_cast<std::uint64_t>(header.wall_offset_ms));
    out[40] = header.offset_known ? kBatchFlagOffsetKnown : 0;
    out[41] = 0;
    put_u16(out + 42, header.count);
    std::uint8_t* p = out + kBatchHeaderSize;
    for (std::size_t i = 0; i < header.count; ++i, p += kRecordSize) {
        p[0] = records[i].channel;
        put_u64(p + 1, records[i].mono_ms);
        put_u64(p + 9, value_bits(records[i].value));
    }
    seal(out, length - kCrcSize);
    if (written != nullptr) *written = length;
    return CodecResult::Ok;
}

CodecResult decode_batch(const std::uint8_t* data, std::size_t length, BatchView* out) noexcept {
    if (data == nullptr || length < kBatchHeaderSize + kCrcSize) return CodecResult::Truncated;
    if (length > kMaxBatchSize) return CodecResult::Oversize;
    const std::size_t body = length - kBatchHeaderSize - kCrcSize;
    if (body % kRecordSize != 0) return CodecResult::Truncated;
    if (CodecResult s = check_header(data, Kind::Batch); s != CodecResult::Ok) return s;
    if (!crc_matches(data, length)) return CodecResult::BadChecksum;

    BatchHeader h;
    h.incarnation = get_u64(data + 4);
    h.first_seq = get_u64(data + 12);
    h.floor_seq = get_u64(data + 20);
    h.boot = get_u32(data + 28);
    h.wall_offset_ms = static_cast<std::int64_t>(get_u64(data + 32));
    const std::uint8_t flags = data[40];
    h.offset_known = (flags & kBatchFlagOffsetKnown) != 0;
    h.count = get_u16(data + 42);
    if ((flags & ~kBatchFlagOffsetKnown) != 0 || data[41] != 0 || h.first_seq == 0 || h.floor_seq > h.first_seq) {
        return CodecResult::BadField;
    }
    if (h.count == 0) return CodecResult::EmptyBatch;
    if (h.count > kMaxRecordsPerBatch) return CodecResult::TooManyRecords;
    if (h.count != body / kRecordSize) return CodecResult::CountMismatch;
    if (h.first_seq - 1 > UINT64_MAX - h.count) return CodecResult::SequenceOverflow;
    for (std::size_t i = 0; i < h.count; ++i) {
        if (is_nan_bits(get_u64(data + kBatchHeaderSize + i * kRecordSize + 9))) return CodecResult::BadField;
    }

    if (out != nullptr) {
        out->header = h;
        out->records = data + kBatchHeaderSize;
    }
    return CodecResult::Ok;
}

CodecResult encode_ack(const Ack& ack, std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept {
    if (out == nullptr || capacity < kAckSize) return CodecResult::BufferTooSmall;
    put_header(out, Kind::Ack);
    put_u64(out + 4, ack.incarnation);
    put_u64(out + 12, ack.watermark);
    put_u64(out + 20, static_cast<std::uint64_t>(ack.gateway_unix_ms));
    seal(out, kAckSize - kCrcSize);
    if (written != nullptr) *written = kAckSize;
    return CodecResult::Ok;
}

CodecResult decode_ack(const std::uint8_t* data, std::size_t length, Ack* out) noexcept {
    if (data == nullptr || length < kAckSize) return CodecResult::Truncated;
    if (length > kAckSize) return CodecResult::Oversize;
    if (CodecResult s = check_header(data, Kind::Ack); s != CodecResult::Ok) return s;
    if (!crc_matches(data, length)) return CodecResult::BadChecksum;
    if (out != nullptr) {
        out->incarnation = get_u64(data + 4);
        out->watermark = get_u64(data + 12);
        out->gateway_unix_ms = static_cast<std::int64_t>(get_u64(data + 20));
    }
    return CodecResult::Ok;
}

CodecResult encode_status(const StatusMessage& status, std::uint8_t* out, std::size_t capacity,
                          std::size_t* written) noexcept {
    const std::size_t text_length = bounded_length(status.firmware_version, sizeof status.firmware_version);
    if (text_length == 0 || text_length > kMaxFirmwareVersionLength) return CodecResult::InvalidArgument;
    for (std::size_t i = 0; i < text_length; ++i) {
        if (!is_printable(status.firmware_version[i])) return CodecResult::InvalidArgument;
    }
    if (status.state != DeviceState::Offline && status.state != DeviceState::Online) {
        return CodecResult::InvalidArgument;
    }
    const std::size_t length = kStatusFixedSize + text_length;
    if (out == nullptr || capacity < length) return CodecResult::BufferTooSmall;
    put_header(out, Kind::Status);
    out[4] = static_cast<std::uint8_t>(status.state);
    out[5] = static_cast<std::uint8_t>(text_length);
    put_u64(out + 6, status.incarnation);
    put_u32(out + 14, status.boot);
    std::memcpy(out + 18, status.firmware_version, text_length);
    seal(out, length - kCrcSize);
    if (written != nullptr) *written = length;
    return CodecResult::Ok;
}

CodecResult decode_status(const std::uint8_t* data, std::size_t length, StatusMessage* out) noexcept {
    if (data == nullptr || length < kStatusFixedSize + 1) return CodecResult::Truncated;
    if (length > kMaxStatusSize) return CodecResult::Oversize;
    if (CodecResult s = check_header(data, Kind::Status); s != CodecResult::Ok) return s;
    const std::size_t text_length = data[5];
    if (text_length == 0 || text_length > kMaxFirmwareVersionLength) return CodecResult::BadField;
    if (length < kStatusFixedSize + text_length) return CodecResult::Truncated;
    if (length != kStatusFixedSize + text_length) return CodecResult::BadField;
    if (!crc_matches(data, length)) return CodecResult::BadChecksum;
    if (data[4] > static_cast<std::uint8_t>(DeviceState::Online)) return CodecResult::BadField;
    for (std::size_t i = 0; i < text_length; ++i) {
        if (!is_printable(static_cast<char>(data[18 + i]))) return CodecResult::BadField;
    }
    if (out != nullptr) {
        out->state = static_cast<DeviceState>(data[4]);
        out->incarnation = get_u64(data + 6);
        out->boot = get_u32(data + 14);
        std::memcpy(out->firmware_version, data + 18, text_length);
        out->firmware_version[text_length] = '\0';
    }
    return CodecResult::Ok;
}

CodecResult encode_telemetry(const Telemetry& t, std::uint8_t* out, std::size_t capacity,
                             std::size_t* written) noexcept {
    if (out == nullptr || capacity < kTelemetrySize) return CodecResult::BufferTooSmall;
    put_header(out, Kind::Telemetry);
    put_u64(out + 4, t.incarnation);
    put_u32(out + 12, t.boot);
    put_u32(out + 16, t.reconnects);
    put_u64(out + 20, t.uptime_ms);
    put_u64(out + 28, t.held);
    put_u64(out + 36, t.oldest_unacked_age_ms);
    put_u64(out + 44, t.dropped);
    put_u64(out + 52, t.next_seq);
    put_u64(out + 60, t.acked_through);
    seal(out, kTelemetrySize - kCrcSize);
    if (written != nullptr) *written = kTelemetrySize;
    return CodecResult::Ok;
}

CodecResult decode_telemetry(const std::uint8_t* data, std::size_t length, Telemetry* out) noexcept {
    if (data == nullptr || length < kTelemetrySize) return CodecResult::Truncated;
    if (length > kTelemetrySize) return CodecResult::Oversize;
    if (CodecResult s = check_header(data, Kind::Telemetry); s != CodecResult::Ok) return s;
    if (!crc_matches(data, length)) return CodecResult::BadChecksum;
    if (out != nullptr) {
        out->incarnation = get_u64(data + 4);
        out->boot = get_u32(data + 12);
        out->reconnects = get_u32(data + 16);
        out->uptime_ms = get_u64(data + 20);
        out->held = get_u64(data + 28);
        out->oldest_unacked_age_ms = get_u64(data + 36);
        out->dropped = get_u64(data + 44);
        out->next_seq = get_u64(data + 52);
        out->acked_through = get_u64(data + 60);
    }
    return CodecResult::Ok;
}

}  // namespace fieldlink::protocol
