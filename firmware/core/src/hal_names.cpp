#include "fieldlink/hal/sensors.hpp"
#include "fieldlink/hal/transport.hpp"

namespace fieldlink::hal {

const char* to_string(TransportStatus status) noexcept {
    switch (status) {
        case TransportStatus::Ok: return "ok";
        case TransportStatus::Timeout: return "timeout";
        case TransportStatus::Closed: return "closed";
        case TransportStatus::Refused: return "refused";
        case TransportStatus::Unreachable: return "unreachable";
        case TransportStatus::Error: return "error";
        case TransportStatus::InvalidArgument: return "invalid_argument";
    }
    return "unknown";
}

const char* to_string(SensorStatus status) noexcept {
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
