// The delivery window on its own: what goes out next, how many batches may be
// in flight, how commit acks (in order, stale, ahead) move it, the floor a
// batch carries, the ack timeout and the rewind.
#include <gtest/gtest.h>

#include <cstdint>

#include "fieldlink/reader/delivery_window.hpp"

namespace fieldlink::reader {
namespace {

constexpr std::uint32_t kTimeout = 5'000;

TEST(DeliveryWindow, StartsRightAfterTheWatermark) {
    DeliveryWindow w;
    w.start(5);
    EXPECT_EQ(w.acked_through(), 5u);
    EXPECT_EQ(w.next_send_seq(), 6u);
    EXPECT_EQ(w.in_flight(), 0u);
    EXPECT_TRUE(w.covers(6)) << "1..5 committed, nothing else produced";
    EXPECT_FALSE(w.covers(7));
    std::uint64_t at = 0;
    EXPECT_FALSE(w.ack_deadline_ms(kTimeout, &at));
    EXPECT_FALSE(w.timed_out(1'000'000, kTimeout));
}

TEST(DeliveryWindow, FillsUpToTheLimitAndNeverBeyondItsTable) {
    DeliveryWindow w;
    w.start(0);
    EXPECT_FALSE(w.full(2));
    ASSERT_TRUE(w.sent(1, 3, 11, 0));
    EXPECT_EQ(w.next_send_seq(), 4u);
    EXPECT_FALSE(w.full(2));
    ASSERT_TRUE(w.sent(4, 7, 12, 0));
    EXPECT_TRUE(w.full(2));
    EXPECT_FALSE(w.full(3));
    ASSERT_EQ(w.in_flight_batches().size(), 2u);
    EXPECT_EQ(w.in_flight_batches()[1].first_seq, 4u);
    EXPECT_EQ(w.in_flight_batches()[1].last_seq, 7u);
    EXPECT_EQ(w.in_flight_batches()[1].packet_id, 12u);

    for (std::uint64_t seq = 8; w.in_flight() < kMaxWindow; ++seq) ASSERT_TRUE(w.sent(seq, seq, 1, 0));
    EXPECT_TRUE(w.full(kMaxWindow + 1)) << "the table bounds the window whatever the limit";
    EXPECT_FALSE(w.sent(100, 100, 1, 0));
    EXPECT_EQ(w.in_flight(), kMaxWindow);
}

TEST(DeliveryWindow, RefusesAnEmptyRange) {
    DeliveryWindow w;
    w.start(0);
    EXPECT_FALSE(w.sent(5, 4, 1, 0));
    EXPECT_EQ(w.in_flight(), 0u);
    EXPECT_EQ(w.next_send_seq(), 1u);
}

TEST(DeliveryWindow, NextToSendSkipsWhatTheStoreDropped) {
    DeliveryWindow w;
    w.start(0);
    EXPECT_EQ(w.next_to_send(1), 1u);
    EXPECT_EQ(w.next_to_send(10), 10u) << "1..9 dropped while the store was full";
    EXPECT_EQ(w.next_send_seq(), 10u);
    EXPECT_EQ(w.next_to_send(4), 10u) << "never moves back";
}

TEST(DeliveryWindow, FloorIsTheHigherOfWatermarkAndOldestButNeverAboveTheBatch) {
    DeliveryWindow w;
    w.start(3);
    EXPECT_EQ(w.floor_for(4, 4), 4u);
    EXPECT_EQ(w.floor_for(10, 4), 4u) << "W + 1: 4..9 may still come";
    EXPECT_EQ(w.floor_for(10, 7), 7u) << "the store dropped 4..6";
    EXPECT_EQ(w.floor_for(5, 7), 5u) << "capped at the first seq";
    EXPECT_EQ(w.floor_for(10, 1), 4u) << "an oldest below W + 1 changes nothing";
}

TEST(DeliveryWindow, JudgesStaleDuplicateAndAheadAcks) {
    DeliveryWindow w;
    w.start(5);
    EXPECT_EQ(w.judge(5, 20), AckOutcome::Stale) << "duplicate";
    EXPECT_EQ(w.judge(3, 20), AckOutcome::Stale) << "out of order";
    EXPECT_EQ(w.judge(0, 20), AckOutcome::Stale);
    EXPECT_EQ(w.judge(20, 20), AckOutcome::AheadOfProduced) << "seq 20 was never produced";
    EXPECT_EQ(w.judge(~std::uint64_t{0}, 20), AckOutcome::AheadOfProduced);
    EXPECT_EQ(w.judge(6, 20), AckOutcome::Accepted);
    EXPECT_EQ(w.judge(19, 20), AckOutcome::Accepted);
}

TEST(DeliveryWindow, AnAckRemovesOnlyTheBatchesItCoversWhole) {
    DeliveryWindow w;
    w.start(0);
    w.sent(1, 3, 1, 0);
    w.sent(4, 6, 2, 0);
    w.sent(7, 10, 3, 0);
    ASSERT_TRUE(w.acknowledge(5, 100));
    EXPECT_EQ(w.acked_through(), 5u);
    ASSERT_EQ(w.in_flight(), 2u) << "[4..6] is partly open";
    EXPECT_EQ(w.in_flight_batches()[0].first_seq, 4u);
    EXPECT_EQ(w.in_flight_batches()[1].first_seq, 7u);
    EXPECT_EQ(w.next_send_seq(), 11u);
    ASSERT_TRUE(w.acknowledge(6, 200));
    ASSERT_EQ(w.in_flight(), 1u);
    EXPECT_EQ(w.in_flight_batches()[0].packet_id, 3u);
    ASSERT_TRUE(w.acknowledge(10, 300));
    EXPECT_EQ(w.in_flight(), 0u);
    EXPECT_TRUE(w.covers(11));
}

TEST(DeliveryWindow, StaleAcksChangeNothing) {
    DeliveryWindow w;
    w.start(0);
    w.sent(1, 4, 1, 0);
    w.sent(5, 8, 2, 0);
    ASSERT_TRUE(w.acknowledge(6, 100));
    EXPECT_FALSE(w.acknowledge(6, 200)) << "duplicate";
    EXPECT_FALSE(w.acknowledge(2, 300)) << "out of order";
    EXPECT_EQ(w.acked_through(), 6u);
    EXPECT_EQ(w.in_flight(), 1u);
    std::uint64_t at = 0;
    ASSERT_TRUE(w.ack_deadline_ms(kTimeout, &at));
    EXPECT_EQ(at, 100u + kTimeout) << "a stale ack is no progress";
}

TEST(DeliveryWindow, AnAckAheadOfSendingMovesTheSendPointer) {
    DeliveryWindow w;
    w.start(0);
    w.sent(1, 3, 1, 0);
    // The gateway already had more (sent before a rewind, say): skip it.
    ASSERT_TRUE(w.acknowledge(8, 50));
    EXPECT_EQ(w.in_flight(), 0u);
    EXPECT_EQ(w.next_send_seq(), 9u);
}

TEST(DeliveryWindow, AckTimerRunsFromTheFirstBatchOrTheLastProgress) {
    DeliveryWindow w;
    w.start(0);
    w.sent(1, 2, 1, 100);
    w.sent(3, 4, 2, 2'000);  // the window was not empty: the timer keeps running
    std::uint64_t at = 0;
    ASSERT_TRUE(w.ack_deadline_ms(kTimeout, &at));
    EXPECT_EQ(at, 5'100u);
    EXPECT_FALSE(w.timed_out(5'099, kTimeout));
    EXPECT_TRUE(w.timed_out(5'100, kTimeout));
    w.acknowledge(2, 3'000);  // progress restarts it
    ASSERT_TRUE(w.ack_deadline_ms(kTimeout, &at));
    EXPECT_EQ(at, 8'000u);
    EXPECT_FALSE(w.timed_out(7'999, kTimeout));
    w.acknowledge(4, 4'000);  // nothing in flight: no timeout at all
    EXPECT_FALSE(w.ack_deadline_ms(kTimeout, &at));
    EXPECT_FALSE(w.timed_out(100'000, kTimeout));
}

TEST(DeliveryWindow, RewindSendsAgainFromTheWatermark) {
    DeliveryWindow w;
    w.start(0);
    w.sent(1, 3, 1, 0);
    w.sent(4, 6, 2, 0);
    w.acknowledge(3, 500);
    std::uint64_t from = 0;
    EXPECT_TRUE(w.rewind(9'000, &from)) << "4..6 go out again";
    EXPECT_EQ(from, 4u);
    EXPECT_EQ(w.next_send_seq(), 4u);
    EXPECT_EQ(w.in_flight(), 0u);
    EXPECT_EQ(w.acked_through(), 3u) << "a rewind never moves the watermark";

    from = 0;
    EXPECT_FALSE(w.rewind(9'100, &from)) << "nothing sent since: not a resend";
    EXPECT_EQ(from, 4u);

    // The next batch restarts the timer at its own time.
    w.sent(4, 6, 3, 12'000);
    std::uint64_t at = 0;
    ASSERT_TRUE(w.ack_deadline_ms(kTimeout, &at));
    EXPECT_EQ(at, 17'000u);
}

TEST(DeliveryWindow, RewindAfterAnAckAheadOfSendingIsNoResend) {
    DeliveryWindow w;
    w.start(0);
    w.sent(1, 3, 1, 0);
    w.acknowledge(8, 10);
    std::uint64_t from = 0;
    EXPECT_FALSE(w.rewind(20, &from));
    EXPECT_EQ(from, 9u);
    EXPECT_EQ(w.next_send_seq(), 9u);
}

}  // namespace
}  // namespace fieldlink::reader
