// Clock tree and pins of the Nucleo-F103RB.
//
// Clock choice: HSI (8 MHz RC) / 2 x 16 = 64 MHz, not the ST-LINK's 8 MHz MCO
// on OSC_IN with HSE bypass (x 9 = 72 MHz). The MCO reaches the F103 only
// through solder bridges that not every board revision closes, and only
// while the ST-LINK is powered and running; HSI is on every chip. Its
// accuracy (±1% at 25 °C, -2 .. +2.5% over temperature, DS5319 Table 24) is
// within what a 115200 baud 8N1 link tolerates (RM0008 §27.3.5: about 3.75%
// for both ends together), and mono_ms drifting by as much is fine: the
// gateway's acks re-learn the wall-clock offset (docs/protocol.md §7).
//   SYSCLK = HCLK = 64 MHz, 2 flash wait states (§3.3.3: 48 < SYSCLK <= 72 MHz)
//   PCLK1 = 32 MHz (APB1 at most 36 MHz): USART2
//   PCLK2 = 64 MHz, ADCCLK = PCLK2 / 6 = 10.67 MHz (at most 14 MHz)
#pragma once

#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb {

struct ClockTree {
    std::uint32_t sysclk_hz = 8'000'000;  // reset state: HSI direct
    std::uint32_t pclk1_hz = 8'000'000;
    std::uint32_t pclk2_hz = 8'000'000;
    std::uint32_t adc_hz = 4'000'000;
    bool pll = false;  // false: the PLL did not lock, the chip stays on HSI at 8 MHz
};

inline constexpr std::uint32_t kSysclkHz = 64'000'000;

// Switches SYSCLK to the PLL (HSI / 2 x 16): wait states first, then the PLL
// configured while off, PLLON, PLLRDY, SW, SWS. On a timeout it leaves the
// chip on HSI and says so (SYSCLK 8 MHz, PCLK1 4 MHz, ADC 1.33 MHz).
ClockTree configure_clocks(std::uintptr_t rcc, std::uintptr_t fpec, std::uint32_t poll_limit = 100'000) noexcept;

// Clocks for GPIOA, ADC1 (APB2) and USART2 (APB1).
void enable_peripheral_clocks(std::uintptr_t rcc) noexcept;

// PA2 USART2_TX alternate push-pull, PA3 USART2_RX input with pull-up (the
// ST-LINK drives it; the pull-up keeps an idle line high if it does not),
// PA5 (LD2) push-pull output, off. Other pins keep their reset state.
void configure_pins(std::uintptr_t gpioa) noexcept;

// LD2 on PA5 (high = lit), through BSRR: atomic, no read-modify-write.
void set_led(std::uintptr_t gpioa, bool on) noexcept;

}  // namespace fieldlink::boards::nucleo_f103rb
