// Monotonic time source of the device. The reader core never reads a global clock.
#pragma once

#include <cstdint>

namespace fieldlink::hal {

class Clock {
public:
    // Milliseconds since this boot started; never goes backwards.
    virtual std::uint64_t now_ms() const = 0;

    // Idles for about `ms` milliseconds (may return early, e.g. on a signal or
    // an interrupt). Used only when there is no connection to wait on.
    virtual void sleep_ms(std::uint32_t ms) = 0;

protected:
    ~Clock() = default;
};

}  // namespace fieldlink::hal
