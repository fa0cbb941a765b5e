// Reading values on the wire: an f64 travels as its IEEE 754 bits, and NaN is
// not a value (a sensor without one sends no reading; SQLite would store NULL).
// Bit tests, so the answer does not depend on floating-point compiler flags.
#pragma once

#include <bit>
#include <cstdint>

namespace fieldlink::protocol {

constexpr std::uint64_t value_bits(double value) noexcept { return std::bit_cast<std::uint64_t>(value); }
constexpr double value_from_bits(std::uint64_t bits) noexcept { return std::bit_cast<double>(bits); }

constexpr bool is_nan_bits(std::uint64_t bits) noexcept {
    return (bits & 0x7FF0000000000000ULL) == 0x7FF0000000000000ULL && (bits & 0x000FFFFFFFFFFFFFULL) != 0;
}
constexpr bool is_nan(double value) noexcept { return is_nan_bits(value_bits(value)); }

}  // namespace fieldlink::protocol
