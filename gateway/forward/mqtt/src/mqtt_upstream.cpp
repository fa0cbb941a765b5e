#include "fieldlink/gateway/forward/mqtt/mqtt_upstream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <mqtt/async_client.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fieldlink/gateway/ingest/broker_uri.hpp"
#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"

namespace fieldlink::gateway {
namespace {

using namespace std::chrono_literals;

// close() lets outstanding chunks be confirmed for this long before the DISCONNECT.
constexpr auto kCloseGrace = 1000ms;
// Beyond Paho's own timeouts, so that a wait of ours never ends before Paho's does.
constexpr auto kPahoMargin = 5s;
// MQTT 5 session expiry with clean_session = false. A publisher's session holds
// almost nothing at the broker; a week outlasts any outage worth resuming.
constexpr int kSessionExpiryS = 7 * 24 * 3600;
// Paho counts the publishes waiting behind max_inflight against the client's
// maxBufferedMessages (default 100) even while connected, and refuses more.
// What we queue is bounded by the window, so Paho gets no limit of its own.
constexpr int kPahoQueueLimit = std::numeric_limits<int>::max();

// Clients of earlier connections kept alive (see drop_connection()).
constexpr std::size_t kRetiredClients = 4;

constexpr std::string_view kGatewayPlaceholder = "{gateway}";
constexpr std::string_view kDevicePlaceholder = "{device}";

// A topic template cut at its placeholders.
struct TopicPart {
    enum class Kind { Text, Gateway, Device } kind = Kind::Text;
    std::string text;  // Text only
};

// Parses `topic`; the error names what is wrong.
std::optional<std::string> parse_topic_template(std::string_view topic, std::vector<TopicPart>* parts) {
    if (topic.empty()) return "topic is empty";
    std::vector<TopicPart> out;
    std::string text;
    for (std::size_t at = 0; at < topic.size();) {
        const char c = topic[at];
        if (c == '+' || c == '#') {
            return fmt::format("topic '{}' contains the MQTT wildcard '{}', which cannot be published to", topic, c);
        }
        if (c == '\0') return fmt::format("topic '{}' contains a NUL character", topic);
        if (c == '}') return fmt::format("topic '{}' has a '}}' without its '{{'", topic);
        if (c != '{') {
            text += c;
            ++at;
            continue;
        }
        const std::size_t close = topic.find('}', at);
        if (close == std::string_view::npos) return fmt::format("topic '{}' has a '{{' without its '}}'", topic);
        const std::string_view placeholder = topic.substr(at, close - at + 1);
        TopicPart part;
        if (placeholder == kGatewayPlaceholder) {
            part.kind = TopicPart::Kind::Gateway;
        } else if (placeholder == kDevicePlaceholder) {
            part.kind = TopicPart::Kind::Device;
        } else {
            return fmt::format("topic '{}' has the unknown placeholder '{}' (only {} and {} are filled in)", topic,
                               placeholder, kGatewayPlaceholder, kDevicePlaceholder);
        }
        if (!text.empty()) out.push_back({TopicPart::Kind::Text, std::move(text)});
        text.clear();
        out.push_back(std::move(part));
        at = close + 1;
    }
    if (!text.empty()) out.push_back({TopicPart::Kind::Text, std::move(text)});
    if (parts != nullptr) *parts = std::move(out);
    return std::nullopt;
}

// Whether the file can be opened and has a first byte; the error names `key` and `path`.
std::optional<std::string> unreadable_file(std::string_view key, const std::string& path) {
    if (path.empty()) return fmt::format("{} is empty", key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fmt::format("{} '{}' cannot be read: {}", key, path, std::generic_category().message(errno));
    }
    char byte = 0;
    const ssize_t got = ::read(fd, &byte, 1);
    const int error = errno;
    ::close(fd);
    if (got < 0) return fmt::format("{} '{}' cannot be read: {}", key, path, std::generic_category().message(error));
    if (got == 0) return fmt::format("{} '{}' is empty", key, path);
    return std::nullopt;
}

bool uses_tls(const std::string& uri) {
    const std::optional<BrokerUri> parsed = parse_broker_uri(uri);
    return parsed && parsed->tls;
}

// CONNACK codes that no retry fixes: the broker refused who we are or what we may do.
bool refused_for_good(int mqtt_version, int code) {
    if (mqtt_version == 5) {
        switch (code) {
            case 0x84:  // unsupported protocol version
            case 0x85:  // client identifier not valid
            case 0x86:  // bad user name or password
            case 0x87:  // not authorized
            case 0x8A:  // banned
            case 0x8C:  // bad authentication method
                return true;
            default: return false;
        }
    }
    // 3.1.1: 1 unacceptable protocol version, 2 identifier rejected, 4 bad user name or password, 5 not authorised.
    return code == 1 || code == 2 || code == 4 || code == 5;
}

std::string_view connack_v3_text(int code) {
    switch (code) {
        case 1: return "unacceptable protocol version";
        case 2: return "identifier rejected";
        case 3: return "server unavailable";
        case 4: return "bad user name or password";
        case 5: return "not authorised";
        default: return "unknown return code";
    }
}

// What a failed connect says, for UpstreamError. Paho reports a refused
// CONNACK as the return code itself (3.1.1: 1..5, 5: the reason code >= 0x80).
std::string describe_connect_failure(int mqtt_version, const mqtt::exception& e) {
    const int rc = e.get_return_code();
    if (mqtt_version != 5 && rc >= 1 && rc <= 5) {
        return fmt::format("the broker refused the connection: CONNACK return code {} ({})", rc, connack_v3_text(rc));
    }
    if (mqtt_version == 5 && rc >= 0x80 && rc <= 0xFF) {
        return fmt::format("the broker refused the connection: CONNACK reason code {:#04x} ({})", rc,
                           mqtt::exception::reason_code_str(rc));
    }
    // Paho's own failures: a generic code (-1 "Failure") with the detail in the message.
    const std::string text = rc == MQTTASYNC_FAILURE ? std::string() : mqtt::exception::error_str(rc);
    const std::string detail = e.get_message();
    std::string what;
    if (!text.empty() && !detail.empty() && detail != text) {
        what = fmt::format("{}: {}", text, detail);
    } else {
        what = !detail.empty() ? detail : !text.empty() ? text : std::string(e.what());
    }
    return fmt::format("{} (Paho return code {})", what, rc);
}

// Why a publish failed, from its token: an MQTT 5 PUBACK reason, or Paho's code.
std::string describe_publish_failure(const mqtt::token& token) {
    const int reason = static_cast<int>(token.get_reason_code());
    if (reason >= 0x80 && reason != mqtt::MQTTPP_V3_CODE) {
        return fmt::format("the broker answered PUBACK reason code {:#04x} ({})", reason,
                           mqtt::exception::reason_code_str(reason));
    }
    const int rc = token.get_return_code();
    if (rc == MQTTASYNC_FAILURE) return "the connection failed while it was being sent";
    const std::string text = mqtt::exception::error_str(rc);
    return fmt::format("{} (Paho return code {})", text.empty() ? "failed" : text, rc);
}

}  // namespace

std::optional<std::string> MqttUpstream::validate(const MqttUpstreamSettings& s) {
    if (s.name.empty()) return "name is empty";
    const std::optional<BrokerUri> uri = parse_broker_uri(s.uri);
    if (!uri) return fmt::format("uri '{}' is not {}", s.uri, kBrokerUriExpected);
    if (s.client_id.empty()) return "client_id is empty";
    if (s.client_id.size() > 65535) return "client_id is longer than MQTT's 65535 bytes";
    if (!is_valid_gateway_id(s.gateway_id)) {
        return fmt::format("gateway_id '{}' is not 1 to {} characters of A-Z a-z 0-9 _ -", s.gateway_id,
                           kMaxGatewayIdLength);
    }
    if (auto error = parse_topic_template(s.topic, nullptr)) return error;
    if (s.mqtt_version != 3 && s.mqtt_version != 5) {
        return fmt::format("mqtt_version {} is neither 3 (MQTT 3.1.1) nor 5", s.mqtt_version);
    }
    if (s.keep_alive_s < 1 || s.keep_alive_s > 65535) {
        return fmt::format("keep_alive_s {} is outside 1..65535", s.keep_alive_s);
    }
    if (s.connect_timeout_s < 1 || s.connect_timeout_s > 3600) {
        return fmt::format("connect_timeout_s {} is outside 1..3600", s.connect_timeout_s);
    }
    if (s.password && !s.username && s.mqtt_version != 5) {
        return "password is set without a username, which MQTT 3.1.1 does not allow";
    }
    const std::pair<std::string_view, const std::optional<std::string>*> files[] = {
        {"ca_file", &s.ca_file}, {"cert_file", &s.cert_file}, {"key_file", &s.key_file}};
    for (const auto& [key, path] : files) {
        if (!path->has_value()) continue;
        if (!uri->tls) {
            return fmt::format("{} is set, but uri '{}' does not use TLS (ssl://, mqtts:// or wss://)", key, s.uri);
        }
        if (auto error = unreadable_file(key, **path)) return error;
    }
    if (s.key_file && !s.cert_file) return "key_file is set without cert_file";
    if (s.zstd_level < 0 || s.zstd_level > 19) {
        return fmt::format("zstd_level {} is outside 0 (no compression) .. 19", s.zstd_level);
    }
    if (s.window < 1) return "window must be at least 1";
    if (s.max_inflight < 1 || s.max_inflight > 65535) {
        return fmt::format("max_inflight {} is outside 1..65535", s.max_inflight);
    }
    if (s.max_batch_rows < 1 || s.max_batch_rows > kMaxForwardRecords) {
        return fmt::format("max_batch_rows {} is outside 1..{}", s.max_batch_rows, kMaxForwardRecords);
    }
    return std::nullopt;
}

// Threads:
//  - the forwarder thread calls connect/send/close and alone owns `client_`;
//  - Paho's threads run the publish listener and the connection-lost handler,
//    with Paho's client mutex held; they only take `mutex_` for a moment;
//  - our completion thread calls the `done`s, so no user code ever runs
//    inside Paho (where it could deadlock against a publish) or inside send().
// Lock order: nothing calls into Paho while holding `mutex_`.
//
// Each connect() makes a new Paho client. The previous one, with whatever it
// still held (unacknowledged or queued publishes), is destroyed first, so a
// connection never replays an older connection's messages (the forwarder
// resends those chunks itself) and never reports on them.
class MqttUpstream::Impl {
public:
    explicit Impl(MqttUpstreamSettings settings) : settings_(std::move(settings)), listener_(*this) {
        if (auto error = validate(settings_))
            throw std::invalid_argument(fmt::format("upstream '{}': {}", settings_.name, *error));
        parse_topic_template(settings_.topic, &topic_);
        tls_ = uses_tls(settings_.uri);
        completer_ = std::thread([this] { run_completions(); });
    }

