// DeviceMessageDecoder: a message must arrive on the topic of the device that
// owns its incarnation (docs/protocol.md, error device_mismatch).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "fieldlink/gateway/ingest/device_message_decoder.hpp"
#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::gateway {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes binary_batch(std::uint64_t incarnation, std::uint64_t first_seq) {
    protocol::BatchHeader header;
    header.incarnation = incarnation;
    header.first_seq = first_seq;
    header.floor_seq = 1;
    header.count = 1;
    const protocol::Record record{0, 1500, 21.5};
    Bytes out(protocol::kMaxBatchSize);
    std::size_t written = 0;
    EXPECT_EQ(protocol::encode_batch(header, &record, out.data(), out.size(), &written), protocol::CodecResult::Ok);
    out.resize(written);
    return out;
}

Bytes json_batch(const std::string& incarnation) {
    const std::string text = R"({"v": 1, "incarnation": ")" + incarnation +
                             R"(", "first_seq": 1, "readings": [{"ch": 0, "t": 1, "v": 2.5}]})";
    return Bytes(text.begin(), text.end());
}

Bytes status(std::uint64_t incarnation) {
    protocol::StatusMessage message;
    message.state = protocol::DeviceState::Online;
    message.incarnation = incarnation;
    message.firmware_version[0] = '1';
    Bytes out(64);
    std::size_t written = 0;
    EXPECT_EQ(protocol::encode_status(message, out.data(), out.size(), &written), protocol::CodecResult::Ok);
    out.resize(written);
    return out;
}

const Rejected* rejected(const Inbound& message) { return std::get_if<Rejected>(&message); }

TEST(DeviceMismatch, AnIncarnationBelongsToTheFirstDeviceThatSentIt) {
    DeviceMessageDecoder decoder(100);
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decoder.decode("fieldlink/v1/devA/up", binary_batch(0xa1, 1))));
    // The same device again, in either form and kind: fine.
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decoder.decode("fieldlink/v1/devA/up", json_batch("a1"))));
    EXPECT_TRUE(std::holds_alternative<DeviceStatus>(decoder.decode("fieldlink/v1/devA/status", status(0xa1))));

    // devA's incarnation on devB's topics: rejected, and the message is kept whole for the dead letter.
    const Bytes forged = binary_batch(0xa1, 2);
    const Inbound batch = decoder.decode("fieldlink/v1/devB/up", forged);
    ASSERT_NE(rejected(batch), nullptr);
    EXPECT_EQ(rejected(batch)->error, "device_mismatch");
    EXPECT_EQ(rejected(batch)->topic, "fieldlink/v1/devB/up");
    EXPECT_EQ(rejected(batch)->payload, forged);
    EXPECT_EQ(rejected(batch)->detail, "incarnation 00000000000000a1 belongs to device 'devA', not 'devB'");
    const Inbound json = decoder.decode("fieldlink/v1/devB/up", json_batch("A1"));
    ASSERT_NE(rejected(json), nullptr);
    EXPECT_EQ(rejected(json)->error, "device_mismatch");
    const Inbound birth = decoder.decode("fieldlink/v1/devB/status", status(0xa1));
    ASSERT_NE(rejected(birth), nullptr);
    EXPECT_EQ(rejected(birth)->error, "device_mismatch");

    // devB with its own incarnation is fine, and devA stays the owner of 0xa1.
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decoder.decode("fieldlink/v1/devB/up", binary_batch(0xb2, 1))));
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decoder.decode("fieldlink/v1/devA/up", binary_batch(0xa1, 3))));
    EXPECT_EQ(decoder.owners(), 2u);
}

TEST(DeviceMismatch, MalformedMessagesClaimNothing) {
    DeviceMessageDecoder decoder(100);
    Bytes broken = binary_batch(0xa1, 1);
    broken.back() ^= 0xff;  // bad CRC: its incarnation cannot be trusted
    const Inbound first = decoder.decode("fieldlink/v1/devB/up", broken);
    ASSERT_NE(rejected(first), nullptr);
    EXPECT_EQ(rejected(first)->error, "bad_checksum");
    EXPECT_EQ(decoder.owners(), 0u);
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decoder.decode("fieldlink/v1/devA/up", binary_batch(0xa1, 1))));
}

TEST(DeviceMismatch, OwnersAreBoundedAndTheOldestIsForgotten) {
    DeviceMessageDecoder decoder(2);
    decoder.decode("fieldlink/v1/devA/up", binary_batch(1, 1));
    decoder.decode("fieldlink/v1/devB/up", binary_batch(2, 1));
    decoder.decode("fieldlink/v1/devC/up", binary_batch(3, 1));  // pushes out incarnation 1
    EXPECT_EQ(decoder.owners(), 2u);
    // Forgotten, so learnt again from the next message: the limit of an in-memory binding.
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decoder.decode("fieldlink/v1/devD/up", binary_batch(1, 1))));
    // devC's incarnation 3 is still known (pushing out 2, the least recently seen now).
    const Inbound again = decoder.decode("fieldlink/v1/devB/up", binary_batch(3, 2));
    ASSERT_NE(rejected(again), nullptr);
    EXPECT_EQ(rejected(again)->error, "device_mismatch");
}

}  // namespace
}  // namespace fieldlink::gateway
