// Serial link frames: chunks of a byte stream (MQTT) over a UART that can lose,
// flip or insert bytes. COBS-encoded between 0x00 delimiters, CRC-32 checked,
// numbered per direction. Freestanding: no heap, fixed buffers.
// Wire format: docs/protocol.md, "Serial link"; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::link {

inline constexpr std::size_t kMaxPayload = 256;
inline constexpr std::size_t kHeaderSize = 5;  // type, seq (u16), length (u16)
inline constexpr std::size_t kCrcSize = 4;
inline constexpr std::size_t kMinBodySize = kHeaderSize + kCrcSize;
inline constexpr std::size_t kMaxBodySize = kMinBodySize + kMaxPayload;
// COBS adds one byte per started run of 254 bytes; a frame has a 0x00 on each side.
inline constexpr std::size_t kMaxEncodedBodySize = kMaxBodySize + (kMaxBodySize + 253) / 254;
inline constexpr std::size_t kMaxWireSize = kMaxEncodedBodySize + 2;

enum class FrameType : std::uint8_t {
    Data = 0x01,      // a chunk of the stream; seq numbers data frames 0, 1, 2, ... per session
    Reset = 0x02,     // "start a new session"; seq is the sender's nonce, no payload
    ResetAck = 0x03,  // "session started"; seq echoes the nonce of the Reset it answers, no payload
};

// The link's one status enum: decoder errors (in the order the decoder checks),
// session reasons and encoder failures.
enum class LinkStatus : std::uint8_t {
    Ok = 0,
    Oversize,         // more than kMaxEncodedBodySize bytes between two delimiters
    BadEncoding,      // the COBS structure runs past the delimiter
    BadLength,        // fewer than kMinBodySize bytes, or the length field disagrees with the frame
    BadCrc,           // the CRC-32 does not match
    BadType,          // a frame type not listed, or a control frame with a payload
    SequenceGap,      // session: a data frame whose seq is not the next expected one
    PeerReset,        // session: the peer started a new session (a Reset arrived)
    OutputFailed,     // session: the output refused bytes, so our stream has a hole
    NotOpen,          // session: send() while the session is not open
    BufferTooSmall,   // encoder: the output buffer cannot hold the frame
    InvalidArgument,  // encoder: payload too long, null pointer, or payload on a control frame
};

// Stable, human-readable name of a status ("bad_crc", ...), for logs and metrics.
const char* to_string(LinkStatus status) noexcept;

// Writes the whole frame, both delimiters included, into out[0..capacity) and
// sets *written. At most kMaxWireSize bytes. Failures: InvalidArgument,
// BufferTooSmall (nothing useful is written then).
LinkStatus encode_frame(FrameType type, std::uint16_t seq, const std::uint8_t* payload, std::size_t length,
                        std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept;

struct Frame {
    FrameType type = FrameType::Data;
    std::uint16_t seq = 0;
    const std::uint8_t* payload = nullptr;  // into the decoder; valid until its next feed
    std::size_t length = 0;
};

struct DecodeEvent {
    enum class Kind : std::uint8_t {
        None,   // everything given was consumed; no frame ended
        Frame,  // a verified frame (frame is set)
        Error,  // bytes between two delimiters were not a valid frame (error says why)
    };
    Kind kind = Kind::None;
    LinkStatus error = LinkStatus::Ok;
    Frame frame;
};

// Streaming decoder: feed bytes as they arrive, one or many at a time. Each
// 0x00 ends a frame; an empty one (two delimiters in a row) is skipped, so
// garbage before a frame costs at most one Error event and the next frame
// decodes. Sequence numbers are not checked here (that is the session's job).
class Decoder {
public:
    // Consumes bytes up to and including the first one that completes an event
    // and stops there; *consumed says how many (all of them when None). Call
    // again with the rest.
    DecodeEvent feed(const std::uint8_t* data, std::size_t length, std::size_t* consumed) noexcept;
    DecodeEvent feed(std::uint8_t byte) noexcept;

    // Drops a partly received frame.
    void reset() noexcept;

private:
    DecodeEvent finish() noexcept;

    std::uint8_t body_[kMaxBodySize] = {};
    std::size_t size_ = 0;
    std::size_t raw_ = 0;          // encoded bytes since the last delimiter
    std::uint8_t block_left_ = 0;  // data bytes still due in the current COBS block
    bool block_zero_ = false;      // the current block ends with an implied 0x00
    bool overflow_ = false;
};

}  // namespace fieldlink::link
