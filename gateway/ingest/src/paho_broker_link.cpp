#include "fieldlink/gateway/ingest/paho_broker_link.hpp"

#include "fieldlink/gateway/ingest/ack_outbox.hpp"
#include "fieldlink/gateway/ingest/broker_uri.hpp"
#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"

#include <mqtt/async_client.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fieldlink::gateway {
namespace {

constexpr int kSubscriptionQos = 1;
constexpr int kTelemetryQos = 0;
constexpr int kAckQos = 0;
// Acks Paho may hold unsent (its default is 100). More only wait in our outbox,
// coalesced per device; send_acks() waits for Paho to write before adding more.
constexpr int kPahoQueuedAcks = 1024;

// Logs the outcome of the SUBSCRIBE sent after each (re)connect.
class SubscribeListener final : public mqtt::iaction_listener {
public:
    SubscribeListener(Logger& log, std::atomic<bool>& subscribed, const std::function<void()>& on_subscribed)
        : log_(log), subscribed_(subscribed), on_subscribed_(on_subscribed) {}

    void on_success(const mqtt::token&) override {
        subscribed_ = true;
        log_.info("subscribed to {} and {} (QoS {}) and {} (QoS {})", kUpSubscription, kStatusSubscription,
                  kSubscriptionQos, kTelemetrySubscription, kTelemetryQos);
        if (on_subscribed_) on_subscribed_();
    }
    void on_failure(const mqtt::token& token) override {
        log_.error(
            "subscribing to {}, {} and {} failed (return code {}); nothing will be received until the next "
            "reconnect",
            kUpSubscription, kStatusSubscription, kTelemetrySubscription, token.get_return_code());
    }

private:
    Logger& log_;
    std::atomic<bool>& subscribed_;
    const std::function<void()>& on_subscribed_;
};

// Empty when `path` opens and has a first byte; else why not, naming `key`.
std::string unreadable(const char* key, const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::string("mqtt.") + key + " '" + path + "' cannot be read: " + std::strerror(errno);
    char byte = 0;
    const ssize_t got = ::read(fd, &byte, 1);
    const int error = errno;
    ::close(fd);
    if (got < 0) return std::string("mqtt.") + key + " '" + path + "' cannot be read: " + std::strerror(error);
    if (got == 0) return std::string("mqtt.") + key + " '" + path + "' is empty";
    return {};
}

}  // namespace

std::string check_mqtt_settings(const MqttSettings& settings) {
    const std::optional<BrokerUri> uri = parse_broker_uri(settings.broker_uri);
    if (!uri) return "mqtt.broker '" + settings.broker_uri + "' is not " + std::string(kBrokerUriExpected);
    // MQTT 3.1.1 sends a password only after a user name (spec 3.1.2.9).
    if (!settings.password.empty() && settings.username.empty()) return "mqtt.password is set without mqtt.username";
    const std::pair<const char*, const std::string*> files[] = {
        {"ca_file", &settings.ca_file}, {"cert_file", &settings.cert_file}, {"key_file", &settings.key_file}};
    for (const auto& [key, path] : files) {
        if (path->empty()) continue;
        if (!uri->tls) {
            return std::string("mqtt.") + key + " is set, but mqtt.broker '" + settings.broker_uri +
                   "' does not use TLS (ssl://, mqtts:// or wss://)";
        }
        if (std::string problem = unreadable(key, *path); !problem.empty()) return problem;
    }
    if (settings.cert_file.empty() != settings.key_file.empty()) {
        return "mqtt.cert_file and mqtt.key_file go together: set both or neither";
    }
    return {};
}