    ~Impl() {
        close();
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (completer_.joinable()) completer_.join();
    }

    const MqttUpstreamSettings& settings() const noexcept { return settings_; }
    bool connected() const { return connected_.load(); }
    std::size_t window() const { return settings_.window; }

    void connect() {
        drop_connection("the connection was replaced by a new connect()", 0ms);
        std::uint64_t generation = 0;
        {
            std::lock_guard lock(mutex_);
            generation = ++generation_;
            lost_ = false;
        }
        try {
            const int version = settings_.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
            client_ = std::make_unique<mqtt::async_client>(settings_.uri, settings_.client_id,
                                                           mqtt::create_options_builder()
                                                               .mqtt_version(version)
                                                               .send_while_disconnected(false)
                                                               .max_buffered_messages(kPahoQueueLimit)
                                                               .finalize(),
                                                           static_cast<mqtt::iclient_persistence*>(nullptr));
            client_->set_connection_lost_handler(
                [this, generation](const std::string& cause) { on_connection_lost(generation, cause); });
            // An MQTT 5 broker may end the connection with a DISCONNECT of its own
            // (session taken over, shutting down, ...); Paho then reports no loss.
            client_->set_disconnected_handler([this, generation](const mqtt::properties&, mqtt::ReasonCode reason) {
                on_disconnected_by_broker(generation, static_cast<int>(reason));
            });
        } catch (const mqtt::exception& e) {
            client_.reset();
            throw UpstreamError(fmt::format("cannot create an MQTT client for {} with id '{}': {}", settings_.uri,
                                            settings_.client_id, e.what()),
                                false);
        }

        const auto limit = std::chrono::seconds(settings_.connect_timeout_s) + kPahoMargin;
        try {
            connect_token_ = client_->connect(connect_options());
            if (!connect_token_->wait_for(limit)) {
                throw UpstreamError(fmt::format("cannot connect to {} as '{}': no answer within {} s", settings_.uri,
                                                settings_.client_id, settings_.connect_timeout_s));
            }
        } catch (const mqtt::exception& e) {
            connect_token_.reset();
            const bool for_good = refused_for_good(settings_.mqtt_version, e.get_return_code());
            std::string what = fmt::format("cannot connect to {} as '{}': {}", settings_.uri, settings_.client_id,
                                           describe_connect_failure(settings_.mqtt_version, e));
            if (tls_ && e.get_return_code() == MQTTASYNC_FAILURE) {
                what +=
                    "; with TLS this is also how a server certificate that does not verify against ca_file or "
                    "does not name the host, or a refused client certificate, shows (Paho gives no detail)";
            }
            throw UpstreamError(what, !for_good);
        }
        connect_token_.reset();
        {
            std::lock_guard lock(mutex_);
            if (lost_) {
                throw UpstreamError(
                    fmt::format("the connection to {} was lost right after it was made", settings_.uri));
            }
            connected_ = true;
        }
        // Nagle would hold each small publish until the previous segment's
        // delayed ACK arrives. Paho does not expose its socket (see tcp_nodelay.hpp).
        if (const std::optional<BrokerUri> uri = parse_broker_uri(settings_.uri)) set_nodelay_to_peer_port(uri->port);
    }

