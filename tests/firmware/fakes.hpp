// Test doubles for the reader core: a clock that only moves when told (or when
// something waits on it), scripted randomness and sensors, a transport that
// replays scripted broker bytes, and a small in-memory MQTT broker.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "fieldlink/hal/clock.hpp"
#include "fieldlink/hal/random.hpp"
#include "fieldlink/hal/sensors.hpp"
#include "fieldlink/hal/transport.hpp"
#include "fieldlink/mqtt/packet.hpp"
#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/reader/reader.hpp"

namespace fieldlink::test {

using Bytes = std::vector<std::uint8_t>;

inline Bytes bytes_of(const std::string& text) { return Bytes(text.begin(), text.end()); }

inline Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes all;
    for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
    return all;
}

class FakeClock final : public hal::Clock {
public:
    std::uint64_t now_ms() const override { return now; }
    void sleep_ms(std::uint32_t ms) override {
        now += ms;
        slept += ms;
    }
    void advance(std::uint64_t ms) { now += ms; }

    std::uint64_t now = 0;
    std::uint64_t slept = 0;
};

// Returns `value` every time (tests pick the jitter they want).
class FakeRandom final : public hal::Random {
public:
    std::uint32_t next_u32() override { return value; }
    std::uint64_t next_u64() override { return (static_cast<std::uint64_t>(value) << 32) | value; }

    std::uint32_t value = 0;
};

// Channel c's n-th reading is c * 1000 + n (n from 0), so tests can tell readings apart.
class FakeSensors final : public hal::Sensors {
public:
    explicit FakeSensors(std::size_t channels) : reads(channels, 0) {}

    std::size_t channel_count() const override { return reads.size(); }
    hal::SensorStatus read(std::uint8_t channel, double* value) override {
        if (channel >= reads.size()) return hal::SensorStatus::NoSuchChannel;
        if (channel == failing_channel) return hal::SensorStatus::Error;
        if (channel == nan_channel) {
            *value = std::numeric_limits<double>::quiet_NaN();  // "no value", yet Ok
            return hal::SensorStatus::Ok;
        }
        *value = channel * 1000.0 + static_cast<double>(reads[channel]++);
        return hal::SensorStatus::Ok;
    }

    std::vector<std::uint64_t> reads;
    int failing_channel = -1;
    int nan_channel = -1;
};

// Plays back broker bytes chunk by chunk and records what the client sent.
// With nothing scripted, recv waits out its timeout on the fake clock.
class ScriptedTransport final : public hal::Transport {
public:
    explicit ScriptedTransport(FakeClock& clock) : clock_(clock) {}

    hal::TransportStatus open(const char*, std::uint16_t, std::uint32_t) override {
        open_ = true;
        return hal::TransportStatus::Ok;
    }
    void close() override { open_ = false; }
    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t) override {
        if (fail_send) return hal::TransportStatus::Error;
        sent.insert(sent.end(), data, data + length);
        return hal::TransportStatus::Ok;
    }
    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override {
        *received = 0;
        if (chunks.empty()) {
            if (closed_when_empty) return hal::TransportStatus::Closed;
            clock_.advance(timeout_ms);
            return hal::TransportStatus::Ok;
        }
        Bytes& chunk = chunks.front();
        const std::size_t n = chunk.size() < capacity ? chunk.size() : capacity;
        std::memcpy(buffer, chunk.data(), n);
        chunk.erase(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
        if (chunk.empty()) chunks.pop_front();
        *received = n;
        return hal::TransportStatus::Ok;
    }

    // Everything sent since the last call.
    Bytes take_sent() {
        Bytes out;
        out.swap(sent);
        return out;
    }

    std::deque<Bytes> chunks;
    Bytes sent;
    bool fail_send = false;
    bool closed_when_empty = false;

private:
    FakeClock& clock_;
    bool open_ = false;
};

// A minimal MQTT broker behind the transport interface: it parses what the
// client sends and answers as configured. Acks are injected by the test.
class FakeBroker final : public hal::Transport {
public:
    struct Published {
        std::string topic;
        Bytes payload;
        std::uint8_t qos = 0;
        bool retain = false;
        std::uint16_t packet_id = 0;
        int connection = 0;  // which open() it arrived on (1-based)
    };

    explicit FakeBroker(FakeClock& clock) : clock_(clock) {}

    // Behaviour.
    bool refuse_open = false;
    std::uint8_t connack_code = 0;
    bool answer_subscribe = true;
    std::uint8_t suback_code = 1;
    bool answer_ping = true;
    bool auto_puback = true;

    // Observations.
    int opens = 0;
    std::vector<std::uint64_t> open_times;
    std::vector<Bytes> connect_bodies;
    std::vector<std::string> subscriptions;
    std::vector<Published> published;
    int pings = 0;
    int disconnects = 0;

