// The serial link vectors in docs/protocol.md are the contract: encode the
// frames the document describes and compare byte for byte, then decode the
// document's bytes and compare the frames.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fieldlink/link/frame.hpp"
#include "support/doc_vectors.hpp"

namespace fl = fieldlink::link;

namespace {

using fieldlink::test::Bytes;

Bytes vector_named(const std::string& name) { return fieldlink::test::doc_vector(FIELDLINK_PROTOCOL_DOC, name); }

// The MQTT 3.1.1 CONNECT of the document: clean session, keep-alive 60 s, client id "plant-7".
const Bytes kConnect = {0x10, 0x13, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00,
                        0x3c, 0x00, 0x07, 0x70, 0x6c, 0x61, 0x6e, 0x74, 0x2d, 0x37};
const Bytes kZeros = {0x00, 0x00, 0x01, 0x00, 0xff, 0x00};

struct Case {
    const char* name;
    fl::FrameType type;
    std::uint16_t seq;
    Bytes payload;
};

const std::vector<Case>& cases() {
    static const std::vector<Case> all = {
        {"link-reset", fl::FrameType::Reset, 0x0001, {}},
        {"link-reset-ack", fl::FrameType::ResetAck, 0x0001, {}},
        {"link-data-connect", fl::FrameType::Data, 0, kConnect},
        {"link-data-zeros", fl::FrameType::Data, 0x0101, kZeros},
    };
    return all;
}

std::vector<fl::DecodeEvent> decode(const Bytes& wire, std::vector<Bytes>* payloads) {
    fl::Decoder decoder;
    std::vector<fl::DecodeEvent> events;
    std::size_t at = 0;
    while (at < wire.size()) {
        std::size_t used = 0;
        const fl::DecodeEvent event = decoder.feed(wire.data() + at, wire.size() - at, &used);
        at += used;
        if (event.kind == fl::DecodeEvent::Kind::None) continue;
        events.push_back(event);
        payloads->emplace_back(event.kind == fl::DecodeEvent::Kind::Frame
                                   ? Bytes(event.frame.payload, event.frame.payload + event.frame.length)
                                   : Bytes{});
    }
    return events;
}

}  // namespace

TEST(LinkVectors, EncodeGivesTheDocumentedBytes) {
    for (const Case& c : cases()) {
        Bytes out(fl::kMaxWireSize);
        std::size_t n = 0;
        ASSERT_EQ(fl::encode_frame(c.type, c.seq, c.payload.data(), c.payload.size(), out.data(), out.size(), &n),
                  fl::LinkStatus::Ok)
            << c.name;
        out.resize(n);
        EXPECT_EQ(out, vector_named(c.name)) << c.name;
    }
}

TEST(LinkVectors, DecodeGivesTheDocumentedFrames) {
    for (const Case& c : cases()) {
        std::vector<Bytes> payloads;
        const auto events = decode(vector_named(c.name), &payloads);
        ASSERT_EQ(events.size(), 1u) << c.name;
        ASSERT_EQ(events[0].kind, fl::DecodeEvent::Kind::Frame) << c.name;
        EXPECT_EQ(events[0].frame.type, c.type) << c.name;
        EXPECT_EQ(events[0].frame.seq, c.seq) << c.name;
        EXPECT_EQ(payloads[0], c.payload) << c.name;
    }
}

TEST(LinkVectors, GarbageThenFrame) {
    const Bytes wire = vector_named("link-garbage-then-frame");
    // As the document builds it: 4 garbage bytes, link-reset with its last CRC byte flipped, link-data-connect.
    Bytes built = {0xde, 0xad, 0xbe, 0xef};
    Bytes reset = vector_named("link-reset");
    ASSERT_GE(reset.size(), 3u);
    reset[reset.size() - 2] ^= 0x01;
    built.insert(built.end(), reset.begin(), reset.end());
    const Bytes connect = vector_named("link-data-connect");
    built.insert(built.end(), connect.begin(), connect.end());
    EXPECT_EQ(wire, built);

    std::vector<Bytes> payloads;
    const auto events = decode(wire, &payloads);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].kind, fl::DecodeEvent::Kind::Error);
    EXPECT_EQ(events[0].error, fl::LinkStatus::BadEncoding);
    EXPECT_EQ(events[1].kind, fl::DecodeEvent::Kind::Error);
    EXPECT_EQ(events[1].error, fl::LinkStatus::BadCrc);
    ASSERT_EQ(events[2].kind, fl::DecodeEvent::Kind::Frame);
    EXPECT_EQ(events[2].frame.type, fl::FrameType::Data);
    EXPECT_EQ(events[2].frame.seq, 0);
    EXPECT_EQ(payloads[2], kConnect);
}
