#include "systick_clock.hpp"

#include "registers.hpp"

namespace fieldlink::boards::mps2_an385 {
namespace {

// 64 bits so it never wraps; written only by the SysTick handler.
volatile std::uint64_t g_ticks_ms = 0;

constexpr std::uint32_t kEnable = 1u << 0;
constexpr std::uint32_t kTickInterrupt = 1u << 1;
constexpr std::uint32_t kProcessorClock = 1u << 2;

}  // namespace

void systick_tick() noexcept { g_ticks_ms = g_ticks_ms + 1; }

void SysTickClock::start() noexcept {
    reg(kSysTickRvr) = kCoreClockHz / 1000 - 1;
    reg(kSysTickCvr) = 0;
    reg(kSysTickCsr) = kEnable | kTickInterrupt | kProcessorClock;
}

std::uint64_t SysTickClock::now_ms() const {
    // A 64-bit load is two loads on the M3: keep the tick out between them.
    const IrqLock lock;
    return g_ticks_ms;
}

void SysTickClock::sleep_ms(std::uint32_t ms) {
    const std::uint64_t until = now_ms() + ms;
    while (now_ms() < until) wait_for_interrupt();
}

std::uint32_t SysTickClock::current_count() noexcept { return reg(kSysTickCvr); }

}  // namespace fieldlink::boards::mps2_an385
