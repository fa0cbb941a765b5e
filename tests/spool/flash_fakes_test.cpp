// The flash fakes must behave like NOR flash, or the spool tests prove nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "ram_flash.hpp"

namespace fieldlink::testing {
namespace {

constexpr hal::FlashGeometry kGeometry{256, 4, 4};

std::vector<std::uint8_t> contents(RamFlash& flash, std::uint32_t address, std::size_t length) {
    std::vector<std::uint8_t> out(length);
    EXPECT_EQ(flash.read(address, out.data(), length), hal::FlashStatus::Ok);
    return out;
}

TEST(RamFlash, StartsErased) {
    RamFlash flash(kGeometry);
    EXPECT_EQ(flash.bytes().size(), 1024u);
    EXPECT_TRUE(std::all_of(flash.bytes().begin(), flash.bytes().end(), [](auto b) { return b == 0xFF; }));
}

TEST(RamFlash, ProgramOnlyClearsBits) {
    RamFlash flash(kGeometry);
    const std::array<std::uint8_t, 4> first{0xF0, 0x0F, 0xAA, 0xFF};
    ASSERT_EQ(flash.program(8, first.data(), first.size()), hal::FlashStatus::Ok);
    // Clearing more bits over programmed data is allowed.
    const std::array<std::uint8_t, 4> fewer{0x30, 0x0F, 0x00, 0xFE};
    ASSERT_EQ(flash.program(8, fewer.data(), fewer.size()), hal::FlashStatus::Ok);
    EXPECT_EQ(contents(flash, 8, 4), std::vector<std::uint8_t>(fewer.begin(), fewer.end()));
    // Setting a bit back to 1 is refused and changes nothing.
    const std::array<std::uint8_t, 4> sets_bit{0x30, 0x0F, 0x01, 0xFE};
    EXPECT_EQ(flash.program(8, sets_bit.data(), sets_bit.size()), hal::FlashStatus::NotErased);
    EXPECT_EQ(contents(flash, 8, 4), std::vector<std::uint8_t>(fewer.begin(), fewer.end()));
}

TEST(RamFlash, ChecksAlignmentAndRange) {
    RamFlash flash(kGeometry);
    const std::array<std::uint8_t, 8> data{};
    EXPECT_EQ(flash.program(2, data.data(), 4), hal::FlashStatus::Misaligned);
    EXPECT_EQ(flash.program(4, data.data(), 6), hal::FlashStatus::Misaligned);
    EXPECT_EQ(flash.program(1020, data.data(), 8), hal::FlashStatus::OutOfRange);
    EXPECT_EQ(flash.program(0, nullptr, 4), hal::FlashStatus::InvalidArgument);
    std::array<std::uint8_t, 8> out{};
    EXPECT_EQ(flash.read(1020, out.data(), 8), hal::FlashStatus::OutOfRange);
    EXPECT_EQ(flash.read(1021, out.data(), 3), hal::FlashStatus::Ok);  // reads need no alignment
    EXPECT_EQ(flash.erase(4), hal::FlashStatus::OutOfRange);
    EXPECT_EQ(flash.counters().programs, 0u);
}

TEST(RamFlash, EraseResetsOneSectorAndCounts) {
    RamFlash flash(kGeometry);
    std::fill(flash.bytes().begin(), flash.bytes().end(), 0x00);
    ASSERT_EQ(flash.erase(2), hal::FlashStatus::Ok);
    ASSERT_EQ(flash.erase(2), hal::FlashStatus::Ok);
    for (std::size_t i = 0; i < flash.bytes().size(); ++i) {
        EXPECT_EQ(flash.bytes()[i], (i / 256 == 2) ? 0xFF : 0x00) << i;
    }
    EXPECT_EQ(flash.erase_count(2), 2u);
    EXPECT_EQ(flash.erase_count(1), 0u);
    EXPECT_EQ(flash.counters().erases, 2u);
}

TEST(FaultFlash, PassesThroughUntilTheCut) {
    RamFlash ram(kGeometry);
    FaultFlash flash(ram);
    flash.cut_power_at(2, CutMode::Skip, 1);
    const std::array<std::uint8_t, 4> data{1, 2, 3, 4};
    EXPECT_EQ(flash.program(0, data.data(), 4), hal::FlashStatus::Ok);       // op 0
    EXPECT_EQ(flash.erase(1), hal::FlashStatus::Ok);                         // op 1
    EXPECT_EQ(flash.program(4, data.data(), 4), hal::FlashStatus::IoError);  // op 2: cut, skipped
    EXPECT_FALSE(flash.powered());
    EXPECT_EQ(ram.bytes()[4], 0xFF);
    std::array<std::uint8_t, 4> out{};
    EXPECT_EQ(flash.read(0, out.data(), 4), hal::FlashStatus::IoError);
    EXPECT_EQ(flash.erase(0), hal::FlashStatus::IoError);
    EXPECT_EQ(ram.bytes()[0], 1);  // nothing after the cut reached the flash
    EXPECT_EQ(flash.operations(), 3u);
}

TEST(FaultFlash, CompleteCutAppliesTheOperation) {
    RamFlash ram(kGeometry);
    FaultFlash flash(ram);
    flash.cut_power_at(0, CutMode::Complete, 1);
    const std::array<std::uint8_t, 4> data{1, 2, 3, 4};
    EXPECT_EQ(flash.program(0, data.data(), 4), hal::FlashStatus::IoError);
    EXPECT_EQ(ram.bytes()[3], 4);
}

TEST(FaultFlash, TornProgramLeavesSomethingBetweenOldAndNew) {
    std::vector<std::uint8_t> target(32);
    for (std::size_t i = 0; i < target.size(); ++i) {
        target[i] = static_cast<std::uint8_t>(i * 37);
    }
    int partial = 0;
    for (std::uint64_t seed = 0; seed < 64; ++seed) {
        RamFlash ram(kGeometry);
        FaultFlash flash(ram);
        flash.cut_power_at(0, CutMode::Torn, seed);
        EXPECT_EQ(flash.program(64, target.data(), target.size()), hal::FlashStatus::IoError);
        bool differs = false;
        for (std::size_t i = 0; i < target.size(); ++i) {
            const std::uint8_t now = ram.bytes()[64 + i];
            EXPECT_EQ(now & target[i], target[i]) << "a bit went lower than programmed";
            differs |= now != target[i];
        }
        EXPECT_EQ(ram.bytes()[63], 0xFF);
        EXPECT_EQ(ram.bytes()[96], 0xFF);
        partial += differs ? 1 : 0;
    }
    EXPECT_GT(partial, 32);  // most seeds leave the program incomplete
}

TEST(FaultFlash, TornEraseOnlySetsBits) {
    int header_survived = 0;
    int header_lost = 0;
    for (std::uint64_t seed = 0; seed < 64; ++seed) {
        RamFlash ram(kGeometry);
        std::fill(ram.bytes().begin(), ram.bytes().end(), 0x5A);
        FaultFlash flash(ram);
        flash.cut_power_at(0, CutMode::Torn, seed);
        EXPECT_EQ(flash.erase(1), hal::FlashStatus::IoError);
        for (std::size_t i = 0; i < ram.bytes().size(); ++i) {
            const std::uint8_t now = ram.bytes()[i];
            if (i / 256 == 1) {
                EXPECT_EQ(now & 0x5A, 0x5A) << "an erase cleared a bit";
            } else {
                EXPECT_EQ(now, 0x5A) << "another sector changed";
            }
        }
        (ram.bytes()[256] == 0x5A && ram.bytes()[256 + 63] == 0x5A ? header_survived : header_lost)++;
    }
    EXPECT_GT(header_survived, 0);  // the suffix mode keeps the start of the sector
    EXPECT_GT(header_lost, 0);
}

}  // namespace
}  // namespace fieldlink::testing
