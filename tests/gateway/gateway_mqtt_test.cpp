// The gateway core against a real Mosquitto on a free 127.0.0.1 port: a
// device-like Paho client publishes binary batches, the gateway stores them in
// a real SQLite file and the device receives the commit ack.
// (The multi-process end-to-end tests live in tests/integration.)
#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fieldlink/gateway/ingest/paho_broker_link.hpp"
#include "fieldlink/gateway/ingest/saver.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "test_support.hpp"

extern char** environ;

namespace fieldlink::gateway {
namespace {

using namespace std::chrono_literals;
using test::BatchSpec;

// Generous limits for a loaded CI machine; they only bound a failing test.
constexpr auto kStartupLimit = 20s;
constexpr auto kMessageLimit = 30s;

int free_loopback_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(address.sin_port);
}

bool port_accepts(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

// Polls `condition` until it holds or `limit` passes.
template <typename Condition>
bool eventually(Condition condition, std::chrono::steady_clock::duration limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// A private Mosquitto: own config, own port, stopped (SIGTERM, then reaped) by the destructor.
class Mosquitto {
public:
    Mosquitto(const test::TempDir& dir, int port) : port_(port), log_path_(dir.file("mosquitto.log")) {
        const std::string config_path = dir.file("mosquitto.conf");
        std::ofstream(config_path) << "listener " << port << " 127.0.0.1\n"
                                   << "allow_anonymous true\n"
                                   << "persistence false\n"
                                   << "max_queued_messages 0\n";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        const std::string program = FIELDLINK_MOSQUITTO;
        char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>("-c"),
                        const_cast<char*>(config_path.c_str()), nullptr};
        if (posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv, environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
    }
    ~Mosquitto() { stop(); }

    bool wait_ready() {
        return pid_ > 0 && eventually([&] { return port_accepts(port_) || exited(); }, kStartupLimit) && !exited();
    }
    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    std::string log() const {
        std::ifstream file(log_path_);
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

private:
    bool exited() {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
        }
        return pid_ <= 0;
    }

    int port_;
    std::string log_path_;
    pid_t pid_ = -1;
};

// Accepts TCP connections and never answers: a broker that hangs before
// CONNACK. Counts the connections so a test knows a connect is in progress.
class SilentBroker {
public:
    explicit SilentBroker(int port) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        const int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(static_cast<std::uint16_t>(port));
        listening_ =
            fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 && listen(fd_, 16) == 0;
        if (listening_) acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~SilentBroker() {
        done_ = true;
        if (acceptor_.joinable()) acceptor_.join();
        for (const int fd : accepted_fds_) close(fd);
        if (fd_ >= 0) close(fd_);
    }
    bool listening() const { return listening_; }
    int accepted() const { return accepted_.load(); }

private:
    void accept_loop() {
        while (!done_) {
            pollfd waiting{fd_, POLLIN, 0};
            if (poll(&waiting, 1, 50) <= 0) continue;
            const int fd = accept(fd_, nullptr, nullptr);
            if (fd < 0) continue;
            accepted_fds_.push_back(fd);  // kept open, never read: no CONNACK ever
            ++accepted_;
        }
    }

    int fd_ = -1;
    bool listening_ = false;
    std::atomic<bool> done_{false};
    std::atomic<int> accepted_{0};
    std::vector<int> accepted_fds_;  // owned by the acceptor thread until it is joined
    std::thread acceptor_;
};

// The gateway's parts wired as in main.cpp.
class Gateway {
public:
    Gateway(const std::string& db_path, int port, Logger& log, const SaverSettings& saver_settings = {}) : log_(log) {
        StoreOptions options;
        options.path = db_path;
        store_ = std::make_unique<SqliteStore>(options);
        MqttSettings mqtt;
        mqtt.broker_uri = "tcp://127.0.0.1:" + std::to_string(port);
        mqtt.client_id = "fieldlink-gateway-test";
        mqtt.connect_retry_min = 50ms;
        mqtt.connect_retry_max = 200ms;
        link_ = std::make_unique<PahoBrokerLink>(mqtt, log_);
        saver_ = std::make_unique<Saver>(saver_settings, *store_, *link_, clock_, log_, stats_);
        link_->set_message_handler(
            [this](std::string_view topic, std::span<const std::uint8_t> payload) { saver_->submit(topic, payload); });
        saver_->start();
        link_->start();
    }
    ~Gateway() { stop(); }

    void stop() {
        if (!saver_) return;
        saver_->stop();
        link_->stop();
        saver_.reset();
        link_.reset();
    }
    PahoBrokerLink& link() { return *link_; }
    Stats& stats() { return stats_; }

private:
    Logger& log_;
    SystemClock clock_;
    Stats stats_;
    std::unique_ptr<SqliteStore> store_;
    std::unique_ptr<PahoBrokerLink> link_;
    std::unique_ptr<Saver> saver_;
};

// The gateway's parts, none started: a test queues messages before the
// writer runs and commits before the link connects.
struct UnstartedGateway {
    UnstartedGateway(const std::string& db_path, int port, std::size_t batch_max_rows)
        : store(store_options(db_path)),
          link(mqtt_settings(port), test::quiet_logger()),
          saver(saver_settings(batch_max_rows), store, link, clock, test::quiet_logger(), stats) {}

    static StoreOptions store_options(const std::string& db_path) {
        StoreOptions options;
        options.path = db_path;
        return options;
    }
    static MqttSettings mqtt_settings(int port) {
        MqttSettings mqtt;
        mqtt.broker_uri = "tcp://127.0.0.1:" + std::to_string(port);
        mqtt.client_id = "fieldlink-gateway-test";
        return mqtt;
    }
    static SaverSettings saver_settings(std::size_t batch_max_rows) {
        SaverSettings settings;
        settings.batch_max_rows = batch_max_rows;
        return settings;
    }

    SqliteStore store;
    PahoBrokerLink link;
    SystemClock clock;
    Stats stats;
    Saver saver;
};

// A device stand-in: publishes batches at QoS 1 and listens on its ack topic.
class Device {
public:
    Device(int port, const std::string& id)
        : id_(id),
          client_("tcp://127.0.0.1:" + std::to_string(port), "test-device-" + id,
                  static_cast<mqtt::iclient_persistence*>(nullptr)) {
        client_.start_consuming();
        auto options = mqtt::connect_options_builder().clean_session(true).finalize();
        client_.connect(options)->wait_for(kStartupLimit);
        client_.subscribe("fieldlink/v1/" + id_ + "/ack", 0)->wait_for(kStartupLimit);
    }
    ~Device() {
        try {
            client_.disconnect()->wait_for(5s);
        } catch (const mqtt::exception&) {
        }
    }
    void publish(const std::vector<std::uint8_t>& payload) { publish_async(payload)->wait_for(kMessageLimit); }
    void publish_telemetry(const std::vector<std::uint8_t>& payload) {
        client_.publish("fieldlink/v1/" + id_ + "/telemetry", payload.data(), payload.size(), 0, false)
            ->wait_for(kMessageLimit);
    }
    mqtt::delivery_token_ptr publish_async(const std::vector<std::uint8_t>& payload) {
        return client_.publish("fieldlink/v1/" + id_ + "/up", payload.data(), payload.size(), 1, false);
    }
    // The next ack, or nullopt after the limit.
    std::optional<protocol::Ack> next_ack() {
        mqtt::const_message_ptr message;
        if (!client_.try_consume_message_for(&message, kMessageLimit) || !message) return std::nullopt;
        const std::string& payload = message->get_payload();
        protocol::Ack ack;
        if (protocol::decode_ack(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), &ack) !=
            protocol::CodecResult::Ok) {
            return std::nullopt;
        }
        return ack;
    }

private:
    std::string id_;
    mqtt::async_client client_;
};

std::int64_t count(const std::string& db_path, const std::string& sql) {
    sqlite::Database db(db_path);
    sqlite::Statement select = db.prepare(sql);
    select.step();
    return select.column_int64(0);
}

class GatewayMqttTest : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_loopback_port();
        ASSERT_GT(port_, 0);
        db_path_ = dir_.file("fieldlink.db");
    }

