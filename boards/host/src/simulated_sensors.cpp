#include "fieldlink/boards/host/simulated_sensors.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

namespace fieldlink::boards::host {
namespace {

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Uniform in [0, 1) from a hash of (seed, channel, index, salt).
double unit(std::uint64_t seed, std::uint8_t channel, std::uint64_t index, std::uint64_t salt) noexcept {
    const std::uint64_t h =
        splitmix64(seed ^ splitmix64((static_cast<std::uint64_t>(channel) << 56) ^ (salt << 48) ^ index));
    return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// Roughly normal noise (sum of four uniforms), mean 0, standard deviation ~1.
double noise(std::uint64_t seed, std::uint8_t channel, std::uint64_t index) noexcept {
    double sum = 0.0;
    for (std::uint64_t salt = 1; salt <= 4; ++salt) sum += unit(seed, channel, index, salt);
    return (sum - 2.0) * std::sqrt(3.0);
}

// A per-device constant in [low, high).
double device_constant(std::uint64_t seed, std::uint8_t channel, std::uint64_t salt, double low, double high) noexcept {
    return low + (high - low) * unit(seed, channel, 0xFFFF'FFFF'FFFFull, salt);
}

double wave(double t_s, double period_s, double phase) noexcept {
    return std::sin(2.0 * std::numbers::pi * t_s / period_s + phase);
}

}  // namespace

SimulatedQuantity quantity_of(std::uint8_t channel) noexcept {
    return channel < 4 ? static_cast<SimulatedQuantity>(channel) : SimulatedQuantity::Analog;
}

const char* to_string(SimulatedQuantity quantity) noexcept {
    switch (quantity) {
        case SimulatedQuantity::TemperatureCelsius: return "temperature_c";
        case SimulatedQuantity::RelativeHumidityPercent: return "humidity_pct";
        case SimulatedQuantity::PressureHectopascal: return "pressure_hpa";
        case SimulatedQuantity::BatteryVolt: return "battery_v";
        case SimulatedQuantity::Analog: return "analog";
    }
    return "unknown";
}

std::uint64_t sensor_seed(std::string_view device_id, std::uint64_t extra_seed) noexcept {
    std::uint64_t hash = 0xCBF29CE484222325ull;  // FNV-1a 64
    for (char c : device_id) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001B3ull;
    }
    return splitmix64(hash ^ splitmix64(extra_seed));
}

SimulatedSensors::SimulatedSensors(std::uint64_t seed, std::vector<std::uint32_t> periods_ms)
    : seed_(seed), periods_ms_(std::move(periods_ms)), taken_(periods_ms_.size(), 0) {}

hal::SensorStatus SimulatedSensors::read(std::uint8_t channel, double* value) {
    if (channel >= periods_ms_.size()) return hal::SensorStatus::NoSuchChannel;
    *value = value_at(channel, taken_[channel]++);
    return hal::SensorStatus::Ok;
}

double SimulatedSensors::value_at(std::uint8_t channel, std::uint64_t index) const noexcept {
    if (channel >= periods_ms_.size()) return 0.0;
    // Nominal time of the reading: index * period, so values do not depend on scheduling jitter.
    const double t = static_cast<double>(index) * periods_ms_[channel] / 1000.0;
    const double phase = device_constant(seed_, channel, 1, 0.0, 2.0 * std::numbers::pi);
    const double n = noise(seed_, channel, index);
    switch (quantity_of(channel)) {
        case SimulatedQuantity::TemperatureCelsius: {
            const double base = device_constant(seed_, channel, 2, 18.0, 24.0);
            return base + 4.0 * wave(t, 86'400.0, phase) + 1.5 * wave(t, 300.0, phase * 3.0) + 0.05 * n;
        }
        case SimulatedQuantity::RelativeHumidityPercent: {
            const double base = device_constant(seed_, channel, 2, 40.0, 60.0);
            const double h = base - 10.0 * wave(t, 86'400.0, phase) + 3.0 * wave(t, 420.0, phase * 2.0) + 0.2 * n;
            return std::clamp(h, 0.0, 100.0);
        }
        case SimulatedQuantity::PressureHectopascal: {
            const double base = device_constant(seed_, channel, 2, 1'005.0, 1'020.0);
            return base + 6.0 * wave(t, 21'600.0, phase) + 0.5 * wave(t, 900.0, phase) + 0.05 * n;
        }
        case SimulatedQuantity::BatteryVolt: {
            const double full = device_constant(seed_, channel, 2, 4.10, 4.20);
            return std::max(3.30, full - 2.0e-5 * t) + 0.002 * n;  // slow discharge
        }
        case SimulatedQuantity::Analog:
            return std::clamp(0.5 + 0.4 * wave(t, 60.0 + 30.0 * channel, phase) + 0.01 * n, 0.0, 1.0);
    }
    return 0.0;
}

}  // namespace fieldlink::boards::host
