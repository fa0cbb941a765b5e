// Simulated sensors until the board reads real ones: channel 0 a temperature
// (°C) drifting in a triangle wave with noise, channel 1 a supply voltage (V).
// Deterministic for a seed; integer arithmetic plus one scaling, no libm.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/sensors.hpp"

namespace fieldlink::boards::mps2_an385 {

class SimulatedSensors final : public hal::Sensors {
public:
    static constexpr std::size_t kChannels = 2;

    explicit SimulatedSensors(std::uint32_t seed) noexcept : state_(seed | 1u) {}

    std::size_t channel_count() const override { return kChannels; }
    hal::SensorStatus read(std::uint8_t channel, double* value) override;

private:
    std::uint32_t noise() noexcept;  // xorshift32

    std::uint32_t state_;
    std::uint32_t reads_[kChannels] = {};
};

}  // namespace fieldlink::boards::mps2_an385
