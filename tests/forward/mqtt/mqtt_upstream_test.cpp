// MqttUpstream against real Mosquitto processes on free 127.0.0.1 ports:
// what arrives (decoded, per topic), confirmation by PUBACK, a broker killed
// under load, refused and unreachable connects, credentials, TLS, and the
// settings' validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fieldlink/gateway/forward/mqtt/mqtt_upstream.hpp"
#include "fieldlink/gateway/forward/upstream_codec.hpp"
#include "mqtt_test_support.hpp"

namespace fieldlink::gateway {
namespace {

using namespace std::chrono_literals;
using namespace mqtt_test;

constexpr char kGateway[] = "gw-test";
constexpr char kSubscription[] = "fieldlink/v1/+/+/forward";

std::string topic_of(const std::string& device) {
    return std::string("fieldlink/v1/") + kGateway + "/" + device + "/forward";
}

MqttUpstreamSettings settings_for(int port) {
    MqttUpstreamSettings s;
    s.name = "central";
    s.uri = "tcp://127.0.0.1:" + std::to_string(port);
    s.client_id = std::string("fieldlink-forward-") + kGateway + "-central";
    s.gateway_id = kGateway;
    return s;
}

// Readings as a device produces them: 4 channels sampled together every 10 s
// (temperature, humidity, pressure, battery) with sensor resolution and noise,
// the first readings of a boot before the clock offset is known, arrival in
// 30 s batches.
class Readings {
public:
    explicit Readings(std::uint32_t seed = 7) : random_(seed) {}

    ForwardRow next(const std::string& device) {
        State& s = devices_[device];
        if (s.incarnation == 0) s.incarnation = 0x1000000000000000ull + random_() * 7919ull + devices_.size();
        ForwardRow row;
        row.id = next_id_++;
        row.device = device;
        row.incarnation = s.incarnation;
        row.seq = ++s.seq;
        row.boot = 3;
        row.channel = static_cast<std::uint8_t>((row.seq - 1) % 4);
        const std::uint64_t sample = (row.seq - 1) / 4;
        row.mono_ms = 5'000 + sample * 10'000 + (random_() % 20);
        const std::int64_t unix_ms = kBootUnixMs + static_cast<std::int64_t>(row.mono_ms);
        if (sample >= 3) row.unix_ms = unix_ms;  // synchronised after the first ack
        std::normal_distribution<double> noise(0.0, 1.0);
        const double hours = static_cast<double>(row.mono_ms) / 3.6e6;
        switch (row.channel) {
            case 0: row.value = std::round((21.0 + 1.5 * std::sin(hours) + 0.05 * noise(random_)) * 100) / 100; break;
            case 1: row.value = std::round((48.0 + 4.0 * std::cos(hours) + 0.3 * noise(random_)) * 10) / 10; break;
            case 2: row.value = std::round((1013.25 + 0.4 * noise(random_)) * 100) / 100; break;
            default: row.value = std::round((3.9 - 0.001 * static_cast<double>(sample)) * 1000) / 1000; break;
        }
        row.received_unix_ms = unix_ms - unix_ms % 30'000 + 30'000 + 150;
        return row;
    }

    // `per_device` readings of each device, interleaved as they would be stored.
    std::vector<ForwardRow> interleaved(const std::vector<std::string>& devices, std::size_t per_device) {
        std::vector<ForwardRow> rows;
        for (std::size_t i = 0; i < per_device; ++i) {
            for (const std::string& device : devices) rows.push_back(next(device));
        }
        return rows;
    }
    std::vector<ForwardRow> only(const std::string& device, std::size_t count) {
        std::vector<ForwardRow> rows;
        for (std::size_t i = 0; i < count; ++i) rows.push_back(next(device));
        return rows;
    }

private:
    static constexpr std::int64_t kBootUnixMs = 1'760'000'000'000;
    struct State {
        std::uint64_t incarnation = 0;
        std::uint64_t seq = 0;
    };
    std::mt19937_64 random_;
    std::map<std::string, State> devices_;
    std::int64_t next_id_ = 1;
};

std::vector<ForwardRow> concat(std::vector<ForwardRow> a, const std::vector<ForwardRow>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Messages one chunk takes: per device, ceil(rows / max_batch_rows).
std::uint64_t expected_batches(const std::vector<ForwardRow>& rows, std::size_t max_batch_rows) {
    std::map<std::string, std::size_t> per_device;
    for (const ForwardRow& row : rows) ++per_device[row.device];
    std::uint64_t batches = 0;
    for (const auto& [device, count] : per_device) batches += (count + max_batch_rows - 1) / max_batch_rows;
    return batches;
}

// Sends chunks through an upstream, keeping at most window() outstanding, and
// records every done call per chunk sequence.
class ChunkSender {
public:
    explicit ChunkSender(Upstream& upstream) : upstream_(upstream) {}

    // Sends and returns the sequence; waits (bounded) for a free window slot first.
    std::uint64_t send(std::vector<ForwardRow> rows) {
        {
            std::unique_lock lock(mutex_);
            cv_.wait_for(lock, kMessageLimit, [&] { return outstanding_ < upstream_.window(); });
            ++outstanding_;
        }
        const std::uint64_t sequence = next_sequence_++;
        upstream_.send(Chunk{sequence, std::move(rows)}, [this, sequence](ChunkResult result) {
            // Notified under the lock: the sender may be gone as soon as it is released.
            std::lock_guard lock(mutex_);
            results_[sequence].push_back(std::move(result));
            --outstanding_;
            cv_.notify_all();
        });
        return sequence;
    }
    bool wait_all_done() {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, kMessageLimit, [&] { return outstanding_ == 0; });
    }
    std::vector<ChunkResult> results(std::uint64_t sequence) const {
        std::lock_guard lock(mutex_);
        const auto it = results_.find(sequence);
        return it == results_.end() ? std::vector<ChunkResult>{} : it->second;
    }
    std::size_t outstanding() const {
        std::lock_guard lock(mutex_);
        return outstanding_;
    }

private:
    Upstream& upstream_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::size_t outstanding_ = 0;
    std::uint64_t next_sequence_ = 1;
    std::map<std::uint64_t, std::vector<ChunkResult>> results_;
};

// The rows as they arrive: ids are not sent.
std::vector<ForwardRow> without_ids(std::vector<ForwardRow> rows) {
    for (ForwardRow& row : rows) row.id = 0;
    return rows;
}

std::map<std::string, std::vector<ForwardRow>> by_device(const std::vector<ForwardRow>& rows) {
    std::map<std::string, std::vector<ForwardRow>> out;
    for (const ForwardRow& row : rows) out[row.device].push_back(row);
    return out;
}

// Decodes everything received, checking topic against payload; rows per device in arrival order.
std::map<std::string, std::vector<ForwardRow>> decode_all(const std::vector<Received>& received,
                                                          std::uint64_t* payload_bytes = nullptr) {
    std::map<std::string, std::vector<ForwardRow>> out;
    for (const Received& message : received) {
        if (payload_bytes != nullptr) *payload_bytes += message.payload.size();
        const ForwardBatch batch = decode_forward_batch(message.payload);
        EXPECT_EQ(batch.gateway, kGateway);
        EXPECT_EQ(message.topic, topic_of(batch.device));
        auto& rows = out[batch.device];
        rows.insert(rows.end(), batch.rows.begin(), batch.rows.end());
    }
    return out;
}

class MqttUpstreamTest : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_loopback_port();
        ASSERT_GT(port_, 0);
    }

