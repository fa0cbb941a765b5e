// The contiguous commit watermark of each (device, incarnation): the highest W
// such that every reading 1..W is stored (or lies below a floor_seq the device
// sent). This is what the commit ack reports and what the device trims to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "fieldlink/gateway/ingest/lru_map.hpp"
#include "fieldlink/gateway/store/keys.hpp"
#include "fieldlink/gateway/store/store.hpp"

namespace fieldlink::gateway {

// Watermark plus the stored ranges above it (an interval set: disjoint,
// sorted, never adjacent to each other or to the watermark).
//
// The ranges kept are capped at max_ranges, so that a device sending wildly out
// of order (or every other seq, on purpose) cannot make one entry huge. At the
// cap the highest range leaves memory; its readings are still in the database.
// The rule that keeps the ack honest:
//   - every range in memory is stored, so W only ever covers stored readings
//     and never passes a gap;
//   - below dropped_from() memory knows every stored range above W, so W is
//     exact while W + 1 < dropped_from();
//   - once W reaches dropped_from() - 1, needs_reload() says so, and reload()
//     with what the database holds lets W move on (WatermarkTracker::settle
//     does this before the state is acked), so W still reaches the true
//     contiguous value.
class ContiguousWatermark {
public:
    static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

    ContiguousWatermark() = default;
    explicit ContiguousWatermark(std::uint64_t watermark, std::size_t max_ranges = kUnlimited)
        : watermark_(watermark), max_ranges_(max_ranges) {}

    std::uint64_t watermark() const noexcept { return watermark_; }

    // Marks first..last (first >= 1, first <= last) as stored. Idempotent.
    void add(std::uint64_t first, std::uint64_t last);
    // The device will never send anything below floor_seq again: W >= floor_seq - 1.
    void apply_floor(std::uint64_t floor_seq);

    // Takes in what the database holds: its watermark when higher, and the
    // stored ranges above it. Forgets that anything was dropped (the database
    // has it all), then applies the cap again.
    void reload(const StoredWatermark& stored);
    // W has reached readings dropped at the cap: only reload() can tell whether it may go further.
    bool needs_reload() const noexcept { return dropped_from_ != 0 && watermark_ >= dropped_from_ - 1; }
    // The lowest first seq of a range dropped at the cap since the last reload; 0 when none was.
    std::uint64_t dropped_from() const noexcept { return dropped_from_; }

    std::vector<SeqRange> ranges_above() const { return above_; }
    std::size_t range_count() const noexcept { return above_.size(); }
    std::size_t max_ranges() const noexcept { return max_ranges_; }

private:
    void absorb();
    void note_dropped(std::uint64_t first) noexcept;

    std::uint64_t watermark_ = 0;
    std::size_t max_ranges_ = kUnlimited;
    std::uint64_t dropped_from_ = 0;  // 0: nothing dropped (a dropped range starts at W + 2 or later, so >= 2)
    // Sorted; capacity never grows past max_ranges (or 4), so the cap bounds memory, not just the count.
    std::vector<SeqRange> above_;
};

// Committed watermarks of the most recently used (device, incarnation)s, at
// most max_incarnations of them. Owned by the writer thread. Changes are made
// on a copy (snapshot) and put back only after the database commit, so a failed
// commit leaves no trace.
//
// Memory is only a cache of the database: every commit saves the watermark of
// every key it touched, and the ranges above it are the readings themselves,
// so an entry pushed out is rebuilt by load_watermark when its device comes
// back. Eviction drops only the cached copy: a snapshot being staged for a
// commit is the caller's, and put() stores it whatever was evicted meanwhile.
class WatermarkTracker {
public:
    static constexpr std::size_t kDefaultMaxIncarnations = 10000;
    static constexpr std::size_t kDefaultMaxRanges = 1024;

    // Throws std::invalid_argument when a limit is 0.
    explicit WatermarkTracker(WatermarkSource& source, std::size_t max_incarnations = kDefaultMaxIncarnations,
                              std::size_t max_ranges_per_incarnation = kDefaultMaxRanges);

    // The committed state; loaded from the source when not in memory. Throws what the source throws.
    ContiguousWatermark snapshot(const DeviceKey& key);
    // Call on a staged state after each change: when W has reached ranges dropped
    // at the cap, reloads them from the source so W can move past them. Inside
    // a store transaction the source sees that transaction's rows, which is
    // right: the staged state is kept only if they commit. Throws what the source throws.
    void settle(const DeviceKey& key, ContiguousWatermark& state);
    // Replaces the committed state after the commit succeeded.
    void put(const DeviceKey& key, ContiguousWatermark state);

    std::size_t size() const noexcept { return states_.size(); }
    std::size_t capacity() const noexcept { return states_.capacity(); }
    // How often the source was asked (first touch, reload after eviction, or a settle).
    std::uint64_t loads() const noexcept { return loads_; }

private:
    WatermarkSource& source_;
    std::size_t max_ranges_;
    LruMap<DeviceKey, ContiguousWatermark> states_;
    std::uint64_t loads_ = 0;
};

}  // namespace fieldlink::gateway
