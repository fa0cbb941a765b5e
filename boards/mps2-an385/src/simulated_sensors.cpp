#include "simulated_sensors.hpp"

namespace fieldlink::boards::mps2_an385 {

std::uint32_t SimulatedSensors::noise() noexcept {
    std::uint32_t x = state_;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    state_ = x;
    return x;
}

hal::SensorStatus SimulatedSensors::read(std::uint8_t channel, double* value) {
    if (channel >= kChannels) return hal::SensorStatus::NoSuchChannel;
    if (value == nullptr) return hal::SensorStatus::Error;
    const std::uint32_t n = reads_[channel]++;
    const auto jitter = static_cast<std::int32_t>(noise() % 21) - 10;  // -10 .. 10
    if (channel == 0) {
        // 20.00 .. 25.00 °C and back over 1000 reads, ±0.10 °C noise; in 0.01 °C.
        const std::uint32_t phase = n % 1000;
        const std::int32_t ramp = static_cast<std::int32_t>(phase < 500 ? phase : 1000 - phase);
        *value = static_cast<double>(2000 + ramp + jitter) / 100.0;
    } else {
        // 3.300 V ± 0.010 V, in mV.
        *value = static_cast<double>(3300 + jitter) / 1000.0;
    }
    return hal::SensorStatus::Ok;
}

}  // namespace fieldlink::boards::mps2_an385
