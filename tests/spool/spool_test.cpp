// Flash spool behaviour on the RAM fake: append, read, trim, rotation, wear,
// full policies, recovery and the boot counter.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fieldlink/spool/flash_spool.hpp"
#include "ram_flash.hpp"
#include "spool_format.hpp"  // kSectorHeaderSize, kSlotSize (private to the spool)

namespace fieldlink::testing {
namespace {

using reader::FullPolicy;
using reader::StoredReading;
using reader::StoreStatus;
using spool::FlashSpool;

// 256-byte sectors hold a 64-byte header and 6 records.
constexpr hal::FlashGeometry kSmall{256, 6, 4};

protocol::Record make_record(std::uint64_t n) {
    return protocol::Record{static_cast<std::uint8_t>(n % 5), 1000 * n + 7, static_cast<double>(n) * 0.25 - 3.0};
}

class SpoolTest : public ::testing::Test {
protected:
    explicit SpoolTest(hal::FlashGeometry geometry = kSmall) : flash_(geometry) {}

    // A reboot: the RAM state goes, the flash stays.
    StoreStatus boot(FullPolicy policy = FullPolicy::DropOldest) {
        store_ = std::make_unique<FlashSpool>(flash_, random_, spool::SpoolConfig{policy});
        return store_->mount();
    }

    std::uint64_t append(std::uint64_t n) {
        std::uint64_t seq = 0;
        EXPECT_EQ(store_->append(make_record(n), &seq), StoreStatus::Ok);
        return seq;
    }

    std::vector<StoredReading> read_all(std::size_t batch = 4) {
        std::vector<StoredReading> all;
        std::vector<StoredReading> buffer(batch);
        std::uint64_t from = 0;
        for (;;) {
            const std::size_t got = store_->read(from, buffer.data(), buffer.size());
            if (got == 0) {
                return all;
            }
            all.insert(all.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(got));
            from = buffer[got - 1].seq + 1;
        }
    }

    RamFlash flash_;
    SeededRandom random_{42};
    std::unique_ptr<FlashSpool> store_;
};

TEST_F(SpoolTest, FormatsBlankFlash) {
    SeededRandom expected(42);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_TRUE(store_->stats().formatted);
    EXPECT_EQ(store_->incarnation(), expected.next_u64());
    EXPECT_EQ(store_->boot(), 1u);
    EXPECT_EQ(store_->next_seq(), 1u);
    EXPECT_EQ(store_->oldest_seq(), 1u);
    EXPECT_EQ(store_->held(), 0u);
    EXPECT_EQ(store_->dropped(), 0u);
    StoredReading out[2];
    EXPECT_EQ(store_->read(0, out, 2), 0u);
}

TEST_F(SpoolTest, RejectsUnusableGeometry) {
    for (const auto geometry : {hal::FlashGeometry{256, 1, 4}, hal::FlashGeometry{96, 4, 4},
                                hal::FlashGeometry{256, 4, 64}, hal::FlashGeometry{256, 4, 3}}) {
        RamFlash flash(geometry);
        FlashSpool store(flash, random_);
        EXPECT_EQ(store.mount(), StoreStatus::InvalidArgument);
        // Unmounted: every call fails cleanly.
        EXPECT_EQ(store.append(make_record(1), nullptr), StoreStatus::IoError);
        EXPECT_EQ(store.trim(0), StoreStatus::IoError);
        EXPECT_EQ(store.note_wall_offset(5), StoreStatus::IoError);
        std::int64_t offset = 0;
        EXPECT_FALSE(store.wall_offset(1, &offset));
        StoredReading out[1];
        EXPECT_EQ(store.read(0, out, 1), 0u);
        EXPECT_FALSE(FlashSpool::usable(geometry));
        EXPECT_EQ(FlashSpool::capacity(geometry), 0u);
    }
}

TEST_F(SpoolTest, RecordOfAnUnknownTypeIsSkipped) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    append(1);
    // A record with a correct CRC but a type this version does not know (say,
    // written by a newer firmware) in slot 2, after the boot marker and seq 1.
    std::uint8_t slot[spool::kSlotSize] = {0x99};
    std::uint8_t input[8 + 4 + 28];
    const std::uint64_t incarnation = store_->incarnation();
    for (int i = 0; i < 8; ++i) {
        input[i] = static_cast<std::uint8_t>(incarnation >> (8 * i));
    }
    input[8] = 1;  // sector seq of sector 0
    input[9] = input[10] = input[11] = 0;
    std::memcpy(input + 12, slot, 28);
    const std::uint32_t crc = protocol::crc32(input, sizeof input);
    for (int i = 0; i < 4; ++i) {
        slot[28 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    }
    std::memcpy(flash_.bytes().data() + spool::kSectorHeaderSize + 2 * spool::kSlotSize, slot, sizeof slot);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_EQ(store_->stats().bad_slots, 1u);
    const auto all = read_all();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].seq, 1u);
    EXPECT_GE(append(2), 2u);
    EXPECT_EQ(read_all().size(), 2u);
}

