// The spool's on-flash format against the vectors in firmware/spool/README.md
// (read from the file, like tests/protocol/vectors_test.cpp reads
// docs/protocol.md): encode what the README describes and compare byte for
// byte, decode the README's bytes, then check that the spool itself writes
// exactly them. Also what decoding must refuse: torn, foreign and stale bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "support/doc_vectors.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "ram_flash.hpp"
#include "spool_format.hpp"

namespace fieldlink::spool {
namespace {

using test::Bytes;

constexpr std::uint64_t kIncarnation = 0x1122334455667788ull;
constexpr hal::FlashGeometry kGeometry{256, 2, 4};
constexpr std::int64_t kOffset = 1'700'000'000'000;

Bytes vector_named(const std::string& name) { return test::doc_vector(FIELDLINK_SPOOL_README, name); }

// The header of the README's sector 0.
SectorHeader readme_header() {
    SectorHeader h;
    h.incarnation = kIncarnation;
    h.sector_seq = 1;
    h.boot = 0;
    h.base_seq = 1;
    h.floor = 0;
    h.dropped = 0;
    return h;
}

Slot decoded(const Bytes& bytes, const SectorHeader& header = readme_header()) {
    EXPECT_EQ(bytes.size(), kSlotSize);
    Slot slot;
    decode_slot(bytes.data(), header, &slot);
    return slot;
}

// Rewrites the CRC of a slot after a test changed its bytes, so that only the
// field under test can make decoding refuse it.
void reseal(Bytes& slot, std::uint64_t incarnation = kIncarnation, std::uint32_t sector_seq = 1) {
    const std::uint32_t crc = slot_crc(slot.data(), incarnation, sector_seq);
    for (int i = 0; i < 4; ++i) slot[28 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(crc >> (8 * i));
}

TEST(SpoolFormat, ReadmeHasEveryVectorAtItsSize) {
    EXPECT_EQ(vector_named("sector-header").size(), kSectorHeaderSize);
    for (const char* name : {"boot-marker", "reading", "offset-marker", "trim-marker"}) {
        EXPECT_EQ(vector_named(name).size(), kSlotSize) << name;
    }
}

TEST(SpoolFormat, SectorHeader) {
    Bytes out(kSectorHeaderSize);
    encode_header(readme_header(), kGeometry, out.data());
    EXPECT_EQ(out, vector_named("sector-header"));

    const Bytes doc = vector_named("sector-header");
    SectorHeader h;
    ASSERT_TRUE(decode_header(doc.data(), kGeometry, &h));
    EXPECT_EQ(h.incarnation, kIncarnation);
    EXPECT_EQ(h.sector_seq, 1u);
    EXPECT_EQ(h.boot, 0u);
    EXPECT_EQ(h.base_seq, 1u);
    EXPECT_EQ(h.floor, 0u);
    EXPECT_EQ(h.dropped, 0u);
}

TEST(SpoolFormat, AHeaderIsValidOnlyForItsGeometryAndIntact) {
    const Bytes doc = vector_named("sector-header");
    SectorHeader h;
    EXPECT_FALSE(decode_header(doc.data(), hal::FlashGeometry{512, 2, 4}, &h)) << "another sector size";
    EXPECT_FALSE(decode_header(doc.data(), hal::FlashGeometry{256, 4, 4}, &h)) << "another sector count";
    for (std::size_t i = 0; i < kSectorHeaderSize; ++i) {
        Bytes torn = doc;
        torn[i] ^= 0x01;
        EXPECT_FALSE(decode_header(torn.data(), kGeometry, &h)) << "bit flipped in byte " << i;
    }
    const Bytes erased(kSectorHeaderSize, 0xFF);
    EXPECT_FALSE(decode_header(erased.data(), kGeometry, &h));
}

TEST(SpoolFormat, AHeaderNeedsFloorBelowBaseSeq) {
    Bytes out(kSectorHeaderSize);
    SectorHeader h = readme_header();
    h.base_seq = 10;
    h.floor = 9;
    encode_header(h, kGeometry, out.data());
    SectorHeader back;
    ASSERT_TRUE(decode_header(out.data(), kGeometry, &back));
    EXPECT_EQ(back.floor, 9u);
    h.floor = 10;
    encode_header(h, kGeometry, out.data());
    EXPECT_FALSE(decode_header(out.data(), kGeometry, &back));
    h.base_seq = 0;
    h.floor = 0;
    encode_header(h, kGeometry, out.data());
    EXPECT_FALSE(decode_header(out.data(), kGeometry, &back)) << "seq 0 is never used";
}

TEST(SpoolFormat, BootMarker) {
    Bytes out(kSlotSize);
    encode_marker(kTypeBoot, 1, 1, 0, kIncarnation, 1, out.data());
    EXPECT_EQ(out, vector_named("boot-marker"));
    const Slot slot = decoded(vector_named("boot-marker"));
    EXPECT_EQ(slot.kind, Slot::Kind::Boot);
    EXPECT_EQ(slot.boot, 1u);
    EXPECT_EQ(slot.next_seq, 1u);
    EXPECT_EQ(slot.sector_seq, 1u);
}

TEST(SpoolFormat, Reading) {
    Bytes out(kSlotSize);
    encode_reading(protocol::Record{3, 1000, 21.5}, 1, 0, kIncarnation, 1, out.data());
    EXPECT_EQ(out, vector_named("reading"));
    const Slot slot = decoded(vector_named("reading"));
    EXPECT_EQ(slot.kind, Slot::Kind::Reading);
    EXPECT_EQ(slot.seq, 1u);
    EXPECT_EQ(slot.boot, 1u);
    EXPECT_EQ(slot.record.channel, 3u);
    EXPECT_EQ(slot.record.mono_ms, 1000u);
    EXPECT_EQ(slot.record.value, 21.5);

    // The seq is stored relative to the sector's base seq.
    SectorHeader later = readme_header();
    later.base_seq = 1'000'000;
    Bytes moved = vector_named("reading");
    EXPECT_EQ(decoded(moved, later).seq, 1'000'000u);
}

TEST(SpoolFormat, OffsetMarker) {
    Bytes out(kSlotSize);
    encode_marker(kTypeOffset, 1, 2, static_cast<std::uint64_t>(kOffset), kIncarnation, 1, out.data());
    EXPECT_EQ(out, vector_named("offset-marker"));
    const Slot slot = decoded(vector_named("offset-marker"));
    EXPECT_EQ(slot.kind, Slot::Kind::Offset);
    EXPECT_EQ(slot.next_seq, 2u);
    EXPECT_EQ(static_cast<std::int64_t>(slot.value), kOffset);

    // Signed: an offset before 1970 survives too.
    encode_marker(kTypeOffset, 1, 2, static_cast<std::uint64_t>(std::int64_t{-3'600'000}), kIncarnation, 1, out.data());
    EXPECT_EQ(static_cast<std::int64_t>(decoded(out).value), -3'600'000);
}

TEST(SpoolFormat, TrimMarker) {
    Bytes out(kSlotSize);
    encode_marker(kTypeTrim, 1, 2, 1, kIncarnation, 1, out.data());
    EXPECT_EQ(out, vector_named("trim-marker"));
    const Slot slot = decoded(vector_named("trim-marker"));
    EXPECT_EQ(slot.kind, Slot::Kind::Trim);
    EXPECT_EQ(slot.next_seq, 2u);
    EXPECT_EQ(slot.value, 1u);
}

TEST(SpoolFormat, ErasedIsBlankAndEveryTornSlotIsBad) {
    EXPECT_EQ(decoded(Bytes(kSlotSize, 0xFF)).kind, Slot::Kind::Blank);
    for (const char* name : {"boot-marker", "reading", "offset-marker", "trim-marker"}) {
        const Bytes doc = vector_named(name);
        for (std::size_t i = 0; i < kSlotSize; ++i) {
            Bytes torn = doc;
            torn[i] &= static_cast<std::uint8_t>(~0x10);  // a program cut short only clears bits
            if (torn == doc) continue;
            EXPECT_EQ(decoded(torn).kind, Slot::Kind::Bad) << name << ", byte " << i;
        }
    }
}

TEST(SpoolFormat, ASlotBelongsToOneIncarnationAndOneUseOfItsSector) {
    const Bytes doc = vector_named("reading");
    SectorHeader other = readme_header();
    other.incarnation ^= 1;
    EXPECT_EQ(decoded(doc, other).kind, Slot::Kind::Bad) << "another incarnation";
    other = readme_header();
    other.sector_seq = 1 + kGeometry.sector_count;  // the same sector, one lap later
    EXPECT_EQ(decoded(doc, other).kind, Slot::Kind::Bad) << "left over from an earlier use";
}

TEST(SpoolFormat, ZeroFieldsUnknownTypesAndBootValuesAreChecked) {
    Bytes slot = vector_named("reading");
    slot[2] = 1;  // zero field of every record
    reseal(slot);
    EXPECT_EQ(decoded(slot).kind, Slot::Kind::Bad);

    slot = vector_named("trim-marker");
    slot[1] = 1;  // markers have no channel
    reseal(slot);
    EXPECT_EQ(decoded(slot).kind, Slot::Kind::Bad);

    slot = vector_named("offset-marker");
    slot[24] = 1;  // zero before the CRC
    reseal(slot);
    EXPECT_EQ(decoded(slot).kind, Slot::Kind::Bad);

    slot = vector_named("boot-marker");
    slot[16] = 1;  // boot markers carry no value
    reseal(slot);
    EXPECT_EQ(decoded(slot).kind, Slot::Kind::Bad);

    slot = vector_named("boot-marker");
    slot[0] = 0x99;  // a type this version does not know
    reseal(slot);
    EXPECT_EQ(decoded(slot).kind, Slot::Kind::Bad);
}

TEST(SpoolFormat, SlotsPerSectorAndWhereTheyStart) {
    EXPECT_EQ(slots_per_sector(256), 6u);
    EXPECT_EQ(slots_per_sector(4096), 126u);
    EXPECT_EQ(slots_per_sector(128), 2u);
    EXPECT_EQ(slots_per_sector(64 + 32 + 31), 1u) << "bytes left over stay unused";
    EXPECT_EQ(slot_offset(0), 64u);
    EXPECT_EQ(slot_offset(3), 64u + 3u * 32u);
}

// The spool writes exactly the README's bytes for the README's story.
TEST(SpoolFormat, TheSpoolWritesTheReadmeVectors) {
    struct FixedRandom final : hal::Random {
        std::uint32_t next_u32() override { return 0; }
        std::uint64_t next_u64() override { return kIncarnation; }
    } random;
    testing::RamFlash flash(kGeometry);
    FlashSpool store(flash, random);
    ASSERT_EQ(store.mount(), reader::StoreStatus::Ok);
    ASSERT_EQ(store.append(protocol::Record{3, 1000, 21.5}, nullptr), reader::StoreStatus::Ok);
    ASSERT_EQ(store.note_wall_offset(kOffset), reader::StoreStatus::Ok);
    ASSERT_EQ(store.trim(1), reader::StoreStatus::Ok);

    const auto at = [&](std::size_t offset, std::size_t length) {
        return Bytes(flash.bytes().begin() + static_cast<std::ptrdiff_t>(offset),
                     flash.bytes().begin() + static_cast<std::ptrdiff_t>(offset + length));
    };
    EXPECT_EQ(at(0, kSectorHeaderSize), vector_named("sector-header"));
    const char* slots[] = {"boot-marker", "reading", "offset-marker", "trim-marker"};
    for (std::uint32_t i = 0; i < 4; ++i) EXPECT_EQ(at(slot_offset(i), kSlotSize), vector_named(slots[i])) << slots[i];
    EXPECT_EQ(at(slot_offset(4), kSlotSize), Bytes(kSlotSize, 0xFF)) << "nothing else written";
    EXPECT_EQ(at(kGeometry.sector_size, kSectorHeaderSize), Bytes(kSectorHeaderSize, 0xFF)) << "sector 1 unused";
}

}  // namespace
}  // namespace fieldlink::spool
