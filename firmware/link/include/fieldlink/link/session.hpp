// Link session over the frames of frame.hpp: numbers data frames per direction
// and turns anything that could leave a hole in the stream (a bad frame, a gap,
// the peer's reset) into a new session, which the layer above (MQTT) meets as a
// broken connection. States: Closed -> Opening (Reset sent, retried) -> Open.
// Time is passed in; no clock, no heap. Rules: docs/protocol.md, "Serial link".
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/link/frame.hpp"

namespace fieldlink::link {

// Where the session's frames go (a UART driver, a tty, a test queue).
class LinkOutput {
public:
    // Writes all `length` bytes or returns false (then part may have gone out).
    virtual bool write(const std::uint8_t* data, std::size_t length) = 0;

protected:
    ~LinkOutput() = default;
};

struct SessionConfig {
    std::uint32_t retry_ms = 250;  // Reset repeated this often until answered
    std::uint16_t nonce = 0;       // first Reset nonce minus one; seed it randomly so boots differ
};

enum class SessionState : std::uint8_t {
    Closed = 0,  // not started: everything received is ignored, nothing is sent
    Opening,     // our Reset is out; data is neither sent nor delivered
    Open,        // data flows both ways
};

struct SessionEvent {
    enum class Kind : std::uint8_t {
        None,    // all bytes consumed, nothing to report
        Opened,  // a new stream starts now (reason: Ok after our Reset, PeerReset after the peer's)
        Broken,  // the stream has a hole (reason says why); a Reset is out, Opened follows
        Data,    // the next chunk of the stream
    };
    Kind kind = Kind::None;
    LinkStatus reason = LinkStatus::Ok;
    std::uint16_t seq = 0;               // Data: the frame's sequence number
    const std::uint8_t* data = nullptr;  // Data: valid until the next receive()
    std::size_t length = 0;
};

class Session {
public:
    // Keeps a reference to `output`, which must outlive the session.
    explicit Session(LinkOutput& output, SessionConfig config = {}) noexcept;

    // Starts (or restarts) a session: sends a Reset and waits for its ResetAck.
    void open(std::uint32_t now_ms) noexcept;
    // Stops; sends nothing.
    void close() noexcept;
    // Sets the nonce the next Reset counts from (as SessionConfig::nonce), for
    // an object built before a random source was ready. Ignored unless Closed.
    void seed_nonce(std::uint16_t nonce) noexcept {
        if (state_ == SessionState::Closed) nonce_ = nonce;
    }
    // Repeats the Reset while Opening; call it at least every retry_ms.
    void poll(std::uint32_t now_ms) noexcept;

    // Feeds received bytes, stopping after the first event; *consumed says how
    // far it got (call again with the rest). Answers Resets on its own.
    SessionEvent receive(const std::uint8_t* data, std::size_t length, std::size_t* consumed,
                         std::uint32_t now_ms) noexcept;

    // Sends the bytes as data frames of at most kMaxPayload bytes. Failures:
    // NotOpen (nothing sent), InvalidArgument (null data), OutputFailed (the
    // stream is broken: the session goes back to Opening and the next poll
    // sends a Reset).
    LinkStatus send(const std::uint8_t* data, std::size_t length) noexcept;

    SessionState state() const noexcept { return state_; }
    std::uint32_t resets_sent() const noexcept { return resets_sent_; }
    std::uint32_t frames_rejected() const noexcept { return frames_rejected_; }

private:
    SessionEvent handle(const DecodeEvent& decoded, std::uint32_t now_ms) noexcept;
    SessionEvent start(LinkStatus reason) noexcept;
    SessionEvent broken(LinkStatus reason, std::uint32_t now_ms) noexcept;
    void send_reset(std::uint32_t now_ms) noexcept;
    bool send_frame(FrameType type, std::uint16_t seq, const std::uint8_t* payload, std::size_t length) noexcept;

    LinkOutput& output_;
    SessionConfig config_;
    Decoder decoder_;
    SessionState state_ = SessionState::Closed;
    std::uint16_t nonce_ = 0;    // of the last Reset we sent
    std::uint16_t tx_next_ = 0;  // seq of our next data frame
    std::uint16_t rx_next_ = 0;  // seq the peer's next data frame must have
    std::uint32_t reset_sent_ms_ = 0;
    bool reset_due_ = false;
    std::uint32_t resets_sent_ = 0;
    std::uint32_t frames_rejected_ = 0;
    std::uint8_t tx_[kMaxWireSize] = {};
};

}  // namespace fieldlink::link
