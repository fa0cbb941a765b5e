#include <gtest/gtest.h>

#include <vector>

#include "fieldlink/reader/ram_store.hpp"

namespace fieldlink::reader {
namespace {

protocol::Record reading(std::uint8_t channel, std::uint64_t mono_ms, double value) {
    protocol::Record r;
    r.channel = channel;
    r.mono_ms = mono_ms;
    r.value = value;
    return r;
}

template <class Store>
void append_n(Store& store, int n, int first_value = 0) {
    for (int i = 0; i < n; ++i) {
        std::uint64_t seq = 0;
        ASSERT_EQ(store.append(reading(1, 10u * static_cast<unsigned>(first_value + i), first_value + i), &seq),
                  StoreStatus::Ok);
    }
}

TEST(RamStore, AssignsSequenceNumbersFromOne) {
    RamStore<8> store(0xABCD);
    EXPECT_EQ(store.incarnation(), 0xABCDu);
    EXPECT_EQ(store.boot(), 0u);
    EXPECT_EQ(store.oldest_seq(), 1u);
    EXPECT_EQ(store.next_seq(), 1u);
    std::uint64_t seq = 0;
    ASSERT_EQ(store.append(reading(2, 100, 1.5), &seq), StoreStatus::Ok);
    EXPECT_EQ(seq, 1u);
    ASSERT_EQ(store.append(reading(3, 200, 2.5), &seq), StoreStatus::Ok);
    EXPECT_EQ(seq, 2u);
    EXPECT_EQ(store.held(), 2u);

    StoredReading out[4];
    ASSERT_EQ(store.read(1, out, 4), 2u);
    EXPECT_EQ(out[0].seq, 1u);
    EXPECT_EQ(out[0].record.channel, 2);
    EXPECT_EQ(out[0].record.mono_ms, 100u);
    EXPECT_EQ(out[0].record.value, 1.5);
    EXPECT_EQ(out[1].seq, 2u);
    EXPECT_EQ(out[1].record.value, 2.5);
    ASSERT_EQ(store.read(2, out, 4), 1u);
    EXPECT_EQ(out[0].seq, 2u);
    EXPECT_EQ(store.read(3, out, 4), 0u);
}

TEST(RamStore, ReadRespectsMaxAndStartsAtOldest) {
    RamStore<8> store(1);
    append_n(store, 6);
    StoredReading out[8];
    ASSERT_EQ(store.read(2, out, 3), 3u);
    EXPECT_EQ(out[0].seq, 2u);
    EXPECT_EQ(out[2].seq, 4u);
    ASSERT_EQ(store.trim(3), StoreStatus::Ok);
    ASSERT_EQ(store.read(1, out, 8), 3u);  // below the oldest: starts at the oldest
    EXPECT_EQ(out[0].seq, 4u);
}

TEST(RamStore, TrimForgetsThroughWatermark) {
    RamStore<8> store(1);
    append_n(store, 5);
    ASSERT_EQ(store.trim(3), StoreStatus::Ok);
    EXPECT_EQ(store.oldest_seq(), 4u);
    EXPECT_EQ(store.held(), 2u);
    EXPECT_EQ(store.trim(2), StoreStatus::Ok);  // already trimmed: no-op
    EXPECT_EQ(store.oldest_seq(), 4u);
    EXPECT_EQ(store.trim(6), StoreStatus::InvalidArgument);  // never produced
    EXPECT_EQ(store.held(), 2u);
    ASSERT_EQ(store.trim(5), StoreStatus::Ok);
    EXPECT_EQ(store.held(), 0u);
    EXPECT_EQ(store.oldest_seq(), store.next_seq());
}

TEST(RamStore, DropOldestMakesRoomAndCounts) {
    RamStore<4> store(1, FullPolicy::DropOldest);
    append_n(store, 6);
    EXPECT_EQ(store.held(), 4u);
    EXPECT_EQ(store.dropped(), 2u);
    EXPECT_EQ(store.oldest_seq(), 3u);
    EXPECT_EQ(store.next_seq(), 7u);
    StoredReading out[4];
    ASSERT_EQ(store.read(1, out, 4), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(out[i].seq, 3u + i);
        EXPECT_EQ(out[i].record.value, 2.0 + static_cast<double>(i));  // values follow their seqs
    }
}

TEST(RamStore, RefuseNewKeepsEverythingAndSaysFull) {
    RamStore<4> store(1, FullPolicy::RefuseNew);
    append_n(store, 4);
    std::uint64_t seq = 99;
    EXPECT_EQ(store.append(reading(0, 0, 0), &seq), StoreStatus::Full);
    EXPECT_EQ(seq, 99u);
    EXPECT_EQ(store.dropped(), 0u);
    EXPECT_EQ(store.next_seq(), 5u);
    ASSERT_EQ(store.trim(1), StoreStatus::Ok);  // a commit ack frees room
    EXPECT_EQ(store.append(reading(0, 0, 0), &seq), StoreStatus::Ok);
    EXPECT_EQ(seq, 5u);
}

TEST(RamStore, WrapsAroundManyTimes) {
    RamStore<5> store(1);
    StoredReading out[5];
    for (int round = 0; round < 100; ++round) {
        append_n(store, 3, round * 3);
        const std::uint64_t first = store.oldest_seq();
        ASSERT_EQ(store.read(first, out, 5), 3u);
        for (std::size_t i = 0; i < 3; ++i) {
            ASSERT_EQ(out[i].seq, first + i);
            ASSERT_EQ(out[i].record.value, static_cast<double>(round * 3) + static_cast<double>(i));
        }
        ASSERT_EQ(store.trim(first + 2), StoreStatus::Ok);
    }
    EXPECT_EQ(store.dropped(), 0u);
}

TEST(RamStore, SpanStoreUsesCallerSlots) {
    std::vector<RamSlot> slots(3);
    RamSpanStore store(7, FullPolicy::DropOldest, std::span<RamSlot>(slots));
    EXPECT_EQ(store.capacity(), 3u);
    append_n(store, 4);
    EXPECT_EQ(store.dropped(), 1u);
    EXPECT_EQ(store.oldest_seq(), 2u);
}

TEST(RamStore, ZeroCapacityRefusesEverything) {
    RamSpanStore store(7, FullPolicy::DropOldest, std::span<RamSlot>());
    std::uint64_t seq = 0;
    EXPECT_EQ(store.append(reading(0, 0, 0), &seq), StoreStatus::Full);
}

TEST(RamStore, RemembersOnlyTheRunningBootsWallOffset) {
    RamStore<4> store(7);
    std::int64_t offset = 0;
    EXPECT_FALSE(store.wall_offset(0, &offset));
    EXPECT_EQ(store.note_wall_offset(-1'234), StoreStatus::Ok);
    ASSERT_TRUE(store.wall_offset(0, &offset));
    EXPECT_EQ(offset, -1'234);
    EXPECT_EQ(store.note_wall_offset(1'700'000'000'000), StoreStatus::Ok);
    ASSERT_TRUE(store.wall_offset(0, &offset));
    EXPECT_EQ(offset, 1'700'000'000'000);
    EXPECT_FALSE(store.wall_offset(1, &offset)) << "RAM knows no other boot";
    EXPECT_FALSE(store.wall_offset(0, nullptr));
}

}  // namespace
}  // namespace fieldlink::reader
