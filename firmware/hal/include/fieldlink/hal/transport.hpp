// Byte-stream connection to the MQTT broker (TCP socket, UART bridge, test fake).
// The application opens and closes it; the MQTT session only sends and receives.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::hal {

enum class TransportStatus : std::uint8_t {
    Ok = 0,
    Timeout,          // the deadline passed before the operation could finish
    Closed,           // the peer closed the connection (or it was never opened)
    Refused,          // open: the peer actively refused the connection
    Unreachable,      // open: the address could not be resolved or routed to
    Error,            // any other failure of the medium; the connection is unusable
    InvalidArgument,  // e.g. a null buffer with a non-zero length
};

class Transport {
public:
    // Connects to host:port, waiting at most timeout_ms. Closes any previous
    // connection first. Failures: Timeout, Refused, Unreachable, Error.
    virtual TransportStatus open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) = 0;

    // Drops the connection. Safe to call when nothing is open.
    virtual void close() = 0;

    // Sends all `length` bytes or fails, waiting at most timeout_ms in total.
    // After a failure (Timeout, Closed, Error) part of the data may have been
    // sent, so the caller must treat the stream as broken.
    virtual TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) = 0;

    // Waits at most timeout_ms for data, then copies up to `capacity` bytes and
    // sets *received. Ok with *received == 0 means nothing arrived in time (or
    // the wait was interrupted); Closed means the peer closed the stream.
    virtual TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                                 std::size_t* received) = 0;

protected:
    ~Transport() = default;
};

// Stable name of a status ("timeout", ...), for logs.
inline const char* to_string(TransportStatus status) noexcept {
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

}  // namespace fieldlink::hal
