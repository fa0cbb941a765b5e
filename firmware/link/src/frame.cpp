// Serial link frames: encoder and streaming decoder (docs/protocol.md, "Serial link").
#include "fieldlink/link/frame.hpp"

#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::link {

namespace {

// COBS encoder writing one byte at a time, so the body never needs a buffer of its own.
class CobsWriter {
public:
    CobsWriter(std::uint8_t* out, std::size_t capacity, std::size_t start) noexcept
        : out_(out), capacity_(capacity), code_at_(start), at_(start + 1), ok_(start < capacity) {}

    void put(std::uint8_t byte) noexcept {
        if (full_) {
            // A 0xFF block ends without an implied zero; open the next one only
            // now, so a body that ends exactly there gets no extra code byte.
            close_block();
            full_ = false;
        }
        if (byte == 0) {
            close_block();
            return;
        }
        write(at_++, byte);
        if (++code_ == 0xFF) full_ = true;
    }

    void put(const std::uint8_t* data, std::size_t length) noexcept {
        for (std::size_t i = 0; i < length; ++i) put(data[i]);
    }

    // Writes the last code byte; returns the index just past the encoding.
    std::size_t finish() noexcept {
        write(code_at_, code_);
        return at_;
    }

    bool ok() const noexcept { return ok_; }

private:
    void close_block() noexcept {
        write(code_at_, code_);
        code_at_ = at_++;
        code_ = 1;
    }

    void write(std::size_t index, std::uint8_t byte) noexcept {
        if (index < capacity_) {
            out_[index] = byte;
        } else {
            ok_ = false;
        }
    }

    std::uint8_t* out_;
    std::size_t capacity_;
    std::size_t code_at_;  // where the current block's code byte goes
    std::size_t at_;       // next free index
    std::uint8_t code_ = 1;
    bool full_ = false;
    bool ok_;
};

bool known_type(std::uint8_t type) noexcept {
    return type == static_cast<std::uint8_t>(FrameType::Data) || type == static_cast<std::uint8_t>(FrameType::Reset) ||
           type == static_cast<std::uint8_t>(FrameType::ResetAck);
}

DecodeEvent error(LinkStatus status) noexcept {
    DecodeEvent event;
    event.kind = DecodeEvent::Kind::Error;
    event.error = status;
    return event;
}

}  // namespace

const char* to_string(LinkStatus status) noexcept {
    switch (status) {
        case LinkStatus::Ok: return "ok";
        case LinkStatus::Oversize: return "oversize";
        case LinkStatus::BadEncoding: return "bad_encoding";
        case LinkStatus::BadLength: return "bad_length";
        case LinkStatus::BadCrc: return "bad_crc";
        case LinkStatus::BadType: return "bad_type";
        case LinkStatus::SequenceGap: return "sequence_gap";
        case LinkStatus::PeerReset: return "peer_reset";
        case LinkStatus::OutputFailed: return "output_failed";
        case LinkStatus::NotOpen: return "not_open";
        case LinkStatus::BufferTooSmall: return "buffer_too_small";
        case LinkStatus::InvalidArgument: return "invalid_argument";
    }
    return "unknown";
}