TEST_F(SpoolTest, ValuesSurviveBitForBit) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    const std::array<protocol::Record, 5> records{{
        {0, 0, 0.0},
        {255, std::numeric_limits<std::uint64_t>::max(), -0.0},
        {7, 123, std::numeric_limits<double>::quiet_NaN()},
        {8, 456, -std::numeric_limits<double>::infinity()},
        {9, 789, std::numeric_limits<double>::denorm_min()},
    }};
    for (const auto& record : records) {
        ASSERT_EQ(store_->append(record, nullptr), StoreStatus::Ok);
    }
    ASSERT_EQ(boot(), StoreStatus::Ok);  // read back from flash, not from RAM
    const auto all = read_all(8);
    ASSERT_EQ(all.size(), records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        EXPECT_EQ(all[i].seq, i + 1);
        EXPECT_EQ(all[i].boot, 1u);
        EXPECT_EQ(all[i].record.channel, records[i].channel);
        EXPECT_EQ(all[i].record.mono_ms, records[i].mono_ms);
        EXPECT_EQ(std::memcmp(&all[i].record.value, &records[i].value, sizeof(double)), 0);
    }
}

TEST_F(SpoolTest, SequenceAndIncarnationContinueAcrossReboots) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    const auto incarnation = store_->incarnation();
    EXPECT_EQ(append(1), 1u);
    EXPECT_EQ(append(2), 2u);
    for (std::uint32_t expected_boot = 2; expected_boot <= 6; ++expected_boot) {
        ASSERT_EQ(boot(), StoreStatus::Ok);
        EXPECT_FALSE(store_->stats().formatted);
        EXPECT_EQ(store_->incarnation(), incarnation);
        EXPECT_EQ(store_->boot(), expected_boot);  // every mount is a new boot, even without readings
    }
    EXPECT_EQ(store_->next_seq(), 3u);
    EXPECT_EQ(append(3), 3u);
    EXPECT_EQ(store_->held(), 3u);
}

TEST_F(SpoolTest, ReadStopsWhereTheBootChanges) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    append(1);
    append(2);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    append(3);
    StoredReading out[8];
    ASSERT_EQ(store_->read(0, out, 8), 2u);
    EXPECT_EQ(out[1].seq, 2u);
    EXPECT_EQ(out[1].boot, 1u);
    ASSERT_EQ(store_->read(3, out, 8), 1u);
    EXPECT_EQ(out[0].boot, 2u);
    EXPECT_EQ(out[0].record.mono_ms, make_record(3).mono_ms);
}

TEST_F(SpoolTest, ReadsFromAnyPointWithAnyBatchSize) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    for (std::uint64_t n = 1; n <= 20; ++n) {
        append(n);
        ASSERT_EQ(store_->trim(n > 3 ? n - 3 : 0), StoreStatus::Ok);  // keeps ~3, forces rotation
    }
    for (std::uint64_t from = 0; from <= 22; ++from) {
        for (std::size_t max = 1; max <= 4; ++max) {
            std::vector<StoredReading> out(max);
            const std::size_t got = store_->read(from, out.data(), max);
            const std::uint64_t first = std::max<std::uint64_t>(from, 18);
            const std::uint64_t expected = first > 20 ? 0 : std::min<std::uint64_t>(max, 21 - first);
            ASSERT_EQ(got, expected) << "from " << from << " max " << max;
            for (std::size_t i = 0; i < got; ++i) {
                EXPECT_EQ(out[i].seq, first + i);
                EXPECT_EQ(out[i].record.mono_ms, make_record(first + i).mono_ms);
            }
        }
    }
}

