// The bounded watermark state: new ranges capped per incarnation, incarnations
// capped per tracker (least recently used out), and the state saved in the
// database, which is what an evicted entry comes back from.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
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

// A database in miniature: the stored seqs of each key (the truth), and what
// was saved beside its watermark, answered as SqliteStore::load_watermark does.
class ModelSource final : public WatermarkSource {
public:
    StoredWatermark load_watermark(const DeviceKey& key) override {
        ++loads;
        return saved[key];
    }

    // A commit as the saver makes it: rows only for what add() accepted, then the state saved.
    bool commit(const DeviceKey& key, ContiguousWatermark& state, std::uint64_t first, std::uint64_t last) {
        const std::vector<SeqRange> fresh = state.missing(first, last);
        if (!state.add(first, last)) return false;
        for (const SeqRange& r : fresh) {
            for (std::uint64_t seq = r.first; seq <= r.last; ++seq) {
                EXPECT_TRUE(stored[key].insert(seq).second) << "seq " << seq << " stored twice";
            }
        }
        saved[key] = {state.watermark(), state.ranges_above()};
        return true;
    }
    // The true contiguous watermark of what is stored.
    std::uint64_t contiguous(const DeviceKey& key, std::uint64_t floor_watermark = 0) {
        std::uint64_t w = floor_watermark;
        while (stored[key].count(w + 1) != 0) ++w;
        return w;
    }

    std::map<DeviceKey, std::set<std::uint64_t>> stored;
    std::map<DeviceKey, StoredWatermark> saved;
    int loads = 0;
};

const DeviceKey kKey{"dev-1", 7};

TEST(ContiguousWatermarkCap, AtTheCapABatchThatOpensARangeIsRefusedAndChangesNothing) {
    ContiguousWatermark w(0, 3);
    EXPECT_TRUE(w.add(10, 10));
    EXPECT_TRUE(w.add(20, 20));
    EXPECT_TRUE(w.add(30, 30));
    EXPECT_FALSE(w.add(40, 40)) << "above the others";
    EXPECT_FALSE(w.add(25, 25)) << "between them";
    EXPECT_EQ(w.ranges_above(), (Ranges{{10, 10}, {20, 20}, {30, 30}}));
    EXPECT_TRUE(w.add(21, 24)) << "merging needs no room";
    EXPECT_TRUE(w.add(29, 31)) << "nor does growing one";
    EXPECT_TRUE(w.add(20, 20)) << "nor a duplicate";
    EXPECT_EQ(w.ranges_above(), (Ranges{{10, 10}, {20, 24}, {29, 31}}));
    EXPECT_TRUE(w.add(1, 9));
    EXPECT_EQ(w.watermark(), 10u);
    EXPECT_TRUE(w.add(40, 40)) << "room again";
}

TEST(ContiguousWatermarkCap, ARangeRightAboveTheWatermarkNeedsNoRoom) {
    ContiguousWatermark w(0, 1);
    EXPECT_TRUE(w.add(5, 5));
    EXPECT_TRUE(w.add(1, 3));
    EXPECT_EQ(w.watermark(), 3u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{5, 5}}));
}

TEST(ContiguousWatermarkCap, MissingIsWhatABatchAddsAndNothingElse) {
    ContiguousWatermark w(3);
    w.add(6, 7);
    w.add(10, 12);
    EXPECT_EQ(w.missing(1, 15), (Ranges{{4, 5}, {8, 9}, {13, 15}}));
    EXPECT_EQ(w.missing(6, 7), Ranges{});
    EXPECT_EQ(w.missing(1, 3), Ranges{});
    EXPECT_EQ(w.missing(7, 11), (Ranges{{8, 9}}));
    EXPECT_EQ(w.missing(11, 20), (Ranges{{13, 20}}));
    EXPECT_EQ(w.missing(5, 5), (Ranges{{5, 5}}));
    EXPECT_EQ(w.missing(0, 0), Ranges{});
    EXPECT_EQ(w.missing(9, 8), Ranges{});
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    ContiguousWatermark top(kMax - 10);
    top.add(kMax - 3, kMax);
    EXPECT_EQ(top.missing(kMax - 12, kMax), (Ranges{{kMax - 9, kMax - 4}}));
}

TEST(ContiguousWatermarkCap, ReloadKeepsEveryRangeEvenPastTheCap) {
    // Saved by a gateway with a larger cap: all of it is stored, so all of it is kept.
    ContiguousWatermark w(0, 3);
    const StoredWatermark stored{4, {{5, 6}, {8, 8}, {10, 10}, {12, 12}, {14, 20}}};
    w.reload(stored);
    EXPECT_EQ(w.watermark(), 6u);
    EXPECT_EQ(w.ranges_above(), (Ranges{{8, 8}, {10, 10}, {12, 12}, {14, 20}}));
    EXPECT_FALSE(w.add(30, 30));
    EXPECT_TRUE(w.add(7, 7));
    EXPECT_EQ(w.watermark(), 8u);
}

