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
// sorted, never adjacent to each other or to the watermark). Together they say
// exactly which seqs are stored, so the saver dedupes with them and the
// readings table needs no unique index (that index cost a random page per
// device per commit, and grew with the file: docs/benchmarks.md "Growth").
//
// New ranges are capped at max_ranges, so that a device sending wildly out of
// order (or every other seq, on purpose) cannot make one entry huge. At the
// cap a batch that would open one more range is refused: add() returns false,
// the saver stores nothing of it and does not ack it, and the device sends it
// again once the gaps below it are filled (it always resends oldest first).
// Memory and the database never disagree, so W never passes a gap.
class ContiguousWatermark {
public:
    static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

    ContiguousWatermark() = default;
    explicit ContiguousWatermark(std::uint64_t watermark, std::size_t max_ranges = kUnlimited)
        : watermark_(watermark), max_ranges_(max_ranges) {}

    std::uint64_t watermark() const noexcept { return watermark_; }

    // Marks first..last (first >= 1, first <= last) as stored. Idempotent.
    // Returns false, changing nothing, when that needs a new range and
    // max_ranges are held already.
    bool add(std::uint64_t first, std::uint64_t last);
    // The parts of first..last not yet stored, ascending (empty: all stored).
    std::vector<SeqRange> missing(std::uint64_t first, std::uint64_t last) const;
    // The device will never send anything below floor_seq again: W >= floor_seq - 1.
    void apply_floor(std::uint64_t floor_seq);

    // Takes in what the database holds: its watermark when higher, and the
    // stored ranges above it, all of them even past the cap (they are stored,
    // and forgetting one would store its readings twice).
    void reload(const StoredWatermark& stored);

    std::vector<SeqRange> ranges_above() const { return above_; }
    std::size_t range_count() const noexcept { return above_.size(); }
    std::size_t max_ranges() const noexcept { return max_ranges_; }

private:
    void merge(std::uint64_t first, std::uint64_t last);
    void absorb();

    std::uint64_t watermark_ = 0;
    std::size_t max_ranges_ = kUnlimited;
    // Sorted; capacity grows only to the cap (or 4), so the cap bounds memory, not just the count.
    std::vector<SeqRange> above_;
};

// Committed watermarks of the most recently used (device, incarnation)s, at
// most max_incarnations of them. Owned by the writer thread. Changes are made
// on a copy (snapshot) and put back only after the database commit, so a failed
// commit leaves no trace.
//
// Memory is only a cache of the database: every commit saves the watermark and
// the ranges above it of every key it touched, so an entry pushed out is
// rebuilt by load_watermark when its device comes back. Eviction drops only the cached copy: a snapshot being staged for a
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
    // Replaces the committed state after the commit succeeded.
    void put(const DeviceKey& key, ContiguousWatermark state);

    std::size_t size() const noexcept { return states_.size(); }
    std::size_t capacity() const noexcept { return states_.capacity(); }
    // How often the source was asked (first touch, or reload after eviction).
    std::uint64_t loads() const noexcept { return loads_; }

private:
    WatermarkSource& source_;
    std::size_t max_ranges_;
    LruMap<DeviceKey, ContiguousWatermark> states_;
    std::uint64_t loads_ = 0;
};

}  // namespace fieldlink::gateway
