// The MQTT session against a scripted transport: broker bytes in, client bytes out.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "fakes.hpp"
#include "fieldlink/mqtt/session.hpp"

namespace fieldlink::mqtt {
namespace {

using test::Bytes;
using test::bytes_of;
using test::concat;

struct Recorder final : EventHandler {
    void on_connack(bool present) override {
        ++connacks;
        session_present = present;
    }
    void on_puback(std::uint16_t id) override { pubacks.push_back(id); }
    void on_suback(std::uint16_t id, const std::uint8_t* codes, std::size_t count) override {
        subacks.push_back(id);
        suback_codes.assign(codes, codes + count);
    }
    void on_message(const IncomingMessage& m) override {
        topics.emplace_back(m.topic, m.topic_length);
        payloads.emplace_back(m.payload, m.payload + m.payload_length);
    }

    int connacks = 0;
    bool session_present = false;
    std::vector<std::uint16_t> pubacks;
    std::vector<std::uint16_t> subacks;
    Bytes suback_codes;
    std::vector<std::string> topics;
    std::vector<Bytes> payloads;
};

const Bytes kConnackOk = {0x20, 0x02, 0x00, 0x00};

class SessionTest : public ::testing::Test {
protected:
    SessionTest() : transport(clock), session(transport, clock, tx, rx, config()) {}

    static SessionConfig config() {
        SessionConfig c;
        c.response_timeout_ms = 3'000;
        return c;
    }

    ConnectOptions options(std::uint16_t keep_alive_s = 0) {
        ConnectOptions o;
        o.client_id = "c";
        o.keep_alive_s = keep_alive_s;
        return o;
    }

    // Connects and consumes the CONNECT bytes.
    void connect(std::uint16_t keep_alive_s = 0) {
        ASSERT_EQ(session.connect(options(keep_alive_s)), Status::Ok);
        transport.chunks.push_back(kConnackOk);
        ASSERT_EQ(session.poll(0, events), Status::Ok);
        ASSERT_EQ(session.state(), SessionState::Connected);
        transport.take_sent();
    }

