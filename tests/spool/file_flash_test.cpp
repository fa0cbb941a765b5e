// The host board's file flash: same NOR semantics as the fakes, persistence
// across reopen, crash-safe creation and an exclusive lock.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "fieldlink/boards/host/file_flash.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "ram_flash.hpp"

namespace fieldlink::boards::host {
namespace {

constexpr hal::FlashGeometry kGeometry{512, 8, 8};

class FileFlashTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = ::testing::TempDir() + "fieldlink-file-flash-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        folder_ = pattern;
        path_ = folder_ + "/flash.bin";
    }
    void TearDown() override {
        ::unlink(path_.c_str());
        ::unlink((path_ + ".new").c_str());
        ::rmdir(folder_.c_str());
    }
    std::string folder_;
    std::string path_;
};

TEST_F(FileFlashTest, CreatesAnErasedFileOfTheRightSize) {
    FileFlash flash;
    ASSERT_EQ(flash.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
    struct stat info {};
    ASSERT_EQ(::stat(path_.c_str(), &info), 0);
    EXPECT_EQ(static_cast<std::uint64_t>(info.st_size), kGeometry.size());
    EXPECT_NE(::access((path_ + ".new").c_str(), F_OK), 0);
    std::vector<std::uint8_t> all(kGeometry.size());
    ASSERT_EQ(flash.read(0, all.data(), all.size()), hal::FlashStatus::Ok);
    for (auto byte : all) {
        ASSERT_EQ(byte, 0xFF);
    }
}

TEST_F(FileFlashTest, HasNorSemanticsAndPersists) {
    const std::array<std::uint8_t, 8> data{0xF0, 0x0F, 0x00, 0xFF, 0x12, 0x34, 0x56, 0x78};
    {
        FileFlash flash;
        ASSERT_EQ(flash.open(path_.c_str(), kGeometry, FileFlash::Durability::ProcessCrashOnly), hal::FlashStatus::Ok);
        ASSERT_EQ(flash.program(520, data.data(), data.size()), hal::FlashStatus::Ok);
        const std::array<std::uint8_t, 8> sets_bit{0xF1, 0x0F, 0x00, 0xFF, 0x12, 0x34, 0x56, 0x78};
        EXPECT_EQ(flash.program(520, sets_bit.data(), sets_bit.size()), hal::FlashStatus::NotErased);
        EXPECT_EQ(flash.program(4, data.data(), 8), hal::FlashStatus::Misaligned);
        EXPECT_EQ(flash.program(4096, data.data(), 8), hal::FlashStatus::OutOfRange);
        EXPECT_EQ(flash.erase(8), hal::FlashStatus::OutOfRange);
        EXPECT_EQ(flash.counters().programs, 1u);
    }
    FileFlash flash;
    ASSERT_EQ(flash.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
    std::array<std::uint8_t, 8> out{};
    ASSERT_EQ(flash.read(520, out.data(), out.size()), hal::FlashStatus::Ok);
    EXPECT_EQ(out, data);
    ASSERT_EQ(flash.erase(1), hal::FlashStatus::Ok);
    ASSERT_EQ(flash.read(520, out.data(), out.size()), hal::FlashStatus::Ok);
    for (auto byte : out) {
        EXPECT_EQ(byte, 0xFF);
    }
    EXPECT_EQ(flash.erase_count(1), 1u);
}

TEST_F(FileFlashTest, RefusesAFileOfAnotherGeometry) {
    {
        FileFlash flash;
        ASSERT_EQ(flash.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
    }
    FileFlash flash;
    EXPECT_EQ(flash.open(path_.c_str(), hal::FlashGeometry{512, 16, 8}), hal::FlashStatus::InvalidArgument);
    EXPECT_FALSE(flash.is_open());
    struct stat info {};
    ASSERT_EQ(::stat(path_.c_str(), &info), 0);
    EXPECT_EQ(static_cast<std::uint64_t>(info.st_size), kGeometry.size());  // left untouched
    EXPECT_EQ(flash.open(path_.c_str(), hal::FlashGeometry{512, 8, 3}), hal::FlashStatus::InvalidArgument);
}

TEST_F(FileFlashTest, OnlyOneOpenerAtATime) {
    FileFlash first;
    ASSERT_EQ(first.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
    FileFlash second;
    EXPECT_EQ(second.open(path_.c_str(), kGeometry), hal::FlashStatus::IoError);
    EXPECT_EQ(second.last_error(), EWOULDBLOCK);
    first.close();
    EXPECT_EQ(second.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
}

TEST_F(FileFlashTest, SpoolSurvivesReopen) {
    fieldlink::testing::SeededRandom random(7);
    std::uint64_t incarnation = 0;
    {
        FileFlash flash;
        ASSERT_EQ(flash.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
        spool::FlashSpool store(flash, random);
        ASSERT_EQ(store.mount(), reader::StoreStatus::Ok);
        incarnation = store.incarnation();
        for (int i = 0; i < 40; ++i) {
            protocol::Record record{static_cast<std::uint8_t>(i % 3), 1000u + static_cast<unsigned>(i), i * 0.5};
            ASSERT_EQ(store.append(record, nullptr), reader::StoreStatus::Ok);
        }
        ASSERT_EQ(store.trim(10), reader::StoreStatus::Ok);
    }
    FileFlash flash;
    ASSERT_EQ(flash.open(path_.c_str(), kGeometry), hal::FlashStatus::Ok);
    spool::FlashSpool store(flash, random);
    ASSERT_EQ(store.mount(), reader::StoreStatus::Ok);
    EXPECT_EQ(store.incarnation(), incarnation);
    EXPECT_EQ(store.boot(), 2u);
    EXPECT_EQ(store.held(), 30u);
    EXPECT_EQ(store.oldest_seq(), 11u);
    EXPECT_EQ(store.next_seq(), 41u);
    std::array<reader::StoredReading, 64> out{};
    ASSERT_EQ(store.read(0, out.data(), out.size()), 30u);
    EXPECT_EQ(out[0].seq, 11u);
    EXPECT_EQ(out[0].record.value, 5.0);
    EXPECT_EQ(out[29].record.mono_ms, 1039u);
}

}  // namespace
}  // namespace fieldlink::boards::host
