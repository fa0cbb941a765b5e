// hal::Transport over a link session on a byte-oriented serial port: the MQTT
// byte stream of the reader rides in DATA frames (docs/protocol.md, "Serial
// link"). Portable: a board supplies only the SerialPort (its UART driver).
// One transport object is one line with one peer (the gateway's bridge), so
// open() ignores host and port. Freestanding: no heap, fixed buffers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/clock.hpp"
#include "fieldlink/hal/transport.hpp"
#include "fieldlink/link/session.hpp"

namespace fieldlink::link {

// A serial port as the transport drives it: a UART driver with rings (boards),
// a pipe or a test queue (host). Neither write nor read waits; wait() idles.
class SerialPort {
public:
    // Queues up to `length` bytes for transmission; returns how many it took.
    virtual std::size_t write(const std::uint8_t* data, std::size_t length) = 0;
    // Copies up to `capacity` received bytes; returns how many.
    virtual std::size_t read(std::uint8_t* out, std::size_t capacity) = 0;
    // Idles until something may have changed (a byte arrived, room to send, a
    // timer tick) or about `max_ms` passed; may return early. A board sleeps
    // in WFI here; the caller checks its deadline against the clock.
    virtual void wait(std::uint32_t max_ms) = 0;

protected:
    ~SerialPort() = default;
};

struct LinkTransportConfig {
    std::uint32_t retry_ms = 250;             // the session's Reset repeat (SessionConfig::retry_ms)
    std::uint16_t nonce = 0;                  // first Reset nonce minus one; seed it randomly
    std::uint32_t control_timeout_ms = 1000;  // longest wait for room for a Reset or ResetAck
};

// Counters for logs and tests.
struct LinkTransportCounters {
    std::uint32_t opens = 0;          // open() calls
    std::uint32_t opened = 0;         // open() calls that returned Ok
    std::uint32_t breaks = 0;         // open streams ended by damage, a gap or the peer's reset
    std::uint32_t output_stalls = 0;  // writes that could not finish in time
};

class LinkTransport final : public hal::Transport, private LinkOutput {
public:
    // Keeps references to `port` and `clock`, which must outlive it.
    LinkTransport(SerialPort& port, hal::Clock& clock, LinkTransportConfig config = {}) noexcept;

    // Starts a new link session (a Reset, repeated every retry_ms) and waits
    // at most timeout_ms for it to open. Ok: a fresh stream, both ends
    // numbering from 0. Timeout: no answer (nothing connected, or no bridge).
    hal::TransportStatus open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) override;

    // Stops the session: received bytes are dropped, nothing is sent. The
    // peer meets the next open() as a reset of its stream.
    void close() override;

    // Cuts the bytes into DATA frames. Closed: no open stream (never opened,
    // or broken since: the caller must close() and open() again). Timeout:
    // the port took too long (part may be sent; the stream is now broken).
    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) override;

    // Delivers DATA payloads in order, waiting at most timeout_ms for one.
    // Ok with *received == 0: nothing arrived in time. Closed: the stream
    // broke (a damaged frame, a gap, or the peer reset it), so whatever MQTT
    // had in flight may be lost; the caller reconnects.
    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override;

    // Session::seed_nonce: call once the board's random source is seeded, before open().
    void seed_nonce(std::uint16_t nonce) noexcept { session_.seed_nonce(nonce); }

    SessionState session_state() const noexcept { return session_.state(); }
    const Session& session() const noexcept { return session_; }
    LinkTransportCounters counters() const noexcept { return counters_; }

private:
    enum class Step : std::uint8_t { Idle, Opened, Data, Broken };

    bool write(const std::uint8_t* data, std::size_t length) override;  // LinkOutput
    // Feeds what the port has to the session until one event (or the port is
    // empty); never waits.
    Step pump();
    std::uint32_t now32() const noexcept;
    void take_pending(std::uint8_t* buffer, std::size_t capacity, std::size_t* received) noexcept;

    SerialPort& port_;
    hal::Clock& clock_;
    LinkTransportConfig config_;
    Session session_;
    bool stream_open_ = false;               // an open() succeeded and nothing has broken it since
    std::uint64_t write_deadline_ = 0;       // for the frame being written
    const std::uint8_t* pending_ = nullptr;  // rest of a DATA payload the caller had no room for
    std::size_t pending_length_ = 0;
    std::uint8_t rx_[64] = {};  // bytes read from the port, not yet fed to the session
    std::size_t rx_at_ = 0;
    std::size_t rx_length_ = 0;
    LinkTransportCounters counters_;
};

}  // namespace fieldlink::link
