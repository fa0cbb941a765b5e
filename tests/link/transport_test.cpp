// LinkTransport: hal::Transport semantics over a link session, against a peer
// session (what the gateway's bridge runs) on an in-memory serial line with a
// fake clock. The line can be cut, damaged and made slow.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "fieldlink/link/session.hpp"
#include "fieldlink/link/transport.hpp"
#include "link_test_support.hpp"

namespace fl = fieldlink::link;
namespace hal = fieldlink::hal;

namespace {

using fieldlink::link::test::Bytes;

struct FakeClock final : hal::Clock {
    std::uint64_t now = 1000;
    std::uint64_t now_ms() const override { return now; }
    void sleep_ms(std::uint32_t ms) override { now += ms; }
};

// The board side of the line: what the transport writes goes to `to_peer`,
// what it reads comes from `from_peer`. wait() advances the clock by 1 ms and
// lets the peer run, as a board's WFI returns at the next tick or byte.
struct FakePort final : fl::SerialPort {
    explicit FakePort(FakeClock& c) : clock(c) {}
    FakeClock& clock;
    Bytes to_peer;
    std::deque<std::uint8_t> from_peer;
    std::size_t tx_room = SIZE_MAX;  // bytes the transmitter takes before it stalls
    std::function<void()> on_wait;
    std::uint32_t waits = 0;

    std::size_t write(const std::uint8_t* data, std::size_t length) override {
        const std::size_t n = length < tx_room ? length : tx_room;
        to_peer.insert(to_peer.end(), data, data + n);
        if (tx_room != SIZE_MAX) tx_room -= n;
        return n;
    }
    std::size_t read(std::uint8_t* out, std::size_t capacity) override {
        std::size_t n = 0;
        while (n < capacity && !from_peer.empty()) {
            out[n++] = from_peer.front();
            from_peer.pop_front();
        }
        return n;
    }
    void wait(std::uint32_t max_ms) override {
        ++waits;
        clock.now += max_ms < 1 ? max_ms : 1;
        if (on_wait) on_wait();
    }
};

// The gateway's end: a session that answers, collects the stream it receives
// and can send data back.
struct Peer final : fl::LinkOutput {
    explicit Peer(FakePort& p) : port(p), session(*this, {250, 0x4000}) {}
    FakePort& port;
    fl::Session session;
    Bytes stream;  // data received in the current session
    int opened = 0;
    int broken = 0;
    bool answering = true;  // false: the bridge is not there (line unplugged)

    bool write(const std::uint8_t* data, std::size_t length) override {
        port.from_peer.insert(port.from_peer.end(), data, data + length);
        return true;
    }
    void run() {
        if (!answering) {
            port.to_peer.clear();
            return;
        }
        const Bytes bytes = port.to_peer;
        port.to_peer.clear();
        std::size_t at = 0;
        while (at < bytes.size()) {
            std::size_t used = 0;
            const fl::SessionEvent e = session.receive(bytes.data() + at, bytes.size() - at, &used,
                                                       static_cast<std::uint32_t>(port.clock.now));
            at += used;
            if (e.kind == fl::SessionEvent::Kind::Opened) {
                ++opened;
                stream.clear();
            } else if (e.kind == fl::SessionEvent::Kind::Broken) {
                ++broken;
            } else if (e.kind == fl::SessionEvent::Kind::Data) {
                stream.insert(stream.end(), e.data, e.data + e.length);
            }
        }
    }
    void send(const Bytes& data) { ASSERT_EQ(session.send(data.data(), data.size()), fl::LinkStatus::Ok); }
};

struct LinkTransportTest : ::testing::Test {
    FakeClock clock;
    FakePort port{clock};
    Peer peer{port};
    fl::LinkTransport transport{port, clock, {250, 0x0100, 1000}};

    void SetUp() override {
        port.on_wait = [this] { peer.run(); };
        // The bridge opens its session as soon as it has the line.
        peer.session.open(static_cast<std::uint32_t>(clock.now));
    }

    void open_ok() {
        ASSERT_EQ(transport.open("ignored", 0, 2000), hal::TransportStatus::Ok);
        peer.run();  // the peer sees everything the transport sent before it returned
    }

