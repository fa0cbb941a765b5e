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

// Milliseconds from `now` until `deadline` (both Clock::now_ms() values): 0
// once it has passed, and never more than `cap`. The one way every wait in the
// firmware is bounded by its next deadline.
constexpr std::uint32_t ms_until(std::uint64_t deadline, std::uint64_t now, std::uint32_t cap) noexcept {
    if (deadline <= now) return 0;
    const std::uint64_t left = deadline - now;
    return left < cap ? static_cast<std::uint32_t>(left) : cap;
}

}  // namespace fieldlink::hal
