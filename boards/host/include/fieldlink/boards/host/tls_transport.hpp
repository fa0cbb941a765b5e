// hal::Transport over TLS (OpenSSL) on top of TcpTransport: the host reader's
// way to a broker's TLS listener (Mosquitto's 8883). The broker's certificate
// is checked against a CA file (or the system's trust store) and, unless
// turned off, against the host name or IP address it was reached by. A client
// certificate is optional. The bare-metal boards have no TLS: they talk to the
// gateway over a local serial link (docs/operations.md, "Securing a gateway").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fieldlink/boards/host/tcp_transport.hpp"
#include "fieldlink/hal/transport.hpp"

namespace fieldlink::boards::host {

struct TlsSettings {
    std::string ca_file;    // PEM; empty: the system's default trust store
    std::string cert_file;  // PEM client certificate (chain); empty: none
    std::string key_file;   // PEM key of cert_file; needed with it
    bool verify_host = true;
};

class TlsTransport final : public hal::Transport {
public:
    // Loads the CA, certificate and key once. nullptr with *error set when
    // one cannot be read or the key does not match the certificate.
    static std::unique_ptr<TlsTransport> create(const TlsSettings& settings, std::string* error);

    ~TlsTransport();
    TlsTransport(const TlsTransport&) = delete;
    TlsTransport& operator=(const TlsTransport&) = delete;

    // TCP connect, then the TLS handshake, both within timeout_ms. A failed
    // handshake or certificate check is Error, with the reason in last_error().
    hal::TransportStatus open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) override;
    void close() override;
    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) override;
    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override;

    // Why the last call failed, for logs ("certificate verify failed: hostname mismatch", ...); empty if none did.
    const std::string& last_error() const noexcept { return last_error_; }

private:
    struct Context;
    explicit TlsTransport(std::unique_ptr<Context> context) noexcept;
    hal::TransportStatus fail(hal::TransportStatus status, std::string reason);
    // Waits until the socket is ready for what OpenSSL asked (want_read or
    // not) or the deadline passes; false on timeout (and sets last_error_).
    bool wait_for(bool want_read, std::uint64_t deadline_ms);

    std::unique_ptr<Context> context_;
    TcpTransport tcp_;
    std::string last_error_;
};

}  // namespace fieldlink::boards::host
