// Flash images that hold CRC-valid values the spool never writes (the fuzzer's
// findings in docs/fuzzing.md): the spool must refuse them or recover, then
// work on every boot, and never hand out a sequence number twice.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "fieldlink/spool/flash_spool.hpp"
#include "ram_flash.hpp"
#include "spool_format.hpp"

namespace fieldlink::testing {
namespace {

using reader::FullPolicy;
using reader::StoredReading;
using reader::StoreStatus;
using spool::FlashSpool;
using spool::SectorHeader;

constexpr hal::FlashGeometry kGeometry{256, 4, 4};
constexpr std::uint64_t kIncarnation = 0x0123456789ABCDEFull;

class CraftedImage : public ::testing::Test {
protected:
    void header(std::uint32_t sector, std::uint32_t sector_seq, std::uint32_t boot, std::uint64_t base,
                std::uint64_t floor, std::uint64_t dropped = 0) {
        SectorHeader h;
        h.incarnation = kIncarnation;
        h.sector_seq = sector_seq;
        h.boot = boot;
        h.base_seq = base;
        h.floor = floor;
        h.dropped = dropped;
        spool::encode_header(h, kGeometry, at(sector, 0));
    }
    void marker(std::uint32_t sector, std::uint32_t slot, std::uint8_t type, std::uint32_t sector_seq,
                std::uint32_t boot, std::uint64_t next, std::uint64_t value) {
        spool::encode_marker(type, boot, next, value, kIncarnation, sector_seq, at(sector, spool::slot_offset(slot)));
    }
    void reading(std::uint32_t sector, std::uint32_t slot, std::uint32_t sector_seq, std::uint32_t boot,
                 std::uint32_t delta) {
        spool::encode_reading(protocol::Record{1, 1000, 2.5}, boot, delta, kIncarnation, sector_seq,
                              at(sector, spool::slot_offset(slot)));
    }
    std::uint8_t* at(std::uint32_t sector, std::uint32_t offset) {
        return flash_.bytes().data() + std::size_t{sector} * kGeometry.sector_size + offset;
    }

    StoreStatus boot(FullPolicy policy = FullPolicy::DropOldest) {
        store_ = std::make_unique<FlashSpool>(flash_, random_, spool::SpoolConfig{policy});
        return store_->mount();
    }

    // Six boots, two readings each: every mount works, every append works,
    // every seq is new, boots are distinct, and what is held reads back.
    void expect_six_good_boots(FullPolicy policy) {
        std::uint64_t last_seq = 0;
        std::uint32_t last_boot = 0;
        for (int b = 0; b < 6; ++b) {
            ASSERT_EQ(boot(policy), StoreStatus::Ok) << "boot " << b;
            EXPECT_NE(store_->boot(), last_boot) << "boot " << b;
            last_boot = store_->boot();
            for (int i = 0; i < 2; ++i) {
                std::uint64_t seq = 0;
                ASSERT_EQ(store_->append(protocol::Record{2, 5000, 1.0}, &seq), StoreStatus::Ok) << "boot " << b;
                EXPECT_GT(seq, last_seq) << "boot " << b;
                EXPECT_LT(seq, spool::kMaxSeq);
                last_seq = seq;
            }
            StoredReading out[1];
            ASSERT_EQ(store_->read(last_seq, out, 1), 1u) << "boot " << b;
            EXPECT_EQ(out[0].seq, last_seq);
        }
    }

