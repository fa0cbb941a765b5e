#include "fieldlink/reader/telemetry_reporter.hpp"

#include <limits>

namespace fieldlink::reader {

TelemetryReporter::TelemetryReporter(ReadingStore& store, WallClock& wall_clock) noexcept
    : store_(store), wall_clock_(wall_clock) {}

void TelemetryReporter::start(std::uint32_t interval_ms, std::uint64_t now) noexcept {
    interval_ms_ = interval_ms;
    next_ms_ = now;
    oldest_cached_ = false;
}

bool TelemetryReporter::take_due(std::uint64_t now) noexcept {
    if (interval_ms_ == 0 || now < next_ms_) return false;
    next_ms_ = now + interval_ms_;
    return true;
}

bool TelemetryReporter::next_due_ms(std::uint64_t* at) const noexcept {
    if (interval_ms_ == 0) return false;
    *at = next_ms_;
    return true;
}

protocol::Telemetry TelemetryReporter::build(std::uint64_t now, std::uint64_t reconnects,
                                             std::uint64_t acked_through) noexcept {
    protocol::Telemetry t;
    t.incarnation = store_.incarnation();
    t.boot = store_.boot();
    constexpr std::uint64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();
    t.reconnects = static_cast<std::uint32_t>(reconnects < kMaxU32 ? reconnects : kMaxU32);
    t.uptime_ms = now;
    t.held = store_.held();
    t.oldest_unacked_age_ms = oldest_unacked_age_ms(now);
    t.dropped = store_.dropped();
    t.next_seq = store_.next_seq();
    t.acked_through = acked_through;
    return t;
}

std::uint64_t TelemetryReporter::oldest_unacked_age_ms(std::uint64_t now) noexcept {
    if (store_.held() == 0) return 0;
    const std::uint64_t oldest = store_.oldest_seq();
    if (!oldest_cached_ || oldest_cached_seq_ != oldest) {
        StoredReading reading;
        if (store_.read(oldest, &reading, 1) != 1) return 0;
        oldest_cached_ = true;
        oldest_cached_seq_ = oldest;
        oldest_cached_boot_ = reading.boot;
        oldest_cached_mono_ms_ = reading.record.mono_ms;
    }
    return wall_clock_.age_ms(oldest_cached_boot_, oldest_cached_mono_ms_, now);
}

}  // namespace fieldlink::reader