    test::TempDir dir_;
    int port_ = -1;
    std::string db_path_;
};

TEST_F(GatewayMqttTest, BinaryBatchIsStoredAndAcked) {
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    Gateway gateway(db_path_, port_, test::quiet_logger());
    ASSERT_TRUE(eventually([&] { return gateway.link().subscribed(); }, kStartupLimit)) << broker.log();

    Device device(port_, "dev-1");
    BatchSpec spec;
    spec.incarnation = 0xFEEDFACECAFEBEEFull;
    spec.count = 5;
    device.publish(test::encode(spec));
    const auto ack = device.next_ack();
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->incarnation, spec.incarnation);
    EXPECT_EQ(ack->watermark, 5u);
    EXPECT_GT(ack->gateway_unix_ms, 0);
    // The ack is only sent after the commit: the rows are there now.
    EXPECT_EQ(count(db_path_, "SELECT count(*) FROM readings WHERE device = 'dev-1'"), 5);

    // A redelivery is harmless and acked again.
    device.publish(test::encode(spec));
    const auto again = device.next_ack();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->watermark, 5u);
    EXPECT_EQ(count(db_path_, "SELECT count(*) FROM readings"), 5);

    // Garbage goes to the dead letters and the next good batch still goes through.
    device.publish({'j', 'u', 'n', 'k'});
    spec.first_seq = 6;
    spec.count = 1;
    device.publish(test::encode(spec));
    const auto after = device.next_ack();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->watermark, 6u);
    gateway.stop();
    EXPECT_EQ(count(db_path_, "SELECT count(*) FROM dead_letters WHERE error = 'truncated'"), 1);
}

