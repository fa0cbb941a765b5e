// How the drivers touch hardware, on the chip: volatile loads and stores,
// PRIMASK masking, WFI and a cycle delay. The host register tests put their own
// hw_access.hpp (tests/nucleo_f103rb/emulated/) first on the include path, so
// the same driver sources run against register models there.
// Everything is always inlined: the flash driver's wait loop and the interrupt
// handlers run from RAM and must not call back into flash (f103_flash.cpp).
#pragma once

#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb::hw {

[[gnu::always_inline]] inline std::uint32_t read32(std::uintptr_t address) noexcept {
    return *reinterpret_cast<const volatile std::uint32_t*>(address);
}
[[gnu::always_inline]] inline void write32(std::uintptr_t address, std::uint32_t value) noexcept {
    *reinterpret_cast<volatile std::uint32_t*>(address) = value;
}
[[gnu::always_inline]] inline std::uint16_t read16(std::uintptr_t address) noexcept {
    return *reinterpret_cast<const volatile std::uint16_t*>(address);
}
// Flash programming takes exactly one half-word store (PM0075 §2.3.3).
[[gnu::always_inline]] inline void write16(std::uintptr_t address, std::uint16_t value) noexcept {
    *reinterpret_cast<volatile std::uint16_t*>(address) = value;
}

// Busy-waits about `cycles` core cycles (3 per turn on the M3); only for the
// microsecond settling times the reference manual asks for.
[[gnu::always_inline]] inline void delay_cycles(std::uint32_t cycles) noexcept {
    std::uint32_t turns = cycles / 3 + 1;
    asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(turns)::"cc");
}

[[gnu::always_inline]] inline void wait_for_interrupt() noexcept { asm volatile("wfi" ::: "memory"); }

// Masks interrupts (PRIMASK) around state shared with a handler.
class IrqLock {
public:
    [[gnu::always_inline]] IrqLock() noexcept { asm volatile("mrs %0, primask\n cpsid i" : "=r"(saved_)::"memory"); }
    [[gnu::always_inline]] ~IrqLock() { asm volatile("msr primask, %0" ::"r"(saved_) : "memory"); }
    IrqLock(const IrqLock&) = delete;
    IrqLock& operator=(const IrqLock&) = delete;

private:
    std::uint32_t saved_ = 0;
};

}  // namespace fieldlink::boards::nucleo_f103rb::hw
