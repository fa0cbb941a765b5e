// What startup.cpp and main.cpp share: the application entry, the LED
// pattern the SysTick handler plays, the millisecond tick, the USART.
#pragma once

#include <cstdint>

#include "f103_usart.hpp"

namespace fieldlink::boards::nucleo_f103rb {

[[noreturn]] void board_main() noexcept;

// LD2 blink codes (README.md, "LED"): 20 steps of 100 ms, bit i = lit in step i.
enum class LedPattern : std::uint32_t {
    Starting = 0xFFFFF,   // steady on: clocks, flash, spool mount
    Offline = 0x0001F,    // 0.5 s on, 1.5 s off: no link/MQTT session with the gateway
    Connected = 0xFFFFE,  // on, with a 100 ms gap every 2 s: connected, readings flowing
    Fault = 0x55555,      // 5 Hz: spool or flash failed; readings are not kept
};
void set_led_pattern(LedPattern pattern) noexcept;

std::uint64_t ticks_ms() noexcept;
std::uint32_t systick_count() noexcept;
F103Usart& usart2() noexcept;

}  // namespace fieldlink::boards::nucleo_f103rb
