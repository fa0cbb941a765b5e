// hal::Transport over a POSIX TCP socket: non-blocking connect with a
// timeout, TCP_NODELAY (batches should leave at once), poll()-based waits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/transport.hpp"

namespace fieldlink::boards::host {

class TcpTransport final : public hal::Transport {
public:
    TcpTransport() = default;
    ~TcpTransport();
    TcpTransport(const TcpTransport&) = delete;
    TcpTransport& operator=(const TcpTransport&) = delete;

    hal::TransportStatus open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) override;
    void close() override;
    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) override;
    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override;

    // errno of the last failed system call (0 if none), for logs.
    int last_errno() const noexcept { return last_errno_; }
    // The connected socket (-1 when closed), for a layer on top such as TlsTransport.
    int native_handle() const noexcept { return fd_; }

private:
    hal::TransportStatus fail(int error) noexcept;

    int fd_ = -1;
    int last_errno_ = 0;
};

}  // namespace fieldlink::boards::host