TEST_F(SpoolTest, TrimForgetsAndSurvivesReboot) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    for (std::uint64_t n = 1; n <= 10; ++n) {
        append(n);
    }
    ASSERT_EQ(store_->trim(4), StoreStatus::Ok);
    EXPECT_EQ(store_->held(), 6u);
    EXPECT_EQ(store_->oldest_seq(), 5u);
    EXPECT_EQ(store_->trim(2), StoreStatus::Ok);  // below the floor: nothing to do
    EXPECT_EQ(store_->held(), 6u);
    EXPECT_EQ(store_->trim(11), StoreStatus::InvalidArgument);  // never appended
    EXPECT_EQ(store_->held(), 6u);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_EQ(store_->held(), 6u);
    EXPECT_EQ(store_->oldest_seq(), 5u);
    EXPECT_EQ(store_->floor_seq(), 4u);
    const auto all = read_all();
    ASSERT_EQ(all.size(), 6u);
    EXPECT_EQ(all.front().seq, 5u);
    ASSERT_EQ(store_->trim(10), StoreStatus::Ok);
    EXPECT_EQ(store_->held(), 0u);
    EXPECT_EQ(store_->oldest_seq(), 11u);
    StoredReading out[1];
    EXPECT_EQ(store_->read(0, out, 1), 0u);
}

TEST_F(SpoolTest, RotationSpreadsWearRoundRobin) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    const auto spread = [this] {
        std::uint64_t low = ~0ull;
        std::uint64_t high = 0;
        for (std::uint32_t sector = 0; sector < kSmall.sector_count; ++sector) {
            low = std::min(low, flash_.erase_count(sector));
            high = std::max(high, flash_.erase_count(sector));
        }
        return std::pair{low, high};
    };
    // Steady state of a device whose gateway acks every few readings: 600
    // readings and 150 trim markers fill 125 sectors, each erased once when
    // emptied, in ring order.
    const auto erases_before = flash_.counters().erases;
    for (std::uint64_t n = 1; n <= 600; ++n) {
        append(n);
        if (n % 4 == 0) {
            ASSERT_EQ(store_->trim(n - 2), StoreStatus::Ok);
        }
        ASSERT_LE(store_->stats().live_sectors, kSmall.sector_count - 1);
    }
    const auto [low, high] = spread();
    EXPECT_GE(low, 20u);
    EXPECT_LE(high - low, 1u) << "sectors wear unevenly";
    EXPECT_LE(flash_.counters().erases - erases_before, 125u);
    // After a reboot the free sectors are not trusted to be blank and are
    // erased once more before use; the ring still spreads that evenly.
    for (std::uint64_t n = 601; n <= 1200; ++n) {
        append(n);
        if (n % 4 == 0) {
            ASSERT_EQ(store_->trim(n - 2), StoreStatus::Ok);
        }
        if (n % 50 == 0) {
            ASSERT_EQ(boot(), StoreStatus::Ok);
        }
    }
    const auto [low2, high2] = spread();
    EXPECT_LE(high2 - low2, 3u) << "sectors wear unevenly across reboots";
    const auto all = read_all();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].seq, 1199u);
}

