#include "fieldlink/boards/host/system_random.hpp"

namespace fieldlink::boards::host {

std::uint32_t SystemRandom::next_u32() { return static_cast<std::uint32_t>(device_()); }

std::uint64_t SystemRandom::next_u64() {
    const std::uint64_t high = next_u32();
    return (high << 32) | next_u32();
}

}  // namespace fieldlink::boards::host
