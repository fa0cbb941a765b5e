#include "fieldlink/gateway/ingest/watermark.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace fieldlink::gateway {

bool ContiguousWatermark::add(std::uint64_t first, std::uint64_t last) {
    if (first == 0 || first > last || last <= watermark_) return true;
    first = std::max(first, watermark_ + 1);  // watermark_ < last, so no overflow
    // Comparisons are written as `x - 1 < y` (x >= 1) so that UINT64_MAX never overflows.
    const auto begin =
        std::partition_point(above_.begin(), above_.end(), [first](const SeqRange& r) { return r.last < first - 1; });
    const bool joins_a_range = begin != above_.end() && begin->first - 1 <= last;
    const bool joins_the_watermark = first - 1 <= watermark_;
    if (!joins_a_range && !joins_the_watermark && above_.size() >= max_ranges_) return false;
    merge(first, last);
    return true;
}

void ContiguousWatermark::merge(std::uint64_t first, std::uint64_t last) {
    // The first range that overlaps or touches first..last on the left...
    const auto begin =
        std::partition_point(above_.begin(), above_.end(), [first](const SeqRange& r) { return r.last < first - 1; });
    // ...and every range after it that starts inside or right after first..last.
    auto end = begin;
    while (end != above_.end() && end->first - 1 <= last) {
        first = std::min(first, end->first);
        last = std::max(last, end->last);
        ++end;
    }
    if (begin != end) {
        *begin = {first, last};
        above_.erase(std::next(begin), end);
        absorb();
        return;
    }
    if (first - 1 <= watermark_) {  // right above W: no range needed
        watermark_ = std::max(watermark_, last);
        absorb();
        return;
    }
    const auto index = begin - above_.begin();  // reserve() below moves the elements
    if (above_.size() == above_.capacity()) {
        // Grow as a vector would, but never past the cap (a reload may pass it: then as a vector does).
        const std::size_t doubled = std::max<std::size_t>(4, above_.capacity() * 2);
        above_.reserve(above_.size() < max_ranges_ ? std::min(doubled, max_ranges_) : doubled);
    }
    above_.insert(above_.begin() + index, SeqRange{first, last});
}

std::vector<SeqRange> ContiguousWatermark::missing(std::uint64_t first, std::uint64_t last) const {
    std::vector<SeqRange> gaps;
    if (first == 0 || first > last || last <= watermark_) return gaps;
    std::uint64_t next = std::max(first, watermark_ + 1);  // the lowest seq not yet accounted for
    auto range =
        std::partition_point(above_.begin(), above_.end(), [next](const SeqRange& r) { return r.last < next; });
    for (; range != above_.end() && range->first <= last; ++range) {
        if (range->first > next) gaps.push_back({next, range->first - 1});
        if (range->last >= last) return gaps;
        next = range->last + 1;
    }
    gaps.push_back({next, last});
    return gaps;
}

void ContiguousWatermark::apply_floor(std::uint64_t floor_seq) {
    if (floor_seq == 0 || floor_seq - 1 <= watermark_) return;
    watermark_ = floor_seq - 1;
    absorb();
}

void ContiguousWatermark::reload(const StoredWatermark& stored) {
    if (stored.watermark > watermark_) {
        watermark_ = stored.watermark;
        absorb();
    }
    // What memory still holds is stored too, so adding the database's ranges to it loses nothing.
    for (const SeqRange& range : stored.ranges_above) {
        if (range.first != 0 && range.first <= range.last && range.last > watermark_) {
            merge(std::max(range.first, watermark_ + 1), range.last);
        }
    }
}

void ContiguousWatermark::absorb() {
    // Ranges starting at or below W + 1 join the watermark; ranges wholly below it vanish.
    auto joined = above_.begin();
    while (joined != above_.end() && joined->first - 1 <= watermark_) {
        watermark_ = std::max(watermark_, joined->last);
        ++joined;
    }
    above_.erase(above_.begin(), joined);
}

WatermarkTracker::WatermarkTracker(WatermarkSource& source, std::size_t max_incarnations,
                                   std::size_t max_ranges_per_incarnation)
    : source_(source), max_ranges_(max_ranges_per_incarnation), states_(max_incarnations) {
    if (max_ranges_ == 0) {
        throw std::invalid_argument("watermark tracker: max_ranges_per_incarnation must be at least 1");
    }
}

ContiguousWatermark WatermarkTracker::snapshot(const DeviceKey& key) {
    if (const ContiguousWatermark* cached = states_.find(key)) return *cached;
    ContiguousWatermark state(0, max_ranges_);
    state.reload(source_.load_watermark(key));
    ++loads_;
    states_.insert_or_assign(key, state);
    return state;
}

void WatermarkTracker::put(const DeviceKey& key, ContiguousWatermark state) {
    states_.insert_or_assign(key, std::move(state));
}

}  // namespace fieldlink::gateway
