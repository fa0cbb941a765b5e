// Text forms the protocol uses outside its binary messages: the incarnation
// as hex digits (JSON batch form, record files, command lines). Freestanding.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::protocol {

// Parses 1 to 16 hex digits (either case, no prefix) into *value. False, and
// *value untouched, for anything else.
constexpr bool parse_hex_u64(const char* text, std::size_t length, std::uint64_t* value) noexcept {
    if (text == nullptr || length == 0 || length > 16) return false;
    std::uint64_t result = 0;
    for (std::size_t i = 0; i < length; ++i) {
        const char c = text[i];
        std::uint64_t digit = 0;
        if (c >= '0' && c <= '9') {
            digit = static_cast<std::uint64_t>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            digit = static_cast<std::uint64_t>(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            digit = static_cast<std::uint64_t>(c - 'A' + 10);
        } else {
            return false;
        }
        result = (result << 4) | digit;
    }
    *value = result;
    return true;
}

}  // namespace fieldlink::protocol
