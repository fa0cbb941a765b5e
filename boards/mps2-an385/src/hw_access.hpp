// How the board's drivers touch hardware: volatile loads and stores, PRIMASK
// masking and WFI. Included as <hw_access.hpp> (the include path, not this
// folder), so the host register tests (tests/mps2_an385/emulated/) can put
// their own first and run the same driver sources against register models.
#pragma once

#include <cstdint>

namespace fieldlink::boards::mps2_an385 {

inline volatile std::uint32_t& reg(std::uintptr_t address) noexcept {
    return *reinterpret_cast<volatile std::uint32_t*>(address);
}
inline std::uint32_t read32(std::uintptr_t address) noexcept { return reg(address); }
inline void write32(std::uintptr_t address, std::uint32_t value) noexcept { reg(address) = value; }

// Interrupt masking around state shared with handlers (PRIMASK).
class IrqLock {
public:
    IrqLock() noexcept { asm volatile("mrs %0, primask\n cpsid i" : "=r"(saved_)::"memory"); }
    ~IrqLock() { asm volatile("msr primask, %0" ::"r"(saved_) : "memory"); }
    IrqLock(const IrqLock&) = delete;
    IrqLock& operator=(const IrqLock&) = delete;

private:
    std::uint32_t saved_ = 0;
};

inline void wait_for_interrupt() noexcept { asm volatile("wfi" ::: "memory"); }

}  // namespace fieldlink::boards::mps2_an385
