// hal::Transport over a link session (docs/protocol.md, "Serial link").
#include "fieldlink/link/transport.hpp"

#include <cstring>

namespace fieldlink::link {
namespace {

SessionConfig session_config(const LinkTransportConfig& config) noexcept {
    SessionConfig c;
    c.retry_ms = config.retry_ms;
    c.nonce = config.nonce;
    return c;
}

}  // namespace

LinkTransport::LinkTransport(SerialPort& port, hal::Clock& clock, LinkTransportConfig config) noexcept
    : port_(port), clock_(clock), config_(config), session_(*this, session_config(config)) {}

std::uint32_t LinkTransport::now32() const noexcept {
    // The session's timers use unsigned differences, so the low 32 bits suffice.
    return static_cast<std::uint32_t>(clock_.now_ms());
}

hal::TransportStatus LinkTransport::open(const char* /*host*/, std::uint16_t /*port*/, std::uint32_t timeout_ms) {
    ++counters_.opens;
    stream_open_ = false;
    pending_ = nullptr;
    pending_length_ = 0;
    const std::uint64_t deadline = clock_.now_ms() + timeout_ms;
    write_deadline_ = clock_.now_ms() + config_.control_timeout_ms;
    // Bytes still queued belong to the previous stream; the new Reset makes them moot.
    session_.open(now32());
    for (;;) {
        const Step step = pump();
        if (step == Step::Opened) {
            stream_open_ = true;
            ++counters_.opened;
            return hal::TransportStatus::Ok;
        }
        if (step != Step::Idle) continue;  // Data or Broken cannot concern a stream not yet open
        const std::uint64_t now = clock_.now_ms();
        if (now >= deadline) return hal::TransportStatus::Timeout;
        write_deadline_ = now + config_.control_timeout_ms;
        session_.poll(static_cast<std::uint32_t>(now));
        // Wake at least for the next Reset repeat.
        std::uint32_t wait = hal::ms_until(deadline, now, config_.retry_ms);
        if (wait == 0) wait = 1;
        port_.wait(wait);
    }
}

void LinkTransport::close() {
    session_.close();
    stream_open_ = false;
    pending_ = nullptr;
    pending_length_ = 0;
    rx_at_ = 0;
    rx_length_ = 0;
}

hal::TransportStatus LinkTransport::send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) {
    if (data == nullptr && length != 0) return hal::TransportStatus::InvalidArgument;
    if (!stream_open_ || session_.state() != SessionState::Open) {
        stream_open_ = false;
        return hal::TransportStatus::Closed;
    }
    write_deadline_ = clock_.now_ms() + timeout_ms;
    const LinkStatus sent = session_.send(data, length);
    if (sent == LinkStatus::Ok) return hal::TransportStatus::Ok;
    // OutputFailed: part of the stream may be out, so it is broken; the
    // session repeats its Reset on the next open().
    stream_open_ = false;
    ++counters_.breaks;
    return sent == LinkStatus::OutputFailed ? hal::TransportStatus::Timeout : hal::TransportStatus::Closed;
}

hal::TransportStatus LinkTransport::recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                                         std::size_t* received) {
    if (received == nullptr || (buffer == nullptr && capacity != 0)) return hal::TransportStatus::InvalidArgument;
    *received = 0;
    if (pending_length_ > 0) {
        take_pending(buffer, capacity, received);
        return hal::TransportStatus::Ok;
    }
    if (!stream_open_) return hal::TransportStatus::Closed;
    const std::uint64_t deadline = clock_.now_ms() + timeout_ms;
    for (;;) {
        write_deadline_ = clock_.now_ms() + config_.control_timeout_ms;
        const Step step = pump();
        if (step == Step::Data) {
            take_pending(buffer, capacity, received);
            if (*received > 0 || capacity == 0) return hal::TransportStatus::Ok;
            continue;  // an empty DATA frame: keep waiting
        }
        if (step == Step::Broken || session_.state() != SessionState::Open) {
            stream_open_ = false;
            ++counters_.breaks;
            return hal::TransportStatus::Closed;
        }
        if (step != Step::Idle) continue;
        const std::uint64_t now = clock_.now_ms();
        if (now >= deadline) return hal::TransportStatus::Ok;
        port_.wait(hal::ms_until(deadline, now, 0xFFFF'FFFFu));
    }
}

void LinkTransport::take_pending(std::uint8_t* buffer, std::size_t capacity, std::size_t* received) noexcept {
    const std::size_t n = pending_length_ < capacity ? pending_length_ : capacity;
    if (n > 0) std::memcpy(buffer, pending_, n);
    pending_ += n;
    pending_length_ -= n;
    if (pending_length_ == 0) pending_ = nullptr;
    *received = n;
}

LinkTransport::Step LinkTransport::pump() {
    // A payload not yet taken points into the session's decoder: feed nothing until it is.
    if (pending_length_ > 0) return Step::Data;
    for (;;) {
        if (rx_at_ == rx_length_) {
            rx_at_ = 0;
            rx_length_ = port_.read(rx_, sizeof rx_);
            if (rx_length_ == 0) return Step::Idle;
        }
        std::size_t used = 0;
        const SessionEvent event = session_.receive(rx_ + rx_at_, rx_length_ - rx_at_, &used, now32());
        rx_at_ += used;
        switch (event.kind) {
            case SessionEvent::Kind::None: break;
            case SessionEvent::Kind::Opened:
                // Our Reset answered, or the peer's Reset: either way a new stream.
                // For a stream already open that is a break (its data may be gone).
                if (stream_open_) return Step::Broken;
                return Step::Opened;
            case SessionEvent::Kind::Broken:
                if (stream_open_) return Step::Broken;
                break;  // the session resets on its own; nobody was using the stream
            case SessionEvent::Kind::Data:
                if (!stream_open_) break;  // data of a stream nobody opened: drop it
                pending_ = event.data;
                pending_length_ = event.length;
                return Step::Data;
        }
    }
}

bool LinkTransport::write(const std::uint8_t* data, std::size_t length) {
    std::size_t done = 0;
    for (;;) {
        done += port_.write(data + done, length - done);
        if (done == length) return true;
        const std::uint64_t now = clock_.now_ms();
        if (now >= write_deadline_) {
            ++counters_.output_stalls;
            return false;
        }
        port_.wait(hal::ms_until(write_deadline_, now, 0xFFFF'FFFFu));
    }
}

}  // namespace fieldlink::link
