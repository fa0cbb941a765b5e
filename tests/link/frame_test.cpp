// Frame encoder and streaming decoder: round trips, resynchronisation, each error, random damage.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "fieldlink/link/frame.hpp"
#include "link_test_support.hpp"
#include "fieldlink/protocol/codec.hpp"

namespace fl = fieldlink::link;

namespace {

using fieldlink::link::test::Bytes;

using fieldlink::link::test::encode;  // link_test_support.hpp

// Every event the decoder reports for `wire`, fed in pieces of `step` bytes.
struct Decoded {
    std::vector<fl::DecodeEvent> events;
    std::vector<Bytes> payloads;  // copies, one per event (empty for errors)
};

Decoded decode_all(fl::Decoder& decoder, const Bytes& wire, std::size_t step) {
    Decoded result;
    std::size_t at = 0;
    while (at < wire.size()) {
        const std::size_t n = std::min(step, wire.size() - at);
        std::size_t used = 0;
        while (used < n) {
            std::size_t consumed = 0;
            const fl::DecodeEvent event = decoder.feed(wire.data() + at + used, n - used, &consumed);
            used += consumed;
            if (event.kind == fl::DecodeEvent::Kind::None) continue;
            result.events.push_back(event);
            result.payloads.emplace_back(event.kind == fl::DecodeEvent::Kind::Frame
                                             ? Bytes(event.frame.payload, event.frame.payload + event.frame.length)
                                             : Bytes{});
        }
        at += n;
    }
    return result;
}

}  // namespace

TEST(LinkFrame, RoundTripsEveryPayloadSize) {
    std::mt19937 rng(7);
    fl::Decoder decoder;
    for (std::size_t size = 0; size <= fl::kMaxPayload; ++size) {
        // Random bytes with many zeros and 0xFF (the COBS edge cases), then all-zero and all-nonzero.
        for (int pattern = 0; pattern < 3; ++pattern) {
            Bytes payload(size);
            for (auto& b : payload) {
                const auto r = static_cast<std::uint8_t>(rng());
                b = pattern == 0 ? (r < 64 ? 0 : r) : pattern == 1 ? 0 : static_cast<std::uint8_t>(r | 1);
            }
            const auto seq = static_cast<std::uint16_t>(size * 3 + pattern);
            const Bytes wire = encode(fl::FrameType::Data, seq, payload);
            ASSERT_LE(wire.size(), fl::kMaxWireSize);
            EXPECT_EQ(wire.front(), 0);
            EXPECT_EQ(wire.back(), 0);
            for (std::size_t i = 1; i + 1 < wire.size(); ++i) ASSERT_NE(wire[i], 0) << size;
            const Decoded got = decode_all(decoder, wire, size % 5 == 0 ? 1 : wire.size());
            ASSERT_EQ(got.events.size(), 1u) << size;
            ASSERT_EQ(got.events[0].kind, fl::DecodeEvent::Kind::Frame) << size << " " << pattern;
            EXPECT_EQ(got.events[0].frame.type, fl::FrameType::Data);
            EXPECT_EQ(got.events[0].frame.seq, seq);
            EXPECT_EQ(got.payloads[0], payload) << size << " " << pattern;
        }
    }
}

TEST(LinkFrame, LargestFrameFillsTheWireBound) {
    const Bytes payload(fl::kMaxPayload, 0x55);
    EXPECT_EQ(encode(fl::FrameType::Data, 1, payload).size(), fl::kMaxWireSize);
}

TEST(LinkFrame, EncoderRejectsBadArguments) {
    Bytes out(fl::kMaxWireSize);
    std::size_t n = 0;
    const Bytes big(fl::kMaxPayload + 1, 1);
    EXPECT_EQ(fl::encode_frame(fl::FrameType::Data, 0, big.data(), big.size(), out.data(), out.size(), &n),
              fl::LinkStatus::InvalidArgument);
    EXPECT_EQ(fl::encode_frame(fl::FrameType::Reset, 0, big.data(), 1, out.data(), out.size(), &n),
              fl::LinkStatus::InvalidArgument);
    EXPECT_EQ(fl::encode_frame(fl::FrameType::Data, 0, nullptr, 3, out.data(), out.size(), &n),
              fl::LinkStatus::InvalidArgument);
    EXPECT_EQ(fl::encode_frame(static_cast<fl::FrameType>(9), 0, nullptr, 0, out.data(), out.size(), &n),
              fl::LinkStatus::InvalidArgument);
    const Bytes wire = encode(fl::FrameType::Data, 0, Bytes(40, 7));
    for (std::size_t capacity = 0; capacity < wire.size(); ++capacity) {
        EXPECT_EQ(fl::encode_frame(fl::FrameType::Data, 0, big.data(), 40, out.data(), capacity, &n),
                  fl::LinkStatus::BufferTooSmall)
            << capacity;
    }
}

