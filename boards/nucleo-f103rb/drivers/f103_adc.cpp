#include "f103_adc.hpp"

#include "f103_registers.hpp"
#include "hw_access.hpp"

namespace fieldlink::boards::nucleo_f103rb {

using namespace adc;

namespace {

constexpr std::uint32_t kCr2Base = kCr2Adon | kCr2ExtselSwstart | kCr2Exttrig | kCr2Tsvrefe;

std::uint32_t cycles_for_us(std::uint32_t clock_hz, std::uint32_t us) noexcept { return clock_hz / 1'000'000 * us; }

}  // namespace

bool F103Adc::wait_cr2_clear(std::uint32_t bit) noexcept {
    for (std::uint32_t i = 0; i < config_.poll_limit; ++i) {
        if ((hw::read32(config_.base + kCr2) & bit) == 0) return true;
    }
    return false;
}

AdcStatus F103Adc::start(const Config& config) noexcept {
    config_ = config;
    started_ = false;
    const std::uintptr_t base = config_.base;
    hw::write32(base + kCr1, 0);  // independent mode, no scan
    // ADON from 0 to 1 wakes the ADC; it needs tSTAB (1 us, datasheet Table
    // 46) before it is used. Software trigger selected now: a later write
    // that changes only ADON would start a conversion (§11.12.3).
    hw::write32(base + kCr2, kCr2Adon | kCr2ExtselSwstart | kCr2Exttrig);
    hw::delay_cycles(cycles_for_us(config_.core_clock_hz, 2));
    hw::write32(base + kCr2, hw::read32(base + kCr2) | kCr2Rstcal);
    if (!wait_cr2_clear(kCr2Rstcal)) return AdcStatus::CalibrationTimeout;
    hw::write32(base + kCr2, hw::read32(base + kCr2) | kCr2Cal);
    if (!wait_cr2_clear(kCr2Cal)) return AdcStatus::CalibrationTimeout;
    // Temperature sensor and VREFINT on; they need tSTART (10 us max) before the first sample.
    hw::write32(base + kCr2, kCr2Base);
    const std::uint32_t smp =
        (kSmp239Cycles << smpr1_shift(kTemperatureChannel)) | (kSmp239Cycles << smpr1_shift(kVrefintChannel));
    hw::write32(base + kSmpr1, smp);
    hw::write32(base + kSqr1, 0);  // L = 0: one conversion per sequence
    hw::delay_cycles(cycles_for_us(config_.core_clock_hz, 10));
    started_ = true;
    return AdcStatus::Ok;
}

AdcStatus F103Adc::convert(unsigned channel, std::uint16_t* raw) noexcept {
    if (!started_ || channel > kVrefintChannel) return AdcStatus::NotStarted;
    const std::uintptr_t base = config_.base;
    hw::write32(base + kSqr3, channel);  // SQ1: the only conversion
    hw::write32(base + kCr2, kCr2Base | kCr2Swstart);
    for (std::uint32_t i = 0; i < config_.poll_limit; ++i) {
        if ((hw::read32(base + kSr) & kSrEoc) != 0) {
            *raw = static_cast<std::uint16_t>(hw::read32(base + kDr) & 0x0FFF);  // reading DR clears EOC
            return AdcStatus::Ok;
        }
    }
    return AdcStatus::ConversionTimeout;
}

}  // namespace fieldlink::boards::nucleo_f103rb