LinkStatus encode_frame(FrameType type, std::uint16_t seq, const std::uint8_t* payload, std::size_t length,
                        std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept {
    if (out == nullptr || written == nullptr || length > kMaxPayload || (length != 0 && payload == nullptr) ||
        !known_type(static_cast<std::uint8_t>(type)) || (type != FrameType::Data && length != 0)) {
        return LinkStatus::InvalidArgument;
    }
    *written = 0;
    const std::uint8_t header[kHeaderSize] = {
        static_cast<std::uint8_t>(type),        static_cast<std::uint8_t>(seq & 0xFFu),
        static_cast<std::uint8_t>(seq >> 8),    static_cast<std::uint8_t>(length & 0xFFu),
        static_cast<std::uint8_t>(length >> 8),
    };
    std::uint32_t crc = protocol::crc32(header, sizeof header);
    if (length != 0) crc = protocol::crc32(payload, length, crc);
    const std::uint8_t trailer[kCrcSize] = {
        static_cast<std::uint8_t>(crc),
        static_cast<std::uint8_t>(crc >> 8),
        static_cast<std::uint8_t>(crc >> 16),
        static_cast<std::uint8_t>(crc >> 24),
    };

    if (capacity < 2) return LinkStatus::BufferTooSmall;
    out[0] = 0x00;  // a leading delimiter ends any garbage before the frame
    CobsWriter cobs(out, capacity, 1);
    cobs.put(header, sizeof header);
    if (length != 0) cobs.put(payload, length);
    cobs.put(trailer, sizeof trailer);
    const std::size_t end = cobs.finish();
    if (!cobs.ok() || end >= capacity) return LinkStatus::BufferTooSmall;
    out[end] = 0x00;
    *written = end + 1;
    return LinkStatus::Ok;
}

void Decoder::reset() noexcept {
    size_ = 0;
    raw_ = 0;
    block_left_ = 0;
    block_zero_ = false;
    overflow_ = false;
}

DecodeEvent Decoder::feed(std::uint8_t byte) noexcept {
    if (byte == 0x00) return finish();
    if (++raw_ > kMaxEncodedBodySize) overflow_ = true;
    if (overflow_) return {};  // skip to the next delimiter
    if (block_left_ == 0) {
        // A code byte: the previous block's implied zero is real only now that another block follows.
        if (block_zero_) {
            if (size_ == kMaxBodySize) {
                overflow_ = true;
                return {};
            }
            body_[size_++] = 0x00;
        }
        block_left_ = static_cast<std::uint8_t>(byte - 1);
        block_zero_ = byte != 0xFF;
        return {};
    }
    if (size_ == kMaxBodySize) {
        overflow_ = true;
        return {};
    }
    body_[size_++] = byte;
    --block_left_;
    return {};
}

DecodeEvent Decoder::feed(const std::uint8_t* data, std::size_t length, std::size_t* consumed) noexcept {
    std::size_t i = 0;
    DecodeEvent event;
    while (i < length) {
        event = feed(data[i++]);
        if (event.kind != DecodeEvent::Kind::None) break;
    }
    if (consumed != nullptr) *consumed = i;
    return event;
}

DecodeEvent Decoder::finish() noexcept {
    if (raw_ == 0) return {};  // two delimiters in a row: nothing between them
    const bool overflow = overflow_;
    const bool truncated = block_left_ != 0;
    const std::size_t size = size_;
    reset();  // the body stays in body_ until the next byte is fed
    if (overflow) return error(LinkStatus::Oversize);
    if (truncated) return error(LinkStatus::BadEncoding);
    if (size < kMinBodySize) return error(LinkStatus::BadLength);
    const std::size_t length = body_[3] | (static_cast<std::size_t>(body_[4]) << 8);
    if (length != size - kMinBodySize) return error(LinkStatus::BadLength);
    const std::size_t crc_at = kHeaderSize + length;
    const std::uint32_t stored = body_[crc_at] | (static_cast<std::uint32_t>(body_[crc_at + 1]) << 8) |
                                 (static_cast<std::uint32_t>(body_[crc_at + 2]) << 16) |
                                 (static_cast<std::uint32_t>(body_[crc_at + 3]) << 24);
    if (protocol::crc32(body_, crc_at) != stored) return error(LinkStatus::BadCrc);
    if (!known_type(body_[0]) || (body_[0] != static_cast<std::uint8_t>(FrameType::Data) && length != 0)) {
        return error(LinkStatus::BadType);
    }
    DecodeEvent event;
    event.kind = DecodeEvent::Kind::Frame;
    event.frame.type = static_cast<FrameType>(body_[0]);
    event.frame.seq = static_cast<std::uint16_t>(body_[1] | (body_[2] << 8));
    event.frame.payload = body_ + kHeaderSize;
    event.frame.length = length;
    return event;
}

}  // namespace fieldlink::link
