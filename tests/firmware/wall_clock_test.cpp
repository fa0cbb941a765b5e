// The device's half of the time rule on its own: the offset from an ack, when
// it goes to the store (once, then only beyond the tolerance, again after a
// failed note), earlier boots' offsets asked once and cached (two at a time,
// oldest evicted first), and the age of a reading of this or an earlier boot.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "fieldlink/reader/wall_clock.hpp"
#include "scripted_store.hpp"

namespace fieldlink::reader {
namespace {

constexpr std::int64_t kGateway = 1'700'000'000'000;
constexpr std::uint32_t kTolerance = 250;

std::int64_t noted_offset(const test::ScriptedStore& store, std::uint32_t boot) {
    std::int64_t offset = 0;
    EXPECT_TRUE(store.noted(boot, &offset)) << "boot " << boot << " noted nothing";
    return offset;
}

TEST(WallClock, KnowsNothingBeforeTheFirstAck) {
    test::ScriptedStore store(/*boot=*/3);
    WallClock clock(store);
    clock.start(kTolerance);
    EXPECT_FALSE(clock.known());
    EXPECT_EQ(clock.offset_ms(), 0);
    std::int64_t offset = 99;
    EXPECT_FALSE(clock.offset_for(3, &offset));
    EXPECT_EQ(offset, 0) << "an unknown offset is sent as 0";
}

TEST(WallClock, TheOffsetIsGatewayTimeMinusMonoTimeAndTheLatestAckWins) {
    test::ScriptedStore store;
    WallClock clock(store);
    clock.start(kTolerance);
    EXPECT_EQ(clock.learn(kGateway, 1'500), StoreStatus::Ok);
    ASSERT_TRUE(clock.known());
    EXPECT_EQ(clock.offset_ms(), kGateway - 1'500);
    std::int64_t offset = 0;
    ASSERT_TRUE(clock.offset_for(0, &offset));
    EXPECT_EQ(offset, kGateway - 1'500);
    EXPECT_EQ(clock.learn(kGateway + 10'100, 11'500), StoreStatus::Ok);  // 100 ms of drift
    EXPECT_EQ(clock.offset_ms(), kGateway - 1'400);
}

TEST(WallClock, NotesOncePerBootAndAgainOnlyBeyondTheToleranceFromTheNotedValue) {
    test::ScriptedStore store;
    WallClock clock(store);
    clock.start(kTolerance);
    const auto ack = [&](std::uint64_t now, std::int64_t drift) {
        EXPECT_EQ(clock.learn(kGateway + static_cast<std::int64_t>(now) + drift, now), StoreStatus::Ok);
    };
    ack(1'000, 0);
    EXPECT_EQ(store.notes, 1);
    EXPECT_EQ(noted_offset(store, 0), kGateway);
    ack(2'000, 250);  // exactly the tolerance: not noted
    EXPECT_EQ(store.notes, 1);
    EXPECT_EQ(clock.offset_ms(), kGateway + 250) << "but it is what batches carry";
    ack(3'000, 251);
    EXPECT_EQ(store.notes, 2);
    EXPECT_EQ(noted_offset(store, 0), kGateway + 251);
    ack(4'000, 450);  // 199 from the noted value (450 from the first one)
    EXPECT_EQ(store.notes, 2);
    ack(5'000, 10);  // 241 from the noted value, though 440 from the last ack
    EXPECT_EQ(store.notes, 2);
    ack(6'000, -300);  // backwards counts the same
    EXPECT_EQ(store.notes, 3);
    EXPECT_EQ(noted_offset(store, 0), kGateway - 300);
    EXPECT_EQ(clock.offsets_noted(), 3u);
}

TEST(WallClock, AnOffsetTheStoreAlreadyKnowsIsUsedAtStartAndNotNotedAgain) {
    test::ScriptedStore store(/*boot=*/2);
    store.set_offset(2, kGateway);  // the reader restarted within boot 2
    WallClock clock(store);
    clock.start(kTolerance);
    ASSERT_TRUE(clock.known());
    EXPECT_EQ(clock.offset_ms(), kGateway);
    EXPECT_EQ(clock.learn(kGateway + 5'100, 5'000), StoreStatus::Ok);  // 100 ms off: within the tolerance
    EXPECT_EQ(store.notes, 0);
    EXPECT_EQ(clock.learn(kGateway + 5'400, 5'000), StoreStatus::Ok);
    EXPECT_EQ(store.notes, 1);
}

TEST(WallClock, AFailedNoteIsReturnedAndTriedAgainWithTheNextAck) {
    test::ScriptedStore store;
    WallClock clock(store);
    clock.start(kTolerance);
    store.note_status = StoreStatus::IoError;
    EXPECT_EQ(clock.learn(kGateway, 0), StoreStatus::IoError);
    EXPECT_TRUE(clock.known()) << "batches of this boot may carry it meanwhile";
    EXPECT_EQ(clock.offsets_noted(), 0u);

    store.note_status = StoreStatus::Ok;
    EXPECT_EQ(clock.learn(kGateway, 0), StoreStatus::Ok) << "same offset, noted now";
    EXPECT_EQ(store.notes, 2);
    EXPECT_EQ(clock.offsets_noted(), 1u);

    // Full: the store holds it in RAM and writes it later; that counts as noted.
    store.note_status = StoreStatus::Full;
    EXPECT_EQ(clock.learn(kGateway + 10'000, 0), StoreStatus::Ok);
    EXPECT_EQ(clock.offsets_noted(), 2u);
    EXPECT_EQ(clock.learn(kGateway + 10'000, 0), StoreStatus::Ok);
    EXPECT_EQ(store.notes, 3) << "not noted again";
}

TEST(WallClock, EachBootHasItsOwnOffset) {
    test::ScriptedStore store(/*boot=*/2);
    store.set_offset(0, 1'000);
    store.set_offset(1, 2'000);
    WallClock clock(store);
    clock.start(kTolerance);
    clock.learn(kGateway, 0);
    std::int64_t offset = 0;
    ASSERT_TRUE(clock.offset_for(0, &offset));
    EXPECT_EQ(offset, 1'000);
    ASSERT_TRUE(clock.offset_for(1, &offset));
    EXPECT_EQ(offset, 2'000);
    ASSERT_TRUE(clock.offset_for(2, &offset));
    EXPECT_EQ(offset, kGateway);
    EXPECT_FALSE(clock.offset_for(7, &offset)) << "a boot that never noted one";
    EXPECT_EQ(offset, 0);
}

TEST(WallClock, AnEarlierBootIsAskedOnceEvenWhenItHasNoOffset) {
    test::ScriptedStore store(/*boot=*/2);
    store.set_offset(1, 2'000);
    WallClock clock(store);
    clock.start(kTolerance);
    std::int64_t offset = 0;
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(clock.offset_for(1, &offset));
        EXPECT_FALSE(clock.offset_for(0, &offset));
    }
    EXPECT_EQ(store.offset_queries[1], 1);
    EXPECT_EQ(store.offset_queries[0], 1);
    // The running boot is never cached: its offset is the wall clock's own.
    EXPECT_EQ(store.offset_queries[2], 1) << "only start() asked";
}

TEST(WallClock, TheCacheHoldsTwoBootsAndEvictsTheOldestFirst) {
    test::ScriptedStore store(/*boot=*/9);
    for (std::uint32_t boot = 0; boot < 4; ++boot) store.set_offset(boot, 100 * boot);
    WallClock clock(store);
    clock.start(kTolerance);
    static_assert(WallClock::kCachedBoots == 2);
    std::int64_t offset = 0;
    clock.offset_for(0, &offset);
    clock.offset_for(1, &offset);
    clock.offset_for(0, &offset);  // both cached
    EXPECT_EQ(store.offset_queries[0], 1);
    EXPECT_EQ(store.offset_queries[1], 1);
    clock.offset_for(3, &offset);  // evicts boot 0, the first one in
    clock.offset_for(1, &offset);
    EXPECT_EQ(store.offset_queries[1], 1) << "boot 1 is still cached";
    ASSERT_TRUE(clock.offset_for(0, &offset));  // asked again; evicts boot 1
    EXPECT_EQ(offset, 0);
    EXPECT_EQ(store.offset_queries[0], 2);
    ASSERT_TRUE(clock.offset_for(1, &offset));
    EXPECT_EQ(offset, 100);
    EXPECT_EQ(store.offset_queries[1], 2);
    EXPECT_EQ(store.offset_queries[3], 1);
}

TEST(WallClock, StartForgetsTheCachedBoots) {
    test::ScriptedStore store(/*boot=*/2);
    store.set_offset(1, 2'000);
    WallClock clock(store);
    clock.start(kTolerance);
    std::int64_t offset = 0;
    clock.offset_for(1, &offset);
    clock.start(kTolerance);
    clock.offset_for(1, &offset);
    EXPECT_EQ(store.offset_queries[1], 2);
}

TEST(WallClock, AgeOfAReadingOfTheRunningBootIsMonoTime) {
    test::ScriptedStore store(/*boot=*/1);
    WallClock clock(store);
    clock.start(kTolerance);
    EXPECT_EQ(clock.age_ms(1, 100, 1'100), 1'000u);
    EXPECT_EQ(clock.age_ms(1, 1'100, 1'100), 0u);
    EXPECT_EQ(clock.age_ms(1, 2'000, 1'100), 0u) << "never negative";
}

TEST(WallClock, AgeOfAnEarlierBootReadingUsesBothBootsOffsets) {
    test::ScriptedStore store(/*boot=*/2);
    const std::int64_t boot1_offset = kGateway;
    store.set_offset(1, boot1_offset);
    WallClock clock(store);
    clock.start(kTolerance);
    // Boot 2 learns its offset at mono 4000, an hour of wall-clock time later.
    clock.learn(boot1_offset + 3'600'000, 4'000);
    // A boot-1 reading at mono 200 was taken at wall-clock boot1_offset + 200.
    EXPECT_EQ(clock.age_ms(1, 200, 4'000), 3'600'000u - 200u);
    EXPECT_EQ(clock.age_ms(1, 200, 5'000), 3'601'000u - 200u);
}

TEST(WallClock, AgeFallsBackToUptimeWhenEitherOffsetIsUnknown) {
    test::ScriptedStore store(/*boot=*/2);
    store.set_offset(1, kGateway);
    WallClock clock(store);
    clock.start(kTolerance);
    EXPECT_EQ(clock.age_ms(1, 200, 4'000), 4'000u) << "this boot's offset is unknown";
    EXPECT_EQ(store.offset_queries[1], 0) << "so boot 1 is not even asked";
    clock.learn(kGateway + 3'600'000, 4'000);
    EXPECT_EQ(clock.age_ms(0, 200, 4'500), 4'500u) << "boot 0 never noted one";
}

TEST(WallClock, AgeIsZeroWhenAnEarlierBootSeemsToBeInTheFuture) {
    test::ScriptedStore store(/*boot=*/2);
    store.set_offset(1, kGateway + 10'000'000);  // boot 1's gateway clock was far ahead
    WallClock clock(store);
    clock.start(kTolerance);
    clock.learn(kGateway, 1'000);
    EXPECT_EQ(clock.age_ms(1, 0, 1'000), 0u);
}

TEST(WallClock, AbsurdGatewayTimesWrapInsteadOfOverflowing) {
    // Checked for undefined behaviour by the sanitizer build.
    test::ScriptedStore store;
    WallClock clock(store);
    clock.start(kTolerance);
    constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    EXPECT_EQ(clock.learn(kMin, 5), StoreStatus::Ok);
    EXPECT_EQ(clock.offset_ms(), kMax - 4);
    EXPECT_EQ(clock.learn(kMin, 0), StoreStatus::Ok);
    EXPECT_EQ(clock.offset_ms(), kMin);
    EXPECT_EQ(store.notes, 2) << "kMin is far from kMax - 4, not within the tolerance";
    EXPECT_EQ(clock.learn(kMax, 0), StoreStatus::Ok);
    EXPECT_EQ(store.notes, 3);
    store.set_offset(1, kMin);
    const std::uint64_t far = std::numeric_limits<std::uint64_t>::max();
    static_cast<void>(clock.age_ms(1, far, far));  // wall-clock times wrap; any answer, but no UB
    static_cast<void>(clock.age_ms(1, 0, far));
}

}  // namespace
}  // namespace fieldlink::reader
