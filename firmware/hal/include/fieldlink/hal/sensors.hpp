// The device's sensor channels, each read as one number.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::hal {

enum class SensorStatus : std::uint8_t {
    Ok = 0,
    NoSuchChannel,  // channel >= channel_count()
    NotReady,       // the sensor has no fresh value yet; try again at the next period
    Error,          // the sensor failed (bus error, out of range, ...)
    NoValue,        // the sensor gave NaN, i.e. no value (the reader counts it, never stores it)
};

class Sensors {
public:
    // Number of channels; valid channels are 0 .. channel_count() - 1.
    virtual std::size_t channel_count() const = 0;

    // Takes one reading of `channel` into *value. A NaN *value with Ok is
    // treated as NoValue: the protocol carries no NaN.
    virtual SensorStatus read(std::uint8_t channel, double* value) = 0;

protected:
    ~Sensors() = default;
};

// Stable name of a status ("not_ready", ...), for logs.
inline const char* to_string(SensorStatus status) noexcept {
    switch (status) {
        case SensorStatus::Ok: return "ok";
        case SensorStatus::NoSuchChannel: return "no_such_channel";
        case SensorStatus::NotReady: return "not_ready";
        case SensorStatus::Error: return "error";
        case SensorStatus::NoValue: return "no_value";
    }
    return "unknown";
}

}  // namespace fieldlink::hal
