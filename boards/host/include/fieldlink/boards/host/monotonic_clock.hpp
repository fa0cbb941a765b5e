// hal::Clock from CLOCK_MONOTONIC; time 0 is when the object was created
// (the simulated device's boot).
#pragma once

#include <cstdint>

#include "fieldlink/hal/clock.hpp"

namespace fieldlink::boards::host {

class MonotonicClock final : public hal::Clock {
public:
    MonotonicClock();

    std::uint64_t now_ms() const override;
    // Returns early when a signal arrives, so the program reacts at once.
    void sleep_ms(std::uint32_t ms) override;

private:
    std::uint64_t boot_ns_;
};

}  // namespace fieldlink::boards::host
