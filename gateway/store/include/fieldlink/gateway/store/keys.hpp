// Keys of what the store holds: a device incarnation, and a run of sequence numbers.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace fieldlink::gateway {

struct DeviceKey {
    std::string device;
    std::uint64_t incarnation = 0;

    auto operator<=>(const DeviceKey&) const = default;
};

// Closed sequence range [first, last].
struct SeqRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;

    bool operator==(const SeqRange&) const = default;
};

}  // namespace fieldlink::gateway