// Against the model under random order, with duplicates, floors and a
// device that resends what was not acked: nothing is stored twice, the saved
// state is exactly what is stored, W is the true contiguous watermark, no
// entry opens more ranges than the cap, and resending in order stores the rest.
TEST(ContiguousWatermarkCap, MatchesTheStoredSetStoresNothingTwiceAndRefusalsCatchUp) {
    std::mt19937_64 random(777);
    for (int round = 0; round < 100; ++round) {
        const std::size_t cap = 1 + random() % 4;
        ModelSource db;
        WatermarkTracker tracker(db, 8, cap);

        std::vector<SeqRange> batches;
        for (std::uint64_t first = 1; first <= 200;) {
            const std::uint64_t length = 1 + random() % 4;
            batches.push_back({first, first + length - 1});
            first += length;
        }
        const std::vector<SeqRange> in_order = batches;
        for (int d = 0; d < 10; ++d) batches.push_back(batches[random() % in_order.size()]);
        std::shuffle(batches.begin(), batches.end(), random);
        batches.resize(batches.size() - random() % 3);  // some never arrive

        std::uint64_t floor_watermark = 0;
        const auto check = [&](const ContiguousWatermark& state) {
            ASSERT_EQ(state.watermark(), db.contiguous(kKey, floor_watermark)) << "round " << round << " cap " << cap;
            ASSERT_LE(state.range_count(), cap);
            std::set<std::uint64_t> above;
            for (const SeqRange& r : state.ranges_above()) {
                ASSERT_GT(r.first, state.watermark() + 1);
                for (std::uint64_t seq = r.first; seq <= r.last; ++seq) above.insert(seq);
            }
            const std::set<std::uint64_t>& stored = db.stored[kKey];
            ASSERT_EQ(above, std::set<std::uint64_t>(stored.upper_bound(state.watermark()), stored.end()));
        };
        for (const SeqRange& b : batches) {
            ContiguousWatermark state = tracker.snapshot(kKey);
            db.commit(kKey, state, b.first, b.last);
            if (random() % 40 == 0) {  // now and then the device gives up on what lies below a floor
                floor_watermark = std::max(floor_watermark, b.first - 1);
                state.apply_floor(b.first);
                db.saved[kKey] = {state.watermark(), state.ranges_above()};
            }
            tracker.put(kKey, state);
            if (random() % 10 == 0) tracker.snapshot({"other", static_cast<std::uint64_t>(random() % 16)});
            check(tracker.snapshot(kKey));
        }
        // The device resends everything not acked, oldest first: all of it goes in.
        for (const SeqRange& b : in_order) {
            ContiguousWatermark state = tracker.snapshot(kKey);
            if (b.last <= state.watermark()) continue;
            ASSERT_TRUE(db.commit(kKey, state, b.first, b.last)) << "in order, right above W: never refused";
            tracker.put(kKey, state);
        }
        check(tracker.snapshot(kKey));
        ASSERT_EQ(tracker.snapshot(kKey).watermark(), in_order.back().last);
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
    ContiguousWatermark state = tracker.snapshot(kKey);
    for (const SeqRange r : {SeqRange{1, 10}, SeqRange{15, 20}, SeqRange{30, 31}})
        db.commit(kKey, state, r.first, r.last);
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
    std::vector<std::uint64_t> refused;
    {
        auto transaction = store.begin();
        auto commit = [&](std::uint64_t first, std::size_t count) {
            test::BatchSpec spec;
            spec.incarnation = kKey.incarnation;
            spec.first_seq = first;
            spec.count = count;
            const ReadingBatch batch{kKey.device, BatchBody{test::header_for(spec), test::records_for(spec)}};
            const std::vector<SeqRange> fresh = state.missing(first, first + count - 1);
            if (!state.add(first, first + count - 1)) {
                refused.push_back(first);
                return;
            }
            transaction->insert_readings(batch, fresh, std::nullopt, 0);
        };
        commit(1, 4);
        for (std::uint64_t seq = 10; seq <= 20; seq += 2) commit(seq, 1);
        commit(9, 3);  // 9..11: only 9 and 11 are new
        transaction->save_watermark(kKey, state.watermark(), state.ranges_above(), 0);
        transaction->commit();
    }
    EXPECT_EQ(refused, (std::vector<std::uint64_t>{14, 16, 18, 20}));
    EXPECT_EQ(state.ranges_above(), (Ranges{{9, 12}}));
    tracker.put(kKey, state);
    tracker.snapshot({"dev-2", 1});  // evicts kKey

    const ContiguousWatermark reloaded = tracker.snapshot(kKey);
    EXPECT_EQ(reloaded.watermark(), 4u);
    EXPECT_EQ(reloaded.ranges_above(), (Ranges{{9, 12}}));
    sqlite::Statement seqs = store.database().prepare("SELECT seq FROM readings ORDER BY id");
    std::vector<std::int64_t> stored;
    while (seqs.step()) stored.push_back(seqs.column_int64(0));
    EXPECT_EQ(stored, (std::vector<std::int64_t>{1, 2, 3, 4, 10, 12, 9, 11}))
        << "each seq once, refused ones not at all";
}

}  // namespace
}  // namespace fieldlink::gateway
