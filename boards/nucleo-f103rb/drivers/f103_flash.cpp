#include "f103_flash.hpp"

#include <cstring>

#include "f103_registers.hpp"
#include "hw_access.hpp"
#include "ramfunc.hpp"

namespace fieldlink::boards::nucleo_f103rb {
namespace {

using namespace flash;

// Waits for BSY to clear and returns SR, or SR with BSY still set after
// `limit` polls. In RAM: the flash cannot be fetched from until BSY clears.
FIELDLINK_F103_RAMFUNC std::uint32_t wait_not_busy(std::uintptr_t fpec, std::uint32_t limit) noexcept {
    std::uint32_t sr = hw::read32(fpec + kSr);
    while ((sr & kSrBsy) != 0 && limit-- != 0) sr = hw::read32(fpec + kSr);
    return sr;
}

// One half-word program with PG already set (PM0075 §2.3.3): the store
// starts it. The store and the wait are one RAM function, so no fetch from
// flash falls between them.
FIELDLINK_F103_RAMFUNC std::uint32_t program_half_word(std::uintptr_t fpec, std::uintptr_t address, std::uint16_t value,
                                                       std::uint32_t limit) noexcept {
    hw::write16(address, value);
    std::uint32_t sr = hw::read32(fpec + kSr);
    while ((sr & kSrBsy) != 0 && limit-- != 0) sr = hw::read32(fpec + kSr);
    return sr;
}

// Page erase with PER set and AR loaded (PM0075 §2.3.4): STRT starts it.
FIELDLINK_F103_RAMFUNC std::uint32_t start_erase(std::uintptr_t fpec, std::uint32_t limit) noexcept {
    hw::write32(fpec + kCr, hw::read32(fpec + kCr) | kCrStrt);
    std::uint32_t sr = hw::read32(fpec + kSr);
    while ((sr & kSrBsy) != 0 && limit-- != 0) sr = hw::read32(fpec + kSr);
    return sr;
}

std::uint16_t half_word_at(const std::uint8_t* data) noexcept {
    return static_cast<std::uint16_t>(data[0] | (data[1] << 8));  // little-endian, as the core stores it
}

}  // namespace

bool F103Flash::in_range(std::uint32_t address, std::size_t length) const noexcept {
    const std::uint64_t size = geometry().size();
    return address <= size && length <= size - address;
}

bool F103Flash::unlock() noexcept {
    const std::uintptr_t fpec = config_.controller;
    // KEY1 then KEY2 (PM0075 §2.3.1); any other write locks the FPEC until
    // reset, so write them only while it is locked.
    if ((hw::read32(fpec + kCr) & kCrLock) != 0) {
        hw::write32(fpec + kKeyr, kKey1);
        hw::write32(fpec + kKeyr, kKey2);
    }
    if ((hw::read32(fpec + kCr) & kCrLock) != 0) {
        fault_ = Fault::Locked;
        return false;
    }
    return true;
}

void F103Flash::lock() noexcept {
    const std::uintptr_t fpec = config_.controller;
    hw::write32(fpec + kCr, hw::read32(fpec + kCr) | kCrLock);
}

hal::FlashStatus F103Flash::check_result(std::uint32_t sr) noexcept {
    const std::uintptr_t fpec = config_.controller;
    const std::uint32_t flags = sr & (kSrPgerr | kSrWrprterr | kSrEop);
    if (flags != 0) hw::write32(fpec + kSr, flags);  // write 1 to clear
    if ((sr & kSrBsy) != 0) {
        fault_ = Fault::Busy;
    } else if ((sr & kSrWrprterr) != 0) {
        fault_ = Fault::WriteProtect;
    } else if ((sr & kSrPgerr) != 0) {
        fault_ = Fault::ProgramError;
    } else if ((sr & kSrEop) == 0) {
        fault_ = Fault::NoEndOfOp;
    } else {
        return hal::FlashStatus::Ok;
    }
    return hal::FlashStatus::IoError;
}

hal::FlashStatus F103Flash::read(std::uint32_t address, std::uint8_t* out, std::size_t length) {
    if (out == nullptr && length != 0) return hal::FlashStatus::InvalidArgument;
    if (!in_range(address, length)) return hal::FlashStatus::OutOfRange;
    // The pages are memory-mapped: a read is a copy.
    if (length != 0) std::memcpy(out, reinterpret_cast<const void*>(config_.first_page + address), length);
    ++counters_.reads;
    return hal::FlashStatus::Ok;
}

hal::FlashStatus F103Flash::program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    if (data == nullptr && length != 0) return hal::FlashStatus::InvalidArgument;
    if (!in_range(address, length)) return hal::FlashStatus::OutOfRange;
    if (address % kWriteSize != 0 || length % kWriteSize != 0) return hal::FlashStatus::Misaligned;
    const std::uintptr_t base = config_.first_page + address;
    // The FPEC would refuse a half-word that is not erased (PGERR) after the
    // ones before it went in; refuse the whole range up front instead.
    for (std::size_t i = 0; i < length; i += kWriteSize) {
        const std::uint16_t now = hw::read16(base + i);
        if (now != 0xFFFF && now != half_word_at(data + i)) return hal::FlashStatus::NotErased;
    }
    fault_ = Fault::None;
    if (!unlock()) return hal::FlashStatus::IoError;
    const std::uintptr_t fpec = config_.controller;
    hal::FlashStatus status = hal::FlashStatus::Ok;
    if ((wait_not_busy(fpec, config_.busy_poll_limit) & kSrBsy) != 0) {
        fault_ = Fault::Busy;
        status = hal::FlashStatus::IoError;
    } else {
        hw::write32(fpec + kCr, (hw::read32(fpec + kCr) & ~(kCrPer | kCrStrt)) | kCrPg);
        for (std::size_t i = 0; i < length; i += kWriteSize) {
            const std::uint16_t value = half_word_at(data + i);
            if (hw::read16(base + i) == value) continue;  // already there (an all-ones half-word)
            status = check_result(program_half_word(fpec, base + i, value, config_.busy_poll_limit));
            if (status != hal::FlashStatus::Ok) break;
            if (hw::read16(base + i) != value) {
                fault_ = Fault::VerifyFailed;
                status = hal::FlashStatus::IoError;
                break;
            }
        }
        hw::write32(fpec + kCr, hw::read32(fpec + kCr) & ~kCrPg);
    }
    lock();
    ++counters_.programs;
    if (status == hal::FlashStatus::Ok) counters_.bytes_programmed += length;
    return status;
}

