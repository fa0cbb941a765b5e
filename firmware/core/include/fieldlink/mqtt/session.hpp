// MQTT 3.1.1 client session over a hal::Transport, with caller-owned buffers.
// The application opens the transport, then calls connect(); poll() receives,
// dispatches packets to an EventHandler, answers incoming QoS 1 publishes with
// PUBACK and keeps the connection alive with PINGREQ. Any failure leaves the
// session in Failed: the application closes the transport and calls reset().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "fieldlink/hal/clock.hpp"
#include "fieldlink/hal/transport.hpp"
#include "fieldlink/mqtt/packet.hpp"
#include "fieldlink/mqtt/config_defaults.hpp"

namespace fieldlink::mqtt {

struct IncomingMessage {
    const char* topic = nullptr;  // not NUL-terminated
    std::size_t topic_length = 0;
    const std::uint8_t* payload = nullptr;
    std::size_t payload_length = 0;
    std::uint8_t qos = 0;
    bool retain = false;
};

// Receives what poll() decodes. Handlers must not call back into the session;
// they record what happened and the application acts after poll() returns.
class EventHandler {
public:
    virtual void on_connack(bool session_present) = 0;
    virtual void on_puback(std::uint16_t packet_id) = 0;
    virtual void on_suback(std::uint16_t packet_id, const std::uint8_t* codes, std::size_t count) = 0;
    virtual void on_message(const IncomingMessage& message) = 0;

protected:
    ~EventHandler() = default;
};

struct SessionConfig {
    std::uint32_t response_timeout_ms = 10'000;  // CONNECT or SUBSCRIBE sent, no answer: give up
    std::uint32_t send_timeout_ms = 10'000;      // one packet must leave within this time
    // PINGREQ sent, no PINGRESP within this time: the connection is dead.
    // 0 means one keep-alive period.
    std::uint32_t ping_timeout_ms = 0;
};

struct SessionCounters {
    std::uint64_t packets_received = 0;
    std::uint64_t pings_sent = 0;
    std::uint64_t oversize_skipped = 0;  // incoming packets too large for the receive buffer
    std::uint64_t unknown_pubacks = 0;   // PUBACKs for packet ids not awaited
};

enum class SessionState : std::uint8_t {
    Idle = 0,    // no connection; connect() may be called
    Connecting,  // CONNECT sent, awaiting CONNACK
    Connected,   // CONNACK accepted
    Failed,      // the connection broke; close the transport and reset()
};

inline constexpr std::size_t kMaxPendingPubacks = FIELDLINK_MQTT_MAX_PENDING_PUBACKS;
// Smallest receive buffer: room for a PUBLISH header with a short topic and id.
inline constexpr std::size_t kMinReceiveBuffer = 64;

class Session {
public:
    // `tx` must hold the largest packet the application sends; `rx` bounds the
    // largest packet received whole (larger PUBLISHes are skipped, and acked
    // when QoS 1 so the broker does not stall).
    Session(hal::Transport& transport, hal::Clock& clock, std::span<std::uint8_t> tx, std::span<std::uint8_t> rx,
            const SessionConfig& config = {}) noexcept;

    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Sends CONNECT on the already open transport. Fails with NotConnected
    // unless Idle; with InvalidArgument for bad options or BufferTooSmall when
    // CONNECT does not fit tx or rx is below kMinReceiveBuffer (state stays
    // Idle); with TransportError when the send failed (Failed).
    Status connect(const ConnectOptions& options) noexcept;

    // Waits at most max_wait_ms for input (less when a keep-alive deadline is
    // nearer), dispatches every whole packet received and runs the keep-alive.
    // Ok while the connection is healthy. Errors put the session in Failed:
    // TransportError, ConnectionClosed, ResponseTimeout, PingTimeout,
    // ConnectionRefused, ProtocolError, Malformed, MalformedLength, UnknownType.
    // NotConnected when Idle or already Failed.
    Status poll(std::uint32_t max_wait_ms, EventHandler& handler) noexcept;

    // Publishes; for QoS 1 assigns *packet_id and remembers it until PUBACK.
    // NotConnected unless Connected; PendingFull when every PUBACK slot is
    // taken; InvalidArgument / BufferTooSmall (nothing sent, still Connected);
    // TransportError (Failed).
    Status publish(const char* topic, const std::uint8_t* payload, std::size_t payload_length, QoS qos, bool retain,
                   std::uint16_t* packet_id) noexcept;

    // Subscribes to one filter; the SUBACK arrives through the handler with
    // *packet_id. Errors as for publish (except PendingFull).
    Status subscribe(const char* topic_filter, QoS max_qos, std::uint16_t* packet_id) noexcept;

    // Sends DISCONNECT (the broker then discards the last will) and goes Idle.
    // NotConnected unless Connected; TransportError when the send failed.
    Status disconnect() noexcept;

    // Forgets the connection (pending PUBACKs, partial input) and goes Idle.
    void reset() noexcept;

    SessionState state() const noexcept { return state_; }
    std::size_t pending_pubacks() const noexcept { return pending_count_; }
    bool can_publish_qos1() const noexcept {
        return state_ == SessionState::Connected && pending_count_ < kMaxPendingPubacks;
    }
    // Status of the transport call that failed last (Ok if none did).
    hal::TransportStatus last_transport_status() const noexcept { return last_transport_status_; }
    // Return code of the last CONNACK (see ConnackCode), for logs.
    std::uint8_t last_connack_code() const noexcept { return last_connack_code_; }
    const SessionCounters& counters() const noexcept { return counters_; }

private:
    Status send_packet(std::size_t length) noexcept;
    Status fail(Status status) noexcept;
    Status run_timers(std::uint64_t now) noexcept;
    std::uint32_t time_to_next_timer(std::uint64_t now) const noexcept;
    std::uint32_t ping_timeout_ms() const noexcept;
    std::uint64_t quiet_since_ms() const noexcept;
    Status process_input(EventHandler& handler) noexcept;
    Status handle_packet(const Packet& packet, EventHandler& handler) noexcept;
    Status skip_oversize(std::uint8_t first_byte, std::uint32_t remaining, std::size_t header_size) noexcept;
    void consume(std::size_t count) noexcept;
    std::uint16_t allocate_packet_id() noexcept;
    bool release_pending(std::uint16_t packet_id) noexcept;

    hal::Transport& transport_;
    hal::Clock& clock_;
    std::span<std::uint8_t> tx_;
    std::span<std::uint8_t> rx_;
    SessionConfig config_;

    SessionState state_ = SessionState::Idle;
    std::size_t rx_fill_ = 0;
    std::size_t skip_remaining_ = 0;  // bytes of an oversize packet still to discard
    std::uint32_t keep_alive_ms_ = 0;
    std::uint64_t connect_sent_ms_ = 0;
    std::uint64_t last_sent_ms_ = 0;
    std::uint64_t last_received_ms_ = 0;
    std::uint64_t ping_sent_ms_ = 0;
    std::uint64_t subscribe_sent_ms_ = 0;
    std::uint16_t subscribe_pending_id_ = 0;  // SUBSCRIBE awaiting its SUBACK (0: none)
    bool ping_outstanding_ = false;
    std::uint16_t next_packet_id_ = 1;
    std::uint16_t pending_[kMaxPendingPubacks] = {};
    std::size_t pending_count_ = 0;
    hal::TransportStatus last_transport_status_ = hal::TransportStatus::Ok;
    std::uint8_t last_connack_code_ = 0;
    SessionCounters counters_;
};

}  // namespace fieldlink::mqtt
