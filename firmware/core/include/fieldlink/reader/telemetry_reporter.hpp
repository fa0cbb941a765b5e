// Device health (protocol::Telemetry, published on .../telemetry): when the
// next message is due and what it says. The age of the oldest unacknowledged
// reading comes from the wall clock; that reading is read from the store only
// when it changes.
#pragma once

#include <cstdint>

#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/reader/reading_store.hpp"
#include "fieldlink/reader/wall_clock.hpp"

namespace fieldlink::reader {

class TelemetryReporter {
public:
    // The references must outlive the reporter.
    TelemetryReporter(ReadingStore& store, WallClock& wall_clock) noexcept;

    TelemetryReporter(const TelemetryReporter&) = delete;
    TelemetryReporter& operator=(const TelemetryReporter&) = delete;

    // One message every interval_ms (0 turns telemetry off), the first one due
    // at `now` (as soon as the link is up). Forgets the cached oldest reading.
    void start(std::uint32_t interval_ms, std::uint64_t now) noexcept;

    // True when a message is due at `now`; the next one is then due one
    // interval later (a late message does not bring the next one forward).
    bool take_due(std::uint64_t now) noexcept;
    // When the next message is due; false when telemetry is off.
    bool next_due_ms(std::uint64_t* at) const noexcept;

    // The message at mono `now`. `reconnects` saturates at 2^32 - 1.
    protocol::Telemetry build(std::uint64_t now, std::uint64_t reconnects, std::uint64_t acked_through) noexcept;

    // Age of the oldest held reading (WallClock::age_ms), 0 when none is held
    // or the store cannot read it (the store reports that itself).
    std::uint64_t oldest_unacked_age_ms(std::uint64_t now) noexcept;

private:
    ReadingStore& store_;
    WallClock& wall_clock_;
    std::uint32_t interval_ms_ = 0;
    std::uint64_t next_ms_ = 0;
    // The oldest held reading, read once per change (valid when oldest_cached_).
    std::uint32_t oldest_cached_boot_ = 0;
    std::uint64_t oldest_cached_seq_ = 0;
    std::uint64_t oldest_cached_mono_ms_ = 0;
    bool oldest_cached_ = false;
};

}  // namespace fieldlink::reader