TEST_F(SpoolTest, DropOldestCountsEveryDroppedReading) {
    ASSERT_EQ(boot(FullPolicy::DropOldest), StoreStatus::Ok);
    const std::uint64_t total = 100;
    for (std::uint64_t n = 1; n <= total; ++n) {
        ASSERT_EQ(append(n), n);
        ASSERT_EQ(store_->held() + store_->dropped(), n);  // nothing disappears uncounted
        ASSERT_LE(store_->stats().live_sectors, kSmall.sector_count - 1);
    }
    EXPECT_GT(store_->dropped(), 0u);
    const auto held = store_->held();
    EXPECT_GE(held, (kSmall.sector_count - 2) * 6u - 1);  // boot marker takes a slot
    const auto all = read_all();
    ASSERT_EQ(all.size(), held);
    EXPECT_EQ(all.front().seq, total - held + 1);  // the newest ones, contiguous
    EXPECT_EQ(all.back().seq, total);
    EXPECT_EQ(store_->oldest_seq(), all.front().seq);
    const auto dropped = store_->dropped();
    ASSERT_EQ(boot(FullPolicy::DropOldest), StoreStatus::Ok);
    EXPECT_EQ(store_->dropped(), dropped);  // the count is on flash
    EXPECT_EQ(store_->held(), held);
}

TEST_F(SpoolTest, RefuseNewStopsWithoutChangingAnything) {
    ASSERT_EQ(boot(FullPolicy::RefuseNew), StoreStatus::Ok);
    std::uint64_t n = 0;
    for (;;) {
        std::uint64_t seq = 0;
        const auto status = store_->append(make_record(n + 1), &seq);
        if (status == StoreStatus::Full) {
            break;
        }
        ASSERT_EQ(status, StoreStatus::Ok);
        ++n;
        ASSERT_LT(n, 1000u);
    }
    EXPECT_GE(n, FlashSpool::capacity(kSmall) - 6 - 1);  // all but a spare sector (less the boot marker)
    EXPECT_EQ(store_->next_seq(), n + 1);
    EXPECT_EQ(store_->held(), n);
    EXPECT_EQ(store_->dropped(), 0u);
    EXPECT_EQ(store_->append(make_record(0), nullptr), StoreStatus::Full);
    // A reboot while full still works, and nothing is lost.
    ASSERT_EQ(boot(FullPolicy::RefuseNew), StoreStatus::Ok);
    EXPECT_EQ(store_->held(), n);
    EXPECT_EQ(store_->append(make_record(0), nullptr), StoreStatus::Full);
    // A trim that empties the oldest sector makes room.
    ASSERT_EQ(store_->trim(8), StoreStatus::Ok);
    EXPECT_EQ(append(n + 1), n + 1);
    const auto all = read_all();
    ASSERT_EQ(all.size(), n + 1 - 8);
    EXPECT_EQ(all.front().seq, 9u);
}

TEST_F(SpoolTest, GarbageFlashIsFormatted) {
    SeededRandom noise(3);
    for (auto& byte : flash_.bytes()) {
        byte = static_cast<std::uint8_t>(noise.next_u32());
    }
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_TRUE(store_->stats().formatted);
    EXPECT_EQ(store_->next_seq(), 1u);
    EXPECT_EQ(append(1), 1u);
}

TEST_F(SpoolTest, ReadErrorsNeverFormat) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    append(1);
    const auto before = flash_.bytes();
    FaultFlash dead(flash_);
    dead.power_off();
    FlashSpool store(dead, random_);
    EXPECT_EQ(store.mount(), StoreStatus::IoError);
    EXPECT_FALSE(store.mounted());
    EXPECT_EQ(flash_.bytes(), before);
}

TEST_F(SpoolTest, CorruptRecordIsSkippedNeverReturned) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    for (std::uint64_t n = 1; n <= 12; ++n) {
        append(n);
    }
    // Flip one bit in the value of the third reading (sector 0 holds the boot
    // marker then readings 1..5).
    const std::size_t third = spool::kSectorHeaderSize + 3 * spool::kSlotSize + 20;
    flash_.bytes()[third] ^= 0x01;
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_EQ(store_->stats().bad_slots, 1u);
    const auto all = read_all();
    ASSERT_EQ(all.size(), 11u);
    for (const auto& reading : all) {
        EXPECT_NE(reading.seq, 3u);
        EXPECT_EQ(reading.record.value, make_record(reading.seq).value);
    }
    EXPECT_EQ(store_->next_seq(), 13u);
}