TEST_F(GatewayMqttTest, TelemetryIsSubscribedAndStored) {
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    Gateway gateway(db_path_, port_, test::quiet_logger());
    ASSERT_TRUE(eventually([&] { return gateway.link().subscribed(); }, kStartupLimit)) << broker.log();

    Device device(port_, "dev-7");
    protocol::Telemetry t;
    t.incarnation = 0xa1;
    t.boot = 2;
    t.held = 42;
    t.next_seq = 43;
    std::vector<std::uint8_t> payload(protocol::kTelemetrySize);
    std::size_t written = 0;
    ASSERT_EQ(protocol::encode_telemetry(t, payload.data(), payload.size(), &written), protocol::CodecResult::Ok);
    device.publish_telemetry(payload);
    ASSERT_TRUE(eventually([&] { return gateway.stats().telemetry.load() >= 1; }, kMessageLimit));
    device.publish_telemetry({'b', 'a', 'd'});
    ASSERT_TRUE(eventually([&] { return gateway.stats().dead_letters.load() >= 1; }, kMessageLimit));
    gateway.stop();
    EXPECT_EQ(count(db_path_, "SELECT count(*) FROM device_health WHERE device = 'dev-7' AND held = 42 AND boot = 2"),
              1);
    EXPECT_EQ(count(db_path_,
                    "SELECT count(*) FROM dead_letters WHERE error = 'truncated' AND topic LIKE "
                    "'%/telemetry'"),
              1);
}

TEST_F(GatewayMqttTest, BrokerKeepsMessagesWhileTheGatewayIsDown) {
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    {
        // First run creates the persistent session and its subscriptions.
        Gateway gateway(db_path_, port_, test::quiet_logger());
        ASSERT_TRUE(eventually([&] { return gateway.link().subscribed(); }, kStartupLimit));
    }
    Device device(port_, "dev-2");
    BatchSpec spec;
    spec.count = 3;
    device.publish(test::encode(spec));  // nobody is reading now

    Gateway gateway(db_path_, port_, test::quiet_logger());
    const auto ack = device.next_ack();
    ASSERT_TRUE(ack) << "the broker should have queued the batch for the gateway's session";
    EXPECT_EQ(ack->watermark, 3u);
    EXPECT_EQ(count(db_path_, "SELECT count(*) FROM readings WHERE device = 'dev-2'"), 3);
}

