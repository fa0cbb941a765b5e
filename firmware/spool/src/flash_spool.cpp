// Flash spool: the log state machine over sectors (the README's "The log").
// The bytes of headers and slots are spool_format's; see the header and
// firmware/spool/README.md for the rules that make every step safe to interrupt.
#include "fieldlink/spool/flash_spool.hpp"

#include "spool_format.hpp"

namespace fieldlink::spool {
namespace {

using reader::StoreStatus;

template <typename T>
T max_of(T a, T b) {
    return a < b ? b : a;
}

StoreStatus read_header(hal::Flash& flash, const hal::FlashGeometry& geometry, std::uint32_t sector,
                        SectorHeader* header, bool* valid) {
    std::uint8_t bytes[kSectorHeaderSize];
    if (flash.read(sector * geometry.sector_size, bytes, sizeof bytes) != hal::FlashStatus::Ok) {
        return StoreStatus::IoError;
    }
    *valid = decode_header(bytes, geometry, header);
    return StoreStatus::Ok;
}

}  // namespace

FlashSpool::FlashSpool(hal::Flash& flash, hal::Random& random, SpoolConfig config) noexcept
    : flash_(flash), random_(random), config_(config) {}

bool FlashSpool::usable(const hal::FlashGeometry& g) noexcept {
    const bool power_of_two = g.write_size != 0 && (g.write_size & (g.write_size - 1)) == 0;
    return g.sector_count >= 2 && g.sector_size >= kSectorHeaderSize + 2 * kSlotSize && power_of_two &&
           kSlotSize % g.write_size == 0 && g.size() <= (std::uint64_t{1} << 32);
}

std::uint64_t FlashSpool::capacity(const hal::FlashGeometry& geometry) noexcept {
    if (!usable(geometry)) {
        return 0;
    }
    return std::uint64_t{geometry.sector_count - 1} * slots_per_sector(geometry.sector_size);
}

std::uint32_t FlashSpool::next_sector(std::uint32_t sector) const noexcept {
    return sector + 1 == geometry_.sector_count ? 0 : sector + 1;
}

std::uint32_t FlashSpool::previous_sector(std::uint32_t sector) const noexcept {
    return sector == 0 ? geometry_.sector_count - 1 : sector - 1;
}

std::uint32_t FlashSpool::sector_address(std::uint32_t sector) const noexcept { return sector * geometry_.sector_size; }

std::uint32_t FlashSpool::slot_address(std::uint32_t sector, std::uint32_t slot) const noexcept {
    return sector_address(sector) + slot_offset(slot);
}

SpoolStats FlashSpool::stats() const noexcept {
    SpoolStats stats;
    stats.formatted = formatted_;
    stats.sector_count = geometry_.sector_count;
    stats.slots_per_sector = slots_per_sector_;
    stats.live_sectors = live_;
    stats.head_sector = head_;
    stats.tail_sector = tail_;
    stats.head_slots_used = head_next_slot_;
    stats.bad_slots = bad_slots_;
    stats.durable_floor = durable_floor_;
    return stats;
}

StoreStatus FlashSpool::fail() {
    mounted_ = false;
    cursor_valid_ = false;
    return StoreStatus::IoError;
}

template <typename Visit>
StoreStatus FlashSpool::scan(Position from, Visit&& visit) {
    constexpr std::uint32_t chunk_slots = kScanBufferSize / kSlotSize;
    static_assert(chunk_slots >= 1 && kScanBufferSize % kSlotSize == 0, "the scan buffer holds whole slots");
    Position at = from;
    for (;;) {
        SectorHeader header;
        bool valid = false;
        if (read_header(flash_, geometry_, at.sector, &header, &valid) != StoreStatus::Ok || !valid) {
            return StoreStatus::IoError;  // a sector of the log must keep its header
        }
        const std::uint32_t end = at.sector == head_ ? head_next_slot_ : slots_per_sector_;
        while (at.slot < end) {
            const std::uint32_t count = end - at.slot < chunk_slots ? end - at.slot : chunk_slots;
            if (flash_.read(slot_address(at.sector, at.slot), chunk_, count * kSlotSize) != hal::FlashStatus::Ok) {
                return StoreStatus::IoError;
            }
            for (std::uint32_t i = 0; i < count; ++i, ++at.slot) {
                Slot slot;
                decode_slot(chunk_ + i * kSlotSize, header, &slot);
                if (!visit(slot, at)) {
                    return StoreStatus::Ok;
                }
            }
        }
        if (at.sector == head_) {
            return StoreStatus::Ok;
        }
        at.sector = next_sector(at.sector);
        at.slot = 0;
    }
}

StoreStatus FlashSpool::mount() {
    mounted_ = false;
    formatted_ = false;
    cursor_valid_ = false;
    offset_known_ = false;
    offset_on_flash_ = false;
    offset_cache_valid_ = false;
    bad_slots_ = 0;
    clean_free_ = 0;
    tail_max_valid_ = false;
    geometry_ = flash_.geometry();
    if (!usable(geometry_)) {
        return StoreStatus::InvalidArgument;
    }
    slots_per_sector_ = slots_per_sector(geometry_.sector_size);

    // The newest sector (highest sector seq) is the head.
    bool found = false;
    SectorHeader head;
    for (std::uint32_t sector = 0; sector < geometry_.sector_count; ++sector) {
        SectorHeader header;
        bool valid = false;
        if (read_header(flash_, geometry_, sector, &header, &valid) != StoreStatus::Ok) {
            return StoreStatus::IoError;
        }
        if (valid && (!found || header.sector_seq > head.sector_seq)) {
            found = true;
            head = header;
            head_ = sector;
        }
    }

    if (!found) {
        if (format() != StoreStatus::Ok) {
            return StoreStatus::IoError;
        }
    } else {
        // The log runs backwards from the head through sectors whose sequence
        // numbers are consecutive; anything else is free space.
        tail_ = head_;
        live_ = 1;
        std::uint32_t expected = head.sector_seq;
        while (live_ < geometry_.sector_count && expected > 1) {
            const std::uint32_t before = previous_sector(tail_);
            SectorHeader header;
            bool valid = false;
            if (read_header(flash_, geometry_, before, &header, &valid) != StoreStatus::Ok) {
                return StoreStatus::IoError;
            }
            if (!valid || header.incarnation != head.incarnation || header.sector_seq != expected - 1) {
                break;
            }
            tail_ = before;
            ++live_;
            --expected;
        }
        incarnation_ = head.incarnation;
        head_sector_seq_ = head.sector_seq;
        head_base_seq_ = head.base_seq;
        boot_ = head.boot;
        next_seq_ = head.base_seq;
        floor_ = durable_floor_ = head.floor;
        dropped_ = head.dropped;
        if (recover_head() != StoreStatus::Ok) {
            return StoreStatus::IoError;
        }
        if (next_seq_ > kSeqExhausted || head_sector_seq_ > kSectorSeqExhausted || boot_ >= kBootExhausted) {
            if (format() != StoreStatus::Ok) {
                return StoreStatus::IoError;
            }
        }
    }

    if (count_held() != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    mounted_ = true;
    if (reclaim() != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    ++boot_;
    bool written = false;
    return write_marker(kTypeBoot, 0, &written);
}

StoreStatus FlashSpool::format() {
    // Zero is never used, so that "no incarnation" stays recognisable.
    std::uint64_t incarnation = 0;
    for (int attempt = 0; attempt < 4 && incarnation == 0; ++attempt) {
        incarnation = random_.next_u64();
    }
    for (std::uint32_t sector = 0; sector < geometry_.sector_count; ++sector) {
        if (flash_.erase(sector) != hal::FlashStatus::Ok) {
            return StoreStatus::IoError;
        }
    }
    formatted_ = true;
    tail_max_valid_ = false;
    bad_slots_ = 0;
    incarnation_ = incarnation == 0 ? 1 : incarnation;
    boot_ = 0;
    next_seq_ = 1;
    floor_ = durable_floor_ = 0;
    dropped_ = 0;
    head_ = geometry_.sector_count - 1;  // so that sector 0 opens first
    tail_ = 0;
    live_ = 0;
    head_sector_seq_ = 0;
    clean_free_ = geometry_.sector_count;
    return open_sector(0, 0);
}

StoreStatus FlashSpool::recover_head() {
    // Everything the last boot may have done is in the head sector: the newest
    // trim markers, the boot counter, and the highest sequence number.
    std::uint32_t trailing_bad = 0;
    std::uint32_t used = 0;
    head_next_slot_ = slots_per_sector_;  // scan every slot of the head
    const StoreStatus status = scan(Position{head_, 0}, [&](const Slot& slot, Position at) {
        if (slot.kind == Slot::Kind::Blank) {
            return true;
        }
        used = at.slot + 1;
        if (slot.kind == Slot::Kind::Bad) {
            ++trailing_bad;
            return true;
        }
        boot_ = max_of(boot_, slot.boot);
        switch (slot.kind) {
            case Slot::Kind::Reading: next_seq_ = max_of(next_seq_, slot.seq + 1); break;
            case Slot::Kind::Trim:
                floor_ = durable_floor_ = max_of(floor_, slot.value);
                next_seq_ = max_of(next_seq_, slot.next_seq);
                break;
            case Slot::Kind::Boot:
            case Slot::Kind::Offset: next_seq_ = max_of(next_seq_, slot.next_seq); break;
            case Slot::Kind::Blank:
            case Slot::Kind::Bad: break;
        }
        trailing_bad = 0;
        return true;
    });
    head_next_slot_ = used;
    // Each unreadable slot after the last good record may be an append that
    // was cut short: skip the sequence numbers it may have used.
    next_seq_ += trailing_bad;
    return status;
}

StoreStatus FlashSpool::count_held() {
    held_ = 0;
    oldest_seq_ = next_seq_;
    return scan(Position{tail_, 0}, [&](const Slot& slot, Position) {
        if (slot.kind == Slot::Kind::Bad) {
            ++bad_slots_;
        } else if (slot.kind == Slot::Kind::Reading && slot.seq > floor_) {
            if (held_ == 0) {
                oldest_seq_ = slot.seq;
            }
            ++held_;
        }
        return true;
    });
}

StoreStatus FlashSpool::sector_max_seq(std::uint32_t sector, std::uint64_t* max_seq) {
    if (sector == head_) {
        *max_seq = next_seq_ - 1;
        return StoreStatus::Ok;
    }
    // A sector before the head no longer changes: its highest seq is found
    // once. The next sector's base seq bounds it; its own readings say
    // exactly (seqs can have gaps, and a crafted base seq far above the
    // readings must not keep the sector in the log forever).
    if (tail_max_valid_ && tail_max_sector_ == sector) {
        *max_seq = tail_max_seq_;
        return StoreStatus::Ok;
    }
    SectorHeader after;
    bool valid = false;
    if (read_header(flash_, geometry_, next_sector(sector), &after, &valid) != StoreStatus::Ok || !valid) {
        return StoreStatus::IoError;
    }
    std::uint64_t highest = 0;
    const StoreStatus status = scan(Position{sector, 0}, [&](const Slot& slot, Position at) {
        if (at.sector != sector) {
            return false;
        }
        if (slot.kind == Slot::Kind::Reading) {
            highest = max_of(highest, slot.seq);
        }
        return true;
    });
    if (status != StoreStatus::Ok) {
        return status;
    }
    tail_max_valid_ = true;
    tail_max_sector_ = sector;
    tail_max_seq_ = highest < after.base_seq ? highest : after.base_seq - 1;
    *max_seq = tail_max_seq_;
    return StoreStatus::Ok;
}

StoreStatus FlashSpool::reclaim() {
    // Erase tail sectors whose readings are all below the floor that the flash
    // already records; only then is erasing them safe to interrupt.
    while (tail_ != head_) {
        std::uint64_t max_seq = 0;
        if (sector_max_seq(tail_, &max_seq) != StoreStatus::Ok) {
            return fail();
        }
        if (max_seq > durable_floor_) {
            return StoreStatus::Ok;
        }
        if (flash_.erase(tail_) != hal::FlashStatus::Ok) {
            return fail();
        }
        tail_max_valid_ = false;
        if (cursor_valid_ && cursor_.sector == tail_) {
            cursor_valid_ = false;
        }
        tail_ = next_sector(tail_);
        --live_;
        ++clean_free_;
    }
    return StoreStatus::Ok;
}

StoreStatus FlashSpool::open_sector(std::uint64_t floor, std::uint64_t dropped) {
    const std::uint32_t sector = next_sector(head_);
    const std::uint32_t free_sectors = geometry_.sector_count - live_;
    if (clean_free_ > 0 && clean_free_ == free_sectors) {
        --clean_free_;  // erased earlier in this boot and untouched since
    } else if (flash_.erase(sector) != hal::FlashStatus::Ok) {
        return fail();
    }
    SectorHeader header;
    header.incarnation = incarnation_;
    header.sector_seq = head_sector_seq_ + 1;
    header.boot = boot_;
    header.base_seq = next_seq_;
    header.floor = floor;
    header.dropped = dropped;
    std::uint8_t bytes[kSectorHeaderSize];
    encode_header(header, geometry_, bytes);
    if (flash_.program(sector_address(sector), bytes, sizeof bytes) != hal::FlashStatus::Ok) {
        return fail();
    }
    if (live_ == 0) {
        tail_ = sector;
    }
    head_ = sector;
    ++live_;
    head_sector_seq_ = header.sector_seq;
    head_base_seq_ = header.base_seq;
    head_next_slot_ = 0;
    durable_floor_ = max_of(durable_floor_, floor);
    if (offset_known_) {
        // Every sector with readings of this boot also carries its offset, so
        // erasing older sectors never takes the offset from readings left.
        std::uint8_t marker[kSlotSize];
        encode_marker(kTypeOffset, boot_, next_seq_, static_cast<std::uint64_t>(offset_ms_), incarnation_,
                      head_sector_seq_, marker);
        if (write_slot(marker) != StoreStatus::Ok) {
            return StoreStatus::IoError;
        }
        offset_on_flash_ = true;
    }
    return StoreStatus::Ok;
}

StoreStatus FlashSpool::rotate(Purpose purpose, bool* refused) {
    *refused = false;
    const std::uint32_t sectors = geometry_.sector_count;
    if (live_ >= sectors || head_sector_seq_ >= kMaxSectorSeq) {
        // No free sector at all (cannot happen when the rules below hold), or
        // sector numbers used up (2^31 sectors opened: beyond any flash's life).
        *refused = true;
        return StoreStatus::Ok;
    }
    std::uint64_t floor = floor_;
    std::uint64_t dropped_now = 0;
    if (live_ + 1 > sectors - 1) {
        // Opening the last free sector: the tail must leave the log, so that a
        // free sector stays for the next rotation.
        std::uint64_t tail_max = 0;
        if (sector_max_seq(tail_, &tail_max) != StoreStatus::Ok) {
            return fail();
        }
        if (tail_max > floor_) {
            if (purpose != Purpose::Reading || config_.full_policy != reader::FullPolicy::DropOldest) {
                *refused = true;
                return StoreStatus::Ok;
            }
            const std::uint32_t victim = tail_;
            const StoreStatus status = scan(Position{victim, 0}, [&](const Slot& slot, Position at) {
                if (at.sector != victim) {
                    return false;
                }
                if (slot.kind == Slot::Kind::Reading && slot.seq > floor_) {
                    ++dropped_now;
                }
                return true;
            });
            if (status != StoreStatus::Ok) {
                return fail();
            }
            floor = tail_max;
        }
    }
    // The new header records the floor and the drop count before the dropped
    // sector is erased, so a cut in between loses no count.
    if (open_sector(floor, dropped_ + dropped_now) != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    if (floor != floor_) {
        floor_ = floor;
        dropped_ += dropped_now;
        held_ -= dropped_now;
        if (held_ > 0) {
            Position at;
            if (locate(floor_ + 1, &at) != StoreStatus::Ok) {
                return fail();
            }
            bool found = false;
            const StoreStatus status = scan(at, [&](const Slot& slot, Position) {
                if (slot.kind == Slot::Kind::Reading && slot.seq > floor_) {
                    oldest_seq_ = slot.seq;
                    found = true;
                    return false;
                }
                return true;
            });
            if (status != StoreStatus::Ok || !found) {
                return fail();
            }
        }
    }
    return reclaim();
}

StoreStatus FlashSpool::write_slot(const std::uint8_t* bytes) {
    const std::uint32_t address = slot_address(head_, head_next_slot_);
    ++head_next_slot_;  // used even if the program fails: it may be partly written
    if (flash_.program(address, bytes, kSlotSize) != hal::FlashStatus::Ok) {
        return fail();
    }
    return StoreStatus::Ok;
}

StoreStatus FlashSpool::write_marker(std::uint8_t type, std::uint64_t value, bool* written) {
    *written = false;
    if (head_next_slot_ >= slots_per_sector_) {
        // A new sector's header (with the offset marker that opens it) carries
        // the boot counter, the floor and the offset: all a marker would say.
        // Without a sector to spare the marker waits: the next record or
        // header written in this boot carries the same.
        bool refused = false;
        const StoreStatus status = rotate(Purpose::Marker, &refused);
        *written = status == StoreStatus::Ok && !refused;
        return status;
    }
    std::uint8_t bytes[kSlotSize];
    encode_marker(type, boot_, next_seq_, value, incarnation_, head_sector_seq_, bytes);
    if (write_slot(bytes) != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    if (type == kTypeTrim) {
        durable_floor_ = max_of(durable_floor_, value);
    }
    *written = true;
    return StoreStatus::Ok;
}

StoreStatus FlashSpool::locate(std::uint64_t seq, Position* position) {
    // Sectors of the log have non-decreasing base seqs: binary search for the
    // last one that starts at or before `seq`.
    std::uint32_t low = 0;
    std::uint32_t high = live_ - 1;
    while (low < high) {
        const std::uint32_t middle = low + (high - low + 1) / 2;
        const std::uint32_t sector = (tail_ + middle) % geometry_.sector_count;
        SectorHeader header;
        bool valid = false;
        if (read_header(flash_, geometry_, sector, &header, &valid) != StoreStatus::Ok || !valid) {
            return StoreStatus::IoError;
        }
        if (header.base_seq <= seq) {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    position->sector = (tail_ + low) % geometry_.sector_count;
    position->slot = 0;
    return StoreStatus::Ok;
}

StoreStatus FlashSpool::append(const protocol::Record& record, std::uint64_t* seq) {
    if (!mounted_) {
        return StoreStatus::IoError;
    }
    if (next_seq_ >= kSeqEnd) {
        return StoreStatus::Full;  // seqs used up: 2^62 readings, beyond any flash's life
    }
    if (head_next_slot_ >= slots_per_sector_ || next_seq_ - head_base_seq_ > 0xFFFFFFFFu) {
        bool refused = false;
        if (rotate(Purpose::Reading, &refused) != StoreStatus::Ok) {
            return StoreStatus::IoError;
        }
        if (refused) {
            return StoreStatus::Full;
        }
    }
    const std::uint64_t assigned = next_seq_;
    std::uint8_t bytes[kSlotSize];
    encode_reading(record, boot_, static_cast<std::uint32_t>(assigned - head_base_seq_), incarnation_, head_sector_seq_,
                   bytes);
    ++next_seq_;  // used even if the program fails: the reading may be partly written
    if (write_slot(bytes) != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    if (held_ == 0) {
        oldest_seq_ = assigned;
    }
    ++held_;
    if (seq != nullptr) {
        *seq = assigned;
    }
    return StoreStatus::Ok;
}

std::size_t FlashSpool::read(std::uint64_t from_seq, reader::StoredReading* out, std::size_t max) {
    if (!mounted_ || out == nullptr || max == 0 || held_ == 0) {
        return 0;
    }
    const std::uint64_t start = max_of(from_seq, floor_ + 1);
    if (start >= next_seq_) {
        return 0;
    }
    Position at;
    if (cursor_valid_ && cursor_seq_ == start) {
        at = cursor_;
    } else if (locate(start, &at) != StoreStatus::Ok) {
        fail();
        return 0;
    }
    std::size_t copied = 0;
    Position resume = at;
    const StoreStatus status = scan(at, [&](const Slot& slot, Position here) {
        if (slot.kind != Slot::Kind::Reading || slot.seq < start) {
            return true;
        }
        if (copied > 0 && slot.boot != out[0].boot) {
            return false;  // a batch carries one boot
        }
        out[copied].seq = slot.seq;
        out[copied].boot = slot.boot;
        out[copied].record = slot.record;
        ++copied;
        resume = Position{here.sector, here.slot + 1};
        return copied < max;
    });
    if (status != StoreStatus::Ok) {
        fail();
        return 0;
    }
    if (copied > 0) {
        cursor_valid_ = true;
        cursor_ = resume;
        cursor_seq_ = out[copied - 1].seq + 1;
    }
    return copied;
}

StoreStatus FlashSpool::trim(std::uint64_t through_seq) {
    if (!mounted_) {
        return StoreStatus::IoError;
    }
    if (through_seq >= next_seq_) {
        return StoreStatus::InvalidArgument;
    }
    if (through_seq <= floor_) {
        return StoreStatus::Ok;
    }
    // Count what leaves and find the new oldest reading.
    std::uint64_t removed = 0;
    std::uint64_t oldest = next_seq_;
    if (held_ > 0) {
        Position at;
        if (locate(floor_ + 1, &at) != StoreStatus::Ok) {
            return fail();
        }
        const StoreStatus status = scan(at, [&](const Slot& slot, Position) {
            if (slot.kind != Slot::Kind::Reading || slot.seq <= floor_) {
                return true;
            }
            if (slot.seq <= through_seq) {
                ++removed;
                return true;
            }
            oldest = slot.seq;
            return false;
        });
        if (status != StoreStatus::Ok) {
            return fail();
        }
    }
    held_ -= removed;
    oldest_seq_ = oldest;
    floor_ = through_seq;
    // The trim marker makes the floor survive a reboot; only then may sectors
    // that it empties be erased.
    bool written = false;
    if (write_marker(kTypeTrim, through_seq, &written) != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    return written ? reclaim() : StoreStatus::Ok;
}

StoreStatus FlashSpool::note_wall_offset(std::int64_t offset_ms) {
    if (!mounted_) {
        return StoreStatus::IoError;
    }
    if (offset_known_ && offset_ms_ == offset_ms && offset_on_flash_) {
        return StoreStatus::Ok;  // already noted: no flash write
    }
    offset_known_ = true;
    offset_ms_ = offset_ms;
    offset_on_flash_ = false;
    bool written = false;
    if (write_marker(kTypeOffset, static_cast<std::uint64_t>(offset_ms), &written) != StoreStatus::Ok) {
        return StoreStatus::IoError;
    }
    // Without room the note stays in RAM; the next sector opened carries it.
    offset_on_flash_ = written;
    return written ? StoreStatus::Ok : StoreStatus::Full;
}

bool FlashSpool::wall_offset(std::uint32_t boot, std::int64_t* offset_ms) {
    if (!mounted_ || offset_ms == nullptr) {
        return false;
    }
    if (boot == boot_) {
        *offset_ms = offset_ms_;
        return offset_known_;
    }
    if (!offset_cache_valid_ || offset_cache_boot_ != boot) {
        // The last note of that boot anywhere in the log wins.
        bool known = false;
        std::uint64_t bits = 0;
        const StoreStatus status = scan(Position{tail_, 0}, [&](const Slot& slot, Position) {
            if (slot.kind == Slot::Kind::Offset && slot.boot == boot) {
                known = true;
                bits = slot.value;
            }
            return true;
        });
        if (status != StoreStatus::Ok) {
            fail();
            return false;
        }
        offset_cache_valid_ = true;
        offset_cache_boot_ = boot;
        offset_cache_known_ = known;
        offset_cache_ms_ = static_cast<std::int64_t>(bits);
    }
    *offset_ms = offset_cache_ms_;
    return offset_cache_known_;
}

}  // namespace fieldlink::spool
