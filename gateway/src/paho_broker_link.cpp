#include "fieldlink/gateway/paho_broker_link.hpp"
#include "fieldlink/gateway/tcp_nodelay.hpp"

#include <mqtt/async_client.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace fieldlink::gateway {
namespace {

constexpr int kSubscriptionQos = 1;
constexpr int kTelemetryQos = 0;
constexpr int kAckQos = 0;

// Logs the outcome of the SUBSCRIBE sent after each (re)connect.
class SubscribeListener final : public mqtt::iaction_listener {
public:
    SubscribeListener(Logger& log, std::atomic<bool>& subscribed) : log_(log), subscribed_(subscribed) {}

    void on_success(const mqtt::token&) override {
        subscribed_ = true;
        log_.info("subscribed to {} and {} (QoS {}) and {} (QoS {})", kUpSubscription, kStatusSubscription,
                  kSubscriptionQos, kTelemetrySubscription, kTelemetryQos);
    }
    void on_failure(const mqtt::token& token) override {
        log_.error("subscribing to {}, {} and {} failed (return code {}); nothing will be received until the next "
                   "reconnect",
                   kUpSubscription, kStatusSubscription, kTelemetrySubscription, token.get_return_code());
    }

private:
    Logger& log_;
    std::atomic<bool>& subscribed_;
};

}  // namespace

// Threads: Paho's own threads run the callbacks; `connector_` makes the first
// connection; `sender_` hands acks to Paho. Paho C holds its client mutex while
// a message callback runs, and our callback blocks when the saver's queue is
// full. So nothing outside Paho's threads may call into Paho on the hot path:
// publish() only fills the outbox, and connection state is kept in our own flags.
class PahoBrokerLink::Impl {
public:
    Impl(const MqttSettings& settings, Logger& log)
        : settings_(settings),
          log_(log),
          client_(settings.broker_uri, settings.client_id, static_cast<mqtt::iclient_persistence*>(nullptr)),
          subscribe_listener_(log, subscribed_) {
        options_ = mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_3_1_1)
                       // The broker keeps our subscriptions and queues QoS 1 messages while we are away.
                       .clean_session(false)
                       .keep_alive_interval(settings.keep_alive)
                       .connect_timeout(std::chrono::seconds(5))
                       .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(30))
                       .finalize();

        client_.set_connected_handler([this](const std::string&) { on_connected(); });
        client_.set_connection_lost_handler([this](const std::string& cause) { on_connection_lost(cause); });
        client_.set_message_callback([this](mqtt::const_message_ptr message) { on_message(message); });
    }

    ~Impl() { stop(); }

    void set_message_handler(MessageHandler handler) { handler_ = std::move(handler); }

    void start() {
        std::lock_guard lock(mutex_);
        if (connector_.joinable() || stopping_) return;
        sender_ = std::thread([this] { send_acks(); });
        connector_ = std::thread([this] { connect_until_connected(); });
    }

    void stop() {
        {
            std::lock_guard lock(mutex_);
            if (stopped_) return;
            stopping_ = true;
            stopped_ = true;
        }
        cv_.notify_all();
        if (connector_.joinable()) connector_.join();
        {
            // The sender hands over what is still in the outbox (if connected), then ends.
            std::lock_guard lock(outbox_mutex_);
            outbox_closed_ = true;
        }
        outbox_cv_.notify_all();
        if (sender_.joinable()) sender_.join();
        try {
            // Paho sends queued QoS 0 messages before the DISCONNECT. This also
            // ends Paho's automatic reconnect if the connection is down right now.
            client_.disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(5));
            log_.info("disconnected from {}", settings_.broker_uri);
        } catch (const mqtt::exception& e) {
            log_.debug("disconnect from {}: {}", settings_.broker_uri, e.what());
        }
        client_.disable_callbacks();
    }

    // Never blocks on Paho. The newest ack per topic wins: watermarks only grow,
    // so a newer ack says everything an older one did.
    bool publish(const std::string& topic, std::span<const std::uint8_t> payload) {
        {
            std::lock_guard lock(outbox_mutex_);
            if (outbox_closed_) return false;
            outbox_.insert_or_assign(topic, std::vector<std::uint8_t>(payload.begin(), payload.end()));
        }
        outbox_cv_.notify_one();
        return true;
    }

    bool connected() const { return connected_.load(); }
    bool subscribed() const { return subscribed_.load() && connected_.load(); }

