// The chip's own sensors as hal::Sensors, with no extra hardware:
//   channel 0: die temperature in °C (ADC1 channel 16),
//   channel 1: supply voltage VDDA in V, from VREFINT (ADC1 channel 17),
// the same channels and units as the mps2-an385 board's simulated ones.
// Each reading averages kSamples conversions. The F103 has no factory
// calibration of either (unlike later STM32s): the datasheet's typical values
// are used, so the absolute temperature is off by up to tens of degrees from
// chip to chip (README.md, "Readings").
#pragma once

#include <cstddef>
#include <cstdint>

#include "f103_adc.hpp"
#include "fieldlink/hal/sensors.hpp"

namespace fieldlink::boards::nucleo_f103rb {

// Datasheet DS5319 typical values (Tables 12 and 50).
inline constexpr double kVrefintVolts = 1.20;
inline constexpr double kTemperatureV25 = 1.43;           // sensor voltage at 25 °C
inline constexpr double kTemperatureSlopeVPerC = 0.0043;  // Avg_Slope

// Plain conversions from averaged raw values (12 bits), for the sensors and tests.
constexpr double supply_volts(double raw_vrefint) noexcept { return kVrefintVolts * 4095.0 / raw_vrefint; }
constexpr double temperature_celsius(double raw_temperature, double raw_vrefint) noexcept {
    const double sensor_volts = raw_temperature * kVrefintVolts / raw_vrefint;  // ratio: VDDA cancels
    return (kTemperatureV25 - sensor_volts) / kTemperatureSlopeVPerC + 25.0;
}

class InternalSensors final : public hal::Sensors {
public:
    static constexpr std::size_t kChannels = 2;
    static constexpr std::uint8_t kTemperature = 0;
    static constexpr std::uint8_t kSupply = 1;
    static constexpr unsigned kSamples = 8;

    explicit InternalSensors(F103Adc& adc) noexcept : adc_(adc) {}

    std::size_t channel_count() const override { return kChannels; }
    // NotReady never; Error when a conversion timed out or VREFINT reads 0.
    hal::SensorStatus read(std::uint8_t channel, double* value) override;

private:
    bool average(unsigned adc_channel, double* mean) noexcept;

    F103Adc& adc_;
};

}  // namespace fieldlink::boards::nucleo_f103rb
