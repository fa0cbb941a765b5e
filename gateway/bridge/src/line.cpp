// Opening serial lines: termios for ttys, a connect with timeout for TCP.
#include "fieldlink/gateway/bridge/line.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <termios.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace fieldlink::gateway::bridge {
namespace {

std::string errno_text(int error) { return fmt::format("{} (errno {})", std::strerror(error), error); }

template <typename T>
bool parse_number(std::string_view text, T* out) {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
    return ec == std::errc() && end == text.data() + text.size();
}

speed_t baud_constant(std::uint32_t baud) {
    switch (baud) {
        case 1200: return B1200;
        case 2400: return B2400;
        case 4800: return B4800;
        case 9600: return B9600;
        case 19200: return B19200;
        case 38400: return B38400;
        case 57600: return B57600;
        case 115200: return B115200;
        case 230400: return B230400;
        case 460800: return B460800;
        case 921600: return B921600;
        default: return B0;
    }
}

UniqueFd open_tty(const LineSpec& spec) {
    // O_NOCTTY: a board must never become our controlling terminal.
    UniqueFd fd(::open(spec.path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
    if (!fd) throw LineError(fmt::format("line {}: cannot open {}: {}", spec.name, spec.path, errno_text(errno)));
    termios tio{};
    if (tcgetattr(fd.get(), &tio) != 0) {
        throw LineError(fmt::format("line {}: {} is not a tty: {}", spec.name, spec.path, errno_text(errno)));
    }
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;  // ignore modem lines: a USB virtual COM port has none
    tio.c_cflag &= ~static_cast<tcflag_t>(CSTOPB | CRTSCTS);
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    const speed_t speed = baud_constant(spec.baud);
    if (cfsetispeed(&tio, speed) != 0 || cfsetospeed(&tio, speed) != 0 || tcsetattr(fd.get(), TCSANOW, &tio) != 0) {
        throw LineError(fmt::format("line {}: cannot set {} to raw {} baud: {}", spec.name, spec.path, spec.baud,
                                    errno_text(errno)));
    }
    // Bytes from before we opened are from an old session (or boot noise).
    tcflush(fd.get(), TCIOFLUSH);
    return fd;
}

}  // namespace

LineSpec parse_line(std::string_view text) {
    LineSpec spec;
    spec.name = std::string(text);
    if (text.starts_with("tty:")) {
        const std::string_view rest = text.substr(4);
        const auto at = rest.rfind('@');
        if (at == std::string_view::npos) {
            throw std::invalid_argument(fmt::format("line '{}': no baud rate (expected {})", text, kLineExpected));
        }
        spec.kind = LineSpec::Kind::Tty;
        spec.path = std::string(rest.substr(0, at));
        if (spec.path.empty()) throw std::invalid_argument(fmt::format("line '{}': empty tty path", text));
        if (!parse_number(rest.substr(at + 1), &spec.baud) || baud_constant(spec.baud) == B0) {
            throw std::invalid_argument(fmt::format(
                "line '{}': unsupported baud rate '{}' (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, "
                "230400, 460800 or 921600)",
                text, rest.substr(at + 1)));
        }
        return spec;
    }
    if (text.starts_with("tcp:")) {
        const std::string_view rest = text.substr(4);
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos || colon == 0) {
            throw std::invalid_argument(fmt::format("line '{}': expected tcp:HOST:PORT", text));
        }
        spec.kind = LineSpec::Kind::Tcp;
        spec.host = std::string(rest.substr(0, colon));
        if (!parse_number(rest.substr(colon + 1), &spec.port) || spec.port == 0) {
            throw std::invalid_argument(
                fmt::format("line '{}': bad port '{}' (1..65535)", text, rest.substr(colon + 1)));
        }
        return spec;
    }
    throw std::invalid_argument(fmt::format("line '{}': unknown kind (expected {})", text, kLineExpected));
}

UniqueFd connect_tcp(const std::string& host, std::uint16_t port, int timeout_ms, std::string_view what) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
        throw LineError(fmt::format("{}: cannot resolve {}: {}", what, host, gai_strerror(rc)));
    }
    std::string last_error = "no address";
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd) {
            last_error = errno_text(errno);
            continue;
        }
        int error = 0;
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS) {
                pollfd p{fd.get(), POLLOUT, 0};
                const int ready = ::poll(&p, 1, timeout_ms);
                socklen_t length = sizeof(error);
                if (ready == 0) {
                    error = ETIMEDOUT;
                } else if (ready < 0 || getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
                    error = errno;
                }
            }
        }
        if (error == 0) {
            const int one = 1;
            setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            freeaddrinfo(found);
            return fd;
        }
        last_error = errno_text(error);
    }
    freeaddrinfo(found);
    throw LineError(fmt::format("{}: cannot connect to {}:{}: {}", what, host, port, last_error));
}

UniqueFd open_line(const LineSpec& spec, int timeout_ms) {
    if (spec.kind == LineSpec::Kind::Tty) return open_tty(spec);
    return connect_tcp(spec.host, spec.port, timeout_ms, fmt::format("line {}", spec.name));
}

}  // namespace fieldlink::gateway::bridge
