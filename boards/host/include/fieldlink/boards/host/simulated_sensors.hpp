// Simulated sensors for the host board: smooth, plausible signals with noise.
// Deterministic: the k-th reading of channel c depends only on the seed, c, k
// and the channel's period, never on when it is actually taken, so two runs
// with the same device id (and --seed) produce the same values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fieldlink/hal/sensors.hpp"

namespace fieldlink::boards::host {

// What channel c simulates: 0 temperature, 1 humidity, 2 pressure, 3 battery,
// then generic 0..1 analog inputs.
enum class SimulatedQuantity : std::uint8_t {
    TemperatureCelsius = 0,
    RelativeHumidityPercent,
    PressureHectopascal,
    BatteryVolt,
    Analog,
};

SimulatedQuantity quantity_of(std::uint8_t channel) noexcept;
const char* to_string(SimulatedQuantity quantity) noexcept;

// Seed derived from a device id (FNV-1a), mixed with an extra user seed.
std::uint64_t sensor_seed(std::string_view device_id, std::uint64_t extra_seed) noexcept;

class SimulatedSensors final : public hal::Sensors {
public:
    // One channel per period (milliseconds, > 0).
    SimulatedSensors(std::uint64_t seed, std::vector<std::uint32_t> periods_ms);

    std::size_t channel_count() const override { return periods_ms_.size(); }
    hal::SensorStatus read(std::uint8_t channel, double* value) override;

    // The value of reading `index` of `channel` (what read() returns the index-th time).
    double value_at(std::uint8_t channel, std::uint64_t index) const noexcept;

private:
    std::uint64_t seed_;
    std::vector<std::uint32_t> periods_ms_;
    std::vector<std::uint64_t> taken_;
};

}  // namespace fieldlink::boards::host
