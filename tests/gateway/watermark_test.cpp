#include "fieldlink/gateway/ingest/watermark.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace fieldlink::gateway {
namespace {

using Ranges = std::vector<SeqRange>;

TEST(ContiguousWatermark, StartsAtZero) {
    ContiguousWatermark w;
    EXPECT_EQ(w.watermark(), 0u);
    EXPECT_TRUE(w.ranges_above().empty());
}

TEST(ContiguousWatermark, InOrderBatchesAdvance) {
    ContiguousWatermark w;
    w.add(1, 10);
    EXPECT_EQ(w.watermark(), 10u);
    w.add(11, 20);
    EXPECT_EQ(w.watermark(), 20u);
    EXPECT_EQ(w.range_count(), 0u);
}

TEST(ContiguousWatermark, GapHoldsTheWatermarkUntilFilled) {
    ContiguousWatermark w;
    w.add(1, 10);
    w.add(21, 30);
    EXPECT_EQ(w.watermark(), 10u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{21, 30}}));
    w.add(11, 20);  // the gap arrives late
    EXPECT_EQ(w.watermark(), 30u);
    EXPECT_TRUE(w.ranges_above().empty());
}

TEST(ContiguousWatermark, OutOfOrderWithSeveralGaps) {
    ContiguousWatermark w;
    w.add(41, 50);
    w.add(21, 30);
    w.add(61, 70);
    EXPECT_EQ(w.watermark(), 0u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{21, 30}, {41, 50}, {61, 70}}));
    w.add(31, 40);  // joins two ranges, still not contiguous with 0
    EXPECT_EQ(w.ranges_above(), (Ranges{{21, 50}, {61, 70}}));
    w.add(1, 20);
    EXPECT_EQ(w.watermark(), 50u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{61, 70}}));
}

TEST(ContiguousWatermark, DuplicatesChangeNothing) {
    ContiguousWatermark w;
    w.add(1, 10);
    w.add(15, 20);
    const auto before = w.ranges_above();
    w.add(1, 10);
    w.add(3, 7);
    w.add(15, 20);
    w.add(16, 19);
    EXPECT_EQ(w.watermark(), 10u);
    EXPECT_EQ(w.ranges_above(), before);
}

TEST(ContiguousWatermark, OverlapsAndAdjacencyMerge) {
    ContiguousWatermark w;
    w.add(10, 20);
    w.add(15, 25);  // overlaps on the right
    w.add(5, 12);   // overlaps on the left
    w.add(26, 30);  // touches
    w.add(2, 3);
    EXPECT_EQ(w.ranges_above(), (Ranges{{2, 3}, {5, 30}}));
    w.add(4, 4);  // bridges
    EXPECT_EQ(w.ranges_above(), (Ranges{{2, 30}}));
    w.add(1, 100);  // swallows everything
    EXPECT_EQ(w.watermark(), 100u);
    EXPECT_TRUE(w.ranges_above().empty());
}

TEST(ContiguousWatermark, PartlyBelowTheWatermarkCountsOnlyTheRest) {
    ContiguousWatermark w;
    w.add(1, 10);
    w.add(5, 15);
    EXPECT_EQ(w.watermark(), 15u);
}

TEST(ContiguousWatermark, FloorSkipsAGapThatWillNeverBeFilled) {
    ContiguousWatermark w;
    w.add(1, 10);
    w.add(21, 30);
    // The device dropped 11..20 (spool full) and says it will never send below 21.
    w.apply_floor(21);
    EXPECT_EQ(w.watermark(), 30u);
    EXPECT_TRUE(w.ranges_above().empty());
}

TEST(ContiguousWatermark, FloorJumpsOverRangesAndKeepsWhatIsAbove) {
    ContiguousWatermark w;
    w.add(5, 6);
    w.add(8, 9);
    w.add(20, 25);
    w.apply_floor(10);  // W = 9; 5..9 are below it now
    EXPECT_EQ(w.watermark(), 9u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{20, 25}}));
    w.apply_floor(20);  // W = 19, then 20..25 joins
    EXPECT_EQ(w.watermark(), 25u);
}

TEST(ContiguousWatermark, FloorNeverMovesTheWatermarkBack) {
    ContiguousWatermark w;
    w.add(1, 50);
    w.apply_floor(10);
    w.apply_floor(0);
    w.apply_floor(1);
    EXPECT_EQ(w.watermark(), 50u);
}

TEST(ContiguousWatermark, FloorInTheMiddleOfARange) {
    ContiguousWatermark w;
    w.add(10, 20);
    w.apply_floor(15);
    EXPECT_EQ(w.watermark(), 20u);
}

TEST(ContiguousWatermark, IgnoresEmptyAndZeroRanges) {
    ContiguousWatermark w;
    w.add(0, 5);  // seq 0 does not exist
    w.add(7, 6);
    EXPECT_EQ(w.watermark(), 0u);
    EXPECT_TRUE(w.ranges_above().empty());
}

