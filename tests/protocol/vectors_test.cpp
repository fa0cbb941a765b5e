// The hex vectors in docs/protocol.md are the contract: encode what the document
// describes and compare byte for byte, then decode the document's bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fieldlink/protocol/codec.hpp"
#include "support/doc_vectors.hpp"

namespace fp = fieldlink::protocol;

namespace {

using fieldlink::test::Bytes;

const std::map<std::string, Bytes>& vectors() {
    static const auto loaded = fieldlink::test::load_doc_vectors(FIELDLINK_PROTOCOL_DOC);
    return loaded;
}

Bytes vector_named(const std::string& name) { return fieldlink::test::doc_vector(FIELDLINK_PROTOCOL_DOC, name); }

}  // namespace

TEST(ProtocolVectors, DocumentHasAllVectors) {
    for (const char* name : {"batch-unsynced", "batch-synced", "ack", "status-online", "status-offline", "telemetry"}) {
        EXPECT_EQ(vectors().count(name), 1u) << name;
    }
}

TEST(ProtocolVectors, BatchUnsynced) {
    fp::BatchHeader h;
    h.incarnation = 0x0123456789abcdefULL;
    h.first_seq = 1;
    h.floor_seq = 1;
    h.count = 2;
    const fp::Record records[] = {{0, 1500, 21.5}, {1, 1500, 40.25}};
    std::uint8_t out[fp::kMaxBatchSize];
    std::size_t n = 0;
    ASSERT_EQ(fp::encode_batch(h, records, out, sizeof out, &n), fp::CodecResult::Ok);
    EXPECT_EQ(Bytes(out, out + n), vector_named("batch-unsynced"));

    const Bytes doc = vector_named("batch-unsynced");
    fp::BatchView view;
    ASSERT_EQ(fp::decode_batch(doc.data(), doc.size(), &view), fp::CodecResult::Ok);
    EXPECT_EQ(view.header.incarnation, h.incarnation);
    EXPECT_EQ(view.header.first_seq, 1u);
    EXPECT_FALSE(view.header.offset_known);
    ASSERT_EQ(view.header.count, 2);
    EXPECT_EQ(view.record(1).channel, 1);
    EXPECT_EQ(view.record(1).mono_ms, 1500u);
    EXPECT_EQ(view.record(1).value, 40.25);
}

TEST(ProtocolVectors, BatchSynced) {
    fp::BatchHeader h;
    h.incarnation = 0xa1;
    h.first_seq = 1000;
    h.floor_seq = 990;
    h.boot = 3;
    h.wall_offset_ms = 1795312677000;
    h.offset_known = true;
    h.count = 1;
    const fp::Record record{2, 123456, -3.75};
    std::uint8_t out[fp::kMaxBatchSize];
    std::size_t n = 0;
    ASSERT_EQ(fp::encode_batch(h, &record, out, sizeof out, &n), fp::CodecResult::Ok);
    EXPECT_EQ(Bytes(out, out + n), vector_named("batch-synced"));

    const Bytes doc = vector_named("batch-synced");
    fp::BatchView view;
    ASSERT_EQ(fp::decode_batch(doc.data(), doc.size(), &view), fp::CodecResult::Ok);
    EXPECT_TRUE(view.header.offset_known);
    EXPECT_EQ(view.header.boot, 3u);
    EXPECT_EQ(view.header.floor_seq, 990u);
    EXPECT_EQ(static_cast<std::int64_t>(view.record(0).mono_ms) + view.header.wall_offset_ms, 1795312800456);
    EXPECT_EQ(view.record(0).value, -3.75);
}

TEST(ProtocolVectors, Ack) {
    const fp::Ack ack{0x0123456789abcdefULL, 2, 1795312800000};
    std::uint8_t out[fp::kAckSize];
    std::size_t n = 0;
    ASSERT_EQ(fp::encode_ack(ack, out, sizeof out, &n), fp::CodecResult::Ok);
    EXPECT_EQ(Bytes(out, out + n), vector_named("ack"));

    const Bytes doc = vector_named("ack");
    fp::Ack decoded;
    ASSERT_EQ(fp::decode_ack(doc.data(), doc.size(), &decoded), fp::CodecResult::Ok);
    EXPECT_EQ(decoded.incarnation, ack.incarnation);
    EXPECT_EQ(decoded.watermark, 2u);
    EXPECT_EQ(decoded.gateway_unix_ms, 1795312800000);
}

TEST(ProtocolVectors, StatusBirthAndWill) {
    for (const auto& [name, state] :
         {std::pair{"status-online", fp::DeviceState::Online}, std::pair{"status-offline", fp::DeviceState::Offline}}) {
        fp::StatusMessage status;
        status.state = state;
        status.incarnation = 0x0123456789abcdefULL;
        std::snprintf(status.firmware_version, sizeof status.firmware_version, "0.1.0");
        std::uint8_t out[fp::kMaxStatusSize];
        std::size_t n = 0;
        ASSERT_EQ(fp::encode_status(status, out, sizeof out, &n), fp::CodecResult::Ok);
        EXPECT_EQ(Bytes(out, out + n), vector_named(name)) << name;

        const Bytes doc = vector_named(name);
        fp::StatusMessage decoded;
        ASSERT_EQ(fp::decode_status(doc.data(), doc.size(), &decoded), fp::CodecResult::Ok) << name;
        EXPECT_EQ(decoded.state, state);
        EXPECT_STREQ(decoded.firmware_version, "0.1.0");
    }
}

TEST(ProtocolVectors, Telemetry) {
    fp::Telemetry t;
    t.incarnation = 0x0123456789abcdefULL;
    t.boot = 2;
    t.reconnects = 1;
    t.uptime_ms = 3600000;
    t.held = 1500;
    t.oldest_unacked_age_ms = 30000;
    t.dropped = 0;
    t.next_seq = 4001;
    t.acked_through = 2500;
    std::uint8_t out[fp::kTelemetrySize];
    std::size_t n = 0;
    ASSERT_EQ(fp::encode_telemetry(t, out, sizeof out, &n), fp::CodecResult::Ok);
    EXPECT_EQ(Bytes(out, out + n), vector_named("telemetry"));

    const Bytes doc = vector_named("telemetry");
    fp::Telemetry decoded;
    ASSERT_EQ(fp::decode_telemetry(doc.data(), doc.size(), &decoded), fp::CodecResult::Ok);
    EXPECT_EQ(decoded.held, 1500u);
    EXPECT_EQ(decoded.next_seq, 4001u);
    EXPECT_EQ(decoded.acked_through, 2500u);
}
