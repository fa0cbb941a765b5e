#include "fieldlink/gateway/ingest/watermark.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace fieldlink::gateway {

void ContiguousWatermark::add(std::uint64_t first, std::uint64_t last) {
    if (first == 0 || first > last || last <= watermark_) return;
    first = std::max(first, watermark_ + 1);  // watermark_ < last, so no overflow

    // The first range that overlaps or touches first..last on the left. Comparisons
    // are written as `x - 1 < y` (x >= 1) so that UINT64_MAX never overflows.
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
        watermark_ = last;
        absorb();
        return;
    }
    // A new range, at `index` among the others.
    const auto index = static_cast<std::size_t>(begin - above_.begin());
    if (above_.size() >= max_ranges_) {
        // At the cap the highest range leaves memory, the new one when it is the highest.
        if (index == above_.size()) {
            note_dropped(first);
            return;
        }
        note_dropped(above_.back().first);
        above_.pop_back();
    }
    if (above_.size() == above_.capacity()) {
        // Grow as a vector would, but never past the cap.
        const std::size_t doubled = std::max<std::size_t>(4, above_.capacity() * 2);
        above_.reserve(std::max<std::size_t>(1, std::min(doubled, max_ranges_)));
    }
    above_.insert(above_.begin() + static_cast<std::ptrdiff_t>(index), SeqRange{first, last});
}

void ContiguousWatermark::apply_floor(std::uint64_t floor_seq) {
    if (floor_seq == 0 || floor_seq - 1 <= watermark_) return;
    watermark_ = floor_seq - 1;
    absorb();
}

void ContiguousWatermark::reload(const StoredWatermark& stored) {
    dropped_from_ = 0;
    if (stored.watermark > watermark_) {
        watermark_ = stored.watermark;
        absorb();
    }
    // What memory still holds is stored too, so adding the database's ranges to it loses nothing.
    for (const SeqRange& range : stored.ranges_above) add(range.first, range.last);
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

void ContiguousWatermark::note_dropped(std::uint64_t first) noexcept {
    dropped_from_ = dropped_from_ == 0 ? first : std::min(dropped_from_, first);
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

void WatermarkTracker::settle(const DeviceKey& key, ContiguousWatermark& state) {
    if (!state.needs_reload()) return;
    state.reload(source_.load_watermark(key));
    ++loads_;
}

void WatermarkTracker::put(const DeviceKey& key, ContiguousWatermark state) {
    states_.insert_or_assign(key, std::move(state));
}

}  // namespace fieldlink::gateway
