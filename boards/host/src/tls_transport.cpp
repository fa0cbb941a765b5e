#include "fieldlink/boards/host/tls_transport.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace fieldlink::boards::host {
namespace {

std::uint64_t now_ms() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

int wait_ms(std::uint64_t deadline_ms) {
    const std::uint64_t now = now_ms();
    if (now >= deadline_ms) return 0;
    const std::uint64_t left = deadline_ms - now;
    return left > 1'000'000'000u ? 1'000'000'000 : static_cast<int>(left);
}

// The oldest queued OpenSSL error as text (and clears the queue), or `fallback`.
std::string openssl_error(const char* fallback) {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return fallback;
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

bool is_ip_address(const char* host) {
    unsigned char address[sizeof(in6_addr)];
    return ::inet_pton(AF_INET, host, address) == 1 || ::inet_pton(AF_INET6, host, address) == 1;
}

}  // namespace

struct TlsTransport::Context {
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    bool verify_host = true;
    ~Context() {
        if (ssl != nullptr) SSL_free(ssl);
        if (ctx != nullptr) SSL_CTX_free(ctx);
    }
};

std::unique_ptr<TlsTransport> TlsTransport::create(const TlsSettings& settings, std::string* error) {
    auto context = std::make_unique<Context>();
    context->verify_host = settings.verify_host;
    context->ctx = SSL_CTX_new(TLS_client_method());
    if (context->ctx == nullptr) {
        *error = "cannot create a TLS context: " + openssl_error("out of memory");
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(context->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(context->ctx, SSL_VERIFY_PEER, nullptr);
    // Partial writes let send() keep its own deadline on a full socket.
    SSL_CTX_set_mode(context->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (settings.ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(context->ctx) != 1) {
            *error = "cannot load the system's trust store: " + openssl_error("unknown error");
            return nullptr;
        }
    } else if (SSL_CTX_load_verify_locations(context->ctx, settings.ca_file.c_str(), nullptr) != 1) {
        *error = "cannot load CA file '" + settings.ca_file + "': " + openssl_error("unknown error");
        return nullptr;
    }
    if (settings.cert_file.empty() != settings.key_file.empty()) {
        *error = "a client certificate and its key go together (--cert-file and --key-file)";
        return nullptr;
    }
    if (!settings.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(context->ctx, settings.cert_file.c_str()) != 1) {
            *error = "cannot load certificate file '" + settings.cert_file + "': " + openssl_error("unknown error");
            return nullptr;
        }
        if (SSL_CTX_use_PrivateKey_file(context->ctx, settings.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            *error = "cannot load key file '" + settings.key_file + "': " + openssl_error("unknown error");
            return nullptr;
        }
        if (SSL_CTX_check_private_key(context->ctx) != 1) {
            *error = "key file '" + settings.key_file + "' does not match certificate '" + settings.cert_file + "'";
            return nullptr;
        }
    }
    return std::unique_ptr<TlsTransport>(new TlsTransport(std::move(context)));
}

TlsTransport::TlsTransport(std::unique_ptr<Context> context) noexcept : context_(std::move(context)) {}

TlsTransport::~TlsTransport() { close(); }

hal::TransportStatus TlsTransport::fail(hal::TransportStatus status, std::string reason) {
    last_error_ = std::move(reason);
    return status;
}

bool TlsTransport::wait_for(bool want_read, std::uint64_t deadline_ms) {
    for (;;) {
        pollfd waiter{tcp_.native_handle(), static_cast<short>(want_read ? POLLIN : POLLOUT), 0};
        const int ready = ::poll(&waiter, 1, wait_ms(deadline_ms));
        if (ready > 0) return true;
        if (ready < 0 && errno == EINTR) return false;  // a signal: let the caller look
        if (ready < 0) {
            last_error_ = std::string("poll: ") + std::strerror(errno);
            return false;
        }
        last_error_ = "timed out";
        return false;
    }
}

hal::TransportStatus TlsTransport::open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) {
    close();
    last_error_.clear();
    if (host == nullptr) return hal::TransportStatus::InvalidArgument;
    const std::uint64_t deadline = now_ms() + timeout_ms;
    if (const hal::TransportStatus status = tcp_.open(host, port, timeout_ms); status != hal::TransportStatus::Ok) {
        return fail(status, std::string("TCP: ") + std::strerror(tcp_.last_errno()));
    }
    SSL* ssl = SSL_new(context_->ctx);
    if (ssl == nullptr) {
        tcp_.close();
        return fail(hal::TransportStatus::Error, "SSL_new: " + openssl_error("out of memory"));
    }
    context_->ssl = ssl;
    SSL_set_fd(ssl, tcp_.native_handle());
    if (is_ip_address(host)) {
        // An address is checked against the certificate's IP entries; no SNI for it (RFC 6066).
        if (context_->verify_host && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) {
            close();
            return fail(hal::TransportStatus::Error, "cannot check the broker's address " + std::string(host));
        }
    } else {
        SSL_set_tlsext_host_name(ssl, host);
        if (context_->verify_host) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(ssl, host) != 1) {
                close();
                return fail(hal::TransportStatus::Error, "cannot check the broker's name " + std::string(host));
            }
        }
    }
    for (;;) {
        ERR_clear_error();
        const int result = SSL_connect(ssl);
        if (result == 1) return hal::TransportStatus::Ok;
        const int error = SSL_get_error(ssl, result);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            if (wait_for(error == SSL_ERROR_WANT_READ, deadline)) continue;
            const std::string why = "TLS handshake: " + last_error_;
            close();
            return fail(why == "TLS handshake: timed out" ? hal::TransportStatus::Timeout : hal::TransportStatus::Error,
                        why);
        }
        std::string why;
        if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
            why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        } else if (error == SSL_ERROR_SYSCALL) {
            why = errno != 0 ? std::string("TLS handshake: ") + std::strerror(errno)
                             : std::string("TLS handshake: the broker closed the connection");
        } else {
            why = "TLS handshake: " + openssl_error("failed");
        }
        close();
        return fail(hal::TransportStatus::Error, why);
    }
}

