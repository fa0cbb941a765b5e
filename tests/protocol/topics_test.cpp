#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "fieldlink/protocol/topics.hpp"

namespace fp = fieldlink::protocol;

TEST(Topics, FormatEveryKind) {
    char out[fp::kMaxTopicLength + 1];
    EXPECT_EQ(fp::format_topic("dev-1", 5, fp::TopicKind::Up, out, sizeof out), 21u);
    EXPECT_STREQ(out, "fieldlink/v1/dev-1/up");
    fp::format_topic("dev-1", 5, fp::TopicKind::Ack, out, sizeof out);
    EXPECT_STREQ(out, "fieldlink/v1/dev-1/ack");
    fp::format_topic("dev-1", 5, fp::TopicKind::Status, out, sizeof out);
    EXPECT_STREQ(out, "fieldlink/v1/dev-1/status");
    fp::format_topic("dev-1", 5, fp::TopicKind::Telemetry, out, sizeof out);
    EXPECT_STREQ(out, "fieldlink/v1/dev-1/telemetry");
}

TEST(Topics, LongestIdFitsExactly) {
    const std::string id(fp::kMaxDeviceIdLength, 'a');
    char out[fp::kMaxTopicLength + 1];
    EXPECT_EQ(fp::format_topic(id.c_str(), id.size(), fp::TopicKind::Telemetry, out, sizeof out), fp::kMaxTopicLength);
    EXPECT_EQ(fp::format_topic(id.c_str(), id.size(), fp::TopicKind::Telemetry, out, sizeof out - 1), 0u);
}

TEST(Topics, RejectsBadIds) {
    char out[64];
    for (const char* bad : {"", "a/b", "+", "#", "a b", "dev.1", "ümlaut"}) {
        EXPECT_FALSE(fp::is_valid_device_id(bad, std::strlen(bad))) << bad;
        EXPECT_EQ(fp::format_topic(bad, std::strlen(bad), fp::TopicKind::Up, out, sizeof out), 0u) << bad;
    }
    const std::string too_long(fp::kMaxDeviceIdLength + 1, 'x');
    EXPECT_FALSE(fp::is_valid_device_id(too_long.c_str(), too_long.size()));
}

TEST(Topics, ParseRoundTrip) {
    const char* topic = "fieldlink/v1/pump_7/status";
    const char* id = nullptr;
    std::size_t id_len = 0;
    fp::TopicKind kind{};
    ASSERT_TRUE(fp::parse_topic(topic, std::strlen(topic), &id, &id_len, &kind));
    EXPECT_EQ(std::string(id, id_len), "pump_7");
    EXPECT_EQ(kind, fp::TopicKind::Status);
}

TEST(Topics, ParseRejectsForeignTopics) {
    for (const char* t : {"fieldlink/v1/", "fieldlink/v1//up", "fieldlink/v2/a/up", "fieldlink/v1/a/b/up",
                          "fieldlink/v1/a/down", "other/v1/a/up", "fieldlink/v1/a/up/", "fieldlink/v1/+/up"}) {
        EXPECT_FALSE(fp::parse_topic(t, std::strlen(t), nullptr, nullptr, nullptr)) << t;
    }
}
