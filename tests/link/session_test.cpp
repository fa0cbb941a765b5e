// Session: the reset handshake, gaps and bad frames becoming resets, and two
// sessions over a damaged line that never pass on a stream with a hole.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <vector>

#include "fieldlink/link/session.hpp"
#include "link_test_support.hpp"

namespace fl = fieldlink::link;

namespace {

using fieldlink::link::test::Bytes;

struct Pipe final : fl::LinkOutput {
    Bytes bytes;
    bool fail = false;
    bool write(const std::uint8_t* data, std::size_t length) override {
        if (fail) return false;
        bytes.insert(bytes.end(), data, data + length);
        return true;
    }
};

// Data events point into the session's decoder until its next receive; the
// collected events point at copies kept here instead (a test's worth of data).
std::deque<Bytes>& kept_payloads() {
    static std::deque<Bytes> kept;
    return kept;
}

// Every event `session` reports for `bytes`.
std::vector<fl::SessionEvent> receive_all(fl::Session& session, const Bytes& bytes, std::uint32_t now) {
    std::vector<fl::SessionEvent> events;
    std::size_t at = 0;
    while (at < bytes.size()) {
        std::size_t used = 0;
        const fl::SessionEvent event = session.receive(bytes.data() + at, bytes.size() - at, &used, now);
        at += used;
        if (event.kind == fl::SessionEvent::Kind::None) continue;
        events.push_back(event);
        if (event.kind == fl::SessionEvent::Kind::Data) {
            kept_payloads().emplace_back(event.data, event.data + event.length);
            events.back().data = kept_payloads().back().data();
        }
    }
    return events;
}

// Moves what `from` wrote to `to`, returning the events.
std::vector<fl::SessionEvent> deliver(Pipe& from, fl::Session& to, std::uint32_t now = 0) {
    const Bytes bytes = from.bytes;
    from.bytes.clear();
    return receive_all(to, bytes, now);
}

using fieldlink::link::test::encode;  // link_test_support.hpp

struct Pair {
    Pipe to_gateway, to_device;
    fl::Session device{to_gateway, {50, 100}};
    fl::Session gateway{to_device, {50, 200}};

    void open_both() {
        device.open(0);
        gateway.open(0);
        deliver(to_gateway, gateway);
        deliver(to_device, device);
        deliver(to_gateway, gateway);
        deliver(to_device, device);
        ASSERT_EQ(device.state(), fl::SessionState::Open);
        ASSERT_EQ(gateway.state(), fl::SessionState::Open);
    }
};

}  // namespace

TEST(LinkSession, HandshakeOpensBothSides) {
    Pair p;
    EXPECT_EQ(p.device.state(), fl::SessionState::Closed);
    p.device.open(0);
    EXPECT_EQ(p.device.state(), fl::SessionState::Opening);
    EXPECT_EQ(p.to_gateway.bytes, encode(fl::FrameType::Reset, 101, {}));
    p.gateway.open(0);
    p.to_device.bytes.clear();  // the gateway's own Reset is lost

    auto events = deliver(p.to_gateway, p.gateway);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Opened);
    EXPECT_EQ(events[0].reason, fl::LinkStatus::PeerReset);
    EXPECT_EQ(p.to_device.bytes, encode(fl::FrameType::ResetAck, 101, {}));

    events = deliver(p.to_device, p.device);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Opened);
    EXPECT_EQ(events[0].reason, fl::LinkStatus::Ok);

    const Bytes hello = {0x10, 0x00, 0x20};
    ASSERT_EQ(p.device.send(hello.data(), hello.size()), fl::LinkStatus::Ok);
    events = deliver(p.to_gateway, p.gateway);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Data);
    EXPECT_EQ(events[0].seq, 0);
    EXPECT_EQ(Bytes(events[0].data, events[0].data + events[0].length), hello);
}

TEST(LinkSession, ClosedIgnoresEverythingAndSendsNothing) {
    Pipe out;
    fl::Session session(out);
    EXPECT_TRUE(receive_all(session, encode(fl::FrameType::Reset, 3, {}), 0).empty());
    EXPECT_TRUE(out.bytes.empty());
    const std::uint8_t byte = 1;
    EXPECT_EQ(session.send(&byte, 1), fl::LinkStatus::NotOpen);
}

