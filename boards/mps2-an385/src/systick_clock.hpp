// The HAL's monotonic clock on SysTick: a 1 ms interrupt counts milliseconds.
#pragma once

#include <cstdint>

#include "fieldlink/hal/clock.hpp"

namespace fieldlink::boards::mps2_an385 {

class SysTickClock final : public hal::Clock {
public:
    // Starts SysTick on the core clock with a 1 ms period.
    void start() noexcept;

    std::uint64_t now_ms() const override;
    // Sleeps in WFI; any interrupt (UART, SysTick) ends each wait, the loop
    // goes on until the time has passed.
    void sleep_ms(std::uint32_t ms) override;

    // SysTick's current down-count: sub-millisecond timing jitter for seeding.
    static std::uint32_t current_count() noexcept;
};

// Called from the SysTick exception (startup.cpp).
void systick_tick() noexcept;

}  // namespace fieldlink::boards::mps2_an385