TEST_F(SpoolTest, TornAppendSkipsItsSequenceNumber) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    append(1);
    append(2);
    {
        FaultFlash faulty(flash_);
        FlashSpool store(faulty, random_);
        // mount writes a boot marker (op 0): let it through, cut the append.
        faulty.cut_power_at(1, CutMode::Torn, 11);
        ASSERT_EQ(store.mount(), StoreStatus::Ok);
        EXPECT_EQ(store.next_seq(), 3u);
        EXPECT_EQ(store.append(make_record(3), nullptr), StoreStatus::IoError);
        EXPECT_EQ(store.next_seq(), 4u);                                         // spent, even in RAM
        EXPECT_EQ(store.append(make_record(4), nullptr), StoreStatus::IoError);  // needs a remount now
    }
    ASSERT_EQ(boot(), StoreStatus::Ok);
    EXPECT_GE(store_->next_seq(), 4u);  // 3 may be partly on flash: never again
    const auto seq = append(5);
    EXPECT_GE(seq, 4u);
    const auto all = read_all();
    ASSERT_GE(all.size(), 3u);
    EXPECT_EQ(all[0].seq, 1u);
    EXPECT_EQ(all[1].seq, 2u);
    EXPECT_EQ(all.back().seq, seq);
    EXPECT_EQ(all.back().record.mono_ms, make_record(5).mono_ms);
}

TEST_F(SpoolTest, WallOffsetOfEachBootSurvivesRebootsAndTrims) {
    ASSERT_EQ(boot(), StoreStatus::Ok);  // boot 1
    append(1);
    append(2);
    std::int64_t offset = 0;
    EXPECT_FALSE(store_->wall_offset(1, &offset));
    ASSERT_EQ(store_->note_wall_offset(1'700'000'000'000), StoreStatus::Ok);
    const auto programs = flash_.counters().programs;
    ASSERT_EQ(store_->note_wall_offset(1'700'000'000'000), StoreStatus::Ok);
    EXPECT_EQ(flash_.counters().programs, programs);  // unchanged value: no write
    ASSERT_TRUE(store_->wall_offset(1, &offset));
    EXPECT_EQ(offset, 1'700'000'000'000);
    for (std::uint64_t n = 3; n <= 14; ++n) {
        append(n);  // fills later sectors, each opened with the offset
    }
    ASSERT_EQ(boot(), StoreStatus::Ok);  // boot 2 learns nothing
    append(15);
    ASSERT_EQ(boot(), StoreStatus::Ok);  // boot 3
    ASSERT_EQ(store_->note_wall_offset(-5), StoreStatus::Ok);
    EXPECT_TRUE(store_->wall_offset(1, &offset));
    EXPECT_EQ(offset, 1'700'000'000'000);
    EXPECT_FALSE(store_->wall_offset(2, &offset));
    EXPECT_TRUE(store_->wall_offset(3, &offset));
    EXPECT_EQ(offset, -5);
    // Erase the sector where boot 1 noted its offset; boot 1 still has readings.
    const auto erases = flash_.counters().erases;
    ASSERT_EQ(store_->trim(6), StoreStatus::Ok);
    ASSERT_GT(flash_.counters().erases, erases);
    ASSERT_EQ(boot(), StoreStatus::Ok);
    const auto all = read_all();
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.front().boot, 1u);
    EXPECT_TRUE(store_->wall_offset(1, &offset));
    EXPECT_EQ(offset, 1'700'000'000'000);
    EXPECT_TRUE(store_->wall_offset(3, &offset));
    EXPECT_EQ(offset, -5);
    EXPECT_FALSE(store_->wall_offset(4, &offset));  // the running boot, not learned yet
}

class LargeSpoolTest : public SpoolTest {
protected:
    // 4 MiB of 4 KiB sectors: the kind of geometry the host reader uses.
    LargeSpoolTest() : SpoolTest(hal::FlashGeometry{4096, 1024, 8}) {}
};