void TlsTransport::close() {
    if (context_ && context_->ssl != nullptr) {
        // No close_notify round trip: the MQTT session has already said DISCONNECT when it matters.
        SSL_free(context_->ssl);
        context_->ssl = nullptr;
    }
    tcp_.close();
}

hal::TransportStatus TlsTransport::send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) {
    SSL* ssl = context_->ssl;
    if (ssl == nullptr) return hal::TransportStatus::Closed;
    if (data == nullptr && length > 0) return hal::TransportStatus::InvalidArgument;
    const std::uint64_t deadline = now_ms() + timeout_ms;
    std::size_t sent = 0;
    while (sent < length) {
        ERR_clear_error();
        std::size_t written = 0;
        if (SSL_write_ex(ssl, data + sent, length - sent, &written) == 1) {
            sent += written;
            continue;
        }
        const int error = SSL_get_error(ssl, 0);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            if (wait_for(error == SSL_ERROR_WANT_READ, deadline)) continue;
            if (last_error_ == "timed out") return hal::TransportStatus::Timeout;
            continue;  // interrupted by a signal: try again until the deadline
        }
        if (error == SSL_ERROR_ZERO_RETURN) return fail(hal::TransportStatus::Closed, "the broker closed TLS");
        if (error == SSL_ERROR_SYSCALL && (errno == EPIPE || errno == ECONNRESET || errno == 0)) {
            return fail(hal::TransportStatus::Closed, "the connection was closed");
        }
        return fail(hal::TransportStatus::Error, "TLS write: " + openssl_error("failed"));
    }
    return hal::TransportStatus::Ok;
}

hal::TransportStatus TlsTransport::recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                                        std::size_t* received) {
    *received = 0;
    SSL* ssl = context_->ssl;
    if (ssl == nullptr) return hal::TransportStatus::Closed;
    if (buffer == nullptr || capacity == 0) return hal::TransportStatus::InvalidArgument;
    const std::uint64_t deadline = now_ms() + timeout_ms;
    // OpenSSL may hold decrypted bytes already, which poll() cannot see.
    bool ready = SSL_pending(ssl) > 0;
    for (;;) {
        if (!ready && !wait_for(true, deadline)) return hal::TransportStatus::Ok;  // nothing in time, or a signal
        ERR_clear_error();
        std::size_t got = 0;
        if (SSL_read_ex(ssl, buffer, capacity, &got) == 1) {
            *received = got;
            return hal::TransportStatus::Ok;
        }
        const int error = SSL_get_error(ssl, 0);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            // A record only partly here, or a TLS 1.3 session ticket: no application data yet.
            ready = false;
            if (error == SSL_ERROR_WANT_WRITE && !wait_for(false, deadline)) return hal::TransportStatus::Ok;
            continue;
        }
        if (error == SSL_ERROR_ZERO_RETURN) return fail(hal::TransportStatus::Closed, "the broker closed TLS");
        if (error == SSL_ERROR_SYSCALL && (errno == 0 || errno == ECONNRESET)) {
            return fail(hal::TransportStatus::Closed, "the connection was closed");
        }
        return fail(hal::TransportStatus::Error, "TLS read: " + openssl_error("failed"));
    }
}

}  // namespace fieldlink::boards::host