TEST(LinkSession, ResetIsRepeatedUntilAnswered) {
    Pipe out;
    fl::Session session(out, {50, 0});
    session.open(1000);
    session.poll(1049);
    EXPECT_EQ(session.resets_sent(), 1u);
    session.poll(1050);
    EXPECT_EQ(session.resets_sent(), 2u);
    // Only the answer to the latest Reset (nonce 2) opens the session.
    EXPECT_TRUE(receive_all(session, encode(fl::FrameType::ResetAck, 1, {}), 1060).empty());
    EXPECT_EQ(session.state(), fl::SessionState::Opening);
    const auto events = receive_all(session, encode(fl::FrameType::ResetAck, 2, {}), 1060);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Opened);
    session.poll(5000);
    EXPECT_EQ(session.resets_sent(), 2u);
}

TEST(LinkSession, GapBreaksTheStream) {
    Pair p;
    p.open_both();
    const std::uint8_t chunk[3] = {1, 2, 3};
    ASSERT_EQ(p.device.send(chunk, 3), fl::LinkStatus::Ok);
    ASSERT_EQ(p.device.send(chunk, 3), fl::LinkStatus::Ok);
    const Bytes first(p.to_gateway.bytes.begin(), p.to_gateway.bytes.begin() + p.to_gateway.bytes.size() / 2);
    p.to_gateway.bytes.clear();
    ASSERT_EQ(p.device.send(chunk, 3), fl::LinkStatus::Ok);  // seq 2; seq 1 is lost
    auto events = receive_all(p.gateway, first, 0);
    const auto rest = deliver(p.to_gateway, p.gateway);
    events.insert(events.end(), rest.begin(), rest.end());
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Data);
    EXPECT_EQ(events[1].kind, fl::SessionEvent::Kind::Broken);
    EXPECT_EQ(events[1].reason, fl::LinkStatus::SequenceGap);
    EXPECT_EQ(p.gateway.state(), fl::SessionState::Opening);
    EXPECT_EQ(p.gateway.send(chunk, 3), fl::LinkStatus::NotOpen);

    // The gateway's Reset reaches the device, which restarts too; its ack reopens the gateway.
    events = deliver(p.to_device, p.device);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Opened);
    EXPECT_EQ(events[0].reason, fl::LinkStatus::PeerReset);
    events = deliver(p.to_gateway, p.gateway);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Opened);
    ASSERT_EQ(p.device.send(chunk, 3), fl::LinkStatus::Ok);
    events = deliver(p.to_gateway, p.gateway);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].seq, 0);  // numbering restarts with the session
}

TEST(LinkSession, BadFrameWhileOpenBreaksTheStream) {
    Pair p;
    p.open_both();
    const auto events = receive_all(p.gateway, {0x05, 0x01, 0x02, 0x00}, 0);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, fl::SessionEvent::Kind::Broken);
    EXPECT_EQ(events[0].reason, fl::LinkStatus::BadEncoding);
    EXPECT_EQ(p.gateway.frames_rejected(), 1u);
}

TEST(LinkSession, LongSendIsSplitIntoNumberedFrames) {
    Pair p;
    p.open_both();
    Bytes message(fl::kMaxPayload * 2 + 10);
    for (std::size_t i = 0; i < message.size(); ++i) message[i] = static_cast<std::uint8_t>(i);
    ASSERT_EQ(p.device.send(message.data(), message.size()), fl::LinkStatus::Ok);
    Bytes got;
    std::uint16_t seq = 0;
    for (const auto& event : deliver(p.to_gateway, p.gateway)) {
        ASSERT_EQ(event.kind, fl::SessionEvent::Kind::Data);
        EXPECT_EQ(event.seq, seq++);
        got.insert(got.end(), event.data, event.data + event.length);
    }
    EXPECT_EQ(seq, 3);
    EXPECT_EQ(got, message);
}

TEST(LinkSession, OutputFailureBreaksOurStream) {
    Pair p;
    p.open_both();
    p.to_gateway.fail = true;
    const std::uint8_t byte = 7;
    EXPECT_EQ(p.device.send(&byte, 1), fl::LinkStatus::OutputFailed);
    EXPECT_EQ(p.device.state(), fl::SessionState::Opening);
    p.to_gateway.fail = false;
    p.device.poll(0);  // due at once, whatever the time
    EXPECT_EQ(p.to_gateway.bytes, encode(fl::FrameType::Reset, 102, {}));
}