private:
    bool stopping() {
        std::lock_guard lock(mutex_);
        return stopping_;
    }

    // Paho's automatic reconnect only covers a connection that once worked, so
    // the first one is retried here, with backoff, until it succeeds or we stop.
    void connect_until_connected() {
        auto backoff = settings_.connect_retry_min;
        for (int attempt = 1;; ++attempt) {
            if (stopping()) return;
            try {
                mqtt::token_ptr token = client_.connect(options_);
                // Wait in slices so that stop() is never held up by a slow broker.
                while (!token->wait_for(std::chrono::milliseconds(200))) {
                    if (stopping()) return;
                }
                return;  // on_connected() subscribes
            } catch (const mqtt::exception& e) {
                // Loud at first, then every tenth attempt, so an absent broker does not flood the log.
                if (attempt <= 3 || attempt % 10 == 0) {
                    log_.warn("cannot connect to {} (attempt {}): {}; retrying every {} ms at most",
                              settings_.broker_uri, attempt, e.what(), settings_.connect_retry_max.count());
                }
            }
            std::unique_lock lock(mutex_);
            cv_.wait_for(lock, backoff, [this] { return stopping_; });
            backoff = std::min(backoff * 2, settings_.connect_retry_max);
        }
    }

    // The sender thread: waits until there is something to send and a
    // connection to send it on; while disconnected, acks stay (coalesced) in
    // the outbox and go out after the reconnect.
    void send_acks() {
        std::uint64_t failures = 0;
        for (;;) {
            std::map<std::string, std::vector<std::uint8_t>> batch;
            {
                std::unique_lock lock(outbox_mutex_);
                outbox_cv_.wait(lock, [this] { return outbox_closed_ || (!outbox_.empty() && connected_.load()); });
                if (!connected_.load()) {
                    if (!outbox_.empty()) log_.debug("{} acks not sent: not connected at shutdown", outbox_.size());
                    return;  // closed while disconnected
                }
                batch.swap(outbox_);
            }
            for (const auto& [topic, payload] : batch) {
                try {
                    // May wait for Paho's mutex while a message callback is blocked; the
                    // writer keeps draining the queue meanwhile, so that wait ends.
                    client_.publish(topic, payload.data(), payload.size(), kAckQos, false);
                } catch (const mqtt::exception& e) {
                    // Dropped: the device re-sends and a later commit acks it again.
                    if (++failures <= 3 || failures % 100 == 0) {
                        log_.warn("cannot publish the commit ack to {} ({} failures so far): {}", topic, failures,
                                  e.what());
                    }
                }
            }
            std::lock_guard lock(outbox_mutex_);
            if (outbox_closed_ && outbox_.empty()) return;
        }
    }

    void on_connected() {
        subscribed_ = false;
        {
            std::lock_guard lock(outbox_mutex_);
            connected_ = true;
        }
        outbox_cv_.notify_all();
        log_.info("connected to {} as '{}' (persistent session)", settings_.broker_uri, settings_.client_id);
        if (const auto port = plain_tcp_port(settings_.broker_uri)) {
            log_.debug("TCP_NODELAY set on {} socket(s) to port {}", set_nodelay_to_peer_port(*port), *port);
        }
        try {
            auto topics = mqtt::string_collection::create({kUpSubscription, kStatusSubscription, kTelemetrySubscription});
            client_.subscribe(topics,
                              mqtt::iasync_client::qos_collection{kSubscriptionQos, kSubscriptionQos, kTelemetryQos},
                              nullptr, subscribe_listener_);
        } catch (const mqtt::exception& e) {
            log_.error("cannot subscribe after connecting: {}", e.what());
        }
    }

    void on_connection_lost(const std::string& cause) {
        subscribed_ = false;
        {
            std::lock_guard lock(outbox_mutex_);
            connected_ = false;
        }
        log_.warn("lost the connection to {}{}{}; reconnecting", settings_.broker_uri, cause.empty() ? "" : ": ",
                  cause);
    }

    // Runs on Paho's thread with Paho's client mutex held; may block in the handler (backpressure).
    void on_message(const mqtt::const_message_ptr& message) {
        if (!handler_ || !message) return;
        try {
            const std::string& payload = message->get_payload();
            handler_(message->get_topic(), std::span<const std::uint8_t>(
                                               reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
        } catch (const std::exception& e) {
            // An exception must not unwind into Paho's C thread.
            log_.error("message handler failed for {}: {}", message->get_topic(), e.what());
        }
    }

    const MqttSettings settings_;
    Logger& log_;
    std::atomic<bool> subscribed_{false};
    std::atomic<bool> connected_{false};
    mqtt::async_client client_;
    mqtt::connect_options options_;
    SubscribeListener subscribe_listener_;
    MessageHandler handler_;

    std::thread connector_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool stopped_ = false;

    // Acks waiting for the sender thread, newest per topic. Never held while calling Paho.
    std::thread sender_;
    std::mutex outbox_mutex_;
    std::condition_variable outbox_cv_;
    std::map<std::string, std::vector<std::uint8_t>> outbox_;
    bool outbox_closed_ = false;
};

PahoBrokerLink::PahoBrokerLink(const MqttSettings& settings, Logger& log) {
    try {
        impl_ = std::make_unique<Impl>(settings, log);
    } catch (const mqtt::exception& e) {
        throw std::runtime_error("cannot create an MQTT client for '" + settings.broker_uri + "' with id '" +
                                 settings.client_id + "': " + e.what());
    }
}

PahoBrokerLink::~PahoBrokerLink() = default;

void PahoBrokerLink::set_message_handler(MessageHandler handler) { impl_->set_message_handler(std::move(handler)); }
void PahoBrokerLink::start() { impl_->start(); }
void PahoBrokerLink::stop() { impl_->stop(); }
bool PahoBrokerLink::publish(const std::string& topic, std::span<const std::uint8_t> payload) {
    return impl_->publish(topic, payload);
}
bool PahoBrokerLink::connected() const { return impl_->connected(); }
bool PahoBrokerLink::subscribed() const { return impl_->subscribed(); }

}  // namespace fieldlink::gateway
