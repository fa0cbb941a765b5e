#include "fieldlink/gateway/ingest/ack_outbox.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace fieldlink::gateway {
namespace {

std::vector<std::uint8_t> bytes(std::initializer_list<std::uint8_t> list) { return list; }

TEST(AckOutboxTest, NewestAckPerIncarnationWinsAndIncarnationsNeverReplaceEachOther) {
    AckOutbox outbox;
    const std::string topic = "fieldlink/v1/dev-1/ack";
    ASSERT_TRUE(outbox.put(topic, 0x1111, bytes({1})));
    ASSERT_TRUE(outbox.put(topic, 0x2222, bytes({2})));  // re-flashed device, same topic
    ASSERT_TRUE(outbox.put(topic, 0x1111, bytes({3})));  // newer watermark of the first incarnation
    ASSERT_TRUE(outbox.put("fieldlink/v1/dev-2/ack", 0x1111, bytes({4})));
    EXPECT_EQ(outbox.size(), 3u);

    const auto taken = outbox.take([] { return true; });
    ASSERT_EQ(taken.size(), 3u);
    EXPECT_EQ(taken[0].topic, topic);
    EXPECT_EQ(taken[0].incarnation, 0x1111u);
    EXPECT_EQ(taken[0].payload, bytes({3}));
    EXPECT_EQ(taken[1].incarnation, 0x2222u);
    EXPECT_EQ(taken[1].payload, bytes({2}));
    EXPECT_EQ(taken[2].topic, "fieldlink/v1/dev-2/ack");
    EXPECT_EQ(outbox.size(), 0u);
}

TEST(AckOutboxTest, TakeWaitsUntilItMaySend) {
    AckOutbox outbox;
    std::atomic<bool> connected{false};
    ASSERT_TRUE(outbox.put("t", 1, bytes({9})));
    std::vector<OutgoingAck> taken;
    std::thread sender([&] { taken = outbox.take([&] { return connected.load(); }); });
    // Nothing can be taken while "disconnected"; the ack stays kept.
    EXPECT_EQ(outbox.size(), 1u);
    connected = true;
    outbox.notify();
    sender.join();
    ASSERT_EQ(taken.size(), 1u);
    EXPECT_EQ(taken[0].payload, bytes({9}));
}

TEST(AckOutboxTest, CloseHandsOverWhatIsLeftOnlyWhenSendable) {
    AckOutbox sendable;
    ASSERT_TRUE(sendable.put("t", 1, bytes({1})));
    sendable.close();
    EXPECT_FALSE(sendable.put("t", 2, bytes({2}))) << "closed: refused";
    EXPECT_EQ(sendable.take([] { return true; }).size(), 1u);
    EXPECT_TRUE(sendable.take([] { return true; }).empty()) << "closed and empty: the sender ends";

    AckOutbox offline;
    ASSERT_TRUE(offline.put("t", 1, bytes({1})));
    offline.close();
    EXPECT_TRUE(offline.take([] { return false; }).empty());
    EXPECT_EQ(offline.size(), 1u) << "kept, not sent: nobody to send it to";
}

}  // namespace
}  // namespace fieldlink::gateway
