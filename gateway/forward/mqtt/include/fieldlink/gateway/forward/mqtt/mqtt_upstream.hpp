// The MQTT kind of upstream: forwards chunks to any MQTT broker or cluster
// (Mosquitto, EMQX, HiveMQ, cloud IoT brokers) with Paho, one message per
// device batch at QoS 1, and confirms a chunk when the broker has PUBACKed
// every message of it (docs/protocol.md §10 for the payload).
//
// A PUBACK is hop by hop: it says the broker has the message, not that a
// consumer stored it. That is what the cursor advances on; every forwarded
// reading carries its full key, so whoever consumes the topic drops the
// duplicates that resending after a failure produces.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "fieldlink/gateway/forward/upstream.hpp"
#include "fieldlink/gateway/forward/upstream_codec.hpp"

namespace fieldlink::gateway {

struct MqttUpstreamSettings {
    // The [[upstream]] name (logs, cursor table). Required.
    std::string name;
    // The broker, as Paho takes it: tcp://host:1883, mqtt://, ssl://host:8883,
    // mqtts://, ws://host:80/path, wss://. ssl, mqtts and wss turn TLS on. Required.
    std::string uri;
    // Fixed client id; the caller builds the default "fieldlink-forward-<gateway>-<name>".
    // Fixed so that a reconnect takes over a half-open old connection at the broker.
    std::string client_id;
    // This gateway's id (A-Z a-z 0-9 _ -, 1..64): in every payload and in the topic. Required.
    std::string gateway_id;
    // Topic of a device's batches; {gateway} and {device} are filled in, no
    // other placeholder, no wildcard (+ #).
    std::string topic = "fieldlink/v1/{gateway}/{device}/forward";

    // 3 (MQTT 3.1.1) or 5. With 5 a broker can refuse a single message in its
    // PUBACK (not authorised, quota exceeded, ...), which then fails the chunk
    // with the reason; a 3.1.1 broker can only drop such a message silently.
    int mqtt_version = 3;
    // Fixed at 1: the cursor advances on the PUBACK, which only QoS 1 (and 2)
    // have; QoS 2's extra round trip buys nothing because the payload carries
    // the reading keys and the receiver drops duplicates anyway.
    static constexpr int qos = 1;
    // false: a persistent session under the fixed client id (3.1.1
    // clean-session 0; 5: clean-start 0 and a session expiry of a week).
    bool clean_session = false;
    int keep_alive_s = 30;       // 1..65535; also how soon a silently dead link is noticed
    int connect_timeout_s = 10;  // 1..3600; connect() blocks at most about this long

    std::optional<std::string> username;
    std::optional<std::string> password;  // MQTT 3.1.1 needs a username with it

    // TLS, only with ssl://, mqtts:// or wss:// (an error with the other schemes).
    std::optional<std::string> ca_file;    // PEM; unset: the system's trust store
    std::optional<std::string> cert_file;  // client certificate (PEM), for brokers that require one
    std::optional<std::string> key_file;   // its private key (PEM), when not inside cert_file
    bool verify_host = true;               // the certificate must name the host of `uri`

    ForwardEncoding encoding = ForwardEncoding::Binary;
    int zstd_level = 0;  // 0: no compression; 1..19: each payload is one zstd frame

    // Chunks outstanding at once (Upstream::window()), at least 1.
    std::size_t window = 4;
    // Paho's limit of unacknowledged QoS 1 messages on the connection (1..65535);
    // an MQTT 5 broker's Receive Maximum lowers it. More are queued inside Paho.
    int max_inflight = 64;
    // Readings per message, 1..kMaxForwardRecords; lower it for brokers with a
    // small message limit (a full binary batch is about 221 KB, JSON about 2.6 times that).
    std::size_t max_batch_rows = kMaxForwardRecords;
    // Largest payload of one message: a batch that would encode larger goes as
    // several. The default stays below the shipped Mosquitto's max_packet_size
    // (131072) with room for the topic and the MQTT header; a broker that drops
    // the connection on a larger packet would otherwise get the same chunk forever.
    std::size_t max_message_bytes = 126 * 1024;
};

class MqttUpstream final : public Upstream {
public:
    // The first thing wrong with `settings`, naming the key and the value, or
    // nullopt when they are usable. Reads the TLS files to check they can be read.
    static std::optional<std::string> validate(const MqttUpstreamSettings& settings);

    // Throws std::invalid_argument with validate()'s text. Does not connect.
    explicit MqttUpstream(MqttUpstreamSettings settings);
    // close()s.
    ~MqttUpstream() override;
    MqttUpstream(const MqttUpstream&) = delete;
    MqttUpstream& operator=(const MqttUpstream&) = delete;

    const std::string& name() const override;

    // Starts a fresh connection (a new Paho client, no automatic reconnect)
    // and waits for the CONNACK, at most about connect_timeout_s. Chunks still
    // outstanding from the previous connection end unconfirmed first.
    // UpstreamError names the URI and Paho's return code / the broker's reason;
    // retryable() is false when the broker refused the client id, the
    // credentials or the authorisation.
    void connect() override;
    bool connected() const override;

    // Splits the chunk into per-device batches (order kept within a device, at
    // most max_batch_rows each), encodes and publishes them. `done` is called
    // exactly once, always on this upstream's own completion thread (never
    // inside send(), never on Paho's threads), so it may take the forwarder's
    // locks; it must not throw and must not wait for the forwarder thread.
    void send(Chunk chunk, Done done) override;
    std::size_t window() const override;

    // Gives outstanding chunks up to a second to be confirmed, disconnects,
    // ends the chunks still outstanding unconfirmed and returns when every
    // `done` has returned. Idempotent, never throws; connect() may follow.
    void close() noexcept override;

    const MqttUpstreamSettings& settings() const noexcept;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace fieldlink::gateway
