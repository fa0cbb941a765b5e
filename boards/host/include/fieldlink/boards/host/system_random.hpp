// hal::Random from the operating system (std::random_device, /dev/urandom on Linux).
#pragma once

#include <cstdint>
#include <random>

#include "fieldlink/hal/random.hpp"

namespace fieldlink::boards::host {

class SystemRandom final : public hal::Random {
public:
    std::uint32_t next_u32() override;
    std::uint64_t next_u64() override;

private:
    std::random_device device_;
};

}  // namespace fieldlink::boards::host