// Two sessions over a line that drops, flips and inserts bytes both ways. Each
// side sends numbered messages; the receiver must see each message exactly as
// sent, in seq order, and with no message missing inside a session. After the
// damage stops both sides must open again and exchange data.
TEST(LinkSession, RandomDamageNeverPassesOnAStreamWithAHole) {
    std::mt19937 rng(424242);
    struct Side {
        Pipe out;
        fl::Session session;
        std::uint32_t next_counter = 0;
        std::map<std::uint32_t, Bytes> sent;  // by counter
        // Receiving end:
        std::uint16_t rx_expected = 0;
        bool have_last = false;
        std::uint32_t last_counter = 0;
        std::size_t delivered = 0, opened = 0, broken = 0;
        explicit Side(std::uint16_t nonce) : session(out, {20, nonce}) {}
    };
    Side device(1000);
    Side gateway(2000);
    bool damage = true;
    std::size_t damaged_bytes = 0;

    auto send_message = [&](Side& side) {
        if (side.session.state() != fl::SessionState::Open) return;
        Bytes message(4 + rng() % (fl::kMaxPayload - 3));
        std::memcpy(message.data(), &side.next_counter, 4);
        for (std::size_t i = 4; i < message.size(); ++i) message[i] = static_cast<std::uint8_t>(rng() % 3 ? rng() : 0);
        if (side.session.send(message.data(), message.size()) == fl::LinkStatus::Ok) {
            side.sent[side.next_counter++] = message;
        }
    };
    auto carry = [&](Side& from, Side& to, std::uint32_t now) {
        Bytes line;
        for (std::uint8_t b : from.out.bytes) {
            const auto r = damage ? rng() % 3000 : 3000u;
            if (r == 0) {
                ++damaged_bytes;
                continue;
            }
            if (r == 1) b = static_cast<std::uint8_t>(b ^ (1u << (rng() % 8)));
            line.push_back(b);
            if (r == 2) line.push_back(static_cast<std::uint8_t>(rng() % 2 ? 0 : rng()));
            if (r <= 2) ++damaged_bytes;
        }
        from.out.bytes.clear();
        for (const auto& event : receive_all(to.session, line, now)) {
            switch (event.kind) {
                case fl::SessionEvent::Kind::Opened:
                case fl::SessionEvent::Kind::Broken:
                    ++(event.kind == fl::SessionEvent::Kind::Opened ? to.opened : to.broken);
                    to.rx_expected = 0;
                    to.have_last = false;
                    break;
                case fl::SessionEvent::Kind::Data: {
                    ASSERT_EQ(event.seq, to.rx_expected) << "a frame out of order was delivered";
                    ++to.rx_expected;
                    ASSERT_GE(event.length, 4u);
                    std::uint32_t counter = 0;
                    std::memcpy(&counter, event.data, 4);
                    const auto found = from.sent.find(counter);
                    ASSERT_NE(found, from.sent.end()) << "delivered a message that was never sent";
                    ASSERT_EQ(Bytes(event.data, event.data + event.length), found->second)
                        << "delivered a corrupted message";
                    if (to.have_last) {
                        ASSERT_EQ(counter, to.last_counter + 1) << "a hole in the stream";
                    }
                    to.have_last = true;
                    to.last_counter = counter;
                    ++to.delivered;
                    break;
                }
                case fl::SessionEvent::Kind::None: break;
            }
        }
    };
    auto step = [&](std::uint32_t now) {
        device.session.poll(now);
        gateway.session.poll(now);
        send_message(device);
        send_message(gateway);
        carry(device, gateway, now);
        carry(gateway, device, now);
    };

    device.session.open(0);
    gateway.session.open(0);
    std::uint32_t now = 0;
    for (; now < 20000; ++now) {
        step(now);
        if (HasFatalFailure()) return;
    }
    EXPECT_GT(damaged_bytes, 500u);
    EXPECT_GT(gateway.broken + device.broken, 100u);  // the damage was noticed...
    EXPECT_GT(gateway.delivered, 5000u);              // ...and most data still went through
    EXPECT_GT(device.delivered, 5000u);

    damage = false;
    const std::size_t device_before = device.delivered, gateway_before = gateway.delivered;
    for (const std::uint32_t end = now + 1000; now < end; ++now) {
        step(now);
        if (HasFatalFailure()) return;
    }
    EXPECT_EQ(device.session.state(), fl::SessionState::Open);
    EXPECT_EQ(gateway.session.state(), fl::SessionState::Open);
    EXPECT_GT(device.delivered - device_before, 900u);
    EXPECT_GT(gateway.delivered - gateway_before, 900u);
}
