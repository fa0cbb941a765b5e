// What a spool fuzz input means, shared by fuzz_spool.cpp and the seed
// generator (seeds/make_spool_seeds.cpp): a few small flash shapes, a RAM
// flash with NOR rules and no heap, and how the input becomes a flash image.
//
// Input layout:
//   byte 0   bits 0-3 shape (kShapes), bit 4 full policy (1: RefuseNew),
//            bit 5 fix sector headers, bit 6 fix slot CRCs, bit 7 repeat the
//            image to fill the flash (else the rest stays erased, 0xFF)
//   byte 1   bits 0-4 number of operations N
//   2N bytes operations (opcode, argument), run after the first mount
//   the rest the flash image, from address 0
//
// "Fix" rewrites what random bytes can hardly ever get right, so that the
// fuzzer explores logs that are consistent but strange rather than only
// garbage: a sector starting with the magic gets version 1, zero reserved
// fields, the flash's geometry and a correct CRC (its other fields stay as
// the input says); every non-blank slot of a sector whose header is then
// valid gets a correct CRC for that header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fieldlink/hal/flash.hpp"
#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/little_endian.hpp"
#include "spool_format.hpp"

namespace fieldlink::fuzz {

struct Shape {
    std::uint32_t sector_size;
    std::uint32_t sector_count;
    std::uint32_t write_size;
};

// Small shapes keep one input fast; the last three are not usable and must be
// refused by mount() with InvalidArgument.
inline constexpr Shape kShapes[16] = {
    {128, 2, 4},    // the smallest usable flash: 2 slots per sector
    {256, 3, 8},    // 6 slots
    {256, 4, 32},   // 6 slots, one program unit per slot
    {192, 8, 1},    // 4 slots, byte-wise programming
    {512, 5, 16},   // 14 slots
    {128, 16, 2},   // 2 slots, many sectors
    {160, 6, 4},    // 3 slots
    {224, 3, 4},    // 5 slots
    {1024, 2, 8},   // 30 slots
    {320, 7, 4},    // 8 slots
    {2048, 2, 32},  // 62 slots
    {130, 9, 2},    // 2 slots and 2 bytes left over per sector
    {200, 10, 8},   // 4 slots and 8 bytes left over
    {4096, 1, 4},   // one sector: unusable
    {100, 4, 4},    // sector below 128 bytes: unusable
    {256, 4, 12},   // write size not a power of two: unusable
};
inline constexpr std::size_t kMaxFlashSize = 4096;

inline constexpr std::uint8_t kPolicyRefuse = 0x10;
inline constexpr std::uint8_t kFixHeaders = 0x20;
inline constexpr std::uint8_t kFixSlots = 0x40;
inline constexpr std::uint8_t kRepeatImage = 0x80;
inline constexpr std::size_t kMaxOperations = 31;

inline hal::FlashGeometry geometry_of(const Shape& shape) {
    return hal::FlashGeometry{shape.sector_size, shape.sector_count, shape.write_size};
}

// NOR flash in a static buffer: erase sets 0xFF, program only clears bits, in
// aligned units. Anything else the spool asks for is counted as a misuse.
class StaticFlash final : public hal::Flash {
public:
    void reset(const hal::FlashGeometry& geometry) {
        geometry_ = geometry;
        counters_ = {};
        misuses = 0;
        std::memset(bytes, 0xFF, sizeof bytes);
    }
    std::size_t size() const { return static_cast<std::size_t>(geometry_.size()); }

    hal::FlashGeometry geometry() const override { return geometry_; }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override {
        if (out == nullptr && length != 0) return misuse(hal::FlashStatus::InvalidArgument);
        if (std::uint64_t{address} + length > size()) return misuse(hal::FlashStatus::OutOfRange);
        ++counters_.reads;
        if (length != 0) std::memcpy(out, bytes + address, length);
        return hal::FlashStatus::Ok;
    }
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override {
        if (data == nullptr && length != 0) return misuse(hal::FlashStatus::InvalidArgument);
        if (std::uint64_t{address} + length > size()) return misuse(hal::FlashStatus::OutOfRange);
        if (address % geometry_.write_size != 0 || length % geometry_.write_size != 0) {
            return misuse(hal::FlashStatus::Misaligned);
        }
        for (std::size_t i = 0; i < length; ++i) {
            if ((bytes[address + i] & data[i]) != data[i]) return misuse(hal::FlashStatus::NotErased);
        }
        std::memcpy(bytes + address, data, length);
        ++counters_.programs;
        counters_.bytes_programmed += length;
        return hal::FlashStatus::Ok;
    }
    hal::FlashStatus erase(std::uint32_t sector) override {
        if (sector >= geometry_.sector_count) return misuse(hal::FlashStatus::OutOfRange);
        std::memset(bytes + std::size_t{sector} * geometry_.sector_size, 0xFF, geometry_.sector_size);
        ++counters_.erases;
        return hal::FlashStatus::Ok;
    }
    hal::FlashCounters counters() const override { return counters_; }

    std::uint8_t bytes[kMaxFlashSize];
    int misuses = 0;
    hal::FlashStatus last_misuse = hal::FlashStatus::Ok;

private:
    hal::FlashStatus misuse(hal::FlashStatus status) {
        ++misuses;
        last_misuse = status;
        return status;
    }

    hal::FlashGeometry geometry_{};
    hal::FlashCounters counters_{};
};

// The header and slot repairs described at the top.
inline void fix_image(std::uint8_t control, StaticFlash& flash) {
    const hal::FlashGeometry g = flash.geometry();
    for (std::uint32_t sector = 0; sector < g.sector_count; ++sector) {
        std::uint8_t* h = flash.bytes + std::size_t{sector} * g.sector_size;
        if ((control & kFixHeaders) != 0 && protocol::le::get_u32(h) == spool::kSectorMagic) {
            h[4] = spool::kLayoutVersion;
            h[5] = h[6] = h[7] = 0;
            protocol::le::put_u32(h + 8, g.sector_size);
            protocol::le::put_u32(h + 12, g.sector_count);
            protocol::le::put_u32(h + 56, 0);
            protocol::le::put_u32(h + 60, protocol::crc32(h, 60));
        }
        spool::SectorHeader header;
        if ((control & kFixSlots) == 0 || !spool::decode_header(h, g, &header)) continue;
        for (std::uint32_t slot = 0; slot < spool::slots_per_sector(g.sector_size); ++slot) {
            std::uint8_t* s = h + spool::slot_offset(slot);
            bool blank = true;
            for (std::uint32_t i = 0; i < spool::kSlotSize && blank; ++i) blank = s[i] == 0xFF;
            if (!blank) protocol::le::put_u32(s + 28, spool::slot_crc(s, header.incarnation, header.sector_seq));
        }
    }
}

// Loads the image part of an input into `flash` (already reset to its shape).
inline void load_image(std::uint8_t control, const std::uint8_t* image, std::size_t length, StaticFlash& flash) {
    const std::size_t size = flash.size();
    if (length > 0) {
        for (std::size_t i = 0; i < size; ++i) {
            if (i < length) {
                flash.bytes[i] = image[i];
            } else if ((control & kRepeatImage) != 0) {
                flash.bytes[i] = image[i % length];
            }
        }
    }
    fix_image(control, flash);
}

}  // namespace fieldlink::fuzz
