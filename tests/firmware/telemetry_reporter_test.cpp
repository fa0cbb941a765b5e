// The telemetry reporter on its own: when a message is due, what it carries,
// and that the oldest held reading is read from the store once per change.
#include <gtest/gtest.h>

#include <cstdint>

#include "fieldlink/reader/telemetry_reporter.hpp"
#include "fieldlink/reader/wall_clock.hpp"
#include "scripted_store.hpp"

namespace fieldlink::reader {
namespace {

class TelemetryReporterTest : public ::testing::Test {
protected:
    explicit TelemetryReporterTest(std::uint32_t boot = 0)
        : store(boot), wall_clock(store), reporter(store, wall_clock) {
        wall_clock.start(250);
    }

    test::ScriptedStore store;
    WallClock wall_clock;
    TelemetryReporter reporter;
};

TEST_F(TelemetryReporterTest, FirstDueAtStartThenOneIntervalAfterEachMessage) {
    reporter.start(10'000, 500);
    std::uint64_t at = 0;
    ASSERT_TRUE(reporter.next_due_ms(&at));
    EXPECT_EQ(at, 500u);
    EXPECT_TRUE(reporter.take_due(500));
    EXPECT_FALSE(reporter.take_due(500)) << "once per interval";
    ASSERT_TRUE(reporter.next_due_ms(&at));
    EXPECT_EQ(at, 10'500u);
    EXPECT_FALSE(reporter.take_due(10'499));
    EXPECT_TRUE(reporter.take_due(32'000));  // late (the link was down)
    ASSERT_TRUE(reporter.next_due_ms(&at));
    EXPECT_EQ(at, 42'000u) << "no catching up with a burst";
}

TEST_F(TelemetryReporterTest, IntervalZeroMeansNoTelemetry) {
    reporter.start(0, 0);
    std::uint64_t at = 0;
    EXPECT_FALSE(reporter.next_due_ms(&at));
    EXPECT_FALSE(reporter.take_due(0));
    EXPECT_FALSE(reporter.take_due(1'000'000));
}

TEST_F(TelemetryReporterTest, TheMessageSaysWhatTheStoreAndTheReaderKnow) {
    store.incarnation_value = 0xabcdef;
    store.dropped_value = 7;
    for (int i = 0; i < 5; ++i) store.add(0, 0, 100u * static_cast<unsigned>(i), i);  // seq 1..5
    store.trim(2);
    reporter.start(10'000, 0);
    const protocol::Telemetry t = reporter.build(1'000, 3, 2);
    EXPECT_EQ(t.incarnation, 0xabcdefu);
    EXPECT_EQ(t.boot, 0u);
    EXPECT_EQ(t.reconnects, 3u);
    EXPECT_EQ(t.uptime_ms, 1'000u);
    EXPECT_EQ(t.held, 3u);
    EXPECT_EQ(t.oldest_unacked_age_ms, 1'000u - 200u) << "seq 3, taken at mono 200";
    EXPECT_EQ(t.dropped, 7u);
    EXPECT_EQ(t.next_seq, 6u);
    EXPECT_EQ(t.acked_through, 2u);
}

TEST_F(TelemetryReporterTest, ReconnectsSaturateAtTheFieldsWidth) {
    reporter.start(10'000, 0);
    EXPECT_EQ(reporter.build(0, 0xFFFFFFFFull, 0).reconnects, 0xFFFFFFFFu);
    EXPECT_EQ(reporter.build(0, 1ull << 40, 0).reconnects, 0xFFFFFFFFu);
}

TEST_F(TelemetryReporterTest, TheOldestReadingIsReadOncePerChange) {
    for (int i = 0; i < 3; ++i) store.add(0, 0, 100u * static_cast<unsigned>(i), i);
    reporter.start(10'000, 0);
    EXPECT_EQ(reporter.oldest_unacked_age_ms(1'000), 1'000u);
    EXPECT_EQ(reporter.oldest_unacked_age_ms(2'000), 2'000u);
    EXPECT_EQ(store.reads, 1);
    store.trim(1);
    EXPECT_EQ(reporter.oldest_unacked_age_ms(2'000), 1'900u);
    EXPECT_EQ(store.reads, 2);
    reporter.start(10'000, 0);  // a new start forgets it
    EXPECT_EQ(reporter.oldest_unacked_age_ms(2'000), 1'900u);
    EXPECT_EQ(store.reads, 3);
}

TEST_F(TelemetryReporterTest, NothingHeldIsAgeZeroWithoutAskingTheStore) {
    reporter.start(10'000, 0);
    EXPECT_EQ(reporter.oldest_unacked_age_ms(5'000), 0u);
    EXPECT_EQ(store.reads, 0);
}

TEST_F(TelemetryReporterTest, AFailedReadIsAgeZeroAndTriedAgainNextTime) {
    store.add(0, 0, 100, 1.0);
    reporter.start(10'000, 0);
    store.fail_reads = true;
    EXPECT_EQ(reporter.oldest_unacked_age_ms(5'000), 0u);
    store.fail_reads = false;
    EXPECT_EQ(reporter.oldest_unacked_age_ms(5'000), 4'900u);
    EXPECT_EQ(store.reads, 2);
}

class TelemetryAcrossBootsTest : public TelemetryReporterTest {
protected:
    TelemetryAcrossBootsTest() : TelemetryReporterTest(/*boot=*/2) {}
};

TEST_F(TelemetryAcrossBootsTest, AnEarlierBootsReadingIsAgedInWallClockTime) {
    const std::int64_t boot1_offset = 1'700'000'000'000;
    store.set_offset(1, boot1_offset);
    store.add(1, 0, 200, 1.0);
    reporter.start(10'000, 0);
    EXPECT_EQ(reporter.build(4'000, 0, 0).oldest_unacked_age_ms, 4'000u) << "uptime until this boot knows its offset";
    wall_clock.learn(boot1_offset + 3'600'000, 4'000);
    EXPECT_EQ(reporter.build(4'000, 0, 0).oldest_unacked_age_ms, 3'600'000u - 200u);
    EXPECT_EQ(store.reads, 1);
}

}  // namespace
}  // namespace fieldlink::reader
