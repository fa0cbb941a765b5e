// MQTT 3.1.1 packets against bytes written out by hand from the OASIS spec
// (section numbers in the comments), and the decoder's handling of bad input.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "fakes.hpp"
#include "fieldlink/mqtt/packet.hpp"

namespace fieldlink::mqtt {
namespace {

using test::Bytes;
using test::bytes_of;
using test::concat;

Bytes encoded_length(std::uint32_t value) {
    std::uint8_t out[4] = {};
    const std::size_t n = encode_remaining_length(value, out);
    return Bytes(out, out + n);
}

TEST(MqttRemainingLength, EncodesSpecBoundaries) {
    // Spec 2.2.3, table 2.4: the ranges of one to four bytes.
    EXPECT_EQ(encoded_length(0), (Bytes{0x00}));
    EXPECT_EQ(encoded_length(127), (Bytes{0x7F}));
    EXPECT_EQ(encoded_length(128), (Bytes{0x80, 0x01}));
    EXPECT_EQ(encoded_length(16'383), (Bytes{0xFF, 0x7F}));
    EXPECT_EQ(encoded_length(16'384), (Bytes{0x80, 0x80, 0x01}));
    EXPECT_EQ(encoded_length(2'097'151), (Bytes{0xFF, 0xFF, 0x7F}));
    EXPECT_EQ(encoded_length(2'097'152), (Bytes{0x80, 0x80, 0x80, 0x01}));
    EXPECT_EQ(encoded_length(268'435'455), (Bytes{0xFF, 0xFF, 0xFF, 0x7F}));
    EXPECT_EQ(encoded_length(268'435'456), Bytes{});  // above the maximum: refused
}

TEST(MqttRemainingLength, DecodesSpecBoundaries) {
    struct Case {
        Bytes bytes;
        std::uint32_t value;
    };
    const Case cases[] = {
        {{0x30, 0x00}, 0},
        {{0x30, 0x7F}, 127},
        {{0x30, 0x80, 0x01}, 128},
        {{0x30, 0xFF, 0x7F}, 16'383},
        {{0x30, 0x80, 0x80, 0x01}, 16'384},
        {{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 268'435'455},
    };
    for (const Case& c : cases) {
        std::uint8_t first = 0;
        std::uint32_t remaining = 0;
        std::size_t header_size = 0;
        ASSERT_EQ(decode_fixed_header(c.bytes.data(), c.bytes.size(), &first, &remaining, &header_size), Status::Ok);
        EXPECT_EQ(first, 0x30);
        EXPECT_EQ(remaining, c.value);
        EXPECT_EQ(header_size, c.bytes.size());
    }
}

TEST(MqttRemainingLength, RejectsFifthByteAndWaitsForMissingOnes) {
    const Bytes five = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    EXPECT_EQ(decode_fixed_header(five.data(), five.size(), nullptr, nullptr, nullptr), Status::MalformedLength);
    EXPECT_EQ(decode_packet(five.data(), five.size(), nullptr, nullptr), Status::MalformedLength);
    const Bytes cut = {0x30, 0x80, 0x80};
    EXPECT_EQ(decode_fixed_header(cut.data(), cut.size(), nullptr, nullptr, nullptr), Status::Incomplete);
    EXPECT_EQ(decode_fixed_header(cut.data(), 1, nullptr, nullptr, nullptr), Status::Incomplete);
    EXPECT_EQ(decode_fixed_header(nullptr, 0, nullptr, nullptr, nullptr), Status::Incomplete);
}

TEST(MqttEncode, ConnectWithLastWill) {
    const std::uint8_t will_payload[] = {0x01, 0x02};
    Will will;
    will.topic = "fieldlink/v1/dev1/status";
    will.payload = will_payload;
    will.payload_length = sizeof will_payload;
    will.qos = QoS::AtLeastOnce;
    will.retain = true;
    ConnectOptions options;
    options.client_id = "reader-dev1";
    options.keep_alive_s = 30;
    options.clean_session = true;
    options.will = &will;

    // Spec 3.1: fixed header, protocol name, level 4, flags, keep alive, then
    // the payload fields in the order client id, will topic, will message.
    const Bytes expected = concat({
        {0x10, 53},                        // CONNECT, remaining length 10 + 13 + 26 + 4
        {0x00, 0x04, 'M', 'Q', 'T', 'T'},  // protocol name
        {0x04},                            // protocol level 3.1.1
        {0x2E},                            // will retain 0x20 | will QoS 1 0x08 | will 0x04 | clean 0x02
        {0x00, 0x1E},                      // keep alive 30 s
        {0x00, 0x0B},
        bytes_of("reader-dev1"),
        {0x00, 0x18},
        bytes_of("fieldlink/v1/dev1/status"),
        {0x00, 0x02, 0x01, 0x02},
    });
    std::uint8_t out[128];
    std::size_t written = 0;
    ASSERT_EQ(encode_connect(options, out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), expected);

    EXPECT_EQ(encode_connect(options, out, expected.size() - 1, &written), Status::BufferTooSmall);
}

TEST(MqttEncode, ConnectWithCredentialsAndNoWill) {
    ConnectOptions options;
    options.client_id = "c";
    options.keep_alive_s = 0;
    options.username = "u";
    options.password = "pw";
    const Bytes expected = {0x10, 20,   0x00, 0x04, 'M', 'Q',  'T',  'T', 0x04,
                            0xC2,  // user name 0x80 | password 0x40 | clean 0x02
                            0x00, 0x00, 0x00, 0x01, 'c', 0x00, 0x01, 'u', 0x00, 0x02, 'p', 'w'};
    std::uint8_t out[64];
    std::size_t written = 0;
    ASSERT_EQ(encode_connect(options, out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), expected);
}

TEST(MqttEncode, ConnectRejectsInvalidOptions) {
    std::uint8_t out[64];
    ConnectOptions options;
    EXPECT_EQ(encode_connect(options, out, sizeof out, nullptr), Status::InvalidArgument);  // no client id
    options.client_id = "";
    options.clean_session = false;
    EXPECT_EQ(encode_connect(options, out, sizeof out, nullptr), Status::InvalidArgument);  // spec 3.1.3.1
    options.clean_session = true;
    options.password = "x";
    EXPECT_EQ(encode_connect(options, out, sizeof out, nullptr), Status::InvalidArgument);  // password alone
    options.password = nullptr;
    Will will;
    will.topic = "a/#";
    options.will = &will;
    EXPECT_EQ(encode_connect(options, out, sizeof out, nullptr), Status::InvalidArgument);  // wildcard will topic
}

TEST(MqttEncode, PublishQos1) {
    const std::uint8_t payload[] = {'h', 'i'};
    // Spec 3.3: flags QoS 1 (0x02), topic, packet id, payload.
    const Bytes expected = {0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'};
    std::uint8_t out[32];
    std::size_t written = 0;
    ASSERT_EQ(encode_publish("a/b", payload, sizeof payload, QoS::AtLeastOnce, false, false, 0x1234, out, sizeof out,
                             &written),
              Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), expected);
}

TEST(MqttEncode, PublishQos0RetainedHasNoPacketId) {
    const std::uint8_t payload[] = {0xFF};
    const Bytes expected = {0x31, 0x04, 0x00, 0x01, 't', 0xFF};
    std::uint8_t out[16];
    std::size_t written = 0;
    ASSERT_EQ(encode_publish("t", payload, 1, QoS::AtMostOnce, true, false, 0, out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), expected);
}

TEST(MqttEncode, PublishWithTwoByteRemainingLength) {
    // 2 + 1 (topic) + 2 (id) + 123 payload = 128: the first two-byte length.
    const Bytes payload(123, 0xAB);
    std::uint8_t out[256];
    std::size_t written = 0;
    ASSERT_EQ(encode_publish("t", payload.data(), payload.size(), QoS::AtLeastOnce, false, false, 1, out, sizeof out,
                             &written),
              Status::Ok);
    ASSERT_EQ(written, 3u + 128u);
    EXPECT_EQ(Bytes(out, out + 8), (Bytes{0x32, 0x80, 0x01, 0x00, 0x01, 't', 0x00, 0x01}));
}

TEST(MqttEncode, PublishRejectsInvalidArguments) {
    std::uint8_t out[32];
    const std::uint8_t payload[] = {1};
    EXPECT_EQ(encode_publish("", payload, 1, QoS::AtMostOnce, false, false, 0, out, sizeof out, nullptr),
              Status::InvalidArgument);
    EXPECT_EQ(encode_publish("a/+", payload, 1, QoS::AtMostOnce, false, false, 0, out, sizeof out, nullptr),
              Status::InvalidArgument);
    EXPECT_EQ(encode_publish("a", payload, 1, QoS::AtLeastOnce, false, false, 0, out, sizeof out, nullptr),
              Status::InvalidArgument);  // QoS 1 needs a packet id
    EXPECT_EQ(encode_publish("a", payload, 1, QoS::AtMostOnce, false, true, 0, out, sizeof out, nullptr),
              Status::InvalidArgument);  // DUP only with QoS > 0 (spec 3.3.1.1)
    EXPECT_EQ(encode_publish("a", payload, 1, QoS::AtMostOnce, false, false, 0, out, 4, nullptr),
              Status::BufferTooSmall);
}

TEST(MqttEncode, SubscribeOneFilter) {
    // Spec 3.8: flags must be 0010; packet id, filter, requested QoS.
    const Bytes expected = concat({{0x82, 0x1A, 0x00, 0x01, 0x00, 0x15}, bytes_of("fieldlink/v1/dev1/ack"), {0x01}});
    std::uint8_t out[64];
    std::size_t written = 0;
    ASSERT_EQ(encode_subscribe(1, "fieldlink/v1/dev1/ack", QoS::AtLeastOnce, out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), expected);
    EXPECT_EQ(encode_subscribe(0, "x", QoS::AtLeastOnce, out, sizeof out, &written), Status::InvalidArgument);
}

TEST(MqttEncode, SmallPackets) {
    std::uint8_t out[8];
    std::size_t written = 0;
    ASSERT_EQ(encode_pingreq(out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), (Bytes{0xC0, 0x00}));
    ASSERT_EQ(encode_disconnect(out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), (Bytes{0xE0, 0x00}));
    ASSERT_EQ(encode_puback(7, out, sizeof out, &written), Status::Ok);
    EXPECT_EQ(Bytes(out, out + written), (Bytes{0x40, 0x02, 0x00, 0x07}));
    EXPECT_EQ(encode_puback(0, out, sizeof out, &written), Status::InvalidArgument);
    EXPECT_EQ(encode_pingreq(out, 1, &written), Status::BufferTooSmall);
}

// Decodes from an exactly sized heap copy, so a sanitizer build catches any
// overread. The copy lives until the next call: the packet points into it.
Status decode(const Bytes& bytes, Packet* packet = nullptr, std::size_t* consumed = nullptr) {
    static std::vector<std::uint8_t> exact;
    exact = bytes;
    exact.shrink_to_fit();
    return decode_packet(exact.empty() ? nullptr : exact.data(), exact.size(), packet, consumed);
}

TEST(MqttDecode, Connack) {
    Packet p;
    std::size_t used = 0;
    ASSERT_EQ(decode({0x20, 0x02, 0x00, 0x00}, &p, &used), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Connack);
    EXPECT_FALSE(p.session_present);
    EXPECT_EQ(p.connack_code, 0);
    EXPECT_EQ(used, 4u);
    ASSERT_EQ(decode({0x20, 0x02, 0x01, 0x00}, &p), Status::Ok);
    EXPECT_TRUE(p.session_present);
    ASSERT_EQ(decode({0x20, 0x02, 0x00, 0x05}, &p), Status::Ok);
    EXPECT_EQ(p.connack_code, 5);

    EXPECT_EQ(decode({0x20, 0x03, 0x00, 0x00, 0x00}), Status::Malformed);  // wrong length
    EXPECT_EQ(decode({0x20, 0x02, 0x02, 0x00}), Status::Malformed);        // reserved flag bit
    EXPECT_EQ(decode({0x20, 0x02, 0x01, 0x05}), Status::Malformed);        // refused with a session
    EXPECT_EQ(decode({0x21, 0x02, 0x00, 0x00}), Status::Malformed);        // fixed-header flags
}

TEST(MqttDecode, PublishQos0AndQos1) {
    Packet p;
    std::size_t used = 0;
    ASSERT_EQ(decode({0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'}, &p, &used), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Publish);
    EXPECT_EQ(std::string(p.publish.topic, p.publish.topic_length), "a/b");
    EXPECT_EQ(p.publish.qos, 1);
    EXPECT_EQ(p.packet_id, 0x1234);
    EXPECT_EQ(Bytes(p.publish.payload, p.publish.payload + p.publish.payload_length), bytes_of("hi"));
    EXPECT_EQ(used, 11u);

    ASSERT_EQ(decode({0x31, 0x03, 0x00, 0x01, 't'}, &p), Status::Ok);  // retained, empty payload
    EXPECT_EQ(p.publish.qos, 0);
    EXPECT_TRUE(p.publish.retain);
    EXPECT_EQ(p.publish.payload_length, 0u);
}

TEST(MqttDecode, RejectsMalformedPublish) {
    EXPECT_EQ(decode({0x30, 0x03, 0x00, 0x05, 't'}), Status::Malformed);              // topic longer than packet
    EXPECT_EQ(decode({0x30, 0x01, 0x00}), Status::Malformed);                         // no room for topic length
    EXPECT_EQ(decode({0x30, 0x02, 0x00, 0x00}), Status::Malformed);                   // empty topic
    EXPECT_EQ(decode({0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}), Status::Malformed);  // QoS 3
    EXPECT_EQ(decode({0x38, 0x03, 0x00, 0x01, 't'}), Status::Malformed);              // DUP with QoS 0
    EXPECT_EQ(decode({0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}), Status::Malformed);  // packet id 0
    EXPECT_EQ(decode({0x32, 0x04, 0x00, 0x01, 't', 0x00}), Status::Malformed);        // packet id cut off
    EXPECT_EQ(decode({0x30, 0x03, 0x00, 0x01, '#'}), Status::Malformed);              // wildcard in a topic name
    EXPECT_EQ(decode({0x30, 0x03, 0x00, 0x01, 0x00}), Status::Malformed);             // NUL in a topic name
}

TEST(MqttDecode, AcksSubackPingresp) {
    Packet p;
    ASSERT_EQ(decode({0x40, 0x02, 0x00, 0x07}, &p), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Puback);
    EXPECT_EQ(p.packet_id, 7);
    EXPECT_EQ(decode({0x40, 0x02, 0x00, 0x00}), Status::Malformed);  // packet id 0
    EXPECT_EQ(decode({0x40, 0x03, 0x00, 0x07, 0x00}), Status::Malformed);
    EXPECT_EQ(decode({0x62, 0x02, 0x00, 0x01}), Status::Ok);  // PUBREL has flags 0010
    EXPECT_EQ(decode({0x60, 0x02, 0x00, 0x01}), Status::Malformed);

    ASSERT_EQ(decode({0x90, 0x03, 0x00, 0x01, 0x01}, &p), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Suback);
    EXPECT_EQ(p.packet_id, 1);
    ASSERT_EQ(p.suback_count, 1u);
    EXPECT_EQ(p.suback_codes[0], 0x01);
    ASSERT_EQ(decode({0x90, 0x04, 0x00, 0x02, 0x80, 0x00}, &p), Status::Ok);
    EXPECT_EQ(p.suback_count, 2u);
    EXPECT_EQ(decode({0x90, 0x03, 0x00, 0x01, 0x03}), Status::Malformed);  // not a return code
    EXPECT_EQ(decode({0x90, 0x02, 0x00, 0x01}), Status::Malformed);        // no return code

    ASSERT_EQ(decode({0xD0, 0x00}, &p), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Pingresp);
    EXPECT_EQ(decode({0xD0, 0x01, 0x00}), Status::Malformed);
    EXPECT_EQ(decode({0xD1, 0x00}), Status::Malformed);
}

TEST(MqttDecode, UnknownTypesAndTruncation) {
    EXPECT_EQ(decode({0x00, 0x00}), Status::UnknownType);
    EXPECT_EQ(decode({0xF0, 0x00}), Status::UnknownType);
    EXPECT_EQ(decode({}), Status::Incomplete);
    EXPECT_EQ(decode({0x30}), Status::Incomplete);
    EXPECT_EQ(decode({0x32, 0x09, 0x00, 0x03, 'a'}), Status::Incomplete);
    // Every proper prefix of a valid packet is Incomplete, never an error.
    const Bytes whole = {0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'};
    for (std::size_t n = 0; n < whole.size(); ++n) {
        EXPECT_EQ(decode(Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n))), Status::Incomplete)
            << n;
    }
}

TEST(MqttDecode, ConsumesOnePacketAtATime) {
    const Bytes two = {0x40, 0x02, 0x00, 0x01, 0xD0, 0x00};
    Packet p;
    std::size_t used = 0;
    ASSERT_EQ(decode(two, &p, &used), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Puback);
    ASSERT_EQ(used, 4u);
    ASSERT_EQ(decode(Bytes(two.begin() + 4, two.end()), &p, &used), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Pingresp);
}

TEST(MqttDecode, EncodedClientPacketsDecode) {
    std::uint8_t out[64];
    std::size_t written = 0;
    ASSERT_EQ(encode_subscribe(9, "x/y", QoS::AtLeastOnce, out, sizeof out, &written), Status::Ok);
    Packet p;
    ASSERT_EQ(decode(Bytes(out, out + written), &p), Status::Ok);
    EXPECT_EQ(p.type, PacketType::Subscribe);
    EXPECT_EQ(p.packet_id, 9);
}

TEST(MqttDecode, IsTotalOnRandomInput) {
    // Any bytes give a packet or an error; a decoded packet never claims
    // more bytes than it was given. Run under ASan to catch overreads.
    std::mt19937 rng(12345);
    for (int round = 0; round < 200'000; ++round) {
        const std::size_t length = rng() % 24;
        std::vector<std::uint8_t> data(length);
        for (auto& b : data) b = static_cast<std::uint8_t>(rng());
        if (length > 1 && (rng() % 2) == 0) data[1] = static_cast<std::uint8_t>(length - 2);  // plausible length
        Packet p;
        std::size_t used = 0;
        const Status s = decode_packet(length == 0 ? nullptr : data.data(), length, &p, &used);
        if (s == Status::Ok) {
            ASSERT_LE(used, length);
            if (p.type == PacketType::Publish) {
                ASSERT_LE(p.publish.payload + p.publish.payload_length, data.data() + length);
            }
        }
    }
}

}  // namespace
}  // namespace fieldlink::mqtt
