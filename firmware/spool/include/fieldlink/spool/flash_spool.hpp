// Power-loss-safe reading store on NOR flash: a log-structured queue over
// sectors used round robin. The flash is the only state: mount() rebuilds
// everything by scanning, so there is no metadata that can disagree with the
// log. Freestanding: no heap, RAM use is fixed (see sizeof(FlashSpool)).
// On-flash layout: firmware/spool/README.md (in code: src/spool_format.hpp,
// private to the spool).
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/flash.hpp"
#include "fieldlink/hal/random.hpp"
#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::spool {

struct SpoolConfig {
    reader::FullPolicy full_policy = reader::FullPolicy::DropOldest;
};

// What mount() found and what the spool looks like now (health reports, tests).
struct SpoolStats {
    bool formatted = false;  // the last mount found no log and formatted the flash
    std::uint32_t sector_count = 0;
    std::uint32_t slots_per_sector = 0;  // records per sector
    std::uint32_t live_sectors = 0;      // sectors holding the log (tail .. head)
    std::uint32_t head_sector = 0;       // sector being appended to
    std::uint32_t tail_sector = 0;       // oldest sector of the log
    std::uint32_t head_slots_used = 0;
    std::uint32_t bad_slots = 0;      // unreadable records skipped by the last mount (torn writes)
    std::uint64_t durable_floor = 0;  // trimmed-through seq that a reboot would recover
};

class FlashSpool final : public reader::ReadingStore {
public:
    // The spool keeps references to `flash` and `random`; both must outlive it.
    FlashSpool(hal::Flash& flash, hal::Random& random, SpoolConfig config = {}) noexcept;

    // Scans the flash and recovers the newest valid state; formats blank or
    // unrecognised flash, or a log at the end of its numbering (a new random
    // incarnation; README.md, "End of numbering"). Every mount is a new boot:
    // the boot counter advances and a boot marker is written (if the spool is
    // so full that no slot is free, the marker waits for the first record of
    // the boot; a boot that writes nothing at all may then share its number
    // with the next). Sequence numbers of appends cut short by a power loss are
    // never handed out again, so seqs can have gaps: oldest_seq() is the real
    // lowest held one. Also the way back after any IoError. Not thread-safe:
    // one caller at a time. Failures: InvalidArgument (geometry unusable: fewer
    // than 2 sectors, sectors smaller than 128 bytes, write_size not a power of
    // two dividing 32, more than 4 GiB), IoError (the flash failed; nothing is
    // formatted on a read error).
    reader::StoreStatus mount();
    bool mounted() const noexcept { return mounted_; }

    // ReadingStore. Before a successful mount (or after an IoError, until the
    // next mount) writes return IoError and read() returns 0.
    // append: Full only with FullPolicy::RefuseNew, or at the end of the
    // numbering (2^62 - 2^32 seqs; README.md). A failed append still uses up
    // its sequence number (it may be partly on flash).
    reader::StoreStatus append(const protocol::Record& record, std::uint64_t* seq) override;
    std::size_t read(std::uint64_t from_seq, reader::StoredReading* out, std::size_t max) override;
    // InvalidArgument when through_seq >= next_seq() (nothing changes then).
    reader::StoreStatus trim(std::uint64_t through_seq) override;
    std::uint64_t incarnation() const override { return incarnation_; }
    std::uint32_t boot() const override { return boot_; }
    std::uint64_t oldest_seq() const override { return held_ == 0 ? next_seq_ : oldest_seq_; }
    std::uint64_t next_seq() const override { return next_seq_; }
    std::uint64_t held() const override { return held_; }
    std::uint64_t dropped() const override { return dropped_; }

    // Wall-clock offset (unix_ms = mono_ms + offset) learned in the running
    // boot, kept on flash so that readings of this boot still carry it after a
    // reboot. Writes only when the value changes. Full when the head sector is
    // full and no sector can open without dropping readings: the offset then
    // holds in RAM and goes to flash with the next sector opened (with the next
    // append under DropOldest). IoError as for append.
    reader::StoreStatus note_wall_offset(std::int64_t offset_ms) override;

