#include "jitter_random.hpp"

namespace fieldlink::boards::mps2_an385 {
namespace {

std::uint64_t mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    return z ^ (z >> 31);
}

}  // namespace

void JitterRandom::stir(std::uint32_t sample) noexcept { state_ = mix(state_ ^ sample) + sample; }

std::uint64_t JitterRandom::next_u64() {
    state_ += 0x9E37'79B9'7F4A'7C15ull;  // splitmix64
    return mix(state_);
}

}  // namespace fieldlink::boards::mps2_an385