    RamFlash flash_{kGeometry};
    SeededRandom random_{7};
    std::unique_ptr<FlashSpool> store_;
};

TEST_F(CraftedImage, TrimFloorAboveItsNextSeqIsATornSlot) {
    header(0, 1, 1, 1, 0);
    marker(0, 0, spool::kTypeBoot, 1, 1, 1, 0);
    reading(0, 1, 1, 1, 0);
    marker(0, 2, spool::kTypeTrim, 1, 1, 5, 500);  // floor 500, next seq 5
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_FALSE(store_->stats().formatted);
    EXPECT_EQ(store_->incarnation(), kIncarnation);
    EXPECT_LT(store_->floor_seq(), store_->next_seq());
    EXPECT_EQ(store_->held(), 1u);  // the reading below it stays
    expect_six_good_boots(FullPolicy::DropOldest);
}

TEST_F(CraftedImage, CountersAtTheirBoundsAreNotAHeader) {
    // Base seq 2^64 - 1 (next seq would wrap), sector number 2^32 - 2 and
    // boot counter 2^32 - 1 (they would wrap), sector number 0, and more
    // drops than seqs below the floor: each such head is not valid, so the
    // blank rest of the flash formats.
    const struct {
        std::uint32_t sector_seq, boot;
        std::uint64_t base, floor, dropped;
    } cases[] = {
        {1, 1, UINT64_MAX, 0, 0},
        {0xFFFFFFFEu, 1, 1, 0, 0},
        {1, 0xFFFFFFFFu, 1, 0, 0},
        {0, 1, 1, 0, 0},
        {1, 1, 10, 3, 4},
        {1, 1, spool::kMaxSeq + 1, 0, 0},
        {spool::kMaxSectorSeq + 1, 1, 1, 0, 0},
        {1, spool::kMaxBoot + 1, 1, 0, 0},
    };
    for (const auto& c : cases) {
        std::memset(flash_.bytes().data(), 0xFF, flash_.bytes().size());
        header(0, c.sector_seq, c.boot, c.base, c.floor, c.dropped);
        std::uint8_t bytes[spool::kSectorHeaderSize];
        std::memcpy(bytes, at(0, 0), sizeof bytes);
        SectorHeader decoded;
        EXPECT_FALSE(spool::decode_header(bytes, kGeometry, &decoded)) << c.sector_seq << " " << c.base;
        ASSERT_EQ(boot(), StoreStatus::Ok);
        EXPECT_TRUE(store_->stats().formatted);
        EXPECT_NE(store_->incarnation(), kIncarnation);
        expect_six_good_boots(FullPolicy::DropOldest);
    }
}

TEST_F(CraftedImage, SlotsBeyondTheBoundsAreTorn) {
    header(0, 1, 1, spool::kMaxSeq - 2, 0);
    std::uint8_t slot[spool::kSlotSize];
    spool::Slot decoded;
    SectorHeader h;
    ASSERT_TRUE(spool::decode_header(at(0, 0), kGeometry, &h));
    spool::encode_reading(protocol::Record{}, 1, 3, kIncarnation, 1, slot);  // seq kMaxSeq + 1
    spool::decode_slot(slot, h, &decoded);
    EXPECT_EQ(decoded.kind, spool::Slot::Kind::Bad);
    spool::encode_reading(protocol::Record{}, 1, 2, kIncarnation, 1, slot);  // seq kMaxSeq
    spool::decode_slot(slot, h, &decoded);
    EXPECT_EQ(decoded.kind, spool::Slot::Kind::Reading);
    spool::encode_marker(spool::kTypeOffset, 1, spool::kMaxSeq + 1, 0, kIncarnation, 1, slot);
    spool::decode_slot(slot, h, &decoded);
    EXPECT_EQ(decoded.kind, spool::Slot::Kind::Bad);
    spool::encode_marker(spool::kTypeBoot, spool::kMaxBoot + 1, 5, 0, kIncarnation, 1, slot);
    spool::decode_slot(slot, h, &decoded);
    EXPECT_EQ(decoded.kind, spool::Slot::Kind::Bad);
    spool::encode_marker(spool::kTypeTrim, 1, 5, 5, kIncarnation, 1, slot);  // floor = next seq
    spool::decode_slot(slot, h, &decoded);
    EXPECT_EQ(decoded.kind, spool::Slot::Kind::Bad);
    spool::encode_marker(spool::kTypeTrim, 1, 5, 4, kIncarnation, 1, slot);
    spool::decode_slot(slot, h, &decoded);
    EXPECT_EQ(decoded.kind, spool::Slot::Kind::Trim);
}

TEST_F(CraftedImage, ASeqGapBeforeTheHeadDoesNotKeepAnEmptyTailForever) {
    // Tail (sector 2, base seq 4, no readings) and a full head of garbage
    // whose base seq is far above it: the tail holds nothing above the floor,
    // so it is reclaimed and a sector stays free, also under RefuseNew.
    header(2, 2, 1, 4, 0);
    header(3, 3, 1, 166'666'666'666'666'666ull, 65536);
    for (std::uint32_t slot = 0; slot < spool::slots_per_sector(kGeometry.sector_size); ++slot) {
        std::memset(at(3, spool::slot_offset(slot)), 0x5A, spool::kSlotSize);
    }
    ASSERT_EQ(boot(FullPolicy::RefuseNew), StoreStatus::Ok);
    EXPECT_FALSE(store_->stats().formatted);
    EXPECT_EQ(store_->stats().live_sectors, 1u);
    expect_six_good_boots(FullPolicy::RefuseNew);
}

TEST_F(CraftedImage, ALogAtTheEndOfItsNumberingIsFormatted) {
    // The spool needs 2^31 - 2^16 boots to get here; it starts a new
    // incarnation rather than share boot numbers or wrap.
    header(0, 1, spool::kBootExhausted - 1, 1, 0);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_FALSE(store_->stats().formatted);
    EXPECT_EQ(store_->boot(), spool::kBootExhausted);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_TRUE(store_->stats().formatted);
    EXPECT_NE(store_->incarnation(), kIncarnation);
    EXPECT_EQ(store_->boot(), 1u);

    std::memset(flash_.bytes().data(), 0xFF, flash_.bytes().size());
    header(0, 1, 1, spool::kSeqExhausted + 1, 0);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_TRUE(store_->stats().formatted);
    EXPECT_EQ(store_->next_seq(), 1u);

    std::memset(flash_.bytes().data(), 0xFF, flash_.bytes().size());
    header(0, spool::kSectorSeqExhausted + 1, 1, 1, 0);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_TRUE(store_->stats().formatted);
    expect_six_good_boots(FullPolicy::DropOldest);
}

}  // namespace
}  // namespace fieldlink::testing