    // A plain broker on port_, started and ready.
    std::unique_ptr<Mosquitto> start_broker(const std::string& extra = "") {
        auto broker =
            std::make_unique<Mosquitto>(dir_, port_, mosquitto_base_config(port_) + "allow_anonymous true\n" + extra);
        EXPECT_TRUE(broker->wait_ready()) << broker->log();
        return broker;
    }

    TempDir dir_;
    int port_ = -1;
};

// ---------------------------------------------------------------------------
// 1. What arrives

struct Variant {
    const char* name;
    ForwardEncoding encoding;
    int zstd_level;
    int mqtt_version;
    std::size_t max_batch_rows;
};

void PrintTo(const Variant& variant, std::ostream* out) { *out << variant.name; }

class MqttUpstreamDelivery : public MqttUpstreamTest, public ::testing::WithParamInterface<Variant> {};

TEST_P(MqttUpstreamDelivery, EveryReadingArrivesOnceOnItsDevicesTopic) {
    const Variant variant = GetParam();
    const auto broker = start_broker();
    Subscriber subscriber(port_, kSubscription);

    MqttUpstreamSettings settings = settings_for(port_);
    settings.encoding = variant.encoding;
    settings.zstd_level = variant.zstd_level;
    settings.mqtt_version = variant.mqtt_version;
    settings.max_batch_rows = variant.max_batch_rows;
    // Message counts here follow max_batch_rows alone; splitting by size is
    // covered by forward.regressions against a broker with a packet limit.
    settings.max_message_bytes = std::size_t{64} << 20;
    MqttUpstream upstream(settings);
    upstream.connect();
    ASSERT_TRUE(upstream.connected());

    Readings readings;
    const std::vector<std::string> devices = {"dev-a", "dev-b", "dev-c"};
    std::vector<std::vector<ForwardRow>> chunks;
    chunks.push_back(readings.interleaved(devices, 1));
    chunks.push_back(readings.only("dev-b", 1));
    chunks.push_back(readings.interleaved(devices, 300));
    // One device with more readings than a message holds: split, order kept.
    chunks.push_back(concat(readings.only("dev-a", kMaxForwardRecords + 4), readings.interleaved(devices, 20)));
    chunks.push_back(readings.interleaved(devices, 100));

    ChunkSender sender(upstream);
    std::vector<std::uint64_t> sequences;
    std::uint64_t total_batches = 0;
    std::vector<ForwardRow> all_rows;
    for (const auto& rows : chunks) {
        total_batches += expected_batches(rows, settings.max_batch_rows);
        all_rows.insert(all_rows.end(), rows.begin(), rows.end());
        sequences.push_back(sender.send(rows));
    }
    ASSERT_TRUE(sender.wait_all_done());

    std::uint64_t bytes_confirmed = 0;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const auto results = sender.results(sequences[i]);
        ASSERT_EQ(results.size(), 1u) << "chunk " << i;
        EXPECT_TRUE(results[0].confirmed) << results[0].error;
        EXPECT_EQ(results[0].batches, expected_batches(chunks[i], settings.max_batch_rows)) << "chunk " << i;
        EXPECT_GT(results[0].bytes_sent, 0u);
        bytes_confirmed += results[0].bytes_sent;
    }

    ASSERT_TRUE(subscriber.wait_for_count(total_batches)) << subscriber.count() << " of " << total_batches;
    const std::vector<Received> received = subscriber.received();
    EXPECT_EQ(received.size(), total_batches);
    for (const Received& message : received) {
        EXPECT_EQ(is_zstd_frame(message.payload), variant.zstd_level > 0);
        if (variant.zstd_level == 0) {
            EXPECT_EQ(message.payload.front() == '{', variant.encoding == ForwardEncoding::Json);
        }
    }
    std::uint64_t payload_bytes = 0;
    const auto arrived = decode_all(received, &payload_bytes);
    EXPECT_EQ(payload_bytes, bytes_confirmed);
    // Per device exactly the rows sent, in the order sent (keys and values; ids are not sent).
    EXPECT_EQ(arrived, by_device(without_ids(all_rows)));
    upstream.close();
    EXPECT_FALSE(upstream.connected());
}

