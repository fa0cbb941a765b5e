// Link session: sequence numbers and the reset handshake (docs/protocol.md, "Serial link").
#include "fieldlink/link/session.hpp"

namespace fieldlink::link {

Session::Session(LinkOutput& output, SessionConfig config) noexcept
    : output_(output), config_(config), nonce_(config.nonce) {}

void Session::open(std::uint32_t now_ms) noexcept {
    decoder_.reset();
    state_ = SessionState::Opening;
    send_reset(now_ms);
}

void Session::close() noexcept {
    state_ = SessionState::Closed;
    reset_due_ = false;
}

void Session::poll(std::uint32_t now_ms) noexcept {
    if (state_ != SessionState::Opening) return;
    // Unsigned difference: correct across the wrap of a 32-bit millisecond clock.
    if (reset_due_ || now_ms - reset_sent_ms_ >= config_.retry_ms) send_reset(now_ms);
}

SessionEvent Session::receive(const std::uint8_t* data, std::size_t length, std::size_t* consumed,
                              std::uint32_t now_ms) noexcept {
    std::size_t used = 0;
    SessionEvent event;
    while (used < length && event.kind == SessionEvent::Kind::None) {
        std::size_t step = 0;
        const DecodeEvent decoded = decoder_.feed(data + used, length - used, &step);
        used += step;
        if (decoded.kind != DecodeEvent::Kind::None) event = handle(decoded, now_ms);
    }
    if (consumed != nullptr) *consumed = used;
    return event;
}

LinkStatus Session::send(const std::uint8_t* data, std::size_t length) noexcept {
    if (state_ != SessionState::Open) return LinkStatus::NotOpen;
    if (data == nullptr && length != 0) return LinkStatus::InvalidArgument;
    for (std::size_t done = 0; done < length;) {
        const std::size_t chunk = length - done < kMaxPayload ? length - done : kMaxPayload;
        if (!send_frame(FrameType::Data, tx_next_, data + done, chunk)) {
            state_ = SessionState::Opening;
            reset_due_ = true;
            return LinkStatus::OutputFailed;
        }
        ++tx_next_;
        done += chunk;
    }
    return LinkStatus::Ok;
}

SessionEvent Session::handle(const DecodeEvent& decoded, std::uint32_t now_ms) noexcept {
    if (state_ == SessionState::Closed) return {};
    if (decoded.kind == DecodeEvent::Kind::Error) {
        ++frames_rejected_;
        // While Opening nothing is delivered, so a bad frame cannot make a hole.
        return state_ == SessionState::Open ? broken(decoded.error, now_ms) : SessionEvent{};
    }
    const Frame& frame = decoded.frame;
    switch (frame.type) {
        case FrameType::Reset:
            // Answered in every state, even Open: the peer's stream restarts, so ours must too.
            send_frame(FrameType::ResetAck, frame.seq, nullptr, 0);
            return start(LinkStatus::PeerReset);
        case FrameType::ResetAck:
            // Only the answer to our latest Reset counts; older ones are stale.
            if (state_ == SessionState::Opening && frame.seq == nonce_) return start(LinkStatus::Ok);
            return {};
        case FrameType::Data:
            if (state_ != SessionState::Open) return {};  // from a stream that is already abandoned
            if (frame.seq != rx_next_) {
                ++frames_rejected_;
                return broken(LinkStatus::SequenceGap, now_ms);
            }
            ++rx_next_;
            SessionEvent event;
            event.kind = SessionEvent::Kind::Data;
            event.seq = frame.seq;
            event.data = frame.payload;
            event.length = frame.length;
            return event;
    }
    return {};
}

SessionEvent Session::start(LinkStatus reason) noexcept {
    state_ = SessionState::Open;
    reset_due_ = false;
    tx_next_ = 0;
    rx_next_ = 0;
    SessionEvent event;
    event.kind = SessionEvent::Kind::Opened;
    event.reason = reason;
    return event;
}

SessionEvent Session::broken(LinkStatus reason, std::uint32_t now_ms) noexcept {
    state_ = SessionState::Opening;
    send_reset(now_ms);
    SessionEvent event;
    event.kind = SessionEvent::Kind::Broken;
    event.reason = reason;
    return event;
}

void Session::send_reset(std::uint32_t now_ms) noexcept {
    ++nonce_;  // a new nonce per Reset, so an answer to an older one is recognised as stale
    reset_sent_ms_ = now_ms;
    reset_due_ = !send_frame(FrameType::Reset, nonce_, nullptr, 0);
    ++resets_sent_;
}

bool Session::send_frame(FrameType type, std::uint16_t seq, const std::uint8_t* payload, std::size_t length) noexcept {
    std::size_t written = 0;
    if (encode_frame(type, seq, payload, length, tx_, sizeof tx_, &written) != LinkStatus::Ok) return false;
    return output_.write(tx_, written);
}

}  // namespace fieldlink::link
