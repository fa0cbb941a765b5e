// The bounded watermark state: ranges capped per incarnation, incarnations
// capped per tracker (least recently used out), and the database as the truth
// that both fall back to.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "fieldlink/gateway/ingest/watermark.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "test_support.hpp"

namespace fieldlink::gateway {
namespace {

using Ranges = std::vector<SeqRange>;

// A database in miniature: the stored seqs of each key and its saved watermark,
// answered the way SqliteStore::load_watermark answers (islands above W).
class ModelSource final : public WatermarkSource {
public:
    StoredWatermark load_watermark(const DeviceKey& key) override {
        ++loads;
        StoredWatermark result;
        result.watermark = saved[key];
        const std::set<std::uint64_t>& seqs = stored[key];
        for (auto it = seqs.upper_bound(result.watermark); it != seqs.end(); ++it) {
            if (!result.ranges_above.empty() && result.ranges_above.back().last + 1 == *it) {
                result.ranges_above.back().last = *it;
            } else {
                result.ranges_above.push_back({*it, *it});
            }
        }
        return result;
    }

    void store(const DeviceKey& key, std::uint64_t first, std::uint64_t last) {
        for (std::uint64_t seq = first; seq <= last; ++seq) stored[key].insert(seq);
    }
    // The true contiguous watermark, as an unbounded tracker would report it.
    std::uint64_t contiguous(const DeviceKey& key, std::uint64_t floor_watermark = 0) {
        std::uint64_t w = std::max(saved[key], floor_watermark);
        while (stored[key].count(w + 1) != 0) ++w;
        return w;
    }

    std::map<DeviceKey, std::set<std::uint64_t>> stored;
    std::map<DeviceKey, std::uint64_t> saved;
    int loads = 0;
};

const DeviceKey kKey{"dev-1", 7};

TEST(ContiguousWatermarkCap, AtTheCapTheHighestRangesLeaveMemory) {
    ContiguousWatermark w(0, 3);
    w.add(10, 10);
    w.add(20, 20);
    w.add(30, 30);
    EXPECT_EQ(w.dropped_from(), 0u);
    w.add(40, 40);  // the highest: it is the one that goes
    EXPECT_EQ(w.ranges_above(), (Ranges{{10, 10}, {20, 20}, {30, 30}}));
    EXPECT_EQ(w.dropped_from(), 40u);
    w.add(25, 25);  // a new range below: 30 makes room
    EXPECT_EQ(w.ranges_above(), (Ranges{{10, 10}, {20, 20}, {25, 25}}));
    EXPECT_EQ(w.dropped_from(), 30u);
    w.add(21, 24);  // merging needs no room
    EXPECT_EQ(w.ranges_above(), (Ranges{{10, 10}, {20, 25}}));
    EXPECT_EQ(w.dropped_from(), 30u);
    EXPECT_EQ(w.watermark(), 0u);
    EXPECT_FALSE(w.needs_reload());
}

TEST(ContiguousWatermarkCap, ARangeRightAboveTheWatermarkNeedsNoRoom) {
    ContiguousWatermark w(0, 1);
    w.add(5, 5);
    w.add(1, 3);
    EXPECT_EQ(w.watermark(), 3u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{5, 5}}));
    EXPECT_EQ(w.dropped_from(), 0u) << "nothing had to leave";
}

TEST(ContiguousWatermarkCap, TheWatermarkStopsAtDroppedRangesUntilReloaded) {
    ModelSource db;
    // Every other seq: 3, 5, 7, 9 stored; cap 2 keeps 3 and 5.
    ContiguousWatermark w(0, 2);
    for (std::uint64_t seq : {3, 5, 7, 9}) {
        db.store(kKey, seq, seq);
        w.add(seq, seq);
    }
    EXPECT_EQ(w.ranges_above(), (Ranges{{3, 3}, {5, 5}}));
    EXPECT_EQ(w.dropped_from(), 7u);
    for (std::uint64_t seq : {1, 2, 4}) {
        db.store(kKey, seq, seq);
        w.add(seq, seq);
    }
    EXPECT_EQ(w.watermark(), 5u);
    EXPECT_FALSE(w.needs_reload()) << "W + 1 = 6 is below the dropped 7: memory still knows everything there";
    db.store(kKey, 6, 6);
    w.add(6, 6);
    EXPECT_EQ(w.watermark(), 6u) << "7 is stored, but memory dropped it: W must not claim it without looking";
    EXPECT_TRUE(w.needs_reload());
    w.reload(db.load_watermark(kKey));
    EXPECT_EQ(w.watermark(), 7u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{9, 9}}));
    EXPECT_EQ(w.dropped_from(), 0u);
    db.store(kKey, 8, 8);
    w.add(8, 8);
    EXPECT_EQ(w.watermark(), 9u);
}

