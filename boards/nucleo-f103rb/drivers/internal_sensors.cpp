#include "internal_sensors.hpp"

#include "f103_registers.hpp"

namespace fieldlink::boards::nucleo_f103rb {

bool InternalSensors::average(unsigned adc_channel, double* mean) noexcept {
    std::uint32_t sum = 0;
    for (unsigned i = 0; i < kSamples; ++i) {
        std::uint16_t raw = 0;
        if (adc_.convert(adc_channel, &raw) != AdcStatus::Ok) return false;
        sum += raw;
    }
    *mean = static_cast<double>(sum) / kSamples;
    return true;
}

hal::SensorStatus InternalSensors::read(std::uint8_t channel, double* value) {
    if (channel >= kChannels) return hal::SensorStatus::NoSuchChannel;
    if (value == nullptr) return hal::SensorStatus::Error;
    double vrefint = 0;
    if (!average(adc::kVrefintChannel, &vrefint) || vrefint <= 0) return hal::SensorStatus::Error;
    if (channel == kSupply) {
        *value = supply_volts(vrefint);
        return hal::SensorStatus::Ok;
    }
    double temperature = 0;
    if (!average(adc::kTemperatureChannel, &temperature)) return hal::SensorStatus::Error;
    *value = temperature_celsius(temperature, vrefint);
    return hal::SensorStatus::Ok;
}

}  // namespace fieldlink::boards::nucleo_f103rb