    // Everything the transport delivers until `count` bytes or a non-Ok status.
    hal::TransportStatus read_stream(Bytes* out, std::size_t count, std::size_t chunk = 64) {
        for (int guard = 0; guard < 10000 && out->size() < count; ++guard) {
            std::uint8_t buffer[300];
            std::size_t n = 0;
            const hal::TransportStatus s = transport.recv(buffer, chunk, 50, &n);
            if (s != hal::TransportStatus::Ok) return s;
            out->insert(out->end(), buffer, buffer + n);
        }
        return hal::TransportStatus::Ok;
    }
};

Bytes pattern(std::size_t n, std::uint8_t salt) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + salt);  // zeros included
    return b;
}

TEST_F(LinkTransportTest, OpenTimesOutWithoutAPeerAndRepeatsItsReset) {
    peer.answering = false;
    port.from_peer.clear();
    std::size_t sent = 0;
    port.on_wait = [&] {
        sent += port.to_peer.size();
        port.to_peer.clear();
    };
    const std::uint64_t started = clock.now;
    EXPECT_EQ(transport.open("x", 1883, 1000), hal::TransportStatus::Timeout);
    EXPECT_GE(clock.now - started, 1000u);
    // A Reset at the start and one every 250 ms until the deadline: 4 empty frames of 12 bytes.
    EXPECT_EQ(sent + port.to_peer.size(), 4u * 12u);
    EXPECT_EQ(transport.session().resets_sent(), 4u);
    std::size_t n = 7;
    std::uint8_t b[4];
    EXPECT_EQ(transport.recv(b, sizeof b, 10, &n), hal::TransportStatus::Closed);
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(transport.send(b, sizeof b, 10), hal::TransportStatus::Closed);
}

TEST_F(LinkTransportTest, OpenWaitsForTheAnswerToItsReset) {
    port.from_peer.clear();  // the bridge's own Reset was lost: our Reset and its answer open the link
    open_ok();
    EXPECT_EQ(transport.session_state(), fl::SessionState::Open);
    EXPECT_EQ(peer.session.state(), fl::SessionState::Open);
    EXPECT_EQ(peer.opened, 1);
    EXPECT_EQ(transport.counters().opened, 1u);
}

TEST_F(LinkTransportTest, OpensOnThePeersResetToo) {
    // The bridge started first: its Reset is waiting on the line before ours goes out.
    ASSERT_FALSE(port.from_peer.empty());
    open_ok();
    EXPECT_EQ(transport.session_state(), fl::SessionState::Open);
    EXPECT_EQ(peer.session.state(), fl::SessionState::Open);
    // Both numbered from 0 on the same stream: data goes through both ways.
    const Bytes up = pattern(40, 1);
    ASSERT_EQ(transport.send(up.data(), up.size(), 1000), hal::TransportStatus::Ok);
    peer.run();
    EXPECT_EQ(peer.stream, up);
    const Bytes down = pattern(30, 2);
    peer.send(down);
    Bytes got;
    ASSERT_EQ(read_stream(&got, down.size()), hal::TransportStatus::Ok);
    EXPECT_EQ(got, down);
}

TEST_F(LinkTransportTest, SendCutsTheStreamIntoDataFrames) {
    open_ok();
    const Bytes up = pattern(1000, 3);  // four frames: 256 + 256 + 256 + 232
    ASSERT_EQ(transport.send(up.data(), up.size(), 1000), hal::TransportStatus::Ok);
    peer.run();
    EXPECT_EQ(peer.stream, up);
    EXPECT_EQ(peer.broken, 0);
}

TEST_F(LinkTransportTest, SendWaitsForRoomInTheTransmitter) {
    open_ok();
    // A ring of 100 bytes that drains 100 bytes per tick.
    port.tx_room = 100;
    port.on_wait = [this] {
        port.tx_room = 100;
        peer.run();
    };
    const Bytes up = pattern(700, 4);
    ASSERT_EQ(transport.send(up.data(), up.size(), 1000), hal::TransportStatus::Ok);
    peer.run();
    EXPECT_EQ(peer.stream, up);
    EXPECT_GT(port.waits, 5u);
}

TEST_F(LinkTransportTest, ATransmitterThatStaysFullTimesOutAndBreaksTheStream) {
    open_ok();
    port.tx_room = 50;
    const Bytes up = pattern(200, 5);
    const std::uint64_t started = clock.now;
    EXPECT_EQ(transport.send(up.data(), up.size(), 300), hal::TransportStatus::Timeout);
    EXPECT_GE(clock.now - started, 300u);
    EXPECT_EQ(transport.counters().output_stalls, 1u);
    std::size_t n = 0;
    std::uint8_t b[4];
    EXPECT_EQ(transport.recv(b, sizeof b, 10, &n), hal::TransportStatus::Closed);
    EXPECT_EQ(transport.send(b, sizeof b, 10), hal::TransportStatus::Closed);
    // Room again: a new open starts a new stream that the peer also restarts.
    port.tx_room = SIZE_MAX;
    transport.close();
    open_ok();
    ASSERT_EQ(transport.send(up.data(), up.size(), 300), hal::TransportStatus::Ok);
    peer.run();
    EXPECT_EQ(peer.stream, up);
}

