#include "ram_flash.hpp"

#include <cstring>

namespace fieldlink::boards::mps2_an385 {

bool RamFlash::in_range(std::uint32_t address, std::size_t length) const noexcept {
    const std::uint64_t size = geometry_.size();
    return address <= size && length <= size - address;
}

hal::FlashStatus RamFlash::read(std::uint32_t address, std::uint8_t* out, std::size_t length) {
    if (out == nullptr && length != 0) return hal::FlashStatus::InvalidArgument;
    if (!in_range(address, length)) return hal::FlashStatus::OutOfRange;
    std::memcpy(out, memory_ + address, length);
    ++counters_.reads;
    return hal::FlashStatus::Ok;
}

hal::FlashStatus RamFlash::program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    if (data == nullptr && length != 0) return hal::FlashStatus::InvalidArgument;
    if (!in_range(address, length)) return hal::FlashStatus::OutOfRange;
    const std::uint32_t unit = geometry_.write_size;
    if (address % unit != 0 || length % unit != 0) return hal::FlashStatus::Misaligned;
    // Check all first: a refused program leaves the range as it was.
    for (std::size_t i = 0; i < length; ++i) {
        if ((memory_[address + i] & data[i]) != data[i]) return hal::FlashStatus::NotErased;
    }
    for (std::size_t i = 0; i < length; ++i) memory_[address + i] &= data[i];
    ++counters_.programs;
    counters_.bytes_programmed += length;
    return hal::FlashStatus::Ok;
}

hal::FlashStatus RamFlash::erase(std::uint32_t sector) {
    if (sector >= geometry_.sector_count) return hal::FlashStatus::OutOfRange;
    std::memset(memory_ + static_cast<std::size_t>(sector) * geometry_.sector_size, 0xFF, geometry_.sector_size);
    ++counters_.erases;
    return hal::FlashStatus::Ok;
}

}  // namespace fieldlink::boards::mps2_an385