hal::FlashStatus F103Flash::erase(std::uint32_t sector) {
    if (sector >= config_.page_count) return hal::FlashStatus::OutOfRange;
    fault_ = Fault::None;
    if (!unlock()) return hal::FlashStatus::IoError;
    const std::uintptr_t fpec = config_.controller;
    const std::uintptr_t page = config_.first_page + static_cast<std::uintptr_t>(sector) * config_.page_size;
    hal::FlashStatus status = hal::FlashStatus::Ok;
    if ((wait_not_busy(fpec, config_.busy_poll_limit) & kSrBsy) != 0) {
        fault_ = Fault::Busy;
        status = hal::FlashStatus::IoError;
    } else {
        hw::write32(fpec + kCr, (hw::read32(fpec + kCr) & ~kCrPg) | kCrPer);
        hw::write32(fpec + kAr, static_cast<std::uint32_t>(page));
        status = check_result(start_erase(fpec, config_.busy_poll_limit));
        hw::write32(fpec + kCr, hw::read32(fpec + kCr) & ~kCrPer);
        if (status == hal::FlashStatus::Ok) {
            for (std::uint32_t i = 0; i < config_.page_size; i += 4) {
                if (hw::read32(page + i) != 0xFFFF'FFFFu) {
                    fault_ = Fault::VerifyFailed;
                    status = hal::FlashStatus::IoError;
                    break;
                }
            }
        }
    }
    lock();
    ++counters_.erases;
    return status;
}

}  // namespace fieldlink::boards::nucleo_f103rb
