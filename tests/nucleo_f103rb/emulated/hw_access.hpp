// Host stand-in for boards/nucleo-f103rb/target/hw_access.hpp: the drivers'
// register accesses go to register models (register_bus.hpp) instead of
// memory-mapped hardware. First on the include path of the register tests,
// so the drivers compile unchanged.
#pragma once

#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb::hw {

std::uint32_t read32(std::uintptr_t address) noexcept;
void write32(std::uintptr_t address, std::uint32_t value) noexcept;
std::uint16_t read16(std::uintptr_t address) noexcept;
void write16(std::uintptr_t address, std::uint16_t value) noexcept;
void delay_cycles(std::uint32_t cycles) noexcept;  // logged, returns at once
void wait_for_interrupt() noexcept;

// No interrupts on the host: counts how often a lock was taken.
class IrqLock {
public:
    IrqLock() noexcept;
    ~IrqLock() = default;
    IrqLock(const IrqLock&) = delete;
    IrqLock& operator=(const IrqLock&) = delete;
};

}  // namespace fieldlink::boards::nucleo_f103rb::hw