TEST(ContiguousWatermarkCap, FloorPastDroppedRangesAsksForAReload) {
    ModelSource db;
    ContiguousWatermark w(0, 1);
    db.store(kKey, 10, 10);
    db.store(kKey, 20, 25);
    w.add(10, 10);
    w.add(20, 25);
    EXPECT_EQ(w.dropped_from(), 20u);
    w.apply_floor(20);  // W = 19: right below what memory dropped
    EXPECT_EQ(w.watermark(), 19u);
    ASSERT_TRUE(w.needs_reload());
    w.reload(db.load_watermark(kKey));
    EXPECT_EQ(w.watermark(), 25u);
}

TEST(ContiguousWatermarkCap, ReloadKeepsOnlyTheLowestRanges) {
    ContiguousWatermark w(0, 3);
    StoredWatermark stored{4, {{5, 6}, {8, 8}, {10, 10}, {12, 12}, {14, 20}}};
    w.reload(stored);
    EXPECT_EQ(w.watermark(), 6u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{8, 8}, {10, 10}, {12, 12}}));
    EXPECT_EQ(w.dropped_from(), 14u);
}

// The rule, against the model under random order, with duplicates and floors:
// W never passes a gap; with settle() after each batch it is exactly the true
// contiguous watermark; no entry holds more ranges than the cap.
TEST(ContiguousWatermarkCap, MatchesAnUnboundedModelWhenSettledAndNeverPassesAGap) {
    std::mt19937_64 random(777);
    for (int round = 0; round < 100; ++round) {
        const std::size_t cap = 1 + random() % 4;
        ModelSource db;
        WatermarkTracker tracker(db, 8, cap);
        ContiguousWatermark settled = tracker.snapshot(kKey);
        ContiguousWatermark unsettled(0, cap);  // never reloads: may lag, must never lie

        std::vector<SeqRange> batches;
        for (std::uint64_t first = 1; first <= 200;) {
            const std::uint64_t length = 1 + random() % 4;
            batches.push_back({first, first + length - 1});
            first += length;
        }
        const std::size_t originals = batches.size();
        for (int d = 0; d < 10; ++d) batches.push_back(batches[random() % originals]);
        std::shuffle(batches.begin(), batches.end(), random);
        batches.resize(batches.size() - random() % 3);  // some never arrive

        std::uint64_t floor_watermark = 0;
        for (const SeqRange& b : batches) {
            db.store(kKey, b.first, b.last);  // the rows go in before the tracker hears of them
            settled.add(b.first, b.last);
            unsettled.add(b.first, b.last);
            if (random() % 40 == 0) {  // now and then the device gives up on what lies below a floor
                const std::uint64_t floor_seq = b.first;
                floor_watermark = std::max(floor_watermark, floor_seq - 1);
                settled.apply_floor(floor_seq);
                unsettled.apply_floor(floor_seq);
            }
            tracker.settle(kKey, settled);

            const std::uint64_t truth = db.contiguous(kKey, floor_watermark);
            ASSERT_EQ(settled.watermark(), truth) << "round " << round << " cap " << cap;
            ASSERT_LE(unsettled.watermark(), truth) << "round " << round << " cap " << cap;
            ASSERT_LE(settled.range_count(), cap);
            ASSERT_LE(unsettled.range_count(), cap);
            for (const SeqRange& r : settled.ranges_above()) {
                ASSERT_GT(r.first, settled.watermark() + 1);
                for (std::uint64_t s = r.first; s <= r.last; ++s) ASSERT_EQ(db.stored[kKey].count(s), 1u);
            }
        }
    }
}

TEST(WatermarkTrackerLru, KeepsAtMostMaxIncarnations) {
    ModelSource db;
    WatermarkTracker tracker(db, 3);
    for (std::uint64_t incarnation = 1; incarnation <= 10; ++incarnation) {
        const DeviceKey key{"dev", incarnation};
        ContiguousWatermark state = tracker.snapshot(key);
        state.add(1, incarnation);
        tracker.put(key, state);
        EXPECT_LE(tracker.size(), 3u);
    }
    EXPECT_EQ(tracker.size(), 3u);
    EXPECT_EQ(tracker.capacity(), 3u);
}