    void send(Chunk chunk, Done done) {
        if (!done) done = [](ChunkResult) {};
        {
            std::lock_guard lock(mutex_);
            if (!connected_ || !client_) {
                complete_locked(std::move(done), failed(fmt::format("not connected to {}", settings_.uri)));
                return;
            }
            if (outstanding_.size() >= settings_.window) {
                complete_locked(std::move(done), failed(fmt::format("{} chunks are outstanding already (the window)",
                                                                    settings_.window)));
                return;
            }
        }

        std::vector<Message> messages;
        try {
            messages = encode(std::move(chunk.rows));
        } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            connected_ = false;  // a failed chunk, as the interface counts it
            complete_locked(std::move(done),
                            failed(fmt::format("chunk {} cannot be encoded: {}", chunk.sequence, e.what())));
            return;
        }

        std::uintptr_t tag = 0;
        {
            std::lock_guard lock(mutex_);
            if (messages.empty()) {
                ChunkResult empty;
                empty.confirmed = true;
                complete_locked(std::move(done), std::move(empty));
                return;
            }
            if (!connected_) {  // lost meanwhile
                complete_locked(std::move(done), failed(fmt::format("not connected to {}", settings_.uri)));
                return;
            }
            tag = next_tag_++;
            Outstanding& entry = outstanding_[tag];
            entry.done = std::move(done);
            entry.unacked = messages.size();
        }