// Threads: Paho's own threads run the callbacks; `connector_` makes the first
// connection; `sender_` hands acks to Paho. Paho C holds its client mutex while
// a message callback runs, and our callback blocks when the saver's queue is
// full. So nothing outside Paho's threads may call into Paho on the hot path:
// publish_ack() only fills the outbox, and connection state is kept in our own flags.
class PahoBrokerLink::Impl {
public:
    Impl(const MqttSettings& settings, Logger& log)
        : settings_(settings),
          log_(log),
          subscribe_listener_(log, subscribed_, on_subscribed_),
          connect_listener_(*this),
          client_(settings.broker_uri, settings.client_id,
                  mqtt::create_options_builder().max_buffered_messages(kPahoQueuedAcks).finalize(),
                  static_cast<mqtt::iclient_persistence*>(nullptr)) {
        options_ = mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_3_1_1)
                       // The broker keeps our subscriptions and queues QoS 1 messages while we are away.
                       .clean_session(false)
                       .keep_alive_interval(settings.keep_alive)
                       .connect_timeout(kConnectTimeout)
                       .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(30))
                       .finalize();
        if (!settings.username.empty()) options_.set_user_name(settings.username);
        if (!settings.password.empty()) options_.set_password(settings.password);
        if (const std::optional<BrokerUri> uri = parse_broker_uri(settings.broker_uri); uri && uri->tls) {
            // No error handler: Paho C++ 1.2 hands the C library a pointer to a
            // temporary copy of these options, which the handler would use later.
            mqtt::ssl_options ssl;
            if (!settings.ca_file.empty()) ssl.set_trust_store(settings.ca_file);
            if (!settings.cert_file.empty()) ssl.set_key_store(settings.cert_file);
            if (!settings.key_file.empty()) ssl.set_private_key(settings.key_file);
            ssl.set_enable_server_cert_auth(true);
            // Paho's "verify": the certificate must name the host we connect to.
            ssl.set_verify(settings.verify_host);
            options_.set_ssl(std::move(ssl));
        }

        client_.set_connected_handler([this](const std::string&) { on_connected(); });
        client_.set_connection_lost_handler([this](const std::string& cause) { on_connection_lost(cause); });
        client_.set_message_callback([this](mqtt::const_message_ptr message) { on_message(message); });
    }

    ~Impl() { stop(); }

    void set_message_handler(MessageHandler handler) {
        std::lock_guard lock(handler_mutex_);
        handler_ = std::move(handler);
    }

    void start() {
        std::lock_guard lock(mutex_);
        if (connector_.joinable() || stopping_) return;
        sender_ = std::thread([this] { send_acks(); });
        connector_ = std::thread([this] { connect_until_connected(); });
    }

    // The order matters: a connect attempt in flight (the first one, or one of
    // Paho's automatic reconnects) keeps Paho from unregistering callbacks, and
    // a callback must never reach the handler once we return (its owner, the
    // saver, may be destroyed next). Never throws.
    void stop() noexcept {
        {
            std::lock_guard lock(mutex_);
            if (stopped_) return;
            stopping_ = true;
            stopped_ = true;
        }
        cv_.notify_all();
        if (connector_.joinable()) connector_.join();
        // The sender hands over what is still in the outbox (if connected), then ends.
        outbox_.close();
        if (sender_.joinable()) sender_.join();
        {
            // Waits for a message callback that is running right now.
            std::lock_guard lock(handler_mutex_);
            handler_ = nullptr;
        }
        try {
            // Paho sends queued QoS 0 messages before the DISCONNECT. While not
            // connected this throws, but it still ends Paho's automatic reconnect.
            client_.disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(5));
            log_.info("disconnected from {}", settings_.broker_uri);
        } catch (const std::exception& e) {
            log_.debug("disconnect from {}: {}", settings_.broker_uri, e.what());
        }
        unregister_callbacks();
    }

    bool publish_ack(const std::string& topic, std::uint64_t incarnation, std::span<const std::uint8_t> payload) {
        return outbox_.put(topic, incarnation, payload);
    }

    bool connected() const { return connected_.load(); }
    bool subscribed() const { return subscribed_.load() && connected_.load(); }
    void set_subscribed_listener(std::function<void()> listener) { on_subscribed_ = std::move(listener); }