TEST(ContiguousWatermark, HandlesTheTopOfTheRange) {
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    ContiguousWatermark w;
    w.add(kMax - 1, kMax);
    EXPECT_EQ(w.ranges_above(), (Ranges{{kMax - 1, kMax}}));
    w.add(kMax - 5, kMax - 2);
    EXPECT_EQ(w.ranges_above(), (Ranges{{kMax - 5, kMax}}));
    w.apply_floor(kMax - 5);
    EXPECT_EQ(w.watermark(), kMax);
    w.add(kMax, kMax);
    w.apply_floor(kMax);
    EXPECT_EQ(w.watermark(), kMax);
}

// Against a plain set of stored seqs, in many random orders, with duplicates.
TEST(ContiguousWatermark, MatchesASimpleModelUnderRandomOrder) {
    std::mt19937_64 random(12345);
    for (int round = 0; round < 200; ++round) {
        std::vector<SeqRange> batches;
        for (std::uint64_t first = 1; first <= 300;) {
            const std::uint64_t length = 1 + random() % 12;
            batches.push_back({first, first + length - 1});
            first += length;
        }
        // Redeliveries.
        const std::size_t originals = batches.size();
        for (int d = 0; d < 20; ++d) batches.push_back(batches[random() % originals]);
        std::shuffle(batches.begin(), batches.end(), random);
        // Some batches never arrive.
        batches.resize(batches.size() - random() % 5);

        ContiguousWatermark w;
        std::set<std::uint64_t> stored;
        for (const SeqRange& b : batches) {
            w.add(b.first, b.last);
            for (std::uint64_t s = b.first; s <= b.last; ++s) stored.insert(s);
            std::uint64_t expected = 0;
            while (stored.count(expected + 1) != 0) ++expected;
            ASSERT_EQ(w.watermark(), expected);
            // Ranges above W are exactly the stored seqs above W.
            std::set<std::uint64_t> above;
            for (const SeqRange& r : w.ranges_above()) {
                ASSERT_GT(r.first, w.watermark() + 1) << "a range adjacent to W should have been absorbed";
                for (std::uint64_t s = r.first; s <= r.last; ++s) above.insert(s);
            }
            std::set<std::uint64_t> expected_above(stored.upper_bound(expected), stored.end());
            ASSERT_EQ(above, expected_above);
        }
    }
}

class FakeSource final : public WatermarkSource {
public:
    StoredWatermark load_watermark(const DeviceKey& key) override {
        ++loads[key];
        return stored[key];
    }
    std::map<DeviceKey, StoredWatermark> stored;
    std::map<DeviceKey, int> loads;
};

TEST(WatermarkTracker, LoadsOnFirstTouchOnly) {
    FakeSource source;
    const DeviceKey key{"dev-1", 7};
    source.stored[key] = {40, {{45, 50}, {52, 52}}};
    WatermarkTracker tracker(source);

    ContiguousWatermark state = tracker.snapshot(key);
    EXPECT_EQ(state.watermark(), 40u);
    EXPECT_EQ(state.ranges_above(), (Ranges{{45, 50}, {52, 52}}));
    state.add(41, 44);
    EXPECT_EQ(state.watermark(), 50u);
    tracker.put(key, state);

    EXPECT_EQ(tracker.snapshot(key).watermark(), 50u);
    EXPECT_EQ(source.loads[key], 1);
}

TEST(WatermarkTracker, SnapshotIsACopyUntilPut) {
    FakeSource source;
    WatermarkTracker tracker(source);
    const DeviceKey key{"dev-1", 7};
    ContiguousWatermark staged = tracker.snapshot(key);
    staged.add(1, 10);
    // A failed commit never calls put(): the tracker still says 0.
    EXPECT_EQ(tracker.snapshot(key).watermark(), 0u);
    tracker.put(key, staged);
    EXPECT_EQ(tracker.snapshot(key).watermark(), 10u);
}

TEST(WatermarkTracker, IncarnationsAndDevicesAreSeparate) {
    FakeSource source;
    WatermarkTracker tracker(source);
    ContiguousWatermark a = tracker.snapshot({"dev-1", 1});
    a.add(1, 5);
    tracker.put({"dev-1", 1}, a);
    EXPECT_EQ(tracker.snapshot({"dev-1", 2}).watermark(), 0u);
    EXPECT_EQ(tracker.snapshot({"dev-2", 1}).watermark(), 0u);
    EXPECT_EQ(tracker.snapshot({"dev-1", 1}).watermark(), 5u);
    EXPECT_EQ(tracker.size(), 3u);
}

TEST(WatermarkTracker, RestoresStateWhoseRangesTouchTheWatermark) {
    // A database written by an older run may hold rows right above the saved W.
    FakeSource source;
    const DeviceKey key{"dev-1", 1};
    source.stored[key] = {10, {{11, 20}, {25, 30}}};
    WatermarkTracker tracker(source);
    const ContiguousWatermark state = tracker.snapshot(key);
    EXPECT_EQ(state.watermark(), 20u);
    EXPECT_EQ(state.ranges_above(), (Ranges{{25, 30}}));
}

}  // namespace
}  // namespace fieldlink::gateway