TEST(LinkFrame, ResynchronisesAfterGarbage) {
    const Bytes frame = encode(fl::FrameType::Data, 5, {1, 0, 2});
    std::mt19937 rng(11);
    for (int trial = 0; trial < 200; ++trial) {
        Bytes wire(static_cast<std::size_t>(rng() % 600));
        for (auto& b : wire) b = static_cast<std::uint8_t>(rng());
        wire.insert(wire.end(), frame.begin(), frame.end());
        fl::Decoder decoder;
        const Decoded got = decode_all(decoder, wire, 1 + rng() % 64);
        ASSERT_FALSE(got.events.empty());
        // Whatever the garbage gave, the frame after it comes out intact, last.
        ASSERT_EQ(got.events.back().kind, fl::DecodeEvent::Kind::Frame) << trial;
        EXPECT_EQ(got.events.back().frame.seq, 5);
        EXPECT_EQ(got.payloads.back(), (Bytes{1, 0, 2}));
    }
}

TEST(LinkFrame, ReportsEachError) {
    fl::Decoder decoder;
    auto first_error = [&](const Bytes& wire) {
        const Decoded got = decode_all(decoder, wire, wire.size());
        return got.events.empty() ? fl::LinkStatus::Ok : got.events[0].error;
    };
    EXPECT_EQ(first_error(Bytes(1000, 0x42)), fl::LinkStatus::Ok);  // no delimiter yet: nothing to say
    EXPECT_EQ(first_error({0x00}), fl::LinkStatus::Oversize);
    EXPECT_EQ(first_error({0x05, 0x01, 0x00}), fl::LinkStatus::BadEncoding);
    EXPECT_EQ(first_error({0x03, 0x01, 0x02, 0x00}), fl::LinkStatus::BadLength);

    Bytes frame = encode(fl::FrameType::Data, 1, {9, 9, 9});
    Bytes flipped = frame;
    flipped[8] ^= 0x10;  // a payload byte (COBS keeps it non-zero)
    EXPECT_EQ(first_error(flipped), fl::LinkStatus::BadCrc);

    Bytes longer = frame;
    longer[5] = 0x04;  // length field says 4: disagrees with the frame
    EXPECT_EQ(first_error(longer), fl::LinkStatus::BadLength);

    EXPECT_EQ(first_error(encode(fl::FrameType::Reset, 0, {})), fl::LinkStatus::Ok);  // valid: no error
}

TEST(LinkFrame, UnknownTypeWithValidCrcIsBadType) {
    // Build a body by hand: type 0x7f, seq 0, length 0, CRC; COBS-encode it with a tiny encoder here.
    Bytes body = {0x7f, 0, 0, 0, 0};
    const std::uint32_t crc = fieldlink::protocol::crc32(body.data(), body.size());
    for (int i = 0; i < 4; ++i) body.push_back(static_cast<std::uint8_t>(crc >> (8 * i)));
    Bytes wire = {0x00};
    std::size_t code_at = wire.size();
    wire.push_back(1);
    for (std::uint8_t b : body) {
        if (b == 0) {
            code_at = wire.size();
            wire.push_back(1);
        } else {
            wire.push_back(b);
            ++wire[code_at];
        }
    }
    wire.push_back(0x00);
    fl::Decoder decoder;
    const Decoded got = decode_all(decoder, wire, wire.size());
    ASSERT_EQ(got.events.size(), 1u);
    EXPECT_EQ(got.events[0].error, fl::LinkStatus::BadType);
}

// Random damage: the decoder never hands out a frame that was not sent exactly as it is.
TEST(LinkFrame, RandomDamageNeverDeliversACorruptFrame) {
    std::mt19937 rng(20261202);
    std::map<std::uint16_t, Bytes> sent;
    Bytes wire;
    for (std::uint16_t seq = 0; seq < 8000; ++seq) {
        Bytes payload(rng() % 80);
        for (auto& b : payload) b = static_cast<std::uint8_t>(rng() % 4 == 0 ? 0 : rng());
        const Bytes frame = encode(fl::FrameType::Data, seq, payload);
        wire.insert(wire.end(), frame.begin(), frame.end());
        sent[seq] = payload;
    }
    Bytes damaged;
    damaged.reserve(wire.size());
    std::size_t damage = 0;
    for (std::uint8_t b : wire) {
        const auto r = rng() % 1000;
        if (r == 0) {
            ++damage;
            continue;  // dropped
        }
        if (r == 1) {
            ++damage;
            b = static_cast<std::uint8_t>(b ^ (1u << (rng() % 8)));  // one bit flipped
        }
        damaged.push_back(b);
        if (r == 2) {
            ++damage;
            damaged.push_back(static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng()));  // inserted
        }
    }
    ASSERT_GT(damage, 300u);
    fl::Decoder decoder;
    const Decoded got = decode_all(decoder, damaged, 97);
    std::size_t frames = 0;
    std::size_t errors = 0;
    for (std::size_t i = 0; i < got.events.size(); ++i) {
        if (got.events[i].kind == fl::DecodeEvent::Kind::Error) {
            ++errors;
            continue;
        }
        ++frames;
        const auto found = sent.find(got.events[i].frame.seq);
        ASSERT_NE(found, sent.end());
        ASSERT_EQ(got.payloads[i], found->second) << "seq " << got.events[i].frame.seq;
    }
    EXPECT_GT(frames, 6000u);  // most frames survive
    EXPECT_GT(errors, 100u);   // and the damage was seen
}
