// The reader's MQTT CONNECT with a user name and password, byte for byte
// against MQTT 3.1.1 (OASIS, 29 October 2014): connect flags 3.1.2.3 (bit 7
// user name, bit 6 password, bit 5 will retain, bits 4-3 will QoS, bit 2 will,
// bit 1 clean session), payload order 3.1.3 (client id, will topic, will
// message, user name, password), each a two-byte big-endian length and bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fieldlink/mqtt/packet.hpp"

namespace fieldlink::mqtt {
namespace {

using Bytes = std::vector<std::uint8_t>;

void append_field(Bytes& out, const std::string& text) {
    out.push_back(static_cast<std::uint8_t>(text.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(text.size()));
    out.insert(out.end(), text.begin(), text.end());
}

Bytes encode(const ConnectOptions& options) {
    std::uint8_t out[512];
    std::size_t written = 0;
    EXPECT_EQ(encode_connect(options, out, sizeof out, &written), Status::Ok);
    return Bytes(out, out + written);
}

TEST(ConnectCredentials, WillUserNameAndPasswordInSpecOrder) {
    const std::uint8_t will_payload[] = {0x46, 0x4c, 0x01, 0x03, 0x00};
    Will will;
    will.topic = "fieldlink/v1/devA/status";
    will.payload = will_payload;
    will.payload_length = sizeof will_payload;
    will.qos = QoS::AtLeastOnce;
    will.retain = true;
    ConnectOptions options;
    options.client_id = "reader-devA";
    options.keep_alive_s = 30;
    options.will = &will;
    options.username = "devA";
    options.password = "Zq3-secret";

    Bytes body = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
                  // user name | password | will retain | will QoS 1 | will | clean session
                  0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02, 0x00, 30};
    append_field(body, "reader-devA");
    append_field(body, "fieldlink/v1/devA/status");
    body.insert(body.end(), {0x00, 0x05, 0x46, 0x4c, 0x01, 0x03, 0x00});
    append_field(body, "devA");
    append_field(body, "Zq3-secret");
    Bytes expected = {0x10, static_cast<std::uint8_t>(body.size())};
    ASSERT_LT(body.size(), 128u);  // one remaining-length byte
    expected.insert(expected.end(), body.begin(), body.end());

    EXPECT_EQ(encode(options), expected);
}

TEST(ConnectCredentials, UserNameWithoutPassword) {
    ConnectOptions options;
    options.client_id = "c";
    options.username = "devA";
    const Bytes expected = {0x10, 19,   0x00, 0x04, 'M',  'Q',  'T', 'T', 0x04, 0x82, 0x00,
                            0x00, 0x00, 0x01, 'c',  0x00, 0x04, 'd', 'e', 'v',  'A'};
    EXPECT_EQ(encode(options), expected);
}

TEST(ConnectCredentials, EmptyPasswordIsStillSent) {
    // An empty password is a present, zero-length field (flag set), unlike no password.
    ConnectOptions options;
    options.client_id = "c";
    options.username = "u";
    options.password = "";
    const Bytes expected = {0x10, 18,   0x00, 0x04, 'M', 'Q',  'T',  'T', 0x04, 0xC2,
                            0x00, 0x00, 0x00, 0x01, 'c', 0x00, 0x01, 'u', 0x00, 0x00};
    EXPECT_EQ(encode(options), expected);
}

TEST(ConnectCredentials, RefusedWhereTheSpecForbids) {
    std::uint8_t out[512];
    ConnectOptions options;
    options.client_id = "c";
    options.password = "p";  // 3.1.2.9: no password without a user name
    EXPECT_EQ(encode_connect(options, out, sizeof out, nullptr), Status::InvalidArgument);
    options.username = "u";
    // Exactly one byte short: nothing is claimed written.
    std::size_t size = 0;
    ASSERT_EQ(encode_connect(options, out, sizeof out, &size), Status::Ok);
    EXPECT_EQ(encode_connect(options, out, size - 1, nullptr), Status::BufferTooSmall);
    // A 65535-byte password is the longest a field can carry; one more is refused.
    std::string long_password(65'535, 'x');
    options.password = long_password.c_str();
    std::vector<std::uint8_t> big(70'000);
    EXPECT_EQ(encode_connect(options, big.data(), big.size(), nullptr), Status::Ok);
    long_password.push_back('x');
    options.password = long_password.c_str();
    EXPECT_EQ(encode_connect(options, big.data(), big.size(), nullptr), Status::InvalidArgument);
}

}  // namespace
}  // namespace fieldlink::mqtt