// Paho holds its client mutex while our message callback blocks on a full
// queue; acks must still flow (regression: the writer used to call Paho and deadlock).
TEST_F(GatewayMqttTest, FullQueueNeverDeadlocksTheAcks) {
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    SaverSettings tiny;
    tiny.queue_capacity = 1;
    tiny.batch_max_rows = 1;
    tiny.commit_interval_min = std::chrono::milliseconds(0);
    Gateway gateway(db_path_, port_, test::quiet_logger(), tiny);
    ASSERT_TRUE(eventually([&] { return gateway.link().subscribed(); }, kStartupLimit));

    Device device(port_, "dev-4");
    constexpr std::uint64_t kBatches = 300;
    constexpr std::size_t kWindow = 8;  // batches in flight, like a reader
    std::deque<mqtt::delivery_token_ptr> in_flight;
    BatchSpec spec;
    spec.count = 2;
    for (std::uint64_t b = 0; b < kBatches; ++b) {
        if (in_flight.size() == kWindow) {
            in_flight.front()->wait_for(kMessageLimit);
            in_flight.pop_front();
        }
        spec.first_seq = 1 + 2 * b;
        in_flight.push_back(device.publish_async(test::encode(spec)));
    }
    for (auto& token : in_flight) token->wait_for(kMessageLimit);
    std::uint64_t watermark = 0;
    while (watermark < 2 * kBatches) {
        const auto ack = device.next_ack();
        ASSERT_TRUE(ack) << "acks stopped at watermark " << watermark;
        watermark = std::max(watermark, ack->watermark);
    }
    EXPECT_EQ(watermark, 2 * kBatches);
    EXPECT_EQ(count(db_path_, "SELECT count(*) FROM readings WHERE device = 'dev-4'"),
              static_cast<std::int64_t>(2 * kBatches));
}

TEST_F(GatewayMqttTest, KeepsRetryingUntilTheBrokerAppears) {
    Gateway gateway(db_path_, port_, test::quiet_logger());
    // No broker yet: the first connection attempts fail and are retried.
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    ASSERT_TRUE(eventually([&] { return gateway.link().subscribed(); }, kStartupLimit));

    Device device(port_, "dev-3");
    device.publish(test::encode(BatchSpec{}));
    const auto ack = device.next_ack();
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->watermark, 2u);
}

// Regression: the outbox kept the newest ack per topic, so when one commit held
// batches of two incarnations of one device, only one ack reached the device.
TEST_F(GatewayMqttTest, EveryIncarnationInOneCommitGetsItsAck) {
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    UnstartedGateway parts(db_path_, port_, 1000);
    Saver& saver = parts.saver;
    PahoBrokerLink& link = parts.link;
    Stats& stats = parts.stats;
    Device device(port_, "dev-5");

    BatchSpec old_flash;
    old_flash.incarnation = 0x1111;
    old_flash.count = 3;
    BatchSpec new_flash;
    new_flash.incarnation = 0x2222;
    new_flash.count = 2;
    // Queued before the writer starts, so both land in one transaction.
    ASSERT_TRUE(saver.submit("fieldlink/v1/dev-5/up", test::encode(old_flash)));
    ASSERT_TRUE(saver.submit("fieldlink/v1/dev-5/up", test::encode(new_flash)));
    saver.start();
    saver.flush();
    ASSERT_EQ(stats.commits.load(), 1u);
    // Both acks wait in the link's outbox until it connects, so nothing is sent
    // in between that could hide a replaced ack.
    link.start();

    std::map<std::uint64_t, std::uint64_t> watermarks;
    while (watermarks.size() < 2) {
        const auto ack = device.next_ack();
        ASSERT_TRUE(ack) << "acks received: " << watermarks.size() << " of 2";
        watermarks[ack->incarnation] = ack->watermark;
    }
    EXPECT_EQ(watermarks, (std::map<std::uint64_t, std::uint64_t>{{0x1111, 3}, {0x2222, 2}}));
    saver.stop();
    link.stop();
}