private:
    static constexpr auto kConnectTimeout = std::chrono::seconds(5);

    // Learns when a connect attempt ends, for stop(). Paho reuses the first
    // connect's listener for its automatic reconnects, so this hears those too.
    class ConnectListener final : public mqtt::iaction_listener {
    public:
        explicit ConnectListener(Impl& impl) : impl_(impl) {}
        void on_success(const mqtt::token&) override { impl_.connect_attempt_ended(); }
        void on_failure(const mqtt::token&) override { impl_.connect_attempt_ended(); }

    private:
        Impl& impl_;
    };

    bool stopping() {
        std::lock_guard lock(mutex_);
        return stopping_;
    }

    void connect_attempt_ended() {
        {
            std::lock_guard lock(mutex_);
            ++connect_attempts_ended_;
        }
        cv_.notify_all();
    }

    // Paho refuses to unregister callbacks while a connect is in progress. That
    // attempt ends by itself within the connect timeout (the disconnect above
    // stopped further reconnects), so wait for its end, then unregister.
    void unregister_callbacks() noexcept {
        const auto deadline = std::chrono::steady_clock::now() + kConnectTimeout + std::chrono::seconds(5);
        for (;;) {
            std::uint64_t ended = 0;
            {
                std::lock_guard lock(mutex_);
                ended = connect_attempts_ended_;
            }
            try {
                client_.disable_callbacks();
                return;
            } catch (const std::exception& e) {
                if (std::chrono::steady_clock::now() >= deadline) {
                    // The handler is already cleared, so a late callback only logs.
                    log_.warn("cannot unregister the MQTT callbacks of {}: {}", settings_.broker_uri, e.what());
                    return;
                }
            }
            // Woken by the attempt's end; the slice covers an attempt whose end we cannot hear.
            std::unique_lock lock(mutex_);
            cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return connect_attempts_ended_ != ended; });
        }
    }

    // Paho's automatic reconnect only covers a connection that once worked, so
    // the first one is retried here, with backoff, until it succeeds or we stop.
    void connect_until_connected() {
        auto backoff = settings_.connect_retry_min;
        for (int attempt = 1;; ++attempt) {
            if (stopping()) return;
            try {
                mqtt::token_ptr token = client_.connect(options_, nullptr, connect_listener_);
                // Wait in slices so that stop() is never held up by a slow broker
                // (stop() itself waits for the attempt to end before unregistering).
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
    // the outbox and go out after the reconnect. When Paho's own queue is full
    // (a commit that covers more devices than it buffers), it waits for Paho to
    // write what it holds instead of dropping the rest.
    void send_acks() {
        std::uint64_t dropped = 0;
        mqtt::delivery_token_ptr last_sent;
        for (;;) {
            std::vector<OutgoingAck> acks = outbox_.take([this] { return connected_.load(); });
            if (acks.empty()) {
                if (const std::size_t left = outbox_.size(); left > 0) {
                    log_.debug("{} acks not sent: not connected at shutdown", left);
                }
                return;  // closed
            }
            std::size_t next = 0;
            while (next < acks.size()) {
                const OutgoingAck& ack = acks[next];
                try {
                    // May wait for Paho's mutex while a message callback is blocked; the
                    // writer keeps draining the queue meanwhile, so that wait ends.
                    last_sent = client_.publish(ack.topic, ack.payload.data(), ack.payload.size(), kAckQos, false);
                    ++next;
                } catch (const mqtt::exception& e) {
                    const int code = e.get_return_code();
                    if (code == MQTTASYNC_MAX_BUFFERED_MESSAGES && !stopping()) {
                        wait_until_written(last_sent);
                        last_sent.reset();
                        continue;
                    }
                    if (code == MQTTASYNC_DISCONNECTED || !connected_) {
                        // Sent after the reconnect, unless a newer ack replaces it meanwhile.
                        outbox_.give_back(std::vector<OutgoingAck>(std::make_move_iterator(acks.begin() + next),
                                                                   std::make_move_iterator(acks.end())));
                        pause(std::chrono::milliseconds(100));
                        break;
                    }
                    // Dropped: the device re-sends and a later commit acks it again.
                    if (++dropped <= 3 || dropped % 100 == 0) {
                        log_.warn("cannot publish the commit ack to {} ({} dropped so far): {}", ack.topic, dropped,
                                  e.what());
                    }
                    ++next;
                }
            }
        }
    }

    // Until Paho has written `token`'s message (and so everything queued before
    // it), the link is lost or stop() is called. Without a token to wait for, waits a little.
    void wait_until_written(const mqtt::delivery_token_ptr& token) {
        if (!token) {
            pause(std::chrono::milliseconds(10));
            return;
        }
        try {
            while (!token->wait_for(std::chrono::milliseconds(200))) {
                if (stopping() || !connected_) return;
            }
        } catch (const mqtt::exception&) {
            // That publish failed (the link went down); the caller's next publish says how.
        }
    }

    void pause(std::chrono::milliseconds how_long) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, how_long, [this] { return stopping_; });
    }

    void on_connected() {
        subscribed_ = false;
        connected_ = true;
        outbox_.notify();
        if (stopping()) return;  // stop() disconnects; nothing to subscribe
        log_.info("connected to {} as '{}'{} (persistent session)", settings_.broker_uri, settings_.client_id,
                  settings_.username.empty() ? std::string() : " with user '" + settings_.username + "'");
        if (const auto port = plain_tcp_port(settings_.broker_uri)) {
            log_.debug("TCP_NODELAY set on {} socket(s) to port {}", set_nodelay_to_peer_port(*port), *port);
        }
        try {
            auto topics =
                mqtt::string_collection::create({kUpSubscription, kStatusSubscription, kTelemetrySubscription});
            client_.subscribe(topics,
                              mqtt::iasync_client::qos_collection{kSubscriptionQos, kSubscriptionQos, kTelemetryQos},
                              nullptr, subscribe_listener_);
        } catch (const mqtt::exception& e) {
            log_.error("cannot subscribe after connecting: {}", e.what());
        }
    }

    void on_connection_lost(const std::string& cause) {
        subscribed_ = false;
        connected_ = false;
        outbox_.notify();
        if (stopping()) return;
        log_.warn("lost the connection to {}{}{}; reconnecting", settings_.broker_uri, cause.empty() ? "" : ": ",
                  cause);
    }

    // Runs on Paho's thread with Paho's client mutex held; may block in the handler (backpressure).
    void on_message(const mqtt::const_message_ptr& message) {
        std::lock_guard lock(handler_mutex_);
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
    std::function<void()> on_subscribed_;  // set before start(), then only read
    std::atomic<bool> connected_{false};
    mqtt::connect_options options_;
    SubscribeListener subscribe_listener_;
    ConnectListener connect_listener_;

    // Held while the handler runs; stop() takes it to clear the handler.
    std::mutex handler_mutex_;
    MessageHandler handler_;

    std::thread connector_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool stopped_ = false;
    std::uint64_t connect_attempts_ended_ = 0;

    std::thread sender_;
    AckOutbox outbox_;

    // Last, so it is destroyed first: no Paho callback can outlive the members above.
    mqtt::async_client client_;
};

PahoBrokerLink::PahoBrokerLink(const MqttSettings& settings, Logger& log) {
    if (std::string problem = check_mqtt_settings(settings); !problem.empty()) throw std::runtime_error(problem);
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
bool PahoBrokerLink::publish_ack(const std::string& topic, std::uint64_t incarnation,
                                 std::span<const std::uint8_t> payload) {
    return impl_->publish_ack(topic, incarnation, payload);
}
bool PahoBrokerLink::connected() const { return impl_->connected(); }
bool PahoBrokerLink::subscribed() const { return impl_->subscribed(); }

void PahoBrokerLink::set_subscribed_listener(std::function<void()> listener) {
    impl_->set_subscribed_listener(std::move(listener));
}

}  // namespace fieldlink::gateway