        for (Message& message : messages) {
            const std::size_t size = message.payload.size();
            {
                std::lock_guard lock(mutex_);
                const auto it = outstanding_.find(tag);
                if (it == outstanding_.end()) return;  // already ended (the connection was lost)
                // Counted before the publish: its PUBACK may come before publish() returns.
                it->second.result.bytes_sent += size;
                it->second.result.batches += 1;
            }
            try {
                // Outside `mutex_`: publish() takes Paho's client mutex, which
                // Paho holds while our listener waits for `mutex_`.
                client_->publish(mqtt::message::create(message.topic, std::move(message.payload), kQos, false),
                                 reinterpret_cast<void*>(tag), listener_);
            } catch (const mqtt::exception& e) {
                std::lock_guard lock(mutex_);
                const auto it = outstanding_.find(tag);
                if (it == outstanding_.end()) return;
                it->second.result.bytes_sent -= size;
                it->second.result.batches -= 1;
                connected_ = false;
                finish_locked(it,
                              fmt::format("cannot publish to '{}' on {}: {}", message.topic, settings_.uri, e.what()));
                return;
            }
        }
    }

    void close() noexcept {
        drop_connection("the upstream was closed", kCloseGrace);
        wait_for_completions();
    }

private:
    static constexpr int kQos = MqttUpstreamSettings::qos;

