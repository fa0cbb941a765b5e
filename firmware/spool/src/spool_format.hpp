// The spool's on-flash format, byte for byte as in firmware/spool/README.md
// ("Layout"): the 64-byte sector header, the 32-byte slots (readings and
// markers), their CRCs, encode and decode. Bytes in, bytes out: no flash
// access and no log state (that is flash_spool.cpp). Private to the spool; its
// tests reach it through their include path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/flash.hpp"
#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::spool {

inline constexpr std::uint32_t kSectorHeaderSize = 64;  // at the start of every sector in use
inline constexpr std::uint32_t kSlotSize = 32;          // every record takes one slot
inline constexpr std::uint8_t kLayoutVersion = 1;
inline constexpr std::uint32_t kSectorMagic = 0x50534C46;  // bytes "FLSP"

// Record types (slot byte 0).
inline constexpr std::uint8_t kTypeReading = 0x52;  // 'R'
inline constexpr std::uint8_t kTypeTrim = 0x54;     // 'T'
inline constexpr std::uint8_t kTypeBoot = 0x42;     // 'B'
inline constexpr std::uint8_t kTypeOffset = 0x4F;   // 'O'

// Upper bounds of the counters. The spool stops short of them (2^62 readings,
// 2^31 sectors opened or boots: far beyond any flash's life), so a header or
// record above one can only be crafted; it is not valid, which keeps every
// counter from wrapping.
inline constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;
inline constexpr std::uint32_t kMaxSectorSeq = std::uint32_t{1} << 31;
inline constexpr std::uint32_t kMaxBoot = std::uint32_t{1} << 31;

// Where the spool stops short of them: append refuses from kSeqEnd on and
// rotation at kMaxSectorSeq, so nothing it writes goes past a bound (a
// header's base seq may exceed the last reading's seq by a sector of retired
// seqs). mount() formats a log found with a counter beyond the "exhausted"
// mark (a new incarnation starts every counter again); the spool itself gets
// there only after 2^62 - 2^33 readings, 2^31 - 2^20 sectors or 2^31 - 2^16
// boots.
inline constexpr std::uint64_t kSeqEnd = kMaxSeq - (std::uint64_t{1} << 32);
inline constexpr std::uint64_t kSeqExhausted = kSeqEnd - (std::uint64_t{1} << 32);
inline constexpr std::uint32_t kSectorSeqExhausted = kMaxSectorSeq - (std::uint32_t{1} << 20);
inline constexpr std::uint32_t kBootExhausted = kMaxBoot - (std::uint32_t{1} << 16);

// Records in a sector of `sector_size` bytes; bytes left over stay unused.
constexpr std::uint32_t slots_per_sector(std::uint32_t sector_size) noexcept {
    return (sector_size - kSectorHeaderSize) / kSlotSize;
}

// Where slot `slot` starts within its sector.
constexpr std::uint32_t slot_offset(std::uint32_t slot) noexcept { return kSectorHeaderSize + slot * kSlotSize; }

// A decoded sector header (the fields that vary; magic, version, geometry and
// CRC are checked by decode_header).
struct SectorHeader {
    std::uint64_t incarnation = 0;
    std::uint32_t sector_seq = 0;  // +1 for every sector opened; orders the log
    std::uint32_t boot = 0;        // boot counter when the sector was opened
    std::uint64_t base_seq = 0;    // next_seq when opened: every reading in it is >= this
    std::uint64_t floor = 0;       // trimmed or dropped through, when opened
    std::uint64_t dropped = 0;     // readings dropped by the full policy so far
};

// A decoded slot.
struct Slot {
    enum class Kind : std::uint8_t {
        Blank,  // all 0xFF: never written
        Bad,    // written, but CRC, zero fields or type do not check (a torn write)
        Reading,
        Trim,
        Boot,
        Offset,
    };
    Kind kind = Kind::Blank;
    std::uint32_t sector_seq = 0;  // of the sector the slot is in
    std::uint32_t boot = 0;
    std::uint64_t seq = 0;       // readings
    std::uint64_t next_seq = 0;  // markers: the spool's next_seq when written
    std::uint64_t value = 0;     // trim markers: the floor; offset markers: the offset's bits
    protocol::Record record;     // readings
};

// Writes kSectorHeaderSize bytes to `out`.
void encode_header(const SectorHeader& header, const hal::FlashGeometry& geometry, std::uint8_t* out) noexcept;

// Reads kSectorHeaderSize bytes. False unless magic, version, zero fields,
// the geometry and the CRC all match, floor < base_seq <= kMaxSeq,
// dropped <= floor (each dropped reading had its own seq at or below the
// floor), 1 <= sector_seq <= kMaxSectorSeq and boot <= kMaxBoot.
bool decode_header(const std::uint8_t* in, const hal::FlashGeometry& geometry, SectorHeader* header) noexcept;

// CRC-32 of incarnation (8) || sector seq (4) || slot bytes 0-27: a record
// left over from an earlier use of the sector can never pass.
std::uint32_t slot_crc(const std::uint8_t* slot, std::uint64_t incarnation, std::uint32_t sector_seq) noexcept;

// Write kSlotSize bytes to `out`. A reading stores its seq as seq_delta from
// the sector's base seq.
void encode_reading(const protocol::Record& record, std::uint32_t boot, std::uint32_t seq_delta,
                    std::uint64_t incarnation, std::uint32_t sector_seq, std::uint8_t* out) noexcept;
void encode_marker(std::uint8_t type, std::uint32_t boot, std::uint64_t next_seq, std::uint64_t value,
                   std::uint64_t incarnation, std::uint32_t sector_seq, std::uint8_t* out) noexcept;

// Reads kSlotSize bytes of a slot in the sector that `header` describes.
// Bad also when the boot is above kMaxBoot, a reading's seq or a marker's next
// seq above kMaxSeq, or a trim's floor not below its next seq (trim refuses
// such a floor).
void decode_slot(const std::uint8_t* in, const SectorHeader& header, Slot* slot) noexcept;

}  // namespace fieldlink::spool
