// BrokerLink over Eclipse Paho MQTT C++ (async_client).
//
// Persistent session (clean_session = false, fixed client id): while the
// gateway is down, the broker keeps the QoS 1 messages of our subscriptions.
// Subscriptions are made again on every (re)connect. The first connection is
// retried with backoff until it succeeds; after that Paho's automatic
// reconnect takes over.
//
// Paho C holds its client mutex while the message handler runs, and the
// handler blocks while the saver's queue is full (backpressure). So publish()
// never calls Paho: it leaves the ack in an outbox (newest per topic and
// incarnation) that a sender thread of this link hands to Paho, after a
// reconnect if need be. Call stop() only once the handler no longer blocks
// (after Saver::stop()); it never throws, and once it returns no callback
// reaches the message handler again.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "fieldlink/gateway/ingest/broker_link.hpp"
#include "fieldlink/gateway/ingest/log.hpp"

namespace fieldlink::gateway {

struct MqttSettings {
    std::string broker_uri = "tcp://127.0.0.1:1883";
    std::string client_id = "fieldlink-gateway";
    std::chrono::seconds keep_alive{30};
    std::chrono::milliseconds connect_retry_min{500};
    std::chrono::milliseconds connect_retry_max{10000};
    // Credentials (Mosquitto's password_file); empty username: none sent.
    std::string username;
    std::string password;
    // TLS, only with an ssl://, mqtts:// or wss:// broker_uri. Empty ca_file:
    // the system's trust store. A client certificate is optional.
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    bool verify_host = true;  // the broker's certificate must name the URI's host
};

// Empty when the settings can work, else what is wrong (names the key):
// TLS files without a TLS URI, a file that cannot be read, a key without its
// certificate, a password without a username.
std::string check_mqtt_settings(const MqttSettings& settings);

inline constexpr char kUpSubscription[] = "fieldlink/v1/+/up";
inline constexpr char kStatusSubscription[] = "fieldlink/v1/+/status";
// QoS 0: health is a snapshot, and the broker need not keep it while we are away.
inline constexpr char kTelemetrySubscription[] = "fieldlink/v1/+/telemetry";

class PahoBrokerLink final : public BrokerLink {
public:
    // Throws std::runtime_error when check_mqtt_settings() or Paho rejects the
    // settings (e.g. a bad URI).
    PahoBrokerLink(const MqttSettings& settings, Logger& log);
    ~PahoBrokerLink() override;
    PahoBrokerLink(const PahoBrokerLink&) = delete;
    PahoBrokerLink& operator=(const PahoBrokerLink&) = delete;

    void set_message_handler(MessageHandler handler) override;
    void start() override;
    // Hands over the outbox (if connected), then disconnects cleanly.
    void stop() override;
    // Queues the ack and returns at once; false only after stop().
    bool publish_ack(const std::string& topic, std::uint64_t incarnation,
                     std::span<const std::uint8_t> payload) override;

    bool connected() const;
    // True once the broker confirmed every subscription on the current connection.
    bool subscribed() const;
    // Called on Paho's thread each time the broker confirms the subscriptions
    // (after the first connect and after every reconnect). Set before start();
    // must not block.
    void set_subscribed_listener(std::function<void()> listener);

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace fieldlink::gateway
