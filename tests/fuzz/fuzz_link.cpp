// libFuzzer target for the serial link's receive path (firmware/link): what a
// noisy UART, or a hostile peer on it, can hand to a board or to the bridge.
// Input: two control bytes, then the byte stream "from the line".
//
// 1. A reference decoder written here from docs/protocol.md §11 ("Receiving")
//    splits the stream at each 00 and judges every segment. fl::Decoder must
//    report exactly the same events (same error, or the same frame: type, seq,
//    payload), whether fed in chunks of the size the control byte picks, byte
//    by byte through feed(uint8_t), or all at once. Every verified frame has a
//    CRC that matches, and encode_frame() re-encodes it to the bytes it came
//    from (or to those bytes without the one optional 01 code the section
//    allows after an FF run that ends the body).
// 2. Resynchronisation: after the whole stream, whatever state it left the
//    decoder in (mid-frame, oversize, ...), one DATA frame built from the
//    control bytes and the stream is fed; the last event must be that frame.
//    The encoder's output for it stays within kMaxWireSize and has no 00 inside.
// 3. A fl::Session (opened, nonce 1) receives the same stream. A model of
//    the session rules (§11 "Session", 1-4) computed from the reference events
//    predicts every event: Opened (peer_reset or ok), Broken (with the reason),
//    Data in order with consecutive seqs from 0. Everything the session writes
//    is decoded again: whole verified frames, Resets numbered one up each time,
//    ResetAcks echoing the Reset they answer.
//
// Control byte 0: bits 0-2 chunk size (1 byte-wise, 2, 3, 7, 16, 64, 269, all);
// bit 3 adds 256 to the resync payload length (clamped to kMaxPayload).
// Control byte 1: the resync payload length (low 8 bits).
//
// Like the code under test, this target allocates nothing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fieldlink/link/frame.hpp"
#include "fieldlink/link/session.hpp"
#include "fieldlink/protocol/codec.hpp"

namespace fl = fieldlink::link;
using fl::DecodeEvent;
using fl::FrameType;
using fl::LinkStatus;

