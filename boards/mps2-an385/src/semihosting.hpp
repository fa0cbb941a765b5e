// ARM semihosting (Arm IHI 0081 / "Semihosting for AArch32 and AArch64"):
// requests to the debugger or emulator through `bkpt 0xab`. Test reporting
// only: without a debugger or QEMU's -semihosting the bkpt is a fault.
#pragma once

#include <cstdint>

namespace fieldlink::boards::mps2_an385::semihosting {

// Writes a NUL-terminated string to the host's console (SYS_WRITE0).
void write0(const char* text) noexcept;

// Seconds since the host's epoch (SYS_TIME); 0 when the host gives none.
std::uint32_t host_time() noexcept;

// Ends the program (SYS_EXIT): success for 0, failure (QEMU exits 1) otherwise.
[[noreturn]] void exit(int code) noexcept;

}  // namespace fieldlink::boards::mps2_an385::semihosting
