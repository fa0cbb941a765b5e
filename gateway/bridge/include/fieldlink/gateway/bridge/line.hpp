// Serial lines as the bridge opens them: a tty in raw mode at a given baud
// rate, or a TCP client socket (QEMU's `-serial tcp:HOST:PORT,server`).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fieldlink/gateway/bridge/fd.hpp"

namespace fieldlink::gateway::bridge {

struct LineSpec {
    enum class Kind { Tty, Tcp };
    Kind kind = Kind::Tcp;
    std::string path;        // Tty: the device file
    std::uint32_t baud = 0;  // Tty
    std::string host;        // Tcp: a numeric IPv4 address or a host name
    std::uint16_t port = 0;  // Tcp
    std::string name;        // as written on the command line, for logs
};

// What --line accepts, for help and error messages.
inline constexpr std::string_view kLineExpected =
    "tty:/dev/ttyACM0@115200 (a tty and its baud rate) or tcp:127.0.0.1:5555 (a TCP server such as QEMU's "
    "-serial tcp:...,server)";

// Parses "tty:PATH@BAUD" or "tcp:HOST:PORT". Throws std::invalid_argument
// saying what is wrong (unknown kind, missing or bad baud rate, bad port).
LineSpec parse_line(std::string_view text);

// The error of a failed open or connect: says which line or broker and why (errno text).
class LineError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Opens the line, non-blocking. Tty: raw 8N1, no flow control, the baud rate
// of the spec. Tcp: connects within `timeout_ms`. Throws LineError.
UniqueFd open_line(const LineSpec& spec, int timeout_ms);

// Connects a non-blocking TCP socket to host:port within `timeout_ms`, with
// TCP_NODELAY (MQTT packets are small). Throws LineError naming `what`.
UniqueFd connect_tcp(const std::string& host, std::uint16_t port, int timeout_ms, std::string_view what);

}  // namespace fieldlink::gateway::bridge