INSTANTIATE_TEST_SUITE_P(Variants, MqttUpstreamDelivery,
                         ::testing::Values(Variant{"binary_v311", ForwardEncoding::Binary, 0, 3, kMaxForwardRecords},
                                           Variant{"json_v311", ForwardEncoding::Json, 0, 3, kMaxForwardRecords},
                                           Variant{"binary_zstd3_v5", ForwardEncoding::Binary, 3, 5,
                                                   kMaxForwardRecords},
                                           Variant{"json_zstd9_v311", ForwardEncoding::Json, 9, 3, kMaxForwardRecords},
                                           Variant{"binary_v5_small_batches", ForwardEncoding::Binary, 0, 5, 97}),
                         [](const ::testing::TestParamInfo<Variant>& param) { return std::string(param.param.name); });

// Prints what compression does to realistic readings (no assertion on the ratio).
TEST_F(MqttUpstreamTest, CompressionRatioOfRealisticReadings) {
    const auto broker = start_broker();
    Readings readings;
    const std::vector<ForwardRow> one_device = readings.only("dev-a", 1000);
    const std::vector<ForwardRow> three_devices = readings.interleaved({"dev-a", "dev-b", "dev-c"}, 334);

    std::cout << "compression of 1000 readings (bytes on the wire; ratio = uncompressed / compressed):\n";
    for (const auto& [label, rows] : {std::pair{"1 device ", &one_device}, std::pair{"3 devices", &three_devices}}) {
        for (const ForwardEncoding encoding : {ForwardEncoding::Binary, ForwardEncoding::Json}) {
            std::uint64_t plain = 0;
            for (const int level : {0, 3, 9, 19}) {
                MqttUpstreamSettings settings = settings_for(port_);
                settings.encoding = encoding;
                settings.zstd_level = level;
                MqttUpstream upstream(settings);
                upstream.connect();
                ChunkSender sender(upstream);
                const std::uint64_t sequence = sender.send(*rows);
                ASSERT_TRUE(sender.wait_all_done());
                const auto results = sender.results(sequence);
                ASSERT_EQ(results.size(), 1u);
                ASSERT_TRUE(results[0].confirmed) << results[0].error;
                if (level == 0) plain = results[0].bytes_sent;
                std::cout << "  " << label << " " << (encoding == ForwardEncoding::Json ? "json  " : "binary")
                          << " zstd " << std::setw(2) << level << ": " << std::setw(7) << results[0].bytes_sent
                          << " bytes in " << results[0].batches << " message(s), ratio " << std::fixed
                          << std::setprecision(2)
                          << static_cast<double>(plain) / static_cast<double>(results[0].bytes_sent) << "\n";
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2. The broker dies with chunks outstanding

class MqttUpstreamBrokerKill : public MqttUpstreamTest, public ::testing::WithParamInterface<int> {};

TEST_P(MqttUpstreamBrokerKill, OutstandingChunksFailOnceAndAResendIsConfirmed) {
    auto broker = start_broker();
    MqttUpstreamSettings settings = settings_for(port_);
    settings.mqtt_version = GetParam();
    MqttUpstream upstream(settings);
    upstream.connect();

    // Stopped, the broker keeps the connection open but answers nothing: every
    // chunk sent now is outstanding when it is killed.
    broker->pause();
    Readings readings;
    const std::vector<std::string> devices = {"dev-a", "dev-b", "dev-c"};
    ChunkSender sender(upstream);
    std::vector<std::vector<ForwardRow>> chunks;
    std::vector<std::uint64_t> sequences;
    for (std::size_t i = 0; i < upstream.window(); ++i) {
        chunks.push_back(readings.interleaved(devices, 200));
        sequences.push_back(sender.send(chunks.back()));
    }
    broker->kill_hard();

    ASSERT_TRUE(sender.wait_all_done());
    for (const std::uint64_t sequence : sequences) {
        const auto results = sender.results(sequence);
        ASSERT_EQ(results.size(), 1u);
        EXPECT_FALSE(results[0].confirmed);
        // The connection-lost report, or a publish that failed on the broken socket first.
        EXPECT_NE(results[0].error.find(settings.uri), std::string::npos) << results[0].error;
        std::cout << "chunk " << sequence << ": " << results[0].error << "\n";
    }
    EXPECT_FALSE(upstream.connected());

    // Restarted on the same port: a new connect() works and the chunks go through.
    broker->start();
    ASSERT_TRUE(broker->wait_ready()) << broker->log();
    Subscriber subscriber(port_, kSubscription);
    upstream.connect();
    ASSERT_TRUE(upstream.connected());
    std::vector<std::uint64_t> resent;
    std::vector<ForwardRow> all_rows;
    for (const auto& rows : chunks) {
        resent.push_back(sender.send(rows));
        all_rows.insert(all_rows.end(), rows.begin(), rows.end());
    }
    ASSERT_TRUE(sender.wait_all_done());
    for (const std::uint64_t sequence : resent) {
        const auto results = sender.results(sequence);
        ASSERT_EQ(results.size(), 1u);
        EXPECT_TRUE(results[0].confirmed) << results[0].error;
    }
    ASSERT_TRUE(subscriber.wait_for_count(chunks.size() * devices.size()));
    EXPECT_EQ(decode_all(subscriber.received()), by_device(without_ids(all_rows)));

    upstream.close();
    // Still exactly one result per chunk, the first ones included: nothing late, nothing twice.
    for (const std::uint64_t sequence : sequences) EXPECT_EQ(sender.results(sequence).size(), 1u);
    for (const std::uint64_t sequence : resent) EXPECT_EQ(sender.results(sequence).size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(MqttVersions, MqttUpstreamBrokerKill, ::testing::Values(3, 5),
                         [](const ::testing::TestParamInfo<int>& param) {
                             return "mqtt" + std::to_string(param.param);
                         });

TEST_F(MqttUpstreamTest, CloseEndsOutstandingChunksOnceAndIsIdempotent) {
    auto broker = start_broker();
    MqttUpstream upstream(settings_for(port_));
    upstream.connect();
    broker->pause();
    Readings readings;
    ChunkSender sender(upstream);
    std::vector<std::uint64_t> sequences;
    for (int i = 0; i < 3; ++i) sequences.push_back(sender.send(readings.interleaved({"dev-a", "dev-b"}, 50)));

    upstream.close();
    // Every done has returned when close() returns.
    EXPECT_EQ(sender.outstanding(), 0u);
    for (const std::uint64_t sequence : sequences) {
        const auto results = sender.results(sequence);
        ASSERT_EQ(results.size(), 1u);
        EXPECT_FALSE(results[0].confirmed);
        EXPECT_FALSE(results[0].error.empty());
    }
    EXPECT_FALSE(upstream.connected());
    upstream.close();
    broker->resume();
    for (const std::uint64_t sequence : sequences) EXPECT_EQ(sender.results(sequence).size(), 1u);

    // Sending while closed ends the chunk at once, unconfirmed.
    const std::uint64_t late = sender.send(readings.only("dev-a", 1));
    ASSERT_TRUE(sender.wait_all_done());
    ASSERT_EQ(sender.results(late).size(), 1u);
    EXPECT_NE(sender.results(late)[0].error.find("not connected"), std::string::npos);
}

// close() right after sending: each chunk ends once, confirmed if its PUBACKs
// came within close()'s grace, unconfirmed otherwise.
TEST_F(MqttUpstreamTest, CloseRightAfterSendingEndsEveryChunkOnce) {
    const auto broker = start_broker();
    MqttUpstream upstream(settings_for(port_));
    Readings readings;
    ChunkSender sender(upstream);
    for (int round = 0; round < 3; ++round) {
        upstream.connect();
        std::vector<std::uint64_t> sequences;
        for (std::size_t i = 0; i < upstream.window(); ++i) {
            sequences.push_back(sender.send(readings.interleaved({"dev-a", "dev-b", "dev-c"}, 400)));
        }
        upstream.close();
        EXPECT_EQ(sender.outstanding(), 0u);
        std::size_t confirmed = 0;
        for (const std::uint64_t sequence : sequences) {
            const auto results = sender.results(sequence);
            ASSERT_EQ(results.size(), 1u);
            confirmed += results[0].confirmed ? 1 : 0;
        }
        std::cout << "round " << round << ": " << confirmed << " of " << sequences.size()
                  << " chunks confirmed before close() returned\n";
    }
}

// A broker that refuses one message (MQTT 5 PUBACK reason code) fails that chunk;
// an MQTT 3.1.1 broker would PUBACK it and drop it silently.
TEST_F(MqttUpstreamTest, PublishRefusedByTheBrokerFailsTheChunk) {
    const std::string acl = dir_.file("acl");
    std::ofstream(acl) << "topic readwrite allowed/#\n";
    const auto broker = start_broker("acl_file " + acl + "\n");
    MqttUpstreamSettings settings = settings_for(port_);
    settings.mqtt_version = 5;
    settings.topic = "denied/{gateway}/{device}";
    MqttUpstream upstream(settings);
    upstream.connect();
    ChunkSender sender(upstream);
    Readings readings;
    const std::uint64_t sequence = sender.send(readings.interleaved({"dev-a", "dev-b"}, 5));
    ASSERT_TRUE(sender.wait_all_done());
    const auto results = sender.results(sequence);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0].confirmed);
    EXPECT_NE(results[0].error.find("0x87"), std::string::npos) << results[0].error << "\n" << broker->log();
    EXPECT_NE(results[0].error.find("denied/gw-test/dev-"), std::string::npos) << results[0].error;
    EXPECT_FALSE(upstream.connected());
    upstream.close();
    EXPECT_EQ(sender.results(sequence).size(), 1u);
}

// Another client with the same id takes the session over: the broker ends our
// connection (MQTT 5: with a DISCONNECT of its own, which Paho does not report
// as a lost connection), and the upstream notices.
TEST_P(MqttUpstreamBrokerKill, SessionTakenOverEndsTheConnection) {
    const auto broker = start_broker();
    MqttUpstreamSettings settings = settings_for(port_);
    settings.mqtt_version = GetParam();
    MqttUpstream upstream(settings);
    upstream.connect();
    ASSERT_TRUE(upstream.connected());

    mqtt::async_client usurper(
        settings.uri, settings.client_id,
        mqtt::create_options_builder().mqtt_version(GetParam() == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1).finalize(),
        static_cast<mqtt::iclient_persistence*>(nullptr));
    auto options =
        mqtt::connect_options_builder().mqtt_version(GetParam() == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1).finalize();
    usurper.connect(options)->wait_for(kStartupLimit);
    EXPECT_TRUE(eventually([&] { return !upstream.connected(); }, kMessageLimit));

    ChunkSender sender(upstream);
    Readings readings;
    const std::uint64_t sequence = sender.send(readings.only("dev-a", 2));
    ASSERT_TRUE(sender.wait_all_done());
    ASSERT_EQ(sender.results(sequence).size(), 1u);
    EXPECT_FALSE(sender.results(sequence)[0].confirmed);
    usurper.disconnect()->wait_for(5s);
    upstream.connect();  // and back
    EXPECT_TRUE(upstream.connected());
    upstream.close();
}

// ---------------------------------------------------------------------------
// 3. Nobody there

TEST_F(MqttUpstreamTest, ConnectWhereNothingListensFailsNamingTheUri) {
    MqttUpstreamSettings settings = settings_for(port_);  // nothing listens on port_
    settings.connect_timeout_s = 3;
    MqttUpstream upstream(settings);
    const auto start = std::chrono::steady_clock::now();
    try {
        upstream.connect();
        FAIL() << "connect() should have thrown";
    } catch (const UpstreamError& e) {
        const auto elapsed = std::chrono::steady_clock::now() - start;
        std::cout << "refused connect failed after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms: " << e.what()
                  << "\n";
        EXPECT_NE(std::string(e.what()).find(settings.uri), std::string::npos) << e.what();
        EXPECT_TRUE(e.retryable());
        // Bounded by the connect timeout (the slack only bounds a failing test).
        EXPECT_LT(elapsed, std::chrono::seconds(settings.connect_timeout_s) + 20s);
    }
    EXPECT_FALSE(upstream.connected());
}

TEST_F(MqttUpstreamTest, BrokerThatNeverAnswersTimesOutAndCloseStillWorks) {
    SilentBroker silent(port_);
    ASSERT_TRUE(silent.listening());
    MqttUpstreamSettings settings = settings_for(port_);
    settings.connect_timeout_s = 1;
    auto upstream = std::make_unique<MqttUpstream>(settings);
    const auto start = std::chrono::steady_clock::now();
    try {
        upstream->connect();
        FAIL() << "connect() should have thrown";
    } catch (const UpstreamError& e) {
        const auto elapsed = std::chrono::steady_clock::now() - start;
        std::cout << "silent broker: connect failed after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms: " << e.what()
                  << "\n";
        EXPECT_NE(std::string(e.what()).find(settings.uri), std::string::npos) << e.what();
        EXPECT_TRUE(e.retryable());
        EXPECT_LT(elapsed, std::chrono::seconds(settings.connect_timeout_s) + 20s);
    }
    EXPECT_GE(silent.accepted(), 1);
    EXPECT_FALSE(upstream->connected());
    // A second attempt, then close and destruction: nothing hangs, nothing is left behind.
    EXPECT_THROW(upstream->connect(), UpstreamError);
    upstream->close();
    upstream->close();
    upstream.reset();
}

// ---------------------------------------------------------------------------
// 4. Credentials

class MqttUpstreamCredentials : public MqttUpstreamTest, public ::testing::WithParamInterface<int> {};

TEST_P(MqttUpstreamCredentials, RightOnesWorkWrongOnesAreNotRetryable) {
    const std::string passwd_tool = FIELDLINK_MOSQUITTO_PASSWD;
    if (passwd_tool.empty()) GTEST_SKIP() << "mosquitto_passwd not found (Debian package mosquitto)";
    const std::string password_file = dir_.file("passwords");
    ASSERT_EQ(run_program({passwd_tool, "-b", "-c", password_file, "forwarder", "s3cret"}, dir_.file("tools.log")), 0)
        << read_file(dir_.file("tools.log"));
    ::chmod(password_file.c_str(), 0600);
    Mosquitto broker(dir_, port_,
                     mosquitto_base_config(port_) + "allow_anonymous false\npassword_file " + password_file + "\n");
    ASSERT_TRUE(broker.wait_ready()) << broker.log();

    MqttUpstreamSettings settings = settings_for(port_);
    settings.mqtt_version = GetParam();
    settings.username = "forwarder";
    settings.password = "s3cret";
    {
        MqttUpstream upstream(settings);
        upstream.connect();
        ChunkSender sender(upstream);
        Readings readings;
        const std::uint64_t sequence = sender.send(readings.interleaved({"dev-a"}, 10));
        ASSERT_TRUE(sender.wait_all_done());
        ASSERT_EQ(sender.results(sequence).size(), 1u);
        EXPECT_TRUE(sender.results(sequence)[0].confirmed) << sender.results(sequence)[0].error;
    }

    const auto refused = [&](MqttUpstreamSettings s, const char* what) {
        MqttUpstream upstream(s);
        try {
            upstream.connect();
            ADD_FAILURE() << what << ": connect() should have thrown";
        } catch (const UpstreamError& e) {
            std::cout << what << ": " << e.what() << "\n";
            EXPECT_FALSE(e.retryable()) << what << ": " << e.what();
            EXPECT_NE(std::string(e.what()).find(s.uri), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
        }
        EXPECT_FALSE(upstream.connected());
    };
    MqttUpstreamSettings wrong = settings;
    wrong.password = "guess";
    refused(wrong, "wrong password");
    MqttUpstreamSettings anonymous = settings;
    anonymous.username.reset();
    anonymous.password.reset();
    refused(anonymous, "no credentials");
}

INSTANTIATE_TEST_SUITE_P(MqttVersions, MqttUpstreamCredentials, ::testing::Values(3, 5),
                         [](const ::testing::TestParamInfo<int>& param) {
                             return "mqtt" + std::to_string(param.param);
                         });

// ---------------------------------------------------------------------------
// 5. TLS

// A CA and certificates made with the openssl command line, in the test's temp dir.
class TestPki {
public:
    TestPki(const TempDir& dir, std::string openssl) : dir_(dir), openssl_(std::move(openssl)) {}

    // A self-signed CA: <name>.crt, <name>.key.
    bool make_ca(const std::string& name) {
        return run({openssl_,
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    key(name),
                    "-out",
                    crt(name),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=fieldlink test " + name,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"});
    }
    // A certificate signed by `ca` with the given subjectAltName and extended key usage.
    bool make_cert(const std::string& name, const std::string& ca, const std::string& san, const std::string& usage) {
        const std::string ext = dir_.file(name + ".ext");
        std::ofstream(ext) << "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage="
                           << usage << "\n"
                           << (san.empty() ? "" : "subjectAltName=" + san + "\n");
        return run({openssl_, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key(name), "-out", dir_.file(name + ".csr"), "-subj", "/CN=" + name}) &&
               run({openssl_, "x509", "-req", "-in", dir_.file(name + ".csr"), "-CA", crt(ca), "-CAkey", key(ca),
                    "-CAcreateserial", "-out", crt(name), "-days", "2", "-extfile", ext});
    }
    std::string crt(const std::string& name) const { return dir_.file(name + ".crt"); }
    std::string key(const std::string& name) const { return dir_.file(name + ".key"); }
    std::string log() const { return read_file(dir_.file("openssl.log")); }

private:
    bool run(const std::vector<std::string>& args) { return run_program(args, dir_.file("openssl.log")) == 0; }

    const TempDir& dir_;
    std::string openssl_;
};

TEST_F(MqttUpstreamTest, TlsWithTheRightCaWorksAndAnythingElseIsRefused) {
    const std::string openssl = FIELDLINK_OPENSSL;
    if (openssl.empty()) GTEST_SKIP() << "openssl not found (Debian package openssl)";
    TestPki pki(dir_, openssl);
    ASSERT_TRUE(pki.make_ca("ca")) << pki.log();
    ASSERT_TRUE(pki.make_ca("other-ca")) << pki.log();
    ASSERT_TRUE(pki.make_cert("server", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth")) << pki.log();
    ASSERT_TRUE(pki.make_cert("elsewhere", "ca", "DNS:elsewhere.invalid", "serverAuth")) << pki.log();
    ASSERT_TRUE(pki.make_cert("client", "ca", "", "clientAuth")) << pki.log();

    const int tls_port = free_loopback_port();
    const int mutual_port = free_loopback_port();
    const int wrong_name_port = free_loopback_port();
    ASSERT_TRUE(tls_port > 0 && mutual_port > 0 && wrong_name_port > 0);
    std::ostringstream config;
    config << mosquitto_base_config(port_) << "allow_anonymous true\n";
    const auto tls_listener = [&](int port, const std::string& cert) {
        config << "listener " << port << " 127.0.0.1\n"
               << "cafile " << pki.crt("ca") << "\ncertfile " << pki.crt(cert) << "\nkeyfile " << pki.key(cert) << "\n";
    };
    tls_listener(tls_port, "server");
    tls_listener(mutual_port, "server");
    config << "require_certificate true\n";
    tls_listener(wrong_name_port, "elsewhere");
    Mosquitto broker(dir_, port_, config.str());
    ASSERT_TRUE(broker.wait_ready()) << broker.log();
    ASSERT_TRUE(
        eventually([&] { return port_accepts(tls_port) && port_accepts(mutual_port) && port_accepts(wrong_name_port); },
                   kStartupLimit))
        << broker.log();
    Subscriber subscriber(port_, kSubscription);

    Readings readings;
    std::size_t expected_messages = 0;
    const auto works = [&](const MqttUpstreamSettings& settings, const char* what) {
        ASSERT_EQ(MqttUpstream::validate(settings), std::nullopt) << what;
        MqttUpstream upstream(settings);
        try {
            upstream.connect();
        } catch (const UpstreamError& e) {
            // Paho C 1.3.11 race: when a connection fails and the next socket is made
            // at once, it may get the old one's descriptor number, and Paho's receive
            // thread may then fail it with a stale "socket error". The forwarder's
            // backoff keeps attempts apart; here one more attempt stands in for it.
            if (std::string(e.what()).find("socket error") == std::string::npos) {
                FAIL() << what << ": " << e.what() << "\n" << broker.log();
            }
            std::cout << what << ": first attempt hit Paho's stale socket error, once more\n";
            try {
                upstream.connect();
            } catch (const UpstreamError& again) {
                FAIL() << what << ": " << again.what() << "\n" << broker.log();
            }
        }
        ChunkSender sender(upstream);
        const std::uint64_t sequence = sender.send(readings.only("dev-tls", 20));
        ASSERT_TRUE(sender.wait_all_done());
        ASSERT_EQ(sender.results(sequence).size(), 1u);
        EXPECT_TRUE(sender.results(sequence)[0].confirmed) << what << ": " << sender.results(sequence)[0].error;
        ++expected_messages;
    };
    const auto refused = [&](const MqttUpstreamSettings& settings, const char* what) {
        ASSERT_EQ(MqttUpstream::validate(settings), std::nullopt) << what;
        MqttUpstream upstream(settings);
        try {
            upstream.connect();
            ADD_FAILURE() << what << ": connect() should have thrown";
        } catch (const UpstreamError& e) {
            std::cout << what << ": " << e.what() << "\n";
            EXPECT_NE(std::string(e.what()).find(settings.uri), std::string::npos) << e.what();
        }
        EXPECT_FALSE(upstream.connected());
    };

    MqttUpstreamSettings tls = settings_for(tls_port);
    tls.uri = "ssl://127.0.0.1:" + std::to_string(tls_port);
    tls.ca_file = pki.crt("ca");
    works(tls, "ssl:// with the right CA");
    MqttUpstreamSettings by_name = tls;
    by_name.uri = "mqtts://localhost:" + std::to_string(tls_port);
    by_name.mqtt_version = 5;
    works(by_name, "mqtts:// by host name, MQTT 5");

    MqttUpstreamSettings other_ca = tls;
    other_ca.ca_file = pki.crt("other-ca");
    refused(other_ca, "a CA that did not sign the server's certificate");
    MqttUpstreamSettings no_ca = tls;
    no_ca.ca_file.reset();
    refused(no_ca, "the system trust store only");

    MqttUpstreamSettings mutual = tls;
    mutual.uri = "ssl://127.0.0.1:" + std::to_string(mutual_port);
    refused(mutual, "no client certificate where one is required");
    mutual.cert_file = pki.crt("client");
    mutual.key_file = pki.key("client");
    works(mutual, "client certificate");

    MqttUpstreamSettings wrong_name = tls;
    wrong_name.uri = "ssl://127.0.0.1:" + std::to_string(wrong_name_port);
    refused(wrong_name, "a certificate for another host");
    wrong_name.verify_host = false;
    works(wrong_name, "a certificate for another host, verify_host = false");

    ASSERT_TRUE(subscriber.wait_for_count(expected_messages));
    for (const auto& [device, rows] : decode_all(subscriber.received())) {
        EXPECT_EQ(device, "dev-tls");
        EXPECT_EQ(rows.size(), expected_messages * 20);
    }
}

// ---------------------------------------------------------------------------
// 6. Settings

MqttUpstreamSettings valid_settings() { return settings_for(1883); }

std::string error_of(const MqttUpstreamSettings& settings) {
    return MqttUpstream::validate(settings).value_or("(valid)");
}

TEST(MqttUpstreamSettingsTest, DefaultsAreValid) {
    const MqttUpstreamSettings s = valid_settings();
    EXPECT_EQ(MqttUpstream::validate(s), std::nullopt);
    EXPECT_EQ(s.topic, "fieldlink/v1/{gateway}/{device}/forward");
    EXPECT_EQ(s.mqtt_version, 3);
    EXPECT_EQ(MqttUpstreamSettings::qos, 1);
    EXPECT_FALSE(s.clean_session);
    EXPECT_EQ(s.keep_alive_s, 30);
    EXPECT_EQ(s.connect_timeout_s, 10);
    EXPECT_TRUE(s.verify_host);
    EXPECT_EQ(s.encoding, ForwardEncoding::Binary);
    EXPECT_EQ(s.zstd_level, 0);
    EXPECT_EQ(s.window, 4u);
    EXPECT_EQ(s.max_inflight, 64);
    EXPECT_EQ(s.max_batch_rows, kMaxForwardRecords);
}

TEST(MqttUpstreamSettingsTest, BadTopicTemplatesAreNamed) {
    const auto topic_error = [](const std::string& topic) {
        MqttUpstreamSettings s = valid_settings();
        s.topic = topic;
        return error_of(s);
    };
    EXPECT_EQ(topic_error(""), "topic is empty");
    EXPECT_EQ(topic_error("a/+/{device}"),
              "topic 'a/+/{device}' contains the MQTT wildcard '+', which cannot be published to");
    EXPECT_EQ(topic_error("a/{device}/#"),
              "topic 'a/{device}/#' contains the MQTT wildcard '#', which cannot be published to");
    EXPECT_EQ(topic_error("x/{gateway}/{devices}"),
              "topic 'x/{gateway}/{devices}' has the unknown placeholder '{devices}' (only {gateway} and {device} are "
              "filled in)");
    EXPECT_EQ(topic_error("x/{}"),
              "topic 'x/{}' has the unknown placeholder '{}' (only {gateway} and {device} are filled in)");
    EXPECT_EQ(topic_error("x/{gateway"), "topic 'x/{gateway' has a '{' without its '}'");
    EXPECT_EQ(topic_error("x/gateway}"), "topic 'x/gateway}' has a '}' without its '{'");
    EXPECT_NE(topic_error(std::string("x/\0/y", 5)).find("contains a NUL character"), std::string::npos);
    // Fine: no placeholder at all, or one only, or both twice.
    for (const char* ok : {"upstream/all", "site/{gateway}", "{device}", "{gateway}/{device}/{gateway}-{device}",
                           "$aws/rules/r/{device}"}) {
        EXPECT_EQ(topic_error(ok), "(valid)") << ok;
    }
}

TEST(MqttUpstreamSettingsTest, TlsFilesMustBeReadable) {
    TempDir dir;
    const std::string empty = dir.file("empty.pem");
    std::ofstream(empty).flush();
    const std::string pem = dir.file("ca.pem");
    std::ofstream(pem) << "-----BEGIN CERTIFICATE-----\n";

    MqttUpstreamSettings s = valid_settings();
    s.uri = "ssl://broker.example:8883";
    s.ca_file = "/x";
    EXPECT_EQ(error_of(s), "ca_file '/x' cannot be read: No such file or directory");
    s.ca_file = dir.file("");
    EXPECT_EQ(error_of(s), "ca_file '" + dir.file("") + "' cannot be read: Is a directory");
    s.ca_file = empty;
    EXPECT_EQ(error_of(s), "ca_file '" + empty + "' is empty");
    s.ca_file = pem;
    EXPECT_EQ(error_of(s), "(valid)");
    s.cert_file = "/no/client.crt";
    EXPECT_EQ(error_of(s), "cert_file '/no/client.crt' cannot be read: No such file or directory");
    s.cert_file = pem;
    s.key_file = "/no/client.key";
    EXPECT_EQ(error_of(s), "key_file '/no/client.key' cannot be read: No such file or directory");
    s.cert_file.reset();
    s.key_file = pem;
    EXPECT_EQ(error_of(s), "key_file is set without cert_file");

    MqttUpstreamSettings plain = valid_settings();
    plain.ca_file = pem;
    EXPECT_EQ(error_of(plain),
              "ca_file is set, but uri 'tcp://127.0.0.1:1883' does not use TLS (ssl://, mqtts:// or wss://)");
    for (const char* uri : {"mqtts://h", "wss://h:443/mqtt"}) {
        MqttUpstreamSettings tls = valid_settings();
        tls.uri = uri;
        tls.ca_file = pem;
        EXPECT_EQ(error_of(tls), "(valid)") << uri;
    }
}

TEST(MqttUpstreamSettingsTest, OtherBadValuesAreNamed) {
    const auto with = [](auto change) {
        MqttUpstreamSettings s = valid_settings();
        change(s);
        return error_of(s);
    };
    EXPECT_EQ(with([](auto& s) { s.name.clear(); }), "name is empty");
    EXPECT_EQ(with([](auto& s) { s.uri = "http://h"; }).rfind("uri 'http://h' is not a URI such as", 0), 0u);
    EXPECT_EQ(with([](auto& s) { s.uri = "tcp://h:0"; }).rfind("uri 'tcp://h:0' is not", 0), 0u);
    EXPECT_EQ(with([](auto& s) { s.client_id.clear(); }), "client_id is empty");
    EXPECT_EQ(with([](auto& s) { s.gateway_id = "gw/1"; }),
              "gateway_id 'gw/1' is not 1 to 64 characters of A-Z a-z 0-9 _ -");
    EXPECT_EQ(with([](auto& s) { s.mqtt_version = 4; }), "mqtt_version 4 is neither 3 (MQTT 3.1.1) nor 5");
    EXPECT_EQ(with([](auto& s) { s.keep_alive_s = 0; }), "keep_alive_s 0 is outside 1..65535");
    EXPECT_EQ(with([](auto& s) { s.connect_timeout_s = 0; }), "connect_timeout_s 0 is outside 1..3600");
    EXPECT_EQ(with([](auto& s) { s.password = "p"; }),
              "password is set without a username, which MQTT 3.1.1 does not allow");
    EXPECT_EQ(with([](auto& s) {
                  s.password = "p";
                  s.mqtt_version = 5;
              }),
              "(valid)");
    EXPECT_EQ(with([](auto& s) { s.zstd_level = 20; }), "zstd_level 20 is outside 0 (no compression) .. 19");
    EXPECT_EQ(with([](auto& s) { s.zstd_level = -1; }), "zstd_level -1 is outside 0 (no compression) .. 19");
    EXPECT_EQ(with([](auto& s) { s.window = 0; }), "window must be at least 1");
    EXPECT_EQ(with([](auto& s) { s.max_inflight = 0; }), "max_inflight 0 is outside 1..65535");
    EXPECT_EQ(with([](auto& s) { s.max_batch_rows = 0; }), "max_batch_rows 0 is outside 1..4096");
    EXPECT_EQ(with([](auto& s) { s.max_batch_rows = kMaxForwardRecords + 1; }),
              "max_batch_rows 4097 is outside 1..4096");
}

TEST(MqttUpstreamSettingsTest, ConstructorRefusesInvalidSettingsAndSendBeforeConnectFails) {
    MqttUpstreamSettings bad = valid_settings();
    bad.topic = "a/#";
    try {
        MqttUpstream upstream(bad);
        FAIL() << "should have thrown";
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()),
                  "upstream 'central': topic 'a/#' contains the MQTT wildcard '#', which cannot be published to");
    }

    MqttUpstream upstream(valid_settings());
    EXPECT_EQ(upstream.name(), "central");
    EXPECT_EQ(upstream.window(), 4u);
    EXPECT_FALSE(upstream.connected());
    ChunkSender sender(upstream);
    Readings readings;
    const std::uint64_t sequence = sender.send(readings.only("dev-a", 3));
    ASSERT_TRUE(sender.wait_all_done());
    const auto results = sender.results(sequence);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0].confirmed);
    EXPECT_EQ(results[0].error, "not connected to tcp://127.0.0.1:1883");
    upstream.close();
    EXPECT_EQ(sender.results(sequence).size(), 1u);
}

}  // namespace
}  // namespace fieldlink::gateway
