#include "fieldlink/boards/host/tcp_transport.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

namespace fieldlink::boards::host {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
}

hal::TransportStatus status_of_connect_error(int error) {
    switch (error) {
        case ECONNREFUSED: return hal::TransportStatus::Refused;
        case ENETUNREACH:
        case EHOSTUNREACH:
        case EADDRNOTAVAIL: return hal::TransportStatus::Unreachable;
        case ETIMEDOUT: return hal::TransportStatus::Timeout;
        default: return hal::TransportStatus::Error;
    }
}

// Connects one address with a deadline; returns the socket or -1 and sets *error.
int connect_one(const addrinfo& address, Clock::time_point deadline, int* error) {
    const int fd = ::socket(address.ai_family, address.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, address.ai_protocol);
    if (fd < 0) {
        *error = errno;
        return -1;
    }
    if (::connect(fd, address.ai_addr, address.ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
        *error = errno;
        ::close(fd);
        return -1;
    }
    for (;;) {
        pollfd waiter{fd, POLLOUT, 0};
        const int ready = ::poll(&waiter, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            *error = ready == 0 ? ETIMEDOUT : errno;
            ::close(fd);
            return -1;
        }
        int socket_error = 0;
        socklen_t length = sizeof socket_error;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length) != 0) socket_error = errno;
        if (socket_error != 0) {
            *error = socket_error;
            ::close(fd);
            return -1;
        }
        return fd;
    }
}

}  // namespace

TcpTransport::~TcpTransport() { close(); }

hal::TransportStatus TcpTransport::fail(int error) noexcept {
    last_errno_ = error;
    if (error == EPIPE || error == ECONNRESET || error == ENOTCONN) return hal::TransportStatus::Closed;
    return hal::TransportStatus::Error;
}

hal::TransportStatus TcpTransport::open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) {
    close();
    if (host == nullptr) return hal::TransportStatus::InvalidArgument;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* addresses = nullptr;
    const std::string service = std::to_string(port);
    if (::getaddrinfo(host, service.c_str(), &hints, &addresses) != 0 || addresses == nullptr) {
        last_errno_ = EHOSTUNREACH;
        return hal::TransportStatus::Unreachable;
    }
    // Try every address (e.g. ::1 then 127.0.0.1 for "localhost").
    int error = 0;
    for (const addrinfo* a = addresses; a != nullptr && fd_ < 0; a = a->ai_next) {
        fd_ = connect_one(*a, deadline, &error);
        if (error == ETIMEDOUT && fd_ < 0) break;
    }
    ::freeaddrinfo(addresses);
    if (fd_ < 0) {
        last_errno_ = error;
        return status_of_connect_error(error);
    }
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    last_errno_ = 0;
    return hal::TransportStatus::Ok;
}

void TcpTransport::close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

hal::TransportStatus TcpTransport::send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) {
    if (fd_ < 0) return hal::TransportStatus::Closed;
    if (data == nullptr && length > 0) return hal::TransportStatus::InvalidArgument;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t sent = 0;
    while (sent < length) {
        const ssize_t n = ::send(fd_, data + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd waiter{fd_, POLLOUT, 0};
            const int ready = ::poll(&waiter, 1, remaining_ms(deadline));
            if (ready < 0 && errno == EINTR) continue;
            if (ready < 0) return fail(errno);
            if (ready == 0) {
                last_errno_ = ETIMEDOUT;
                return hal::TransportStatus::Timeout;
            }
            continue;
        }
        return fail(n < 0 ? errno : EPIPE);
    }
    return hal::TransportStatus::Ok;
}

hal::TransportStatus TcpTransport::recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                                        std::size_t* received) {
    *received = 0;
    if (fd_ < 0) return hal::TransportStatus::Closed;
    if (buffer == nullptr || capacity == 0) return hal::TransportStatus::InvalidArgument;
    pollfd waiter{fd_, POLLIN, 0};
    const int wait = timeout_ms > 1'000'000'000u ? 1'000'000'000 : static_cast<int>(timeout_ms);
    const int ready = ::poll(&waiter, 1, wait);
    if (ready < 0) return errno == EINTR ? hal::TransportStatus::Ok : fail(errno);  // a signal: let the caller look
    if (ready == 0) return hal::TransportStatus::Ok;
    const ssize_t n = ::recv(fd_, buffer, capacity, 0);
    if (n > 0) {
        *received = static_cast<std::size_t>(n);
        return hal::TransportStatus::Ok;
    }
    if (n == 0) return hal::TransportStatus::Closed;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return hal::TransportStatus::Ok;
    return fail(errno);
}

}  // namespace fieldlink::boards::host
