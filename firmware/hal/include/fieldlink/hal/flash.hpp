// NOR flash as the spool sees it: erase whole sectors to 0xFF, program only
// clears bits, in aligned units of write_size bytes. Implemented by boards
// (on-chip flash, a file on the host) and by test fakes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::hal {

enum class FlashStatus : std::uint8_t {
    Ok = 0,
    OutOfRange,       // the address range or sector lies outside the device
    Misaligned,       // program address or length is not a multiple of write_size
    NotErased,        // program would turn a 0 bit back into 1 (erase first); nothing was written
    IoError,          // the device failed or lost power; the range may be partly changed
    InvalidArgument,  // a null buffer with a non-zero length
};

// Stable name of a status ("not_erased", ...), for logs.
inline const char* to_string(FlashStatus status) noexcept {
    switch (status) {
        case FlashStatus::Ok: return "ok";
        case FlashStatus::OutOfRange: return "out_of_range";
        case FlashStatus::Misaligned: return "misaligned";
        case FlashStatus::NotErased: return "not_erased";
        case FlashStatus::IoError: return "io_error";
        case FlashStatus::InvalidArgument: return "invalid_argument";
    }
    return "unknown";
}

struct FlashGeometry {
    std::uint32_t sector_size = 0;   // bytes per erase sector
    std::uint32_t sector_count = 0;  // sectors in the device (or in the part given to the spool)
    std::uint32_t write_size = 0;    // program granularity in bytes, a power of two

    constexpr std::uint64_t size() const noexcept { return static_cast<std::uint64_t>(sector_size) * sector_count; }
};

// Operation counters since the object was created (wear and speed reports).
struct FlashCounters {
    std::uint64_t reads = 0;
    std::uint64_t programs = 0;
    std::uint64_t erases = 0;
    std::uint64_t bytes_programmed = 0;
};

class Flash {
public:
    virtual FlashGeometry geometry() const = 0;

    // Copies `length` bytes at `address` (any alignment) into `out`.
    // Failures: OutOfRange, InvalidArgument, IoError.
    virtual FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) = 0;

    // Programs `length` bytes at `address`; both multiples of write_size. A bit
    // can only go from 1 to 0. Returns after the data is durable.
    // Failures: OutOfRange, Misaligned, NotErased (where the device can tell),
    // InvalidArgument, IoError (the range may then be partly programmed).
    virtual FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) = 0;

    // Sets every byte of sector `sector` to 0xFF. Returns after it is durable.
    // Failures: OutOfRange, IoError (the sector may then be partly erased).
    virtual FlashStatus erase(std::uint32_t sector) = 0;

    virtual FlashCounters counters() const = 0;

protected:
    ~Flash() = default;
};

}  // namespace fieldlink::hal