    hal::TransportStatus open(const char*, std::uint16_t, std::uint32_t) override {
        ++opens;
        open_times.push_back(clock_.now);
        if (refuse_open) return hal::TransportStatus::Refused;
        connected_ = true;
        from_client_.clear();
        to_client_.clear();
        return hal::TransportStatus::Ok;
    }
    void close() override { connected_ = false; }

    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t) override {
        if (!connected_) return hal::TransportStatus::Closed;
        from_client_.insert(from_client_.end(), data, data + length);
        for (;;) {
            mqtt::Packet packet;
            std::size_t used = 0;
            if (mqtt::decode_packet(from_client_.data(), from_client_.size(), &packet, &used) != mqtt::Status::Ok) {
                break;
            }
            handle(packet);
            from_client_.erase(from_client_.begin(), from_client_.begin() + static_cast<std::ptrdiff_t>(used));
        }
        return hal::TransportStatus::Ok;
    }

    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override {
        *received = 0;
        if (!connected_) return hal::TransportStatus::Closed;
        if (to_client_.empty()) {
            clock_.advance(timeout_ms);
            return hal::TransportStatus::Ok;
        }
        const std::size_t n = to_client_.size() < capacity ? to_client_.size() : capacity;
        std::memcpy(buffer, to_client_.data(), n);
        to_client_.erase(to_client_.begin(), to_client_.begin() + static_cast<std::ptrdiff_t>(n));
        *received = n;
        return hal::TransportStatus::Ok;
    }

    bool connected() const { return connected_; }

    // Breaks the connection as a network failure would: the client's next
    // recv or send fails.
    void drop_connection() { connected_ = false; }

    void deliver(const std::string& topic, const Bytes& payload, mqtt::QoS qos = mqtt::QoS::AtMostOnce) {
        Bytes packet(payload.size() + topic.size() + 16);
        std::size_t length = 0;
        mqtt::encode_publish(topic.c_str(), payload.data(), payload.size(), qos, false, false, 77, packet.data(),
                             packet.size(), &length);
        packet.resize(length);
        to_client_.insert(to_client_.end(), packet.begin(), packet.end());
    }

    void deliver_ack(const std::string& device, std::uint64_t incarnation, std::uint64_t watermark,
                     std::int64_t gateway_unix_ms = 1'700'000'000'000) {
        protocol::Ack ack{incarnation, watermark, gateway_unix_ms};
        Bytes payload(protocol::kAckSize);
        protocol::encode_ack(ack, payload.data(), payload.size(), nullptr);
        deliver("fieldlink/v1/" + device + "/ack", payload);
    }

    // Batches received on any .../up topic, decoded.
    struct Batch {
        protocol::BatchHeader header;
        std::vector<protocol::Record> records;
        int connection = 0;
        std::uint64_t last_seq() const { return header.first_seq + header.count - 1; }
    };
    std::vector<Batch> batches() const {
        std::vector<Batch> out;
        for (const Published& p : published) {
            if (p.topic.size() < 3 || p.topic.compare(p.topic.size() - 3, 3, "/up") != 0) continue;
            protocol::BatchView view;
            if (protocol::decode_batch(p.payload.data(), p.payload.size(), &view) != protocol::CodecResult::Ok)
                continue;
            Batch batch;
            batch.header = view.header;
            batch.connection = p.connection;
            for (std::size_t i = 0; i < view.header.count; ++i) batch.records.push_back(view.record(i));
            out.push_back(batch);
        }
        return out;
    }
    std::vector<Published> on_topic(const std::string& topic) const {
        std::vector<Published> out;
        for (const Published& p : published) {
            if (p.topic == topic) out.push_back(p);
        }
        return out;
    }

private:
    void reply(std::initializer_list<std::uint8_t> bytes) { to_client_.insert(to_client_.end(), bytes); }

    void handle(const mqtt::Packet& packet) {
        switch (packet.type) {
            case mqtt::PacketType::Connect:
                connect_bodies.emplace_back(packet.body, packet.body + packet.body_length);
                reply({0x20, 0x02, 0x00, connack_code});
                if (connack_code != 0) connected_ = false;
                break;
            case mqtt::PacketType::Subscribe: {
                const std::size_t length = static_cast<std::size_t>((packet.body[2] << 8) | packet.body[3]);
                subscriptions.emplace_back(reinterpret_cast<const char*>(packet.body + 4), length);
                if (answer_subscribe) {
                    reply({0x90, 0x03, static_cast<std::uint8_t>(packet.packet_id >> 8),
                           static_cast<std::uint8_t>(packet.packet_id), suback_code});
                }
                break;
            }
            case mqtt::PacketType::Publish: {
                Published p;
                p.topic.assign(packet.publish.topic, packet.publish.topic_length);
                p.payload.assign(packet.publish.payload, packet.publish.payload + packet.publish.payload_length);
                p.qos = packet.publish.qos;
                p.retain = packet.publish.retain;
                p.packet_id = packet.packet_id;
                p.connection = opens;
                published.push_back(p);
                if (p.qos == 1 && auto_puback) {
                    reply({0x40, 0x02, static_cast<std::uint8_t>(p.packet_id >> 8),
                           static_cast<std::uint8_t>(p.packet_id)});
                }
                break;
            }
            case mqtt::PacketType::Pingreq:
                ++pings;
                if (answer_ping) reply({0xD0, 0x00});
                break;
            case mqtt::PacketType::Disconnect:
                ++disconnects;
                connected_ = false;
                break;
            default: break;
        }
    }

    FakeClock& clock_;
    bool connected_ = false;
    Bytes from_client_;
    Bytes to_client_;
};

// Reader settings shared by the reader tests: three channels at 1 s, batches of
// four, no keep-alive. Each test sets its own window and ack timeout.
inline reader::ReaderConfig reader_test_config(const char* device_id) {
    reader::ReaderConfig c;
    c.device_id = device_id;
    c.firmware_version = "test-1.0";
    c.keep_alive_s = 0;
    c.connect_timeout_ms = 3'000;
    c.batch_size = 4;
    c.backoff_initial_ms = 1'000;
    c.backoff_max_ms = 8'000;
    c.channel_count = 3;
    for (std::size_t ch = 0; ch < 3; ++ch) c.channel_period_ms[ch] = 1'000;
    return c;
}

}  // namespace fieldlink::test
