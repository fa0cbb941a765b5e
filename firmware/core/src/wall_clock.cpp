#include "fieldlink/reader/wall_clock.hpp"

namespace fieldlink::reader {
namespace {

// |a - b| without overflow for any two offsets.
std::uint64_t distance(std::int64_t a, std::int64_t b) noexcept {
    const auto ua = static_cast<std::uint64_t>(a);
    const auto ub = static_cast<std::uint64_t>(b);
    return a > b ? ua - ub : ub - ua;
}

}  // namespace

WallClock::WallClock(ReadingStore& store) noexcept : store_(store) {}

void WallClock::start(std::uint32_t tolerance_ms) noexcept {
    tolerance_ms_ = tolerance_ms;
    known_ = store_.wall_offset(store_.boot(), &offset_ms_);
    if (!known_) offset_ms_ = 0;
    noted_ = known_;
    noted_offset_ms_ = offset_ms_;
    boot_offsets_ = {};
}

StoreStatus WallClock::learn(std::int64_t gateway_unix_ms, std::uint64_t now) noexcept {
    // Wrapping arithmetic: an absurd gateway time gives an absurd offset, never UB.
    offset_ms_ = static_cast<std::int64_t>(static_cast<std::uint64_t>(gateway_unix_ms) - now);
    known_ = true;
    if (noted_ && distance(offset_ms_, noted_offset_ms_) <= tolerance_ms_) return StoreStatus::Ok;
    const StoreStatus noted = store_.note_wall_offset(offset_ms_);
    if (noted != StoreStatus::Ok && noted != StoreStatus::Full) return noted;
    noted_ = true;
    noted_offset_ms_ = offset_ms_;
    ++offsets_noted_;
    return StoreStatus::Ok;
}

bool WallClock::offset_for(std::uint32_t boot, std::int64_t* offset_ms) noexcept {
    bool found = false;
    std::int64_t offset = 0;
    if (boot == store_.boot()) {
        found = known_;
        offset = offset_ms_;
    } else {
        found = earlier_boot_offset(boot, &offset);
    }
    *offset_ms = found ? offset : 0;
    return found;
}

bool WallClock::earlier_boot_offset(std::uint32_t boot, std::int64_t* offset_ms) noexcept {
    for (const BootOffset& entry : boot_offsets_) {
        if (entry.valid && entry.boot == boot) {
            *offset_ms = entry.offset_ms;
            return entry.known;
        }
    }
    BootOffset& entry = boot_offsets_[victim_];
    victim_ = (victim_ + 1) % kCachedBoots;
    entry.valid = true;
    entry.boot = boot;
    entry.offset_ms = 0;
    entry.known = store_.wall_offset(boot, &entry.offset_ms);
    *offset_ms = entry.offset_ms;
    return entry.known;
}

std::uint64_t WallClock::age_ms(std::uint32_t boot, std::uint64_t mono_ms, std::uint64_t now) noexcept {
    if (boot == store_.boot()) return now > mono_ms ? now - mono_ms : 0;
    std::int64_t then_offset = 0;
    if (known_ && earlier_boot_offset(boot, &then_offset)) {
        // Wall-clock now minus the reading's wall-clock time (wrapping, as above).
        const std::uint64_t wall_now = now + static_cast<std::uint64_t>(offset_ms_);
        const std::uint64_t wall_then = mono_ms + static_cast<std::uint64_t>(then_offset);
        const auto age = static_cast<std::int64_t>(wall_now - wall_then);
        return age > 0 ? static_cast<std::uint64_t>(age) : 0;
    }
    return now;  // taken before this boot started: at least this old
}

}  // namespace fieldlink::reader
