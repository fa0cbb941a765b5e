// Sampling into the store: each channel on its own period grid, a NaN from a
// sensor is "no value" (counted, never stored), and a full store that refuses
// is reported once, not per sample. No heap; the schedule is a fixed table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fieldlink/hal/sensors.hpp"
#include "fieldlink/reader/config_defaults.hpp"
#include "fieldlink/reader/reader_events.hpp"
#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::reader {

inline constexpr std::size_t kMaxChannels = FIELDLINK_READER_MAX_CHANNELS;

struct SamplerCounters {
    std::uint64_t produced = 0;       // readings appended to the store
    std::uint64_t refused = 0;        // samples not stored because the store was full (RefuseNew)
    std::uint64_t sensor_errors = 0;  // sensor reads that failed or gave no value (NaN); never stored
    std::uint64_t store_errors = 0;   // appends that the medium failed
};

class Sampler {
public:
    // The references must outlive the sampler; `events` may be null.
    Sampler(ReadingStore& store, hal::Sensors& sensors, ReaderEvents* events) noexcept;

    Sampler(const Sampler&) = delete;
    Sampler& operator=(const Sampler&) = delete;

    // Schedules channel ch (0 .. periods_ms.size() - 1, at most kMaxChannels)
    // every periods_ms[ch] (> 0) ms, the first sample of each at `now`, and
    // starts sampling. `periods_ms` must stay valid while the sampler runs.
    void start(std::span<const std::uint32_t> periods_ms, std::uint64_t now) noexcept;

    // No more samples (a drain before exit); start() resumes.
    void stop() noexcept { sampling_ = false; }
    bool sampling() const noexcept { return sampling_; }

    // Takes one sample of every channel due at `now` and appends it to the
    // store. Each channel stays on its period grid; after a stall its missed
    // slots are skipped rather than sampled in a burst. Reports each stored
    // reading, failed sample and store error through the events.
    void sample_due(std::uint64_t now) noexcept;

    // When the next sample falls due (the earliest channel); false when not
    // sampling.
    bool next_due_ms(std::uint64_t* at) const noexcept;

    // Channels the sensors offer (what a configuration may ask for).
    std::size_t channels_available() const noexcept { return sensors_.channel_count(); }
    const SamplerCounters& counters() const noexcept { return counters_; }

private:
    ReadingStore& store_;
    hal::Sensors& sensors_;
    ReaderEvents* events_;
    std::span<const std::uint32_t> periods_ms_;
    bool sampling_ = false;
    bool refusing_ = false;  // the store is full and refuses; reported once
    std::array<std::uint64_t, kMaxChannels> next_due_ms_{};
    SamplerCounters counters_;
};

}  // namespace fieldlink::reader
