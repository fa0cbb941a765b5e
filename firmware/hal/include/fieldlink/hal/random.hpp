// Source of randomness for incarnation ids and reconnect jitter.
#pragma once

#include <cstdint>

namespace fieldlink::hal {

class Random {
public:
    virtual std::uint32_t next_u32() = 0;
    virtual std::uint64_t next_u64() = 0;

protected:
    ~Random() = default;
};

}  // namespace fieldlink::hal