namespace {

[[noreturn]] void violated(const char* what, int line) {
    std::fprintf(stderr, "fuzz_link: invariant violated (line %d): %s\n", line, what);
    std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : violated(#cond, __LINE__))

constexpr std::size_t kMaxStream = 4096;        // -max_len in run_fuzz.sh; longer inputs are cut
constexpr std::size_t kMaxEvents = kMaxStream;  // at most one per 00 byte

// ---- 1. the reference decoder ----------------------------------------------

struct RefEvent {
    bool frame = false;
    LinkStatus error = LinkStatus::Ok;
    std::uint8_t type = 0;
    std::uint16_t seq = 0;
    std::size_t payload_at = 0;  // into g_payloads
    std::size_t length = 0;
    std::size_t begin = 0;  // the encoded body in the stream: [begin, end); stream[end] is its 00
    std::size_t end = 0;
};

RefEvent g_ref[kMaxEvents];
std::size_t g_ref_count = 0;
std::uint8_t g_payloads[kMaxStream];  // decoded bodies never exceed their encoding
std::size_t g_payloads_used = 0;

std::uint16_t le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

// One segment (no 00 inside, at least one byte), judged in the section's order.
RefEvent judge(const std::uint8_t* seg, std::size_t n) {
    RefEvent event;
    // Decoded freely first; a body can grow past kMaxBodySize only here.
    static std::uint8_t body[kMaxStream + 1];
    std::size_t size = 0;
    bool truncated = false;
    for (std::size_t i = 0; i < n;) {
        const std::uint8_t code = seg[i++];
        const std::size_t run = code - 1u;
        const std::size_t have = n - i < run ? n - i : run;
        std::memcpy(body + size, seg + i, have);
        size += have;
        i += have;
        if (have < run) {
            truncated = true;
            break;
        }
        if (code != 0xFF && i < n) body[size++] = 0x00;  // implied only when another block follows
    }
    if (n > fl::kMaxEncodedBodySize || size > fl::kMaxBodySize) {
        event.error = LinkStatus::Oversize;
    } else if (truncated) {
        event.error = LinkStatus::BadEncoding;
    } else if (size < fl::kMinBodySize || le16(body + 3) != size - fl::kMinBodySize) {
        event.error = LinkStatus::BadLength;
    } else {
        const std::size_t length = size - fl::kMinBodySize;
        const std::size_t crc_at = fl::kHeaderSize + length;
        const std::uint32_t stored = static_cast<std::uint32_t>(le16(body + crc_at)) |
                                     (static_cast<std::uint32_t>(le16(body + crc_at + 2)) << 16);
        const bool known = body[0] >= 0x01 && body[0] <= 0x03;
        if (fieldlink::protocol::crc32(body, crc_at) != stored) {
            event.error = LinkStatus::BadCrc;
        } else if (!known || (body[0] != 0x01 && length != 0)) {
            event.error = LinkStatus::BadType;
        } else {
            event.frame = true;
            event.type = body[0];
            event.seq = le16(body + 1);
            event.length = length;
            event.payload_at = g_payloads_used;
            std::memcpy(g_payloads + g_payloads_used, body + fl::kHeaderSize, length);
            g_payloads_used += length;
        }
    }
    return event;
}

void reference(const std::uint8_t* s, std::size_t n) {
    g_ref_count = 0;
    g_payloads_used = 0;
    std::size_t begin = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (s[i] != 0x00) continue;
        if (i > begin) {
            RefEvent event = judge(s + begin, i - begin);
            event.begin = begin;
            event.end = i;
            g_ref[g_ref_count++] = event;
        }
        begin = i + 1;
    }
}

// The decoder's event number `index` against the reference.
void expect_event(const DecodeEvent& got, std::size_t index, const std::uint8_t* stream) {
    FUZZ_CHECK(index < g_ref_count);
    const RefEvent& want = g_ref[index];
    if (!want.frame) {
        FUZZ_CHECK(got.kind == DecodeEvent::Kind::Error);
        FUZZ_CHECK(got.error == want.error);
        return;
    }
    FUZZ_CHECK(got.kind == DecodeEvent::Kind::Frame);
    const fl::Frame& f = got.frame;
    FUZZ_CHECK(static_cast<std::uint8_t>(f.type) == want.type && f.seq == want.seq);
    FUZZ_CHECK(f.length == want.length && f.length <= fl::kMaxPayload);
    FUZZ_CHECK(f.type == FrameType::Data || f.length == 0);
    FUZZ_CHECK(f.payload != nullptr);
    FUZZ_CHECK(std::memcmp(f.payload, g_payloads + want.payload_at, f.length) == 0);

    // Re-encoded: the same bytes as on the wire, delimiters included.
    std::uint8_t wire[fl::kMaxWireSize];
    std::size_t written = 0;
    FUZZ_CHECK(fl::encode_frame(f.type, f.seq, f.payload, f.length, wire, sizeof wire, &written) == LinkStatus::Ok);
    FUZZ_CHECK(written >= 2 && wire[0] == 0x00 && wire[written - 1] == 0x00);
    const std::uint8_t* seen = stream + want.begin;
    const std::size_t seen_n = want.end - want.begin;
    const std::size_t canon_n = written - 2;
    const bool same = seen_n == canon_n && std::memcmp(seen, wire + 1, canon_n) == 0;
    // The one other form §11 accepts: an extra empty final block (01) after an FF run.
    const bool extra_empty_block =
        seen_n == canon_n + 1 && seen[seen_n - 1] == 0x01 && std::memcmp(seen, wire + 1, canon_n) == 0;
    FUZZ_CHECK(same || extra_empty_block);
}

// ---- decoder runs ------------------------------------------------------------

constexpr std::size_t kChunks[8] = {1, 2, 3, 7, 16, 64, fl::kMaxWireSize, kMaxStream};

// Feeds the stream in pieces of `chunk` (1: through feed(uint8_t)); checks every event.
void run_decoder(fl::Decoder& decoder, const std::uint8_t* s, std::size_t n, std::size_t chunk) {
    std::size_t index = 0;
    for (std::size_t at = 0; at < n;) {
        const std::size_t piece = n - at < chunk ? n - at : chunk;
        if (chunk == 1) {
            const DecodeEvent event = decoder.feed(s[at]);
            if (event.kind != DecodeEvent::Kind::None) expect_event(event, index++, s);
        } else {
            for (std::size_t used = 0; used < piece;) {
                std::size_t consumed = 0;
                const DecodeEvent event = decoder.feed(s + at + used, piece - used, &consumed);
                FUZZ_CHECK(consumed >= 1 && consumed <= piece - used);
                used += consumed;
                if (event.kind == DecodeEvent::Kind::None) {
                    FUZZ_CHECK(used == piece);
                } else {
                    // Stops right after the 00 that completed the event.
                    FUZZ_CHECK(s[at + used - 1] == 0x00);
                    expect_event(event, index++, s);
                }
            }
        }
        at += piece;
    }
    FUZZ_CHECK(index == g_ref_count);
}

// ---- 2. resynchronisation ----------------------------------------------------

void check_resync(fl::Decoder& decoder, const std::uint8_t* s, std::size_t n, std::size_t length) {
    std::uint8_t payload[fl::kMaxPayload];
    for (std::size_t i = 0; i < length; ++i) payload[i] = n == 0 ? static_cast<std::uint8_t>(i) : s[i % n];
    const std::uint16_t seq = n >= 2 ? le16(s) : 0;
    std::uint8_t wire[fl::kMaxWireSize];
    std::size_t written = 0;
    FUZZ_CHECK(fl::encode_frame(FrameType::Data, seq, payload, length, wire, sizeof wire, &written) == LinkStatus::Ok);
    FUZZ_CHECK(written <= fl::kMaxWireSize && wire[0] == 0x00 && wire[written - 1] == 0x00);
    for (std::size_t i = 1; i + 1 < written; ++i) FUZZ_CHECK(wire[i] != 0x00);
    // Too small by one byte: refused, never written past the end.
    std::size_t ignored = 0;
    FUZZ_CHECK(fl::encode_frame(FrameType::Data, seq, payload, length, wire, written - 1, &ignored) ==
               LinkStatus::BufferTooSmall);
    FUZZ_CHECK(fl::encode_frame(FrameType::Data, seq, payload, length, wire, sizeof wire, &written) == LinkStatus::Ok);

    DecodeEvent last;
    std::size_t events = 0;
    for (std::size_t at = 0; at < written;) {
        std::size_t consumed = 0;
        const DecodeEvent event = decoder.feed(wire + at, written - at, &consumed);
        at += consumed;
        if (event.kind != DecodeEvent::Kind::None) {
            last = event;
            ++events;
        }
    }
    // At most one event for what came before (the leading 00 ends it), then the frame.
    FUZZ_CHECK(events == 1 || events == 2);
    if (events == 2) FUZZ_CHECK(n != 0 && s[n - 1] != 0x00);
    FUZZ_CHECK(last.kind == DecodeEvent::Kind::Frame);
    FUZZ_CHECK(last.frame.type == FrameType::Data && last.frame.seq == seq && last.frame.length == length);
    FUZZ_CHECK(std::memcmp(last.frame.payload, payload, length) == 0);
}

// ---- 3. the session ----------------------------------------------------------

// Decodes everything the session writes; checks Resets and ResetAcks.
class CheckingOutput final : public fl::LinkOutput {
public:
    bool write(const std::uint8_t* data, std::size_t length) override {
        FUZZ_CHECK(length >= 2 && length <= fl::kMaxWireSize && data[0] == 0x00 && data[length - 1] == 0x00);
        std::size_t frames = 0;
        for (std::size_t at = 0; at < length;) {
            std::size_t consumed = 0;
            const DecodeEvent event = decoder_.feed(data + at, length - at, &consumed);
            at += consumed;
            if (event.kind == DecodeEvent::Kind::None) continue;
            FUZZ_CHECK(event.kind == DecodeEvent::Kind::Frame);
            ++frames;
            last_type = event.frame.type;
            last_seq = event.frame.seq;
            ++writes;
        }
        FUZZ_CHECK(frames == 1);  // one whole frame per write
        return true;
    }

    FrameType last_type = FrameType::Data;
    std::uint16_t last_seq = 0;
    std::size_t writes = 0;

private:
    fl::Decoder decoder_;
};

void run_session(const std::uint8_t* s, std::size_t n, std::size_t chunk) {
    CheckingOutput out;
    fl::SessionConfig config;
    config.nonce = 0;
    fl::Session session(out, config);
    session.open(0);
    // The model of §11's rules, driven by the reference events.
    bool open = false;
    std::uint16_t nonce = 1;  // of our latest Reset
    std::uint16_t rx_next = 0;
    FUZZ_CHECK(out.writes == 1 && out.last_type == FrameType::Reset && out.last_seq == nonce);

    std::size_t index = 0;  // reference events the session has seen
    std::size_t fed = 0;    // stream bytes given to the session
    // Reference events complete at g_ref[i].end; the session sees them in order.
    for (std::size_t at = 0; at < n;) {
        const std::size_t piece = n - at < chunk ? n - at : chunk;
        for (std::size_t used = 0; used < piece;) {
            std::size_t consumed = 0;
            const std::size_t writes_before = out.writes;
            const fl::SessionEvent event = session.receive(s + at + used, piece - used, &consumed, 0);
            FUZZ_CHECK(consumed <= piece - used);
            used += consumed;
            fed = at + used;
            // Every reference event now complete must have been handled; each
            // produces at most one session event, and receive() stops after one.
            using Kind = fl::SessionEvent::Kind;
            Kind want = Kind::None;
            LinkStatus reason = LinkStatus::Ok;
            while (index < g_ref_count && g_ref[index].end < fed && want == Kind::None) {
                const RefEvent& r = g_ref[index++];
                if (!r.frame) {
                    if (open) {
                        want = Kind::Broken;
                        reason = r.error;
                        open = false;
                        ++nonce;
                        FUZZ_CHECK(out.last_type == FrameType::Reset && out.last_seq == nonce);
                    }
                } else if (r.type == 0x02) {
                    FUZZ_CHECK(out.last_type == FrameType::ResetAck && out.last_seq == r.seq);
                    want = Kind::Opened;
                    reason = LinkStatus::PeerReset;
                    open = true;
                    rx_next = 0;
                } else if (r.type == 0x03) {
                    if (!open && r.seq == nonce) {
                        want = Kind::Opened;
                        open = true;
                        rx_next = 0;
                    }
                } else if (open) {
                    if (r.seq != rx_next) {
                        want = Kind::Broken;
                        reason = LinkStatus::SequenceGap;
                        open = false;
                        ++nonce;
                        FUZZ_CHECK(out.last_type == FrameType::Reset && out.last_seq == nonce);
                    } else {
                        want = Kind::Data;
                        FUZZ_CHECK(event.kind == Kind::Data && event.seq == rx_next && event.length == r.length);
                        FUZZ_CHECK(std::memcmp(event.data, g_payloads + r.payload_at, r.length) == 0);
                        ++rx_next;
                    }
                }
            }
            FUZZ_CHECK(event.kind == want && event.reason == reason);
            // An event ends receive(): nothing after it may have been consumed.
            if (want != Kind::None) FUZZ_CHECK(index == g_ref_count || g_ref[index].end >= fed);
            if (want == Kind::None) FUZZ_CHECK(used == piece && out.writes == writes_before);
            FUZZ_CHECK(session.state() == (open ? fl::SessionState::Open : fl::SessionState::Opening));
        }
        at += piece;
    }
    FUZZ_CHECK(index == g_ref_count);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t chunk = kChunks[data[0] & 0x07u];
    std::size_t resync_length = data[1] + ((data[0] & 0x08u) != 0 ? 256u : 0u);
    if (resync_length > fl::kMaxPayload) resync_length = fl::kMaxPayload;
    const std::uint8_t* stream = data + 2;
    const std::size_t n = size - 2 < kMaxStream ? size - 2 : kMaxStream;

    reference(stream, n);
    fl::Decoder chunked;
    run_decoder(chunked, stream, n, chunk);
    check_resync(chunked, stream, n, resync_length);
    fl::Decoder whole;
    run_decoder(whole, stream, n, kMaxStream);
    if (chunk != 1) {
        fl::Decoder bytewise;
        run_decoder(bytewise, stream, n, 1);
    }
    run_session(stream, n, chunk);
    return 0;
}
