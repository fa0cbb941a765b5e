#include "fieldlink/gateway/ingest/bounded_queue.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fieldlink/gateway/ingest/log.hpp"

namespace fieldlink::gateway {
namespace {

TEST(BoundedQueue, FifoOrder) {
    BoundedQueue<int> queue(3);
    EXPECT_TRUE(queue.push(1));
    EXPECT_TRUE(queue.push(2));
    int out = 0;
    EXPECT_EQ(queue.pop(&out), PopResult::Item);
    EXPECT_EQ(out, 1);
    EXPECT_EQ(queue.pop(&out), PopResult::Item);
    EXPECT_EQ(out, 2);
}

TEST(BoundedQueue, PopUntilAPastDeadlineTimesOutWhenEmpty) {
    BoundedQueue<int> queue(1);
    int out = 0;
    EXPECT_EQ(queue.pop_until(&out, std::chrono::steady_clock::now()), PopResult::Timeout);
    queue.push(4);
    EXPECT_EQ(queue.pop_until(&out, std::chrono::steady_clock::now()), PopResult::Item);
    EXPECT_EQ(out, 4);
}

TEST(BoundedQueue, CloseDrainsThenReportsClosed) {
    BoundedQueue<int> queue(3);
    queue.push(1);
    queue.close();
    EXPECT_FALSE(queue.push(2));
    int out = 0;
    EXPECT_EQ(queue.pop(&out), PopResult::Item);
    EXPECT_EQ(out, 1);
    EXPECT_EQ(queue.pop(&out), PopResult::Closed);
    EXPECT_EQ(queue.pop_until(&out, std::chrono::steady_clock::now() + std::chrono::hours(1)), PopResult::Closed);
}

TEST(BoundedQueue, FullQueueBlocksUntilAPop) {
    BoundedQueue<int> queue(1);
    queue.push(1);
    std::thread producer([&] { EXPECT_TRUE(queue.push(2)); });
    int out = 0;
    EXPECT_EQ(queue.pop(&out), PopResult::Item);
    producer.join();
    EXPECT_EQ(queue.pop(&out), PopResult::Item);
    EXPECT_EQ(out, 2);
}

TEST(BoundedQueue, CloseReleasesABlockedProducer) {
    BoundedQueue<int> queue(1);
    queue.push(1);
    std::thread producer([&] { EXPECT_FALSE(queue.push(2)); });
    queue.close();
    producer.join();
    EXPECT_EQ(queue.size(), 1u);
}

TEST(BoundedQueue, CloseReleasesABlockedConsumer) {
    BoundedQueue<int> queue(1);
    std::thread consumer([&] {
        int out = 0;
        EXPECT_EQ(queue.pop(&out), PopResult::Closed);
    });
    queue.close();
    consumer.join();
}

TEST(RateLimiter, LetsABurstThroughThenCountsTheRest) {
    RateLimiter limiter(2, std::chrono::seconds(10));
    const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    std::uint64_t suppressed = 99;
    EXPECT_TRUE(limiter.allow(t0, &suppressed));
    EXPECT_EQ(suppressed, 0u);
    EXPECT_TRUE(limiter.allow(t0, &suppressed));
    EXPECT_FALSE(limiter.allow(t0, &suppressed));
    EXPECT_FALSE(limiter.allow(t0 + std::chrono::seconds(9), &suppressed));
    EXPECT_TRUE(limiter.allow(t0 + std::chrono::seconds(10), &suppressed));
    EXPECT_EQ(suppressed, 2u) << "the next line says how many were dropped";
}

TEST(LogLevel, NamesRoundTrip) {
    for (const LogLevel level : {LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug}) {
        EXPECT_EQ(parse_log_level(to_string(level)), level);
    }
    EXPECT_FALSE(parse_log_level("verbose"));
}

}  // namespace
}  // namespace fieldlink::gateway
