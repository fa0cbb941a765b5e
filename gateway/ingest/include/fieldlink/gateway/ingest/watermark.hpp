// The contiguous commit watermark of each (device, incarnation): the highest W
// such that every reading 1..W is stored (or lies below a floor_seq the device
// sent). This is what the commit ack reports and what the device trims to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fieldlink/gateway/store/keys.hpp"
#include "fieldlink/gateway/store/store.hpp"

namespace fieldlink::gateway {

// Watermark plus the stored ranges above it (an interval set: disjoint,
// sorted, never adjacent to each other or to the watermark).
class ContiguousWatermark {
public:
    ContiguousWatermark() = default;
    explicit ContiguousWatermark(std::uint64_t watermark) : watermark_(watermark) {}

    std::uint64_t watermark() const noexcept { return watermark_; }

    // Marks first..last (first >= 1, first <= last) as stored. Idempotent.
    void add(std::uint64_t first, std::uint64_t last);
    // The device will never send anything below floor_seq again: W >= floor_seq - 1.
    void apply_floor(std::uint64_t floor_seq);

    std::vector<SeqRange> ranges_above() const;
    std::size_t range_count() const noexcept { return above_.size(); }

private:
    void absorb();

    std::uint64_t watermark_ = 0;
    std::map<std::uint64_t, std::uint64_t> above_;  // first -> last
};

// Committed watermarks of every (device, incarnation) seen in this run.
// Owned by the writer thread. Changes are made on a copy (snapshot) and put
// back only after the database commit, so a failed commit leaves no trace.
class WatermarkTracker {
public:
    explicit WatermarkTracker(WatermarkSource& source) : source_(source) {}

    // The committed state, loaded from the source on first touch. Throws what the source throws.
    ContiguousWatermark snapshot(const DeviceKey& key);
    // Replaces the committed state after the commit succeeded.
    void put(const DeviceKey& key, ContiguousWatermark state);

    std::size_t size() const noexcept { return states_.size(); }

private:
    WatermarkSource& source_;
    std::map<DeviceKey, ContiguousWatermark> states_;
};

}  // namespace fieldlink::gateway
