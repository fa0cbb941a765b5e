// STM32F103 ADC1 (RM0008 §11) for the two internal channels: the temperature
// sensor (16) and VREFINT (17). Single software-started conversions, polled:
// one takes 252 ADC cycles (239.5 sampling + 12.5), 24 us at 10.67 MHz, so the
// bounded EOC wait is not the reader loop's wait.
#pragma once

#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb {

enum class AdcStatus : std::uint8_t {
    Ok = 0,
    CalibrationTimeout,  // RSTCAL or CAL did not clear
    ConversionTimeout,   // EOC did not come
    NotStarted,          // start() has not succeeded
};

class F103Adc {
public:
    struct Config {
        std::uintptr_t base = 0;             // ADC1 registers (kAdc1Base)
        std::uint32_t core_clock_hz = 0;     // for the settling delays
        std::uint32_t poll_limit = 100'000;  // register polls before a timeout
    };

    // Powers the ADC up, waits tSTAB, calibrates (§11.4: ADON two ADC clocks
    // before RSTCAL, then RSTCAL, then CAL), enables the internal channels
    // (TSVREFE) and sets their sample time to 239.5 cycles (the temperature
    // sensor needs 17.1 us, datasheet Table 50). The ADC clock (at most 14 MHz)
    // is set by the RCC (f103_rcc.hpp).
    AdcStatus start(const Config& config) noexcept;

    // One conversion of `channel` (0..17) into *raw (12 bits, right-aligned).
    AdcStatus convert(unsigned channel, std::uint16_t* raw) noexcept;

private:
    bool wait_cr2_clear(std::uint32_t bit) noexcept;

    Config config_{};
    bool started_ = false;
};

}  // namespace fieldlink::boards::nucleo_f103rb
