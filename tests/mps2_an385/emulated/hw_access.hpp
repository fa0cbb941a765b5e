// Host stand-in for boards/mps2-an385/src/hw_access.hpp: every register access
// goes to the models on the bus (register_bus.hpp). First on the register
// tests' include path, so the driver compiles unchanged. No reg() here: a
// driver that reached for raw memory would not compile.
#pragma once

#include <cstdint>

namespace fieldlink::boards::mps2_an385 {

std::uint32_t read32(std::uintptr_t address) noexcept;
void write32(std::uintptr_t address, std::uint32_t value) noexcept;
void wait_for_interrupt() noexcept;  // counted, returns at once

// No interrupts on the host: tracks how deep the locks are nested.
class IrqLock {
public:
    IrqLock() noexcept;
    ~IrqLock();
    IrqLock(const IrqLock&) = delete;
    IrqLock& operator=(const IrqLock&) = delete;
};

}  // namespace fieldlink::boards::mps2_an385
