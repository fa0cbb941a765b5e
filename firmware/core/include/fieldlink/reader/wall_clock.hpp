// The device's half of the time rule (docs/protocol.md): a device may have no
// real-time clock, so each boot has its own wall-clock offset
// (unix_ms = mono_ms + offset), learnt from commit acks and noted in the store
// so that readings of that boot still carry it after a reboot. Everything that
// turns mono_ms into wall-clock time on the device is here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::reader {

class WallClock {
public:
    // Earlier boots whose offsets are remembered at once: one for the batch
    // being sent, one for the oldest reading that telemetry ages.
    static constexpr std::size_t kCachedBoots = 2;

    // `store` must outlive the wall clock.
    explicit WallClock(ReadingStore& store) noexcept;

    WallClock(const WallClock&) = delete;
    WallClock& operator=(const WallClock&) = delete;

    // A new start. A store that already knows the running boot's offset (the
    // reader restarted within one boot) lets batches carry it before the first
    // ack. Forgets the earlier boots' cached offsets.
    void start(std::uint32_t tolerance_ms) noexcept;

    // An accepted commit ack, handled at mono `now`, carried the gateway's
    // clock: the running boot's offset becomes gateway_unix_ms - now (the latest
    // ack wins). It goes to the store when the boot first learns it and again
    // only when it has moved by more than the tolerance from what was last
    // noted (each note may cost a flash slot). Returns the store's failure of
    // that note (IoError, InvalidArgument: the next ack tries again), else Ok;
    // Full counts as noted (the store keeps it in RAM and writes it later).
    StoreStatus learn(std::int64_t gateway_unix_ms, std::uint64_t now) noexcept;

    // The running boot's offset is known (from an ack, or from the store at start).
    bool known() const noexcept { return known_; }
    std::int64_t offset_ms() const noexcept { return offset_ms_; }  // 0 while unknown

    // The offset of `boot` for a batch of its readings: the running boot's from
    // the latest ack, an earlier one's as the store noted it in that boot (asked
    // once per boot: a flash spool scans its log to answer). False, with
    // *offset_ms = 0, when that boot's offset is unknown.
    bool offset_for(std::uint32_t boot, std::int64_t* offset_ms) noexcept;

    // How old, at mono `now`, a reading taken at mono_ms in `boot` is: for the
    // running boot now - mono_ms; for an earlier one, wall-clock now minus its
    // wall-clock time when both boots' offsets are known, else `now` (it was
    // taken before this boot started: a lower bound). Never negative.
    std::uint64_t age_ms(std::uint32_t boot, std::uint64_t mono_ms, std::uint64_t now) noexcept;

    std::uint64_t offsets_noted() const noexcept { return offsets_noted_; }  // notes the store accepted

private:
    // What the store said about an earlier boot; it never changes once that
    // boot has ended, so it is asked once.
    struct BootOffset {
        bool valid = false;
        bool known = false;
        std::uint32_t boot = 0;
        std::int64_t offset_ms = 0;
    };

    bool earlier_boot_offset(std::uint32_t boot, std::int64_t* offset_ms) noexcept;

    ReadingStore& store_;
    std::uint32_t tolerance_ms_ = 0;
    std::int64_t offset_ms_ = 0;        // the running boot's, valid when known_
    std::int64_t noted_offset_ms_ = 0;  // what was last handed to the store, when noted_
    std::array<BootOffset, kCachedBoots> boot_offsets_{};
    std::uint64_t offsets_noted_ = 0;
    std::uint32_t victim_ = 0;  // the cache entry replaced next (oldest first)
    bool known_ = false;
    bool noted_ = false;
};

}  // namespace fieldlink::reader