    // The offset last noted for `boot`; false when that boot never noted one
    // (or none of its readings is held any more). Scans the log once per boot
    // asked about (one boot is cached).
    bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) override;

    // Every seq <= this is trimmed or dropped.
    std::uint64_t floor_seq() const noexcept { return floor_; }
    SpoolStats stats() const noexcept;

    // Whether mount() accepts this geometry (see mount()).
    static bool usable(const hal::FlashGeometry& geometry) noexcept;
    // Readings the flash can hold with this geometry when no markers are
    // written: one sector always stays free for rotation. 0 when not usable.
    static std::uint64_t capacity(const hal::FlashGeometry& geometry) noexcept;

private:
    struct Position {
        std::uint32_t sector = 0;
        std::uint32_t slot = 0;
    };
    enum class Purpose : std::uint8_t { Reading, Marker };

    // Bytes of slots read from flash at once while scanning (whole slots).
    static constexpr std::size_t kScanBufferSize = 256;

    std::uint32_t next_sector(std::uint32_t sector) const noexcept;
    std::uint32_t previous_sector(std::uint32_t sector) const noexcept;
    std::uint32_t sector_address(std::uint32_t sector) const noexcept;
    std::uint32_t slot_address(std::uint32_t sector, std::uint32_t slot) const noexcept;

    reader::StoreStatus fail();  // poisons the spool until the next mount
    reader::StoreStatus format();
    reader::StoreStatus recover_head();
    reader::StoreStatus count_held();
    reader::StoreStatus reclaim();
    reader::StoreStatus open_sector(std::uint64_t floor, std::uint64_t dropped);
    reader::StoreStatus rotate(Purpose purpose, bool* refused);
    reader::StoreStatus write_slot(const std::uint8_t* bytes);
    reader::StoreStatus write_marker(std::uint8_t type, std::uint64_t value, bool* written);
    reader::StoreStatus sector_max_seq(std::uint32_t sector, std::uint64_t* max_seq);
    reader::StoreStatus locate(std::uint64_t seq, Position* position);

    // Calls visit(slot, position) for each slot from `from` to the end of the
    // log; visit returns false to stop. Defined in the .cpp (no std::function).
    template <typename Visit>
    reader::StoreStatus scan(Position from, Visit&& visit);

    hal::Flash& flash_;
    hal::Random& random_;
    SpoolConfig config_;
    hal::FlashGeometry geometry_{};
    std::uint32_t slots_per_sector_ = 0;

    bool mounted_ = false;
    bool formatted_ = false;
    std::uint32_t bad_slots_ = 0;

    std::uint64_t incarnation_ = 0;
    std::uint32_t boot_ = 0;
    std::uint64_t next_seq_ = 1;
    std::uint64_t floor_ = 0;          // trimmed or dropped through; may be ahead of the flash
    std::uint64_t durable_floor_ = 0;  // what the flash says (headers and trim markers)
    std::uint64_t dropped_ = 0;
    std::uint64_t held_ = 0;
    std::uint64_t oldest_seq_ = 1;

    std::uint32_t head_ = 0;
    std::uint32_t tail_ = 0;
    std::uint32_t live_ = 0;  // sectors from tail to head inclusive
    std::uint32_t head_sector_seq_ = 0;
    std::uint64_t head_base_seq_ = 0;
    std::uint32_t head_next_slot_ = 0;
    std::uint32_t clean_free_ = 0;  // free sectors just before the tail known erased in this boot
    bool tail_max_valid_ = false;   // highest seq of a sector before the head, found by sector_max_seq()
    std::uint32_t tail_max_sector_ = 0;
    std::uint64_t tail_max_seq_ = 0;

    bool offset_known_ = false;  // the running boot has noted its wall-clock offset
    std::int64_t offset_ms_ = 0;
    bool offset_on_flash_ = false;     // ... and that note is on flash
    bool offset_cache_valid_ = false;  // the last wall_offset() lookup of an earlier boot
    bool offset_cache_known_ = false;
    std::uint32_t offset_cache_boot_ = 0;
    std::int64_t offset_cache_ms_ = 0;

    bool cursor_valid_ = false;  // where the last read() stopped, to resume without a search
    Position cursor_{};
    std::uint64_t cursor_seq_ = 0;

    std::uint8_t chunk_[kScanBufferSize] = {};
};

}  // namespace fieldlink::spool
