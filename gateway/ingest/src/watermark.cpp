#include "fieldlink/gateway/ingest/watermark.hpp"

#include <algorithm>
#include <iterator>

namespace fieldlink::gateway {

void ContiguousWatermark::add(std::uint64_t first, std::uint64_t last) {
    if (first == 0 || first > last || last <= watermark_) return;
    first = std::max(first, watermark_ + 1);  // watermark_ < last, so no overflow

    // Merge with a range that overlaps or touches on the left. Comparisons are
    // written as `x - 1 <= y` (x >= 1) so that UINT64_MAX never overflows.
    auto next = above_.upper_bound(first);
    if (next != above_.begin()) {
        auto previous = std::prev(next);
        if (first - 1 <= previous->second) {
            first = previous->first;
            last = std::max(last, previous->second);
            above_.erase(previous);
        }
    }
    // ...and with every range that starts inside or right after it.
    while (next != above_.end() && next->first - 1 <= last) {
        last = std::max(last, next->second);
        next = above_.erase(next);
    }
    above_.emplace(first, last);
    absorb();
}

void ContiguousWatermark::apply_floor(std::uint64_t floor_seq) {
    if (floor_seq == 0 || floor_seq - 1 <= watermark_) return;
    watermark_ = floor_seq - 1;
    absorb();
}

void ContiguousWatermark::absorb() {
    // Ranges starting at or below W + 1 join the watermark; ranges wholly below it vanish.
    while (!above_.empty() && above_.begin()->first - 1 <= watermark_) {
        watermark_ = std::max(watermark_, above_.begin()->second);
        above_.erase(above_.begin());
    }
}

std::vector<SeqRange> ContiguousWatermark::ranges_above() const {
    std::vector<SeqRange> ranges;
    ranges.reserve(above_.size());
    for (const auto& [first, last] : above_) ranges.push_back({first, last});
    return ranges;
}

ContiguousWatermark WatermarkTracker::snapshot(const DeviceKey& key) {
    if (auto found = states_.find(key); found != states_.end()) return found->second;
    const StoredWatermark stored = source_.load_watermark(key);
    ContiguousWatermark state(stored.watermark);
    for (const SeqRange& range : stored.ranges_above) state.add(range.first, range.last);
    states_.emplace(key, state);
    return state;
}

void WatermarkTracker::put(const DeviceKey& key, ContiguousWatermark state) {
    states_.insert_or_assign(key, std::move(state));
}

}  // namespace fieldlink::gateway