    test::FakeClock clock;
    test::ScriptedTransport transport;
    std::array<std::uint8_t, 256> tx{};
    std::array<std::uint8_t, 64> rx{};
    Session session;
    Recorder events;
};

TEST_F(SessionTest, ConnectSendsConnectAndConnackConnects) {
    ASSERT_EQ(session.connect(options(60)), Status::Ok);
    EXPECT_EQ(session.state(), SessionState::Connecting);
    EXPECT_EQ(transport.take_sent(),
              (Bytes{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'}));
    transport.chunks.push_back({0x20, 0x02, 0x01, 0x00});
    ASSERT_EQ(session.poll(100, events), Status::Ok);
    EXPECT_EQ(session.state(), SessionState::Connected);
    EXPECT_EQ(events.connacks, 1);
    EXPECT_TRUE(events.session_present);
}

TEST_F(SessionTest, RefusedConnackFails) {
    ASSERT_EQ(session.connect(options()), Status::Ok);
    transport.chunks.push_back({0x20, 0x02, 0x00, 0x05});
    EXPECT_EQ(session.poll(100, events), Status::ConnectionRefused);
    EXPECT_EQ(session.state(), SessionState::Failed);
    EXPECT_EQ(session.last_connack_code(), 5);
    EXPECT_EQ(session.poll(100, events), Status::NotConnected);
    session.reset();
    EXPECT_EQ(session.state(), SessionState::Idle);
}

TEST_F(SessionTest, MissingConnackTimesOut) {
    ASSERT_EQ(session.connect(options()), Status::Ok);
    Status s = Status::Ok;
    for (int i = 0; i < 10 && s == Status::Ok; ++i) s = session.poll(1'000, events);
    EXPECT_EQ(s, Status::ResponseTimeout);
    EXPECT_EQ(clock.now, 3'000u);  // waits were capped at the deadline
}

TEST_F(SessionTest, PacketBeforeConnackIsAProtocolError) {
    ASSERT_EQ(session.connect(options()), Status::Ok);
    transport.chunks.push_back({0xD0, 0x00});
    EXPECT_EQ(session.poll(100, events), Status::ProtocolError);
}

TEST_F(SessionTest, PublishQos1TracksPacketIdUntilPuback) {
    connect();
    const std::uint8_t payload[] = {0xAA};
    std::uint16_t id = 0;
    ASSERT_EQ(session.publish("t", payload, 1, QoS::AtLeastOnce, false, &id), Status::Ok);
    EXPECT_EQ(id, 1);
    EXPECT_EQ(transport.take_sent(), (Bytes{0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 0xAA}));
    EXPECT_EQ(session.pending_pubacks(), 1u);

    transport.chunks.push_back({0x40, 0x02, 0x00, 0x09});  // unknown id: counted, ignored
    transport.chunks.push_back({0x40, 0x02, 0x00, 0x01});
    ASSERT_EQ(session.poll(0, events), Status::Ok);
    ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_EQ(events.pubacks, (std::vector<std::uint16_t>{1}));
    EXPECT_EQ(session.pending_pubacks(), 0u);
    EXPECT_EQ(session.counters().unknown_pubacks, 1u);
}

TEST_F(SessionTest, PendingTableBoundsQos1Publishes) {
    connect();
    const std::uint8_t payload[] = {1};
    std::uint16_t id = 0;
    for (std::size_t i = 0; i < kMaxPendingPubacks; ++i) {
        ASSERT_EQ(session.publish("t", payload, 1, QoS::AtLeastOnce, false, &id), Status::Ok);
    }
    EXPECT_FALSE(session.can_publish_qos1());
    EXPECT_EQ(session.publish("t", payload, 1, QoS::AtLeastOnce, false, &id), Status::PendingFull);
    EXPECT_EQ(session.publish("t", payload, 1, QoS::AtMostOnce, false, &id), Status::Ok);  // QoS 0 needs no slot
    EXPECT_EQ(id, 0);
}

TEST_F(SessionTest, PacketIdsSkipZeroAndIdsInUse) {
    connect();
    const std::uint8_t payload[] = {1};
    std::uint16_t held = 0;
    ASSERT_EQ(session.publish("t", payload, 1, QoS::AtLeastOnce, false, &held), Status::Ok);  // id 1 stays pending
    for (int i = 0; i < 70'000; ++i) {
        std::uint16_t id = 0;
        ASSERT_EQ(session.publish("t", payload, 1, QoS::AtLeastOnce, false, &id), Status::Ok);
        ASSERT_NE(id, 0);
        ASSERT_NE(id, held);
        transport.chunks.push_back({0x40, 0x02, static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id)});
        ASSERT_EQ(session.poll(0, events), Status::Ok);
        transport.sent.clear();
    }
    EXPECT_EQ(session.pending_pubacks(), 1u);
}

TEST_F(SessionTest, IncomingQos1IsAcknowledgedAndQos0IsNot) {
    connect();
    transport.chunks.push_back({0x30, 0x04, 0x00, 0x01, 'a', 'x'});
    transport.chunks.push_back({0x32, 0x06, 0x00, 0x01, 'b', 0x01, 0x02, 'y'});
    ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_TRUE(transport.take_sent().empty());
    ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_EQ(transport.take_sent(), (Bytes{0x40, 0x02, 0x01, 0x02}));
    EXPECT_EQ(events.topics, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(events.payloads[1], bytes_of("y"));
}

TEST_F(SessionTest, IncomingQos2IsAProtocolError) {
    connect();
    transport.chunks.push_back({0x34, 0x05, 0x00, 0x01, 'a', 0x00, 0x01});
    EXPECT_EQ(session.poll(0, events), Status::ProtocolError);
}

TEST_F(SessionTest, ReassemblesPacketsSplitAcrossReads) {
    connect();
    const Bytes publish = {0x32, 0x06, 0x00, 0x01, 'b', 0x01, 0x02, 'y'};
    for (std::uint8_t byte : publish) transport.chunks.push_back({byte});
    for (std::size_t i = 0; i < publish.size(); ++i) ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_EQ(events.topics, (std::vector<std::string>{"b"}));
    EXPECT_EQ(transport.take_sent(), (Bytes{0x40, 0x02, 0x01, 0x02}));
}

TEST_F(SessionTest, HandlesSeveralPacketsInOneRead) {
    connect();
    transport.chunks.push_back({0x30, 0x03, 0x00, 0x01, 'a', 0xD0, 0x00, 0x30, 0x03, 0x00, 0x01, 'b'});
    ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_EQ(events.topics, (std::vector<std::string>{"a", "b"}));
}

TEST_F(SessionTest, SkipsOversizePublishAndAcksIt) {
    connect();
    // A QoS 1 PUBLISH of 200 payload bytes does not fit the 64-byte buffer.
    Bytes big = concat({{0x32, 0xCD, 0x01, 0x00, 0x01, 'a', 0x00, 0x05}, Bytes(200, 0x55)});
    ASSERT_EQ(big.size(), 3u + 205u);
    transport.chunks.push_back(concat({big, {0x30, 0x03, 0x00, 0x01, 'z'}}));
    for (int i = 0; i < 8 && events.topics.empty(); ++i) ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_EQ(events.topics, (std::vector<std::string>{"z"}));
    EXPECT_EQ(transport.take_sent(), (Bytes{0x40, 0x02, 0x00, 0x05}));
    EXPECT_EQ(session.counters().oversize_skipped, 1u);
}

TEST_F(SessionTest, MalformedInputFailsTheSession) {
    connect();
    transport.chunks.push_back({0x40, 0x03, 0x00, 0x01, 0x00});
    EXPECT_EQ(session.poll(0, events), Status::Malformed);
    EXPECT_EQ(session.state(), SessionState::Failed);
}

TEST_F(SessionTest, BadRemainingLengthFailsTheSession) {
    connect();
    transport.chunks.push_back({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01});
    EXPECT_EQ(session.poll(0, events), Status::MalformedLength);
}

TEST_F(SessionTest, PeerCloseIsReported) {
    connect();
    transport.closed_when_empty = true;
    EXPECT_EQ(session.poll(100, events), Status::ConnectionClosed);
    EXPECT_EQ(session.last_transport_status(), hal::TransportStatus::Closed);
}

TEST_F(SessionTest, SendFailureFailsTheSession) {
    connect();
    transport.fail_send = true;
    const std::uint8_t payload[] = {1};
    EXPECT_EQ(session.publish("t", payload, 1, QoS::AtMostOnce, false, nullptr), Status::TransportError);
    EXPECT_EQ(session.state(), SessionState::Failed);
}

TEST_F(SessionTest, KeepAlivePingsWhenIdleAndAcceptsPingresp) {
    connect(10);
    ASSERT_EQ(session.poll(60'000, events), Status::Ok);  // wait is capped at the keep-alive deadline
    EXPECT_EQ(clock.now, 10'000u);
    EXPECT_EQ(transport.take_sent(), (Bytes{0xC0, 0x00}));
    transport.chunks.push_back({0xD0, 0x00});
    ASSERT_EQ(session.poll(60'000, events), Status::Ok);
    ASSERT_EQ(session.poll(60'000, events), Status::Ok);
    EXPECT_EQ(clock.now, 20'000u);
    EXPECT_EQ(transport.take_sent(), (Bytes{0xC0, 0x00}));
    EXPECT_EQ(session.counters().pings_sent, 2u);
}

TEST_F(SessionTest, MissingPingrespMeansDeadConnection) {
    connect(10);
    Status s = Status::Ok;
    for (int i = 0; i < 10 && s == Status::Ok; ++i) s = session.poll(60'000, events);
    EXPECT_EQ(s, Status::PingTimeout);
    EXPECT_EQ(clock.now, 20'000u);  // ping at 10 s, no answer within one more period
}

TEST_F(SessionTest, PingsWhenNothingArrivesEvenWhileSending) {
    connect(10);
    const std::uint8_t payload[] = {1};
    for (int i = 0; i < 12; ++i) {
        clock.advance(1'000);
        ASSERT_EQ(session.publish("t", payload, 1, QoS::AtMostOnce, false, nullptr), Status::Ok);
        ASSERT_EQ(session.poll(0, events), Status::Ok);
    }
    EXPECT_EQ(session.counters().pings_sent, 1u);
}

TEST_F(SessionTest, SubscribeSendsAndSubackArrives) {
    connect();
    std::uint16_t id = 0;
    ASSERT_EQ(session.subscribe("x/ack", QoS::AtLeastOnce, &id), Status::Ok);
    EXPECT_EQ(transport.take_sent(), concat({{0x82, 0x0A, 0x00, 0x01, 0x00, 0x05}, bytes_of("x/ack"), {0x01}}));
    transport.chunks.push_back({0x90, 0x03, 0x00, 0x01, 0x01});
    ASSERT_EQ(session.poll(0, events), Status::Ok);
    EXPECT_EQ(events.subacks, (std::vector<std::uint16_t>{1}));
    EXPECT_EQ(events.suback_codes, (Bytes{0x01}));
}

TEST_F(SessionTest, MissingSubackTimesOut) {
    connect();
    ASSERT_EQ(session.subscribe("x/ack", QoS::AtLeastOnce, nullptr), Status::Ok);
    Status s = Status::Ok;
    for (int i = 0; i < 10 && s == Status::Ok; ++i) s = session.poll(1'000, events);
    EXPECT_EQ(s, Status::ResponseTimeout);
}

TEST_F(SessionTest, DisconnectSendsDisconnectAndGoesIdle) {
    connect();
    ASSERT_EQ(session.disconnect(), Status::Ok);
    EXPECT_EQ(transport.take_sent(), (Bytes{0xE0, 0x00}));
    EXPECT_EQ(session.state(), SessionState::Idle);
    EXPECT_EQ(session.disconnect(), Status::NotConnected);
}

TEST_F(SessionTest, CallsOutsideAConnectionAreRefused) {
    const std::uint8_t payload[] = {1};
    EXPECT_EQ(session.publish("t", payload, 1, QoS::AtMostOnce, false, nullptr), Status::NotConnected);
    EXPECT_EQ(session.subscribe("t", QoS::AtMostOnce, nullptr), Status::NotConnected);
    EXPECT_EQ(session.poll(0, events), Status::NotConnected);
    ASSERT_EQ(session.connect(options()), Status::Ok);
    EXPECT_EQ(session.connect(options()), Status::NotConnected);  // already connecting
}

}  // namespace
}  // namespace fieldlink::mqtt
