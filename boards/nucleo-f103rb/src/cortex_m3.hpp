// The Cortex-M3 core's own registers that the board uses (ARMv7-M ARM, B3):
// SysTick, NVIC, VTOR. Target only.
#pragma once

#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb::core {

inline constexpr std::uintptr_t kSysTickCsr = 0xE000'E010;
inline constexpr std::uintptr_t kSysTickRvr = 0xE000'E014;
inline constexpr std::uintptr_t kSysTickCvr = 0xE000'E018;
inline constexpr std::uintptr_t kNvicIser0 = 0xE000'E100;
inline constexpr std::uintptr_t kNvicIcpr0 = 0xE000'E280;
inline constexpr std::uintptr_t kScbVtor = 0xE000'ED08;

}  // namespace fieldlink::boards::nucleo_f103rb::core
