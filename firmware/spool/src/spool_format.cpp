// The on-flash format; the layout tables are in firmware/spool/README.md.
#include "spool_format.hpp"

#include <cstring>

#include "fieldlink/protocol/little_endian.hpp"
#include "fieldlink/protocol/values.hpp"

namespace fieldlink::spool {
namespace {

constexpr std::size_t kHeaderCrcOffset = 60;
constexpr std::size_t kSlotCrcOffset = 28;
constexpr std::size_t kSlotCrcInput = 8 + 4 + kSlotCrcOffset;  // incarnation, sector seq, slot bytes

using protocol::le::get_u16;
using protocol::le::get_u32;
using protocol::le::get_u64;
using protocol::le::put_u32;
using protocol::le::put_u64;

bool all_erased(const std::uint8_t* data, std::size_t length) {
    for (std::size_t i = 0; i < length; ++i) {
        if (data[i] != 0xFF) {
            return false;
        }
    }
    return true;
}

bool all_zero(const std::uint8_t* data, std::size_t length) {
    for (std::size_t i = 0; i < length; ++i) {
        if (data[i] != 0) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::uint32_t slot_crc(const std::uint8_t* slot, std::uint64_t incarnation, std::uint32_t sector_seq) noexcept {
    std::uint8_t input[kSlotCrcInput];
    put_u64(input, incarnation);
    put_u32(input + 8, sector_seq);
    std::memcpy(input + 12, slot, kSlotCrcOffset);
    return protocol::crc32(input, sizeof input);
}

void encode_header(const SectorHeader& header, const hal::FlashGeometry& geometry, std::uint8_t* out) noexcept {
    std::memset(out, 0, kSectorHeaderSize);
    put_u32(out, kSectorMagic);
    out[4] = kLayoutVersion;
    put_u32(out + 8, geometry.sector_size);
    put_u32(out + 12, geometry.sector_count);
    put_u64(out + 16, header.incarnation);
    put_u32(out + 24, header.sector_seq);
    put_u32(out + 28, header.boot);
    put_u64(out + 32, header.base_seq);
    put_u64(out + 40, header.floor);
    put_u64(out + 48, header.dropped);
    put_u32(out + kHeaderCrcOffset, protocol::crc32(out, kHeaderCrcOffset));
}

bool decode_header(const std::uint8_t* in, const hal::FlashGeometry& geometry, SectorHeader* header) noexcept {
    if (get_u32(in) != kSectorMagic || in[4] != kLayoutVersion || in[5] != 0 || get_u16(in + 6) != 0 ||
        get_u32(in + 8) != geometry.sector_size || get_u32(in + 12) != geometry.sector_count || get_u32(in + 56) != 0 ||
        get_u32(in + kHeaderCrcOffset) != protocol::crc32(in, kHeaderCrcOffset)) {
        return false;
    }
    header->incarnation = get_u64(in + 16);
    header->sector_seq = get_u32(in + 24);
    header->boot = get_u32(in + 28);
    header->base_seq = get_u64(in + 32);
    header->floor = get_u64(in + 40);
    header->dropped = get_u64(in + 48);
    return header->floor < header->base_seq && header->base_seq <= kMaxSeq && header->dropped <= header->floor &&
           header->sector_seq >= 1 && header->sector_seq <= kMaxSectorSeq && header->boot <= kMaxBoot;
}

void encode_reading(const protocol::Record& record, std::uint32_t boot, std::uint32_t seq_delta,
                    std::uint64_t incarnation, std::uint32_t sector_seq, std::uint8_t* out) noexcept {
    std::memset(out, 0, kSlotSize);
    out[0] = kTypeReading;
    out[1] = record.channel;
    put_u32(out + 4, boot);
    put_u32(out + 8, seq_delta);
    put_u64(out + 12, record.mono_ms);
    put_u64(out + 20, protocol::value_bits(record.value));
    put_u32(out + kSlotCrcOffset, slot_crc(out, incarnation, sector_seq));
}

void encode_marker(std::uint8_t type, std::uint32_t boot, std::uint64_t next_seq, std::uint64_t value,
                   std::uint64_t incarnation, std::uint32_t sector_seq, std::uint8_t* out) noexcept {
    std::memset(out, 0, kSlotSize);
    out[0] = type;
    put_u32(out + 4, boot);
    put_u64(out + 8, next_seq);
    put_u64(out + 16, value);
    put_u32(out + kSlotCrcOffset, slot_crc(out, incarnation, sector_seq));
}

void decode_slot(const std::uint8_t* in, const SectorHeader& header, Slot* slot) noexcept {
    using Kind = Slot::Kind;
    slot->sector_seq = header.sector_seq;
    if (all_erased(in, kSlotSize)) {
        slot->kind = Kind::Blank;
        return;
    }
    slot->kind = Kind::Bad;
    if (get_u32(in + kSlotCrcOffset) != slot_crc(in, header.incarnation, header.sector_seq) || get_u16(in + 2) != 0) {
        return;
    }
    slot->boot = get_u32(in + 4);
    if (slot->boot > kMaxBoot) {
        return;
    }
    switch (in[0]) {
        case kTypeReading: {
            slot->seq = header.base_seq + get_u32(in + 8);
            if (slot->seq > kMaxSeq) {
                return;
            }
            slot->record.channel = in[1];
            slot->record.mono_ms = get_u64(in + 12);
            slot->record.value = protocol::value_from_bits(get_u64(in + 20));
            slot->kind = Kind::Reading;
            return;
        }
        case kTypeTrim:
        case kTypeBoot:
        case kTypeOffset:
            if (in[1] != 0 || !all_zero(in + 24, 4)) {
                return;
            }
            slot->next_seq = get_u64(in + 8);
            slot->value = get_u64(in + 16);
            if (slot->next_seq > kMaxSeq || (in[0] == kTypeBoot && slot->value != 0) ||
                (in[0] == kTypeTrim && slot->value >= slot->next_seq)) {
                return;  // boot markers carry no value; a floor is below next seq
            }
            slot->kind = in[0] == kTypeTrim ? Kind::Trim : (in[0] == kTypeBoot ? Kind::Boot : Kind::Offset);
            return;
        default: return;
    }
}

}  // namespace fieldlink::spool
