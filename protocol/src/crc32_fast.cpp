// CRC-32 eight bytes at a time (slicing by 8) for the gateway, which checksums
// every forwarded payload: the 8 KiB of tables cost nothing there and make it
// several times faster than the nibble loop in codec.cpp. Its own translation
// unit, so the firmware (which never calls it) links none of it.
#include <array>
#include <cstdint>

#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::protocol {
namespace {

constexpr std::uint32_t kReflectedPolynomial = 0xEDB88320u;

// kTables[k][b]: the CRC of byte b followed by k zero bytes.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t c = b;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1u) != 0 ? (c >> 1) ^ kReflectedPolynomial : c >> 1;
        t[0][b] = c;
    }
    for (std::size_t k = 1; k < 8; ++k) {
        for (std::size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFu];
    }
    return t;
}

constexpr auto kTables = make_tables();

std::uint32_t load_le32(const std::uint8_t* p) noexcept {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

}  // namespace

std::uint32_t crc32_fast(const std::uint8_t* data, std::size_t length, std::uint32_t crc) noexcept {
    crc = ~crc;
    for (; length >= 8; data += 8, length -= 8) {
        const std::uint32_t low = crc ^ load_le32(data);
        const std::uint32_t high = load_le32(data + 4);
        crc = kTables[7][low & 0xFFu] ^ kTables[6][(low >> 8) & 0xFFu] ^ kTables[5][(low >> 16) & 0xFFu] ^
              kTables[4][low >> 24] ^ kTables[3][high & 0xFFu] ^ kTables[2][(high >> 8) & 0xFFu] ^
              kTables[1][(high >> 16) & 0xFFu] ^ kTables[0][high >> 24];
    }
    for (; length > 0; ++data, --length) crc = (crc >> 8) ^ kTables[0][(crc ^ *data) & 0xFFu];
    return ~crc;
}

}  // namespace fieldlink::protocol
