// MPS2 AN385 (Cortex-M3) as data: peripheral addresses, interrupt numbers and
// clocks, from the AN385 application note and QEMU's mps2-an385 model.
#pragma once

#include <cstdint>

// reg(), read32/write32, IrqLock, wait_for_interrupt: the chip, or a test's model.
#include <hw_access.hpp>

namespace fieldlink::boards::mps2_an385 {

inline constexpr std::uint32_t kCoreClockHz = 25'000'000;  // FPGA system clock

// CMSDK APB UART0 (the one QEMU's first -serial connects to) and its IRQs.
inline constexpr std::uintptr_t kUart0Base = 0x4000'4000;
inline constexpr unsigned kUart0RxIrq = 0;
inline constexpr unsigned kUart0TxIrq = 1;
inline constexpr std::uint32_t kUartBaud = 115'200;

// Cortex-M3 system control space (ARMv7-M Architecture Reference Manual).
inline constexpr std::uintptr_t kSysTickCsr = 0xE000'E010;
inline constexpr std::uintptr_t kSysTickRvr = 0xE000'E014;
inline constexpr std::uintptr_t kSysTickCvr = 0xE000'E018;
inline constexpr std::uintptr_t kNvicIser0 = 0xE000'E100;
inline constexpr std::uintptr_t kNvicIcpr0 = 0xE000'E280;

}  // namespace fieldlink::boards::mps2_an385