// Regression: Paho holds at most 100 unsent messages by default, and the acks
// of one commit beyond that were dropped (MQTT error -12), so those devices
// waited for their ack timeout and resent. Every device in a large commit gets its ack.
TEST_F(GatewayMqttTest, ACommitCoveringThousandsOfDevicesAcksEveryOne) {
    constexpr int kDevices = 2000;
    Mosquitto broker(dir_, port_);
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    UnstartedGateway parts(db_path_, port_, 4 * kDevices);
    Saver& saver = parts.saver;
    PahoBrokerLink& link = parts.link;
    Stats& stats = parts.stats;

    mqtt::async_client listener("tcp://127.0.0.1:" + std::to_string(port_), "test-ack-listener",
                                static_cast<mqtt::iclient_persistence*>(nullptr));
    listener.start_consuming();
    listener.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait_for(kStartupLimit);
    listener.subscribe("fieldlink/v1/+/ack", 0)->wait_for(kStartupLimit);

    for (int i = 0; i < kDevices; ++i) {
        BatchSpec batch;
        batch.incarnation = 0x100000 + static_cast<std::uint64_t>(i);
        batch.count = 2;
        ASSERT_TRUE(saver.submit("fieldlink/v1/many-" + std::to_string(i) + "/up", test::encode(batch)));
    }
    saver.start();
    saver.flush();
    ASSERT_EQ(stats.commits.load(), 1u);
    // Every ack waits in the outbox until the link connects, then goes out at once.
    link.start();

    std::map<std::string, std::uint64_t> watermarks;
    while (watermarks.size() < static_cast<std::size_t>(kDevices)) {
        mqtt::const_message_ptr message;
        if (!listener.try_consume_message_for(&message, kMessageLimit) || !message) break;
        const std::string& payload = message->get_payload();
        protocol::Ack ack;
        ASSERT_EQ(protocol::decode_ack(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), &ack),
                  protocol::CodecResult::Ok);
        watermarks[message->get_topic()] = ack.watermark;
    }
    EXPECT_EQ(watermarks.size(), static_cast<std::size_t>(kDevices));
    EXPECT_TRUE(std::all_of(watermarks.begin(), watermarks.end(), [](const auto& entry) { return entry.second == 2; }));
    saver.stop();
    link.stop();
    listener.disconnect()->wait_for(5s);
}

// Regression: stop() during a pending connect threw from Paho (callbacks
// cannot be unregistered while connecting), so SIGTERM exited 1 and teardown
// went on with callbacks registered. Now it waits for the attempt, then unregisters.
TEST_F(GatewayMqttTest, StopWhileTheFirstConnectIsPendingIsClean) {
    SilentBroker silent(port_);
    ASSERT_TRUE(silent.listening());
    MqttSettings mqtt;
    mqtt.broker_uri = "tcp://127.0.0.1:" + std::to_string(port_);
    mqtt.client_id = "fieldlink-gateway-test";
    PahoBrokerLink link(mqtt, test::quiet_logger());
    std::atomic<int> delivered{0};
    link.set_message_handler([&](std::string_view, std::span<const std::uint8_t>) { ++delivered; });
    link.start();
    ASSERT_TRUE(eventually([&] { return silent.accepted() >= 1; }, kStartupLimit)) << "no connect attempt";
    EXPECT_NO_THROW(link.stop());
    EXPECT_FALSE(link.connected());
    EXPECT_EQ(delivered.load(), 0);
    EXPECT_NO_THROW(link.stop()) << "idempotent";
}

TEST_F(GatewayMqttTest, StopDuringAnAutomaticReconnectIsClean) {
    auto broker = std::make_unique<Mosquitto>(dir_, port_);
    ASSERT_TRUE(broker->wait_ready()) << broker->log();
    MqttSettings mqtt;
    mqtt.broker_uri = "tcp://127.0.0.1:" + std::to_string(port_);
    mqtt.client_id = "fieldlink-gateway-test";
    PahoBrokerLink link(mqtt, test::quiet_logger());
    link.set_message_handler([](std::string_view, std::span<const std::uint8_t>) {});
    link.start();
    ASSERT_TRUE(eventually([&] { return link.subscribed(); }, kStartupLimit)) << broker->log();
    broker.reset();  // connection lost: Paho reconnects on its own from now on
    SilentBroker silent(port_);
    ASSERT_TRUE(silent.listening());
    ASSERT_TRUE(eventually([&] { return silent.accepted() >= 1; }, kStartupLimit)) << "Paho did not reconnect";
    EXPECT_NO_THROW(link.stop());
    EXPECT_FALSE(link.connected());
}

}  // namespace
}  // namespace fieldlink::gateway