    struct Message {
        std::string topic;
        std::string payload;
    };

    struct Outstanding {
        Done done;
        std::size_t unacked = 0;  // PUBACKs still to come
        ChunkResult result;
    };

    struct Completion {
        Done done;
        ChunkResult result;
    };

    // Hears how each publish ended; the user context is the chunk's tag (a
    // number, never a pointer, so a late answer for an ended chunk finds nothing).
    class PublishListener final : public mqtt::iaction_listener {
    public:
        explicit PublishListener(Impl& impl) : impl_(impl) {}
        void on_success(const mqtt::token& token) override { impl_.on_publish_acked(tag_of(token)); }
        void on_failure(const mqtt::token& token) override { impl_.on_publish_failed(tag_of(token), token); }

    private:
        static std::uintptr_t tag_of(const mqtt::token& token) {
            return reinterpret_cast<std::uintptr_t>(token.get_user_context());
        }
        Impl& impl_;
    };

    static ChunkResult failed(std::string error) {
        ChunkResult result;
        result.error = std::move(error);
        return result;
    }

    mqtt::connect_options connect_options() const {
        mqtt::connect_options options;
        // Version first: Paho clears the flag of the other version when it is set.
        if (settings_.mqtt_version == 5) {
            options.set_mqtt_version(MQTTVERSION_5);
            options.set_clean_start(settings_.clean_session);
            if (!settings_.clean_session) {
                options.set_properties(mqtt::properties{{mqtt::property::SESSION_EXPIRY_INTERVAL, kSessionExpiryS}});
            }
        } else {
            options.set_mqtt_version(MQTTVERSION_3_1_1);
            options.set_clean_session(settings_.clean_session);
        }
        options.set_keep_alive_interval(settings_.keep_alive_s);
        options.set_connect_timeout(settings_.connect_timeout_s);
        options.set_automatic_reconnect(false);
        options.set_max_inflight(settings_.max_inflight);
        if (settings_.username) options.set_user_name(*settings_.username);
        if (settings_.password) options.set_password(*settings_.password);
        if (tls_) {
            // No error handler: Paho C++ 1.2 hands the C library a pointer to a
            // temporary copy of these options, which the handler would use later.
            mqtt::ssl_options ssl;
            if (settings_.ca_file) ssl.set_trust_store(*settings_.ca_file);
            if (settings_.cert_file) ssl.set_key_store(*settings_.cert_file);
            if (settings_.key_file) ssl.set_private_key(*settings_.key_file);
            ssl.set_enable_server_cert_auth(true);
            ssl.set_verify(settings_.verify_host);
            options.set_ssl(std::move(ssl));
        }
        return options;
    }

    std::string topic_for(std::string_view device) const {
        std::string topic;
        for (const TopicPart& part : topic_) {
            switch (part.kind) {
                case TopicPart::Kind::Text: topic += part.text; break;
                case TopicPart::Kind::Gateway: topic += settings_.gateway_id; break;
                case TopicPart::Kind::Device: topic += device; break;
            }
        }
        return topic;
    }

    // Per-device batches in order of each device's first row, rows in their
    // order within a device, at most max_batch_rows each.
    std::vector<Message> encode(std::vector<ForwardRow> rows) const {
        std::vector<std::pair<std::string, std::vector<ForwardRow>>> devices;
        std::unordered_map<std::string, std::size_t> index;
        for (ForwardRow& row : rows) {
            const auto [it, added] = index.try_emplace(row.device, devices.size());
            if (added) devices.emplace_back(row.device, std::vector<ForwardRow>{});
            devices[it->second].second.push_back(std::move(row));
        }
        std::vector<Message> messages;
        for (const auto& [device, device_rows] : devices) {
            const std::string topic = topic_for(device);
            const std::span<const ForwardRow> all(device_rows);
            for (std::size_t first = 0; first < all.size(); first += settings_.max_batch_rows) {
                encode_within_limit(topic, device,
                                    all.subspan(first, std::min(settings_.max_batch_rows, all.size() - first)),
                                    messages);
            }
        }
        return messages;
    }

