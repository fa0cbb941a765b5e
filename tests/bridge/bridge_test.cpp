// fieldlink-serial-bridge against a real Mosquitto: the test plays the device
// on a TCP line (as QEMU's -serial tcp:...,server would) and runs MQTT over a
// link session through the bridge.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bridge_test_support.hpp"

namespace fieldlink::gateway::bridge::test {
namespace {

struct Rig {
    TempDir dir;
    Mosquitto broker{dir};
    std::optional<Listener> line{std::in_place};
    std::optional<Child> bridge;

    void start() {
        ASSERT_TRUE(broker.wait_ready()) << broker.log();
        bridge.emplace(bridge_argv(broker.port(), {line->port()}), dir.file("bridge.log"));
    }
    std::string bridge_log() const { return bridge ? bridge->log() : std::string(); }
};

TEST(SerialBridge, CarriesMqttBothWays) {
    Rig rig;
    rig.start();
    Device device(rig.line->accept());
    ASSERT_TRUE(device.wait_open()) << rig.bridge_log();

    ASSERT_TRUE(device.mqtt_connect_ok("dev-echo")) << rig.bridge_log();
    device.send(mqtt_subscribe(7, "fieldlink-test/echo"));
    EXPECT_EQ(device.next_packet(), (Bytes{0x90, 0x03, 0x00, 0x07, 0x00}));
    // Longer than one frame's payload, so the stream is cut across frames both ways.
    const std::string payload = "hello over the serial link " + std::string(600, 'x');
    device.send(mqtt_publish("fieldlink-test/echo", payload));
    const auto echo = device.next_packet();
    ASSERT_TRUE(echo.has_value()) << rig.bridge_log();
    EXPECT_EQ(*echo, mqtt_publish("fieldlink-test/echo", payload));
    EXPECT_EQ(device.broken(), 0);
    EXPECT_NE(rig.broker.log().find("as dev-echo"), std::string::npos) << rig.broker.log();
}

// The same through a tty: a pseudo-terminal stands in for a board's USB virtual COM port.
TEST(SerialBridge, CarriesMqttOverATty) {
    TempDir dir;
    Mosquitto broker(dir);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    UniqueFd master(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    ASSERT_TRUE(master.valid());
    ASSERT_EQ(grantpt(master.get()), 0);
    ASSERT_EQ(unlockpt(master.get()), 0);
    const std::string path = ptsname(master.get());
    // Held open so the master never sees a hangup before the bridge opens its side; never read.
    UniqueFd keep(open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    ASSERT_TRUE(keep.valid());
    Child bridge({FIELDLINK_SERIAL_BRIDGE, "--broker", "tcp://127.0.0.1:" + std::to_string(broker.port()), "--line",
                  "tty:" + path + "@115200", "--log-level", "debug"},
                 dir.file("bridge.log"));
    ASSERT_TRUE(eventually([&] { return bridge.log().find("connected at 115200 baud") != std::string::npos; }))
        << bridge.log();
    Device device(std::move(master));
    ASSERT_TRUE(device.mqtt_connect_ok("dev-tty")) << bridge.log();
    device.send(mqtt_subscribe(3, "fieldlink-test/tty"));
    EXPECT_EQ(device.next_packet(), (Bytes{0x90, 0x03, 0x00, 0x03, 0x00}));
    device.send(mqtt_publish("fieldlink-test/tty", std::string("\0\r\n\xff", 4)));
    EXPECT_EQ(device.next_packet(), mqtt_publish("fieldlink-test/tty", std::string("\0\r\n\xff", 4)));
}

TEST(SerialBridge, DamageResetsTheLinkAndNeverReachesTheBroker) {
    Rig rig;
    rig.start();
    Observer observer;
    ASSERT_TRUE(observer.start(rig.broker.port(), "fieldlink-test/#"));
    Device device(rig.line->accept());
    ASSERT_TRUE(device.wait_open()) << rig.bridge_log();
    ASSERT_TRUE(device.mqtt_connect_ok("dev-noise")) << rig.bridge_log();
    device.send(mqtt_publish("fieldlink-test/noise", "good-1"));

    // Each kind of damage on the device's next frame: the bridge resets the
    // link (the device sees the peer's reset), the device reconnects MQTT and
    // gets a fresh CONNACK, and then publishes again.
    const Noise kinds[] = {Noise::FlipByte, Noise::DropByte, Noise::DropFrame};
    int good = 2;
    for (const Noise noise : kinds) {
        const int resets = device.opened();
        device.damage_next_frame(noise);
        device.send(mqtt_publish("fieldlink-test/noise", "BAD-damaged"));
        // A dropped frame shows only when the next one arrives (a gap); that one is lost too.
        if (noise == Noise::DropFrame) device.send(mqtt_publish("fieldlink-test/noise", "BAD-after-gap"));
        ASSERT_TRUE(device.pump_until([&] { return device.opened() > resets; })) << rig.bridge_log();
        ASSERT_TRUE(device.mqtt_connect_ok("dev-noise")) << rig.bridge_log();
        device.send(mqtt_publish("fieldlink-test/noise", "good-" + std::to_string(good++)));
    }

    std::vector<std::string> seen;
    ASSERT_TRUE(eventually([&] {
        for (auto& p : observer.payloads(50ms)) seen.push_back(p);
        return seen.size() >= 4;
    })) << rig.bridge_log();
    for (auto& p : observer.payloads(200ms)) seen.push_back(p);
    EXPECT_EQ(seen, (std::vector<std::string>{"good-1", "good-2", "good-3", "good-4"}));

    const std::string bridge_log = rig.bridge_log();
    EXPECT_NE(bridge_log.find("link broken (bad_crc)"), std::string::npos) << bridge_log;
    EXPECT_NE(bridge_log.find("link broken (sequence_gap)"), std::string::npos) << bridge_log;
    // The bridge closed each broken connection itself: Mosquitto never had to
    // take a client id over from a connection that was still open.
    const std::string broker_log = rig.broker.log();
    EXPECT_GE(count(broker_log, "as dev-noise"), 4u) << broker_log;
    EXPECT_GE(count(broker_log, "Client dev-noise closed its connection"), 3u) << broker_log;
    EXPECT_EQ(count(broker_log, "already connected"), 0u) << broker_log;
}

TEST(SerialBridge, LinePulledAndBackIsPickedUpAgain) {
    Rig rig;
    rig.start();
    const int port = rig.line->port();
    {
        Device device(rig.line->accept());
        ASSERT_TRUE(device.wait_open()) << rig.bridge_log();
        ASSERT_TRUE(device.mqtt_connect_ok("dev-pull")) << rig.bridge_log();
    }
    // The cable is pulled: the connection and the listening socket go away.
    rig.line.reset();
    const std::string lost = "line tcp:127.0.0.1:" + std::to_string(port) + ": lost: closed by the other end";
    ASSERT_TRUE(eventually([&] { return rig.bridge_log().find(lost) != std::string::npos; })) << rig.bridge_log();
    ASSERT_TRUE(eventually([&] { return rig.bridge_log().find("Connection refused") != std::string::npos; }))
        << rig.bridge_log();

    // It comes back on the same port.
    rig.line.emplace(port);
    Device device(rig.line->accept());
    ASSERT_TRUE(device.wait_open()) << rig.bridge_log();
    ASSERT_TRUE(device.mqtt_connect_ok("dev-pull")) << rig.bridge_log();
    device.send(mqtt_subscribe(1, "fieldlink-test/pull"));
    EXPECT_EQ(device.next_packet(), (Bytes{0x90, 0x03, 0x00, 0x01, 0x00}));
    device.send(mqtt_publish("fieldlink-test/pull", "back"));
    EXPECT_EQ(device.next_packet(), mqtt_publish("fieldlink-test/pull", "back"));

    EXPECT_EQ(count(rig.bridge_log(), "line tcp:127.0.0.1:" + std::to_string(port) + ": connected"), 2u)
        << rig.bridge_log();
    const std::string broker_log = rig.broker.log();
    EXPECT_EQ(count(broker_log, "as dev-pull"), 2u) << broker_log;
    EXPECT_EQ(count(broker_log, "Client dev-pull closed its connection"), 1u) << broker_log;
    EXPECT_EQ(count(broker_log, "already connected"), 0u) << broker_log;
}

TEST(SerialBridge, ServesSeveralLinesAtOnce) {
    TempDir dir;
    Mosquitto broker(dir);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    Listener first;
    Listener second;
    Child bridge(bridge_argv(broker.port(), {first.port(), second.port()}), dir.file("bridge.log"));
    Device a(first.accept());
    Device b(second.accept());
    ASSERT_TRUE(a.mqtt_connect_ok("dev-a")) << bridge.log();
    ASSERT_TRUE(b.mqtt_connect_ok("dev-b")) << bridge.log();
    a.send(mqtt_subscribe(1, "fieldlink-test/to-a"));
    ASSERT_EQ(a.next_packet(), (Bytes{0x90, 0x03, 0x00, 0x01, 0x00}));
    b.send(mqtt_publish("fieldlink-test/to-a", "from b"));
    EXPECT_EQ(a.next_packet(), mqtt_publish("fieldlink-test/to-a", "from b")) << bridge.log();

    // Damage on one line resets only that line's link.
    const int b_resets = b.opened();
    a.damage_next_frame(Noise::FlipByte);
    a.send(mqtt_publish("fieldlink-test/x", "damaged"));
    ASSERT_TRUE(a.mqtt_connect_ok("dev-a")) << bridge.log();
    b.send(mqtt_subscribe(2, "fieldlink-test/to-b"));
    EXPECT_EQ(b.next_packet(), (Bytes{0x90, 0x03, 0x00, 0x02, 0x00}));
    EXPECT_EQ(b.opened(), b_resets);
}

TEST(SerialBridge, StopsOnSigterm) {
    Rig rig;
    rig.start();
    Device device(rig.line->accept());
    ASSERT_TRUE(device.wait_open()) << rig.bridge_log();
    EXPECT_EQ(rig.bridge->stop(), 0) << rig.bridge_log();
}

}  // namespace
}  // namespace fieldlink::gateway::bridge::test