TEST(WatermarkTrackerLru, EvictedEntryIsReloadedWithTheSameState) {
    ModelSource db;
    WatermarkTracker tracker(db, 2);
    // What a commit does: rows and the watermark into the database, then put().
    ContiguousWatermark state = tracker.snapshot(kKey);
    for (const SeqRange r : {SeqRange{1, 10}, SeqRange{15, 20}, SeqRange{30, 31}}) {
        db.store(kKey, r.first, r.last);
        state.add(r.first, r.last);
    }
    db.saved[kKey] = state.watermark();
    tracker.put(kKey, state);
    EXPECT_EQ(db.loads, 1);

    tracker.snapshot({"dev-2", 1});
    tracker.snapshot({"dev-3", 1});  // kKey was the least recently used
    EXPECT_EQ(db.loads, 3);
    const ContiguousWatermark reloaded = tracker.snapshot(kKey);
    EXPECT_EQ(db.loads, 4) << "it came from the source again";
    EXPECT_EQ(reloaded.watermark(), 10u);
    EXPECT_EQ(reloaded.ranges_above(), state.ranges_above());
}

TEST(WatermarkTrackerLru, StagedSnapshotSurvivesEvictionBeforePut) {
    ModelSource db;
    WatermarkTracker tracker(db, 1);
    ContiguousWatermark staged = tracker.snapshot(kKey);
    staged.add(1, 5);
    tracker.snapshot({"dev-2", 1});  // a bigger commit group: kKey's cached copy is evicted
    EXPECT_EQ(tracker.size(), 1u);
    tracker.put(kKey, staged);  // after the commit, the staged copy is what is kept
    const int loads = db.loads;
    EXPECT_EQ(tracker.snapshot(kKey).watermark(), 5u);
    EXPECT_EQ(db.loads, loads) << "served from memory";
}

TEST(WatermarkTrackerLru, RefusesZeroLimits) {
    ModelSource db;
    EXPECT_THROW(WatermarkTracker(db, 0, 1), std::invalid_argument);
    EXPECT_THROW(WatermarkTracker(db, 1, 0), std::invalid_argument);
}

TEST(WatermarkTrackerLru, RoundTripThroughTheRealStore) {
    test::TempDir dir;
    StoreOptions options;
    options.path = dir.file("fieldlink.db");
    SqliteStore store(options);
    WatermarkTracker tracker(store, 1, 2);

    // 1..4, then every other seq from 10 to 20: more ranges than the cap of 2.
    ContiguousWatermark state = tracker.snapshot(kKey);
    {
        auto transaction = store.begin();
        auto insert = [&](std::uint64_t first, std::size_t count) {
            test::BatchSpec spec;
            spec.incarnation = kKey.incarnation;
            spec.first_seq = first;
            spec.count = count;
            const ReadingBatch batch{kKey.device, BatchBody{test::header_for(spec), test::records_for(spec)}};
            transaction->insert_readings(batch, std::nullopt, 0);
            state.add(first, first + count - 1);
            tracker.settle(kKey, state);
        };
        insert(1, 4);
        for (std::uint64_t seq = 10; seq <= 20; seq += 2) insert(seq, 1);
        EXPECT_EQ(state.ranges_above(), (Ranges{{10, 10}, {12, 12}}));
        EXPECT_EQ(state.dropped_from(), 14u);
        for (std::uint64_t seq = 5; seq <= 11; ++seq) {
            if (seq != 10) insert(seq, 1);
        }
        EXPECT_EQ(state.watermark(), 12u) << "13 is missing, and memory knows everything below 14";
        EXPECT_TRUE(state.ranges_above().empty());
        const std::uint64_t loads = tracker.loads();
        insert(13, 1);  // W reaches the dropped 14: settle reloads, and sees the open transaction's rows
        EXPECT_EQ(tracker.loads(), loads + 1);
        EXPECT_EQ(state.watermark(), 14u);
        EXPECT_EQ(state.ranges_above(), (Ranges{{16, 16}, {18, 18}}));
        EXPECT_EQ(state.dropped_from(), 20u);
        transaction->save_watermark(kKey, state.watermark(), 0);
        transaction->commit();
    }
    tracker.put(kKey, state);
    tracker.snapshot({"dev-2", 1});  // evicts kKey

    const ContiguousWatermark reloaded = tracker.snapshot(kKey);
    EXPECT_EQ(reloaded.watermark(), 14u);
    EXPECT_EQ(reloaded.ranges_above(), (Ranges{{16, 16}, {18, 18}}));
    EXPECT_EQ(reloaded.dropped_from(), 20u) << "the cap applies to what is loaded, too";
}

}  // namespace
}  // namespace fieldlink::gateway
