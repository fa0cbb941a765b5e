#include "ram_flash.hpp"

#include <algorithm>
#include <cstring>

namespace fieldlink::testing {

namespace {

std::uint64_t splitmix64(std::uint64_t* state) {
    std::uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

std::uint64_t SeededRandom::next_u64() { return splitmix64(&state_); }

RamFlash::RamFlash(hal::FlashGeometry geometry)
    : geometry_(geometry),
      bytes_(static_cast<std::size_t>(geometry.size()), 0xFF),
      erase_counts_(geometry.sector_count, 0) {}

hal::FlashStatus RamFlash::read(std::uint32_t address, std::uint8_t* out, std::size_t length) {
    if (out == nullptr && length != 0) {
        return hal::FlashStatus::InvalidArgument;
    }
    if (std::uint64_t{address} + length > bytes_.size()) {
        return hal::FlashStatus::OutOfRange;
    }
    ++counters_.reads;
    std::copy_n(bytes_.begin() + address, length, out);
    return hal::FlashStatus::Ok;
}

hal::FlashStatus RamFlash::program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    if (data == nullptr && length != 0) {
        return hal::FlashStatus::InvalidArgument;
    }
    if (std::uint64_t{address} + length > bytes_.size()) {
        return hal::FlashStatus::OutOfRange;
    }
    if (address % geometry_.write_size != 0 || length % geometry_.write_size != 0) {
        return hal::FlashStatus::Misaligned;
    }
    for (std::size_t i = 0; i < length; ++i) {
        if ((bytes_[address + i] & data[i]) != data[i]) {
            return hal::FlashStatus::NotErased;
        }
    }
    std::copy_n(data, length, bytes_.begin() + address);
    ++counters_.programs;
    counters_.bytes_programmed += length;
    return hal::FlashStatus::Ok;
}

hal::FlashStatus RamFlash::erase(std::uint32_t sector) {
    if (sector >= geometry_.sector_count) {
        return hal::FlashStatus::OutOfRange;
    }
    const std::size_t start = std::size_t{sector} * geometry_.sector_size;
    std::fill_n(bytes_.begin() + static_cast<std::ptrdiff_t>(start), geometry_.sector_size, 0xFF);
    ++erase_counts_[sector];
    ++counters_.erases;
    return hal::FlashStatus::Ok;
}

const char* to_string(CutMode mode) {
    switch (mode) {
        case CutMode::Skip: return "skip";
        case CutMode::Torn: return "torn";
        case CutMode::Complete: return "complete";
    }
    return "?";
}

void FaultFlash::cut_power_at(std::uint64_t operation, CutMode mode, std::uint64_t seed) {
    armed_ = true;
    cut_at_ = operation;
    mode_ = mode;
    random_state_ = seed;
}

std::uint64_t FaultFlash::next_random() { return splitmix64(&random_state_); }

bool FaultFlash::cut_now() {
    const bool cut = armed_ && operations_ == cut_at_;
    ++operations_;
    return cut;
}

hal::FlashStatus FaultFlash::read(std::uint32_t address, std::uint8_t* out, std::size_t length) {
    if (!powered_) {
        return hal::FlashStatus::IoError;
    }
    if (read_fault_armed_ && reads_++ == fail_read_) {
        read_failed_ = true;
        return hal::FlashStatus::IoError;
    }
    return inner_.read(address, out, length);
}

hal::FlashStatus FaultFlash::program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    if (!powered_) {
        return hal::FlashStatus::IoError;
    }
    if (!cut_now()) {
        return inner_.program(address, data, length);
    }
    powered_ = false;
    const auto before = snapshot();
    if (mode_ == CutMode::Complete) {
        (void)inner_.program(address, data, length);
    } else if (mode_ == CutMode::Torn) {
        tear_program(address, data, length);
    }
    report_ = CutReport{false, address, length, snapshot() != before, std::vector<std::uint8_t>(data, data + length)};
    return hal::FlashStatus::IoError;
}

hal::FlashStatus FaultFlash::erase(std::uint32_t sector) {
    if (!powered_) {
        return hal::FlashStatus::IoError;
    }
    if (!cut_now()) {
        return inner_.erase(sector);
    }
    powered_ = false;
    const auto before = snapshot();
    if (mode_ == CutMode::Complete) {
        (void)inner_.erase(sector);
    } else if (mode_ == CutMode::Torn) {
        tear_erase(sector);
    }
    report_ = CutReport{true, sector, 0, snapshot() != before, {}};
    return hal::FlashStatus::IoError;
}

std::vector<std::uint8_t> FaultFlash::snapshot() {
    std::vector<std::uint8_t> all(static_cast<std::size_t>(inner_.geometry().size()));
    (void)inner_.read(0, all.data(), all.size());
    return all;
}

void FaultFlash::tear_program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    const std::size_t unit = inner_.geometry().write_size;
    std::vector<std::uint8_t> result(length);
    if (length == 0 || unit == 0 || length % unit != 0 ||
        inner_.read(address, result.data(), length) != hal::FlashStatus::Ok) {
        return;  // an invalid operation: nothing happens
    }
    for (std::size_t i = 0; i < length; ++i) {
        if ((result[i] & data[i]) != data[i]) {
            return;  // would be rejected as NotErased: nothing happens
        }
    }
    // Whole units up to `done`, then some of the bits of the next unit.
    const std::size_t units = length / unit;
    const std::size_t done = static_cast<std::size_t>(next_random() % (units + 1));
    std::copy_n(data, done * unit, result.begin());
    if (done < units) {
        for (std::size_t i = done * unit; i < (done + 1) * unit; ++i) {
            const auto cleared = static_cast<std::uint8_t>(result[i] & ~data[i]);  // bits the op clears
            result[i] = static_cast<std::uint8_t>(result[i] & ~(cleared & next_random()));
        }
    }
    (void)inner_.program(address, result.data(), length);
}

void FaultFlash::tear_erase(std::uint32_t sector) {
    const auto geometry = inner_.geometry();
    if (sector >= geometry.sector_count) {
        return;
    }
    const std::uint32_t start = sector * geometry.sector_size;
    std::vector<std::uint8_t> result(geometry.sector_size);
    if (inner_.read(start, result.data(), result.size()) != hal::FlashStatus::Ok) {
        return;
    }
    const std::size_t split = static_cast<std::size_t>(next_random() % geometry.sector_size);
    switch (next_random() % 3) {
        case 0:  // erased from the start up to `split`
            std::fill_n(result.begin(), split, 0xFF);
            break;
        case 1:  // erased from `split` to the end: the start, with the header, survives
            std::fill(result.begin() + static_cast<std::ptrdiff_t>(split), result.end(), 0xFF);
            break;
        default:  // half-erased cells: random bits go to 1 everywhere
            for (auto& byte : result) {
                byte = static_cast<std::uint8_t>(byte | next_random());
            }
            break;
    }
    (void)inner_.erase(sector);
    (void)inner_.program(start, result.data(), result.size());
}

}  // namespace fieldlink::testing