TEST_F(LargeSpoolTest, BacklogOfAHundredThousandDrainsInOrder) {
    ASSERT_EQ(boot(), StoreStatus::Ok);
    constexpr std::uint64_t kBacklog = 100'000;
    for (std::uint64_t n = 1; n <= kBacklog; ++n) {
        ASSERT_EQ(append(n), n);
    }
    ASSERT_EQ(boot(), StoreStatus::Ok);  // the device rebooted during the outage
    EXPECT_EQ(store_->held(), kBacklog);
    EXPECT_EQ(store_->dropped(), 0u);
    // Drain as the reader does: batches from the oldest, trimmed as acks come.
    std::vector<StoredReading> batch(protocol::kMaxRecordsPerBatch);
    std::uint64_t expected = 1;
    std::uint64_t from = store_->oldest_seq();
    while (store_->held() > 0) {
        const std::size_t got = store_->read(from, batch.data(), batch.size());
        ASSERT_GT(got, 0u);
        for (std::size_t i = 0; i < got; ++i, ++expected) {
            ASSERT_EQ(batch[i].seq, expected);
            ASSERT_EQ(batch[i].record.mono_ms, make_record(expected).mono_ms);
        }
        from = batch[got - 1].seq + 1;
        ASSERT_EQ(store_->trim(batch[got - 1].seq), StoreStatus::Ok);
    }
    EXPECT_EQ(expected, kBacklog + 1);
    EXPECT_LE(store_->stats().live_sectors, 2u);
}

// The test vector in firmware/spool/README.md, byte for byte.
TEST(SpoolLayout, MatchesTheDocumentedVector) {
    struct FixedRandom final : hal::Random {
        std::uint32_t next_u32() override { return 0; }
        std::uint64_t next_u64() override { return 0x1122334455667788ull; }
    } random;
    RamFlash flash(hal::FlashGeometry{256, 2, 4});
    FlashSpool store(flash, random);
    ASSERT_EQ(store.mount(), StoreStatus::Ok);
    ASSERT_EQ(store.append(protocol::Record{3, 1000, 21.5}, nullptr), StoreStatus::Ok);
    // The rows of the README, spaces removed.
    std::string expected =
        "46 4c 53 50 01 00 00 00 00 01 00 00 02 00 00 00 88 77 66 55 44 33 22 11 01 00 00 00 00 00 00 00"
        "01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1c a2 99 ef"
        "42 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 37 46 98 78"
        "52 03 00 00 01 00 00 00 00 00 00 00 e8 03 00 00 00 00 00 00 00 00 00 00 00 80 35 40 81 8c 3e 87";
    expected.erase(std::remove(expected.begin(), expected.end(), ' '), expected.end());
    std::string actual;
    char hex[3];
    for (std::size_t i = 0; i < 128; ++i) {
        std::snprintf(hex, sizeof hex, "%02x", flash.bytes()[i]);
        actual += hex;
    }
    EXPECT_EQ(actual, expected);
}

TEST_F(SpoolTest, RamUseIsFixedAndSmall) {
    // No per-reading or per-sector state: the object is the whole budget.
    EXPECT_LE(sizeof(FlashSpool), 512u);
    RecordProperty("sizeof_FlashSpool", static_cast<int>(sizeof(FlashSpool)));
}

TEST_F(SpoolTest, CapacityLeavesOneSectorFree) {
    EXPECT_EQ(FlashSpool::capacity(kSmall), 5u * 6u);
    EXPECT_EQ(FlashSpool::capacity(hal::FlashGeometry{4096, 64, 8}), 63u * 126u);
}

class TwoSectorSpoolTest : public SpoolTest {
protected:
    TwoSectorSpoolTest() : SpoolTest(hal::FlashGeometry{128, 2, 8}) {}
};

TEST_F(TwoSectorSpoolTest, WorksWithTheMinimumGeometry) {
    ASSERT_EQ(boot(FullPolicy::DropOldest), StoreStatus::Ok);
    for (std::uint64_t n = 1; n <= 20; ++n) {
        ASSERT_EQ(append(n), n);
        ASSERT_EQ(store_->held() + store_->dropped(), n);
    }
    ASSERT_EQ(boot(FullPolicy::DropOldest), StoreStatus::Ok);
    const auto all = read_all();
    EXPECT_EQ(all.size(), store_->held());
    EXPECT_EQ(store_->held() + store_->dropped(), 20u);
    EXPECT_EQ(append(21), 21u);
}

}  // namespace
}  // namespace fieldlink::testing
