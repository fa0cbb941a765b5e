#include "fieldlink/mqtt/session.hpp"

#include <cstring>
#include <limits>

namespace fieldlink::mqtt {
namespace {

std::uint32_t remaining_ms(std::uint64_t start, std::uint64_t duration, std::uint64_t now) noexcept {
    return hal::ms_until(start + duration, now, std::numeric_limits<std::uint32_t>::max());
}

}  // namespace

Session::Session(hal::Transport& transport, hal::Clock& clock, std::span<std::uint8_t> tx, std::span<std::uint8_t> rx,
                 const SessionConfig& config) noexcept
    : transport_(transport), clock_(clock), tx_(tx), rx_(rx), config_(config) {}

Status Session::connect(const ConnectOptions& options) noexcept {
    if (state_ != SessionState::Idle) return Status::NotConnected;
    if (rx_.size() < kMinReceiveBuffer) return Status::BufferTooSmall;
    std::size_t length = 0;
    if (Status s = encode_connect(options, tx_.data(), tx_.size(), &length); s != Status::Ok) return s;
    reset();
    keep_alive_ms_ = static_cast<std::uint32_t>(options.keep_alive_s) * 1000u;
    if (Status s = send_packet(length); s != Status::Ok) return s;
    state_ = SessionState::Connecting;
    connect_sent_ms_ = last_sent_ms_;
    last_received_ms_ = last_sent_ms_;
    return Status::Ok;
}

Status Session::poll(std::uint32_t max_wait_ms, EventHandler& handler) noexcept {
    if (state_ == SessionState::Idle || state_ == SessionState::Failed) return Status::NotConnected;
    if (Status s = run_timers(clock_.now_ms()); s != Status::Ok) return s;

    std::uint32_t wait = time_to_next_timer(clock_.now_ms());
    if (max_wait_ms < wait) wait = max_wait_ms;
    std::size_t received = 0;
    const hal::TransportStatus ts = transport_.recv(rx_.data() + rx_fill_, rx_.size() - rx_fill_, wait, &received);
    if (ts == hal::TransportStatus::Closed) {
        last_transport_status_ = ts;
        return fail(Status::ConnectionClosed);
    }
    if (ts != hal::TransportStatus::Ok && ts != hal::TransportStatus::Timeout) {
        last_transport_status_ = ts;
        return fail(Status::TransportError);
    }
    if (received > 0) {
        last_received_ms_ = clock_.now_ms();
        rx_fill_ += received;
        if (Status s = process_input(handler); s != Status::Ok) return fail(s);
    }
    return run_timers(clock_.now_ms());
}

Status Session::publish(const char* topic, const std::uint8_t* payload, std::size_t payload_length, QoS qos,
                        bool retain, std::uint16_t* packet_id) noexcept {
    if (state_ != SessionState::Connected) return Status::NotConnected;
    const bool needs_ack = qos == QoS::AtLeastOnce;
    if (needs_ack && pending_count_ >= kMaxPendingPubacks) return Status::PendingFull;
    const std::uint16_t id = needs_ack ? allocate_packet_id() : 0;
    std::size_t length = 0;
    if (Status s =
            encode_publish(topic, payload, payload_length, qos, retain, false, id, tx_.data(), tx_.size(), &length);
        s != Status::Ok) {
        return s;
    }
    if (Status s = send_packet(length); s != Status::Ok) return s;
    if (needs_ack) pending_[pending_count_++] = id;
    if (packet_id != nullptr) *packet_id = id;
    return Status::Ok;
}

Status Session::subscribe(const char* topic_filter, QoS max_qos, std::uint16_t* packet_id) noexcept {
    if (state_ != SessionState::Connected) return Status::NotConnected;
    const std::uint16_t id = allocate_packet_id();
    std::size_t length = 0;
    if (Status s = encode_subscribe(id, topic_filter, max_qos, tx_.data(), tx_.size(), &length); s != Status::Ok) {
        return s;
    }
    if (Status s = send_packet(length); s != Status::Ok) return s;
    subscribe_pending_id_ = id;
    subscribe_sent_ms_ = last_sent_ms_;
    if (packet_id != nullptr) *packet_id = id;
    return Status::Ok;
}

Status Session::disconnect() noexcept {
    if (state_ != SessionState::Connected) return Status::NotConnected;
    std::size_t length = 0;
    Status s = encode_disconnect(tx_.data(), tx_.size(), &length);
    if (s == Status::Ok) s = send_packet(length);
    reset();
    return s;
}

void Session::reset() noexcept {
    state_ = SessionState::Idle;
    rx_fill_ = 0;
    skip_remaining_ = 0;
    ping_outstanding_ = false;
    subscribe_pending_id_ = 0;
    pending_count_ = 0;
    last_transport_status_ = hal::TransportStatus::Ok;
}

Status Session::send_packet(std::size_t length) noexcept {
    const hal::TransportStatus ts = transport_.send(tx_.data(), length, config_.send_timeout_ms);
    if (ts != hal::TransportStatus::Ok) {
        last_transport_status_ = ts;
        return fail(Status::TransportError);
    }
    last_sent_ms_ = clock_.now_ms();
    return Status::Ok;
}

Status Session::fail(Status status) noexcept {
    state_ = SessionState::Failed;
    return status;
}

Status Session::run_timers(std::uint64_t now) noexcept {
    if (state_ == SessionState::Connecting) {
        if (remaining_ms(connect_sent_ms_, config_.response_timeout_ms, now) == 0) {
            return fail(Status::ResponseTimeout);
        }
        return Status::Ok;
    }
    if (state_ != SessionState::Connected) return Status::Ok;
    if (subscribe_pending_id_ != 0 && remaining_ms(subscribe_sent_ms_, config_.response_timeout_ms, now) == 0) {
        return fail(Status::ResponseTimeout);
    }
    if (keep_alive_ms_ == 0) return Status::Ok;
    if (ping_outstanding_) {
        if (remaining_ms(ping_sent_ms_, ping_timeout_ms(), now) == 0) return fail(Status::PingTimeout);
        return Status::Ok;
    }
    if (remaining_ms(quiet_since_ms(), keep_alive_ms_, now) > 0) return Status::Ok;
    std::size_t length = 0;
    if (Status s = encode_pingreq(tx_.data(), tx_.size(), &length); s != Status::Ok) return fail(s);
    if (Status s = send_packet(length); s != Status::Ok) return s;
    ping_outstanding_ = true;
    ping_sent_ms_ = last_sent_ms_;
    ++counters_.pings_sent;
    return Status::Ok;
}

std::uint32_t Session::ping_timeout_ms() const noexcept {
    return config_.ping_timeout_ms != 0 ? config_.ping_timeout_ms : keep_alive_ms_;
}

// Ping when either direction was quiet for a period: sending alone does not
// prove that the broker is still there.
std::uint64_t Session::quiet_since_ms() const noexcept {
    return last_sent_ms_ < last_received_ms_ ? last_sent_ms_ : last_received_ms_;
}

std::uint32_t Session::time_to_next_timer(std::uint64_t now) const noexcept {
    if (state_ == SessionState::Connecting) return remaining_ms(connect_sent_ms_, config_.response_timeout_ms, now);
    std::uint32_t wait = std::numeric_limits<std::uint32_t>::max();
    if (state_ != SessionState::Connected) return wait;
    if (subscribe_pending_id_ != 0) wait = remaining_ms(subscribe_sent_ms_, config_.response_timeout_ms, now);
    if (keep_alive_ms_ == 0) return wait;
    const std::uint32_t keep_alive_wait = ping_outstanding_ ? remaining_ms(ping_sent_ms_, ping_timeout_ms(), now)
                                                            : remaining_ms(quiet_since_ms(), keep_alive_ms_, now);
    return keep_alive_wait < wait ? keep_alive_wait : wait;
}

Status Session::process_input(EventHandler& handler) noexcept {
    for (;;) {
        if (skip_remaining_ > 0) {
            const std::size_t n = skip_remaining_ < rx_fill_ ? skip_remaining_ : rx_fill_;
            consume(n);
            skip_remaining_ -= n;
            if (skip_remaining_ > 0) return Status::Ok;
        }
        if (rx_fill_ == 0) return Status::Ok;

        Packet packet;
        std::size_t used = 0;
        const Status s = decode_packet(rx_.data(), rx_fill_, &packet, &used);
        if (s == Status::Incomplete) {
            std::uint8_t first = 0;
            std::uint32_t remaining = 0;
            std::size_t header_size = 0;
            if (decode_fixed_header(rx_.data(), rx_fill_, &first, &remaining, &header_size) == Status::Ok &&
                remaining > rx_.size() - header_size) {
                if (Status skip = skip_oversize(first, remaining, header_size); skip != Status::Ok) return skip;
                if (skip_remaining_ > 0) continue;
            }
            return Status::Ok;  // wait for the rest of the packet
        }
        if (s != Status::Ok) return s;
        ++counters_.packets_received;
        if (Status handled = handle_packet(packet, handler); handled != Status::Ok) return handled;
        consume(used);
    }
}

Status Session::skip_oversize(std::uint8_t first_byte, std::uint32_t remaining, std::size_t header_size) noexcept {
    // Only a PUBLISH can legitimately be this large (someone wrote a big
    // message to our topic). Skip it; acknowledge QoS 1 so the broker does not
    // hold one of its in-flight slots for us forever.
    if (state_ != SessionState::Connected || (first_byte >> 4) != static_cast<std::uint8_t>(PacketType::Publish)) {
        return Status::ProtocolError;
    }
    const std::uint8_t qos = static_cast<std::uint8_t>((first_byte >> 1) & 0x03);
    if (qos > 1) return Status::ProtocolError;
    if (qos == 1) {
        const std::uint8_t* body = rx_.data() + header_size;
        const std::size_t have = rx_fill_ - header_size;
        if (have < 2) return Status::Ok;
        const std::size_t topic_length = static_cast<std::size_t>((body[0] << 8) | body[1]);
        if (have >= 2 + topic_length + 2) {
            const auto id = static_cast<std::uint16_t>((body[2 + topic_length] << 8) | body[3 + topic_length]);
            if (id == 0) return Status::Malformed;
            std::size_t length = 0;
            if (Status s = encode_puback(id, tx_.data(), tx_.size(), &length); s != Status::Ok) return s;
            if (Status s = send_packet(length); s != Status::Ok) return s;
        } else if (rx_fill_ < rx_.size()) {
            return Status::Ok;  // the packet id has not arrived yet
        }
        // else the topic alone overflows the buffer: skip without PUBACK.
    }
    ++counters_.oversize_skipped;
    skip_remaining_ = header_size + remaining;
    return Status::Ok;
}

Status Session::handle_packet(const Packet& packet, EventHandler& handler) noexcept {
    if (state_ == SessionState::Connecting && packet.type != PacketType::Connack) {
        return Status::ProtocolError;  // CONNACK must come first (spec 3.2)
    }
    switch (packet.type) {
        case PacketType::Connack:
            if (state_ != SessionState::Connecting) return Status::ProtocolError;
            last_connack_code_ = packet.connack_code;
            if (packet.connack_code != 0) return Status::ConnectionRefused;
            state_ = SessionState::Connected;
            handler.on_connack(packet.session_present);
            return Status::Ok;
        case PacketType::Publish: {
            if (packet.publish.qos > 1) return Status::ProtocolError;  // never subscribed above QoS 1
            IncomingMessage message;
            message.topic = packet.publish.topic;
            message.topic_length = packet.publish.topic_length;
            message.payload = packet.publish.payload;
            message.payload_length = packet.publish.payload_length;
            message.qos = packet.publish.qos;
            message.retain = packet.publish.retain;
            handler.on_message(message);
            if (packet.publish.qos == 1) {
                std::size_t length = 0;
                if (Status s = encode_puback(packet.packet_id, tx_.data(), tx_.size(), &length); s != Status::Ok) {
                    return s;
                }
                return send_packet(length);
            }
            return Status::Ok;
        }
        case PacketType::Puback:
            if (release_pending(packet.packet_id)) {
                handler.on_puback(packet.packet_id);
            } else {
                ++counters_.unknown_pubacks;
            }
            return Status::Ok;
        case PacketType::Suback:
            if (packet.packet_id == subscribe_pending_id_) subscribe_pending_id_ = 0;
            handler.on_suback(packet.packet_id, packet.suback_codes, packet.suback_count);
            return Status::Ok;
        case PacketType::Pingresp: ping_outstanding_ = false; return Status::Ok;
        case PacketType::Unsuback: return Status::Ok;  // harmless; this client never unsubscribes
        default: return Status::ProtocolError;         // QoS 2 flow or a client-only packet
    }
}

void Session::consume(std::size_t count) noexcept {
    if (count >= rx_fill_) {
        rx_fill_ = 0;
        return;
    }
    std::memmove(rx_.data(), rx_.data() + count, rx_fill_ - count);
    rx_fill_ -= count;
}

std::uint16_t Session::allocate_packet_id() noexcept {
    for (;;) {
        const std::uint16_t id = next_packet_id_;
        next_packet_id_ = static_cast<std::uint16_t>(next_packet_id_ == 0xFFFF ? 1 : next_packet_id_ + 1);
        bool in_use = false;
        for (std::size_t i = 0; i < pending_count_; ++i) in_use = in_use || pending_[i] == id;
        if (!in_use) return id;
    }
}

bool Session::release_pending(std::uint16_t packet_id) noexcept {
    for (std::size_t i = 0; i < pending_count_; ++i) {
        if (pending_[i] == packet_id) {
            pending_[i] = pending_[--pending_count_];
            return true;
        }
    }
    return false;
}

}  // namespace fieldlink::mqtt
