// hal::Random for the incarnation and reconnect jitter: a splitmix64 stream
// seeded from the chip's 96-bit unique ID (§30.2: different on every chip,
// the same on every boot) and the low bits of ADC conversions of the
// temperature sensor and VREFINT (noise: different on every boot, but only a
// few bits of entropy each). Not cryptographic. Limits: README.md, "Random seed".
#pragma once

#include <cstdint>

#include "f103_adc.hpp"
#include "fieldlink/hal/random.hpp"

namespace fieldlink::boards::nucleo_f103rb {

class SeedRandom final : public hal::Random {
public:
    static constexpr unsigned kNoiseConversions = 64;

    // Mixes one 32-bit sample into the state.
    void stir(std::uint32_t sample) noexcept;
    // The unique ID (three words at `unique_id`), then kNoiseConversions
    // conversions alternating channels 16 and 17, two low bits of each.
    // Returns false when a conversion failed (the ID alone is then the seed).
    bool seed(std::uintptr_t unique_id, F103Adc& adc) noexcept;

    std::uint32_t next_u32() override { return static_cast<std::uint32_t>(next_u64() >> 32); }
    std::uint64_t next_u64() override;

private:
    std::uint64_t state_ = 0x6A09'E667'F3BC'C908ull;
};

}  // namespace fieldlink::boards::nucleo_f103rb