TEST_F(LinkTransportTest, RecvDeliversPayloadsInPiecesTheCallerHasRoomFor) {
    open_ok();
    const Bytes down = pattern(600, 6);
    peer.send(down);
    Bytes got;
    ASSERT_EQ(read_stream(&got, down.size(), 7), hal::TransportStatus::Ok);
    EXPECT_EQ(got, down);
}

TEST_F(LinkTransportTest, RecvReturnsNothingWhenNothingArrivesInTime) {
    open_ok();
    std::uint8_t b[16];
    std::size_t n = 9;
    const std::uint64_t started = clock.now;
    EXPECT_EQ(transport.recv(b, sizeof b, 40, &n), hal::TransportStatus::Ok);
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(clock.now - started, 40u);
    EXPECT_EQ(transport.session_state(), fl::SessionState::Open);
}

TEST_F(LinkTransportTest, ThePeersResetIsAClosedConnection) {
    open_ok();
    const Bytes before = pattern(20, 7);
    peer.send(before);
    peer.session.open(static_cast<std::uint32_t>(clock.now));  // the bridge lost its broker connection
    Bytes got;
    // The data before the reset is delivered; then the stream ends.
    EXPECT_EQ(read_stream(&got, 1000), hal::TransportStatus::Closed);
    EXPECT_EQ(got, before);
    EXPECT_EQ(transport.counters().breaks, 1u);
    std::uint8_t b[4];
    EXPECT_EQ(transport.send(b, sizeof b, 10), hal::TransportStatus::Closed);
    // The MQTT client reconnects: close, open, and a fresh stream both ways.
    transport.close();
    open_ok();
    const Bytes after = pattern(20, 8);
    ASSERT_EQ(transport.send(after.data(), after.size(), 100), hal::TransportStatus::Ok);
    peer.run();
    EXPECT_EQ(peer.stream, after);
}

TEST_F(LinkTransportTest, ADamagedFrameIsAClosedConnectionAndNothingOfItIsDelivered) {
    open_ok();
    peer.send(pattern(100, 9));
    // Flip one byte inside the frame (not a delimiter).
    ASSERT_GT(port.from_peer.size(), 50u);
    port.from_peer[40] ^= 0x10;
    std::uint8_t b[300];
    std::size_t n = 0;
    EXPECT_EQ(transport.recv(b, sizeof b, 100, &n), hal::TransportStatus::Closed);
    EXPECT_EQ(n, 0u);
}

TEST_F(LinkTransportTest, ALostFrameIsAClosedConnection) {
    open_ok();
    peer.send(pattern(10, 10));
    const std::size_t first = port.from_peer.size();
    peer.send(pattern(10, 11));
    port.from_peer.erase(port.from_peer.begin(), port.from_peer.begin() + static_cast<std::ptrdiff_t>(first));
    Bytes got;
    EXPECT_EQ(read_stream(&got, 100), hal::TransportStatus::Closed);
    EXPECT_TRUE(got.empty());
}

TEST_F(LinkTransportTest, DataAfterCloseIsDroppedAndNotDeliveredToTheNextStream) {
    open_ok();
    transport.close();
    peer.send(pattern(30, 12));  // the bridge still thinks the old stream is open
    open_ok();
    const Bytes fresh = pattern(5, 13);
    peer.send(fresh);
    Bytes got;
    ASSERT_EQ(read_stream(&got, fresh.size()), hal::TransportStatus::Ok);
    EXPECT_EQ(got, fresh);
}

TEST_F(LinkTransportTest, InvalidArguments) {
    std::uint8_t b[1];
    EXPECT_EQ(transport.recv(b, 1, 0, nullptr), hal::TransportStatus::InvalidArgument);
    std::size_t n = 0;
    EXPECT_EQ(transport.recv(nullptr, 1, 0, &n), hal::TransportStatus::InvalidArgument);
    EXPECT_EQ(transport.send(nullptr, 1, 0), hal::TransportStatus::InvalidArgument);
}

}  // namespace