    // One message, or halves of the rows until each payload fits max_message_bytes:
    // a broker drops the connection on a packet above its limit, and the same
    // chunk would then fail forever.
    void encode_within_limit(const std::string& topic, const std::string& device, std::span<const ForwardRow> batch,
                             std::vector<Message>& messages) const {
        std::vector<std::uint8_t> payload =
            encode_forward_batch(settings_.encoding, settings_.gateway_id, device, batch);
        if (settings_.zstd_level > 0) payload = zstd_compress(payload, settings_.zstd_level);
        if (payload.size() > settings_.max_message_bytes && batch.size() > 1) {
            const std::size_t half = batch.size() / 2;
            encode_within_limit(topic, device, batch.first(half), messages);
            encode_within_limit(topic, device, batch.subspan(half), messages);
            return;
        }
        messages.push_back({topic, std::string(payload.begin(), payload.end())});
    }

    // Ends the chunk (failed when `error` is set) and hands its `done` to the completion thread.
    void finish_locked(std::map<std::uintptr_t, Outstanding>::iterator it, std::optional<std::string> error) {
        Outstanding entry = std::move(it->second);
        outstanding_.erase(it);
        entry.result.confirmed = !error;
        if (error) entry.result.error = std::move(*error);
        complete_locked(std::move(entry.done), std::move(entry.result));
    }

    void complete_locked(Done done, ChunkResult result) {
        completions_.push_back({std::move(done), std::move(result)});
        cv_.notify_all();
    }

    void fail_all_locked(const std::string& error) {
        while (!outstanding_.empty()) finish_locked(outstanding_.begin(), error);
    }

    // Paho's thread. Never throws.
    void on_publish_acked(std::uintptr_t tag) noexcept {
        try {
            std::lock_guard lock(mutex_);
            const auto it = outstanding_.find(tag);
            if (it == outstanding_.end()) return;  // ended before: lost connection, failed sibling, close
            if (--it->second.unacked == 0) finish_locked(it, std::nullopt);
        } catch (...) {
            // Only allocation can fail here; nothing may unwind into Paho.
        }
    }

    // Paho's thread. Never throws.
    void on_publish_failed(std::uintptr_t tag, const mqtt::token& token) noexcept {
        try {
            std::string topic;
            if (const auto* delivery = dynamic_cast<const mqtt::delivery_token*>(&token)) {
                if (const auto message = delivery->get_message()) topic = message->get_topic();
            }
            const std::string why = describe_publish_failure(token);
            std::lock_guard lock(mutex_);
            const auto it = outstanding_.find(tag);
            if (it == outstanding_.end()) return;
            connected_ = false;
            finish_locked(it, fmt::format("publishing to '{}' on {} failed: {}", topic, settings_.uri, why));
        } catch (...) {
        }
    }

    // Paho's thread. Never throws.
    void on_connection_lost(std::uint64_t generation, const std::string& cause) noexcept {
        try {
            std::lock_guard lock(mutex_);
            if (generation != generation_) return;  // an older client's
            lost_ = true;
            connected_ = false;
            fail_all_locked(
                fmt::format("lost the connection to {}{}{}", settings_.uri, cause.empty() ? "" : ": ", cause));
        } catch (...) {
        }
    }

    // Paho's thread. Never throws.
    void on_disconnected_by_broker(std::uint64_t generation, int reason) noexcept {
        try {
            on_connection_lost(generation, fmt::format("the broker sent DISCONNECT with reason code {:#04x} ({})",
                                                       reason, mqtt::exception::reason_code_str(reason)));
        } catch (...) {
        }
    }

