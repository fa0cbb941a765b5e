// Randomness for the incarnation and reconnect jitter. The board has no TRNG:
// the seed mixes the host's clock (semihosting SYS_TIME, whole seconds) with
// SysTick's sub-millisecond phase at points whose timing depends on the host
// (semihosting calls, UART output), then a splitmix64 stream. Not
// cryptographic; under QEMU's -icount (deterministic timing) two runs started
// in the same second can draw the same numbers. README.md, "Randomness".
#pragma once

#include <cstdint>

#include "fieldlink/hal/random.hpp"

namespace fieldlink::boards::mps2_an385 {

class JitterRandom final : public hal::Random {
public:
    // Mixes one sample of the entropy sources into the state.
    void stir(std::uint32_t sample) noexcept;

    std::uint32_t next_u32() override { return static_cast<std::uint32_t>(next_u64() >> 32); }
    std::uint64_t next_u64() override;

private:
    std::uint64_t state_ = 0x6A09'E667'F3BC'C908ull;  // any non-zero start
};

}  // namespace fieldlink::boards::mps2_an385
