#include "seed_random.hpp"

#include "f103_registers.hpp"
#include "hw_access.hpp"

namespace fieldlink::boards::nucleo_f103rb {
namespace {

std::uint64_t mix(std::uint64_t z) noexcept {  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    return z ^ (z >> 31);
}

}  // namespace

void SeedRandom::stir(std::uint32_t sample) noexcept { state_ = mix(state_ ^ sample) + 0x9E37'79B9'7F4A'7C15ull; }

bool SeedRandom::seed(std::uintptr_t unique_id, F103Adc& adc) noexcept {
    for (unsigned i = 0; i < 3; ++i) stir(hw::read32(unique_id + 4 * i));
    std::uint32_t noise = 0;
    for (unsigned i = 0; i < kNoiseConversions; ++i) {
        std::uint16_t raw = 0;
        if (adc.convert(i % 2 == 0 ? adc::kTemperatureChannel : adc::kVrefintChannel, &raw) != AdcStatus::Ok) {
            return false;
        }
        noise = (noise << 2) | (raw & 3u);
        if (i % 16 == 15) stir(noise);  // 32 bits gathered
    }
    return true;
}

std::uint64_t SeedRandom::next_u64() {
    state_ += 0x9E37'79B9'7F4A'7C15ull;
    return mix(state_);
}

}  // namespace fieldlink::boards::nucleo_f103rb