    // Forwarder thread: ends the current connection and destroys its client.
    // Outstanding chunks get up to `grace` to be confirmed; those still
    // outstanding then end with `why`.
    void drop_connection(std::string_view why, std::chrono::milliseconds grace) noexcept {
        std::unique_ptr<mqtt::async_client> client = std::move(client_);
        connected_ = false;
        if (client) {
            try {
                if (grace > 0ms && client->is_connected()) {
                    // Woken by every chunk that ends, the lost connection included.
                    std::unique_lock lock(mutex_);
                    cv_.wait_for(lock, grace, [this] { return outstanding_.empty() || lost_; });
                }
                if (client->is_connected()) {
                    // Timeout 0: DISCONNECT at once. When the connection drops
                    // meanwhile Paho never ends the token, so stop waiting once
                    // it no longer counts as connected.
                    const mqtt::token_ptr token = client->disconnect(0);
                    const auto deadline = std::chrono::steady_clock::now() + kPahoMargin;
                    while (!token->wait_for(20ms)) {
                        if (!client->is_connected() || std::chrono::steady_clock::now() >= deadline) break;
                    }
                }
            } catch (const std::exception&) {
                // Lost meanwhile: nothing to disconnect.
            }
            if (connect_token_) {
                // A connect that outlived our wait: Paho ends it by its own timeout.
                try {
                    connect_token_->wait_for(std::chrono::seconds(settings_.connect_timeout_s) + kPahoMargin);
                } catch (const std::exception&) {
                }
                connect_token_.reset();
            }
        }
        try {
            std::lock_guard lock(mutex_);
            ++generation_;  // a connection-lost report from here on is about the old client
            fail_all_locked(std::string(why));
        } catch (...) {
        }
        if (!client) return;
        try {
            client->disable_callbacks();
        } catch (const std::exception&) {
            // Only refused while a connect is pending; destroying the client ends that too.
        }
        // Destroyed a few connections later, not now: destroying a Paho C 1.3 client
        // right after its connection broke crashed Paho's shared send thread
        // (MqttUpstreamBrokerKill, about one run in two under load). A retired client
        // is disconnected, its callbacks are off, and a late report about it is
        // ignored (generation_); MQTTAsync_destroy, when it comes, takes the mutex
        // Paho holds while it calls us back.
        retired_.push_back(std::move(client));
        while (retired_.size() > kRetiredClients) retired_.pop_front();
    }

    void run_completions() {
        std::unique_lock lock(mutex_);
        for (;;) {
            cv_.wait(lock, [this] { return stopping_ || !completions_.empty(); });
            if (completions_.empty()) return;  // stopping, and everything delivered
            Completion completion = std::move(completions_.front());
            completions_.pop_front();
            completing_ = true;
            lock.unlock();
            try {
                completion.done(std::move(completion.result));
            } catch (...) {
                // `done` must not throw; nothing else is ours to do about it.
            }
            completion = {};  // whatever `done` captured goes before we report it finished
            lock.lock();
            completing_ = false;
            cv_.notify_all();
        }
    }

    // Returns when every `done` handed over so far has returned (at once on the
    // completion thread itself, where that cannot be waited for).
    void wait_for_completions() noexcept {
        if (std::this_thread::get_id() == completer_.get_id()) return;
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return completions_.empty() && !completing_; });
    }

    const MqttUpstreamSettings settings_;
    std::vector<TopicPart> topic_;
    bool tls_ = false;
    std::atomic<bool> connected_{false};

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::map<std::uintptr_t, Outstanding> outstanding_;  // by tag
    std::uintptr_t next_tag_ = 1;
    std::uint64_t generation_ = 0;  // of the current client
    bool lost_ = false;             // the current client's connection was lost
    std::deque<Completion> completions_;
    bool completing_ = false;
    bool stopping_ = false;

    PublishListener listener_;
    std::thread completer_;
    mqtt::token_ptr connect_token_;                            // only while a connect has not ended
    std::deque<std::unique_ptr<mqtt::async_client>> retired_;  // forwarder thread; see drop_connection()
    // Last, so it is destroyed first (close() has normally retired it already).
    std::unique_ptr<mqtt::async_client> client_;
};

MqttUpstream::MqttUpstream(MqttUpstreamSettings settings) : impl_(std::make_unique<Impl>(std::move(settings))) {}
MqttUpstream::~MqttUpstream() = default;

const std::string& MqttUpstream::name() const { return impl_->settings().name; }
void MqttUpstream::connect() { impl_->connect(); }
bool MqttUpstream::connected() const { return impl_->connected(); }
void MqttUpstream::send(Chunk chunk, Done done) { impl_->send(std::move(chunk), std::move(done)); }
std::size_t MqttUpstream::window() const { return impl_->window(); }
void MqttUpstream::close() noexcept { impl_->close(); }
const MqttUpstreamSettings& MqttUpstream::settings() const noexcept { return impl_->settings(); }

}  // namespace fieldlink::gateway
