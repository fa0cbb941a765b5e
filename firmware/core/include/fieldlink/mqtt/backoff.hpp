// Reconnect delays: exponential growth from `initial_ms`, capped at `max_ms`,
// with "equal jitter" (a random delay in [d/2, d]) so that many devices that
// lost the same broker do not reconnect in lock step.
#pragma once

#include <cstdint>

#include "fieldlink/hal/random.hpp"

namespace fieldlink::mqtt {

class Backoff {
public:
    Backoff(std::uint32_t initial_ms, std::uint32_t max_ms) noexcept;

    // Delay before the next attempt; each call doubles the base delay up to the cap.
    std::uint32_t next_delay_ms(hal::Random& random) noexcept;

    // After a connection that worked: start again from the initial delay.
    void reset() noexcept { attempt_ = 0; }

    std::uint32_t attempt() const noexcept { return attempt_; }

private:
    std::uint32_t initial_ms_;
    std::uint32_t max_ms_;
    std::uint32_t attempt_ = 0;
};

}  // namespace fieldlink::mqtt
