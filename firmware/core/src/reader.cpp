#include "fieldlink/reader/reader.hpp"

#include <cstring>

namespace fieldlink::reader {
namespace {

mqtt::SessionConfig session_config(const ReaderConfig& config) noexcept {
    mqtt::SessionConfig session;
    session.response_timeout_ms = config.connect_timeout_ms;
    session.send_timeout_ms = config.send_timeout_ms;
    return session;
}

}  // namespace

const char* to_string(ReaderStatus status) noexcept {
    switch (status) {
        case ReaderStatus::Ok: return "ok";
        case ReaderStatus::InvalidConfig: return "invalid_config";
        case ReaderStatus::BufferTooSmall: return "buffer_too_small";
    }
    return "unknown";
}

const char* to_string(LinkState state) noexcept {
    switch (state) {
        case LinkState::Offline: return "offline";
        case LinkState::AwaitConnack: return "await_connack";
        case LinkState::AwaitSuback: return "await_suback";
        case LinkState::Ready: return "ready";
    }
    return "unknown";
}

Reader::Reader(const ReaderConfig& config, ReadingStore& store, hal::Transport& transport, hal::Clock& clock,
               hal::Random& random, hal::Sensors& sensors, ReaderBuffers buffers, ReaderEvents* events) noexcept
    : config_(config),
      store_(store),
      transport_(transport),
      clock_(clock),
      random_(random),
      buffers_(buffers),
      events_(events),
      session_(transport, clock, buffers.mqtt_tx, buffers.mqtt_rx, session_config(config)),
      backoff_(config.backoff_initial_ms, config.backoff_max_ms),
      sampler_(store, sensors, events),
      wall_clock_(store),
      telemetry_(store, wall_clock_) {}

ReaderStatus Reader::validate() const noexcept {
    const ReaderConfig& c = config_;
    if (c.device_id == nullptr || !protocol::is_valid_device_id(c.device_id, std::strlen(c.device_id))) {
        return ReaderStatus::InvalidConfig;
    }
    if (c.broker_host == nullptr || c.broker_host[0] == '\0' || c.broker_port == 0) return ReaderStatus::InvalidConfig;
    if (c.batch_size == 0 || c.batch_size > protocol::kMaxRecordsPerBatch) return ReaderStatus::InvalidConfig;
    if (c.window == 0 || c.window > kMaxWindow) return ReaderStatus::InvalidConfig;
    if (c.ack_timeout_ms == 0 || c.connect_timeout_ms == 0 || c.send_timeout_ms == 0) {
        return ReaderStatus::InvalidConfig;
    }
    if (c.channel_count == 0 || c.channel_count > kMaxChannels || c.channel_count > sampler_.channels_available()) {
        return ReaderStatus::InvalidConfig;
    }
    for (std::size_t ch = 0; ch < c.channel_count; ++ch) {
        if (c.channel_period_ms[ch] == 0) return ReaderStatus::InvalidConfig;
    }
    if (buffers_.readings.size() < c.batch_size || buffers_.records.size() < c.batch_size ||
        buffers_.batch.size() < batch_bytes(c.batch_size) || buffers_.mqtt_tx.size() < mqtt_tx_bytes(c.batch_size) ||
        buffers_.mqtt_rx.size() < mqtt::kMinReceiveBuffer) {
        return ReaderStatus::BufferTooSmall;
    }
    return ReaderStatus::Ok;
}

ReaderStatus Reader::start() noexcept {
    started_ = false;
    if (ReaderStatus s = validate(); s != ReaderStatus::Ok) return s;

    const std::size_t id_length = std::strlen(config_.device_id);
    std::memcpy(client_id_, kClientIdPrefix, sizeof(kClientIdPrefix) - 1);
    std::memcpy(client_id_ + sizeof(kClientIdPrefix) - 1, config_.device_id, id_length + 1);
    protocol::format_topic(config_.device_id, id_length, protocol::TopicKind::Up, up_topic_, sizeof up_topic_);
    ack_topic_length_ =
        protocol::format_topic(config_.device_id, id_length, protocol::TopicKind::Ack, ack_topic_, sizeof ack_topic_);
    protocol::format_topic(config_.device_id, id_length, protocol::TopicKind::Status, status_topic_,
                           sizeof status_topic_);
    protocol::format_topic(config_.device_id, id_length, protocol::TopicKind::Telemetry, telemetry_topic_,
                           sizeof telemetry_topic_);

    protocol::StatusMessage status;
    status.incarnation = store_.incarnation();
    status.boot = store_.boot();
    const std::size_t version_length = std::strlen(config_.firmware_version);
    if (version_length > protocol::kMaxFirmwareVersionLength) return ReaderStatus::InvalidConfig;
    std::memcpy(status.firmware_version, config_.firmware_version, version_length + 1);
    status.state = protocol::DeviceState::Online;
    if (protocol::encode_status(status, birth_, sizeof birth_, &birth_length_) != protocol::CodecResult::Ok) {
        return ReaderStatus::InvalidConfig;
    }
    status.state = protocol::DeviceState::Offline;
    if (protocol::encode_status(status, will_payload_, sizeof will_payload_, &will_length_) !=
        protocol::CodecResult::Ok) {
        return ReaderStatus::InvalidConfig;
    }
    will_.topic = status_topic_;
    will_.payload = will_payload_;
    will_.payload_length = will_length_;
    will_.qos = mqtt::QoS::AtLeastOnce;
    will_.retain = true;

    const std::uint64_t now = clock_.now_ms();
    sampler_.start(std::span<const std::uint32_t>(config_.channel_period_ms).first(config_.channel_count), now);
    // Everything below the oldest held reading was committed or dropped
    // before this start (a flash spool keeps its backlog across reboots).
    window_.start(store_.oldest_seq() - 1);
    wall_clock_.start(config_.offset_tolerance_ms);
    telemetry_.start(config_.telemetry_interval_ms, now);
    link_ = LinkState::Offline;
    reconnect_at_ms_ = now;
    started_ = true;
    return ReaderStatus::Ok;
}

void Reader::poll(std::uint32_t max_wait_ms) noexcept {
    if (!started_) return;
    std::uint64_t now = clock_.now_ms();
    sampler_.sample_due(now);

    if (link_ == LinkState::Offline) {
        if (now < reconnect_at_ms_) {
            const std::uint32_t wait = wait_budget(now, max_wait_ms);
            if (wait > 0) clock_.sleep_ms(wait);
            return;
        }
        try_connect();
        if (link_ == LinkState::Offline) return;
        now = clock_.now_ms();
    }

    if (link_ == LinkState::Ready) {
        check_ack_timeout(now);
        publish_batches(now);
        if (link_ == LinkState::Offline) return;
        publish_telemetry(now);
        if (link_ == LinkState::Offline) return;
    }

    const mqtt::Status polled = session_.poll(wait_budget(clock_.now_ms(), max_wait_ms), *this);
    if (polled != mqtt::Status::Ok) {
        lose_link(polled);
        return;
    }
    if (connack_seen_) {
        connack_seen_ = false;
        after_connack();
    }
    if (suback_seen_ && link_ == LinkState::AwaitSuback) {
        suback_seen_ = false;
        after_suback();
    }
}

std::uint32_t Reader::wait_budget(std::uint64_t now, std::uint32_t max_wait_ms) const noexcept {
    std::uint32_t wait = max_wait_ms;
    std::uint64_t at = 0;
    if (sampler_.next_due_ms(&at)) wait = hal::ms_until(at, now, wait);
    if (link_ == LinkState::Offline) return hal::ms_until(reconnect_at_ms_, now, wait);
    if (link_ == LinkState::Ready && window_.ack_deadline_ms(config_.ack_timeout_ms, &at)) {
        wait = hal::ms_until(at, now, wait);
    }
    if (link_ == LinkState::Ready && telemetry_.next_due_ms(&at)) wait = hal::ms_until(at, now, wait);
    return wait;
}

void Reader::try_connect() noexcept {
    if (events_ != nullptr) events_->on_connecting(config_.broker_host, config_.broker_port);
    const hal::TransportStatus opened =
        transport_.open(config_.broker_host, config_.broker_port, config_.connect_timeout_ms);
    if (opened != hal::TransportStatus::Ok) {
        transport_.close();
        ++counters_.connect_failures;
        const std::uint32_t delay = backoff_.next_delay_ms(random_);
        reconnect_at_ms_ = clock_.now_ms() + delay;
        if (events_ != nullptr) events_->on_link_down(mqtt::Status::TransportError, opened, false, delay);
        return;
    }
    mqtt::ConnectOptions options;
    options.client_id = client_id_;
    options.keep_alive_s = config_.keep_alive_s;
    options.clean_session = true;  // delivery state lives in the store, not in the broker
    options.will = &will_;
    options.username = config_.username;
    options.password = config_.password;
    connack_seen_ = false;
    suback_seen_ = false;
    link_ = LinkState::AwaitConnack;
    if (const mqtt::Status s = session_.connect(options); s != mqtt::Status::Ok) lose_link(s);
}

void Reader::after_connack() noexcept {
    const bool is_reconnect = ever_connected_;
    if (is_reconnect) ++counters_.reconnects;
    ever_connected_ = true;
    link_ = LinkState::AwaitSuback;
    if (events_ != nullptr) events_->on_connected(is_reconnect);
    // Subscribe before publishing batches so that no commit ack is missed.
    if (const mqtt::Status s = session_.subscribe(ack_topic_, mqtt::QoS::AtLeastOnce, &subscribe_id_);
        s != mqtt::Status::Ok) {
        lose_link(s);
        return;
    }
    std::uint16_t birth_id = 0;
    if (const mqtt::Status s =
            session_.publish(status_topic_, birth_, birth_length_, mqtt::QoS::AtLeastOnce, true, &birth_id);
        s != mqtt::Status::Ok) {
        lose_link(s);
    }
}

void Reader::after_suback() noexcept {
    if (!suback_ok_) {
        lose_link(mqtt::Status::SubscribeRefused);
        return;
    }
    link_ = LinkState::Ready;
    backoff_.reset();
    if (events_ != nullptr) events_->on_ready();
}

void Reader::lose_link(mqtt::Status reason) noexcept {
    const bool was_up = link_ == LinkState::AwaitSuback || link_ == LinkState::Ready;
    if (link_ != LinkState::Ready) ++counters_.connect_failures;
    const hal::TransportStatus transport_status = session_.last_transport_status();
    session_.reset();
    transport_.close();
    link_ = LinkState::Offline;
    connack_seen_ = false;
    suback_seen_ = false;
    const std::uint64_t now = clock_.now_ms();
    const std::uint32_t delay = backoff_.next_delay_ms(random_);
    reconnect_at_ms_ = now + delay;
    if (events_ != nullptr) events_->on_link_down(reason, transport_status, was_up, delay);
    // Batches in flight may be lost with the connection: after reconnecting,
    // start again from the first reading not covered by a commit ack.
    rewind(ResendReason::Reconnect, now);
}

void Reader::rewind(ResendReason reason, std::uint64_t now) noexcept {
    std::uint64_t from = 0;
    if (window_.rewind(now, &from)) {
        ++counters_.resends;
        if (events_ != nullptr) events_->on_resend(from, reason);
    }
}

void Reader::check_ack_timeout(std::uint64_t now) noexcept {
    if (window_.timed_out(now, config_.ack_timeout_ms)) rewind(ResendReason::AckTimeout, now);
}

void Reader::publish_batches(std::uint64_t now) noexcept {
    StoredReading* readings = buffers_.readings.data();
    protocol::Record* records = buffers_.records.data();
    while (link_ == LinkState::Ready && !window_.full(config_.window) && session_.can_publish_qos1()) {
        const std::uint64_t from = window_.next_to_send(store_.oldest_seq());
        if (from >= store_.next_seq()) return;
        std::size_t count = store_.read(from, readings, config_.batch_size);
        if (count == 0) return;
        // A batch is a contiguous run of sequence numbers.
        for (std::size_t i = 1; i < count; ++i) {
            if (readings[i].seq != readings[0].seq + i) {
                count = i;
                break;
            }
        }
        for (std::size_t i = 0; i < count; ++i) records[i] = readings[i].record;

        protocol::BatchHeader header;
        header.incarnation = store_.incarnation();
        header.first_seq = readings[0].seq;
        header.floor_seq = window_.floor_for(header.first_seq, store_.oldest_seq());
        header.boot = readings[0].boot;
        header.offset_known = wall_clock_.offset_for(header.boot, &header.wall_offset_ms);
        header.count = static_cast<std::uint16_t>(count);

        std::size_t length = 0;
        if (protocol::encode_batch(header, records, buffers_.batch.data(), buffers_.batch.size(), &length) !=
            protocol::CodecResult::Ok) {
            return;  // cannot happen with validated buffers; never send a broken batch
        }
        std::uint16_t packet_id = 0;
        const mqtt::Status sent =
            session_.publish(up_topic_, buffers_.batch.data(), length, mqtt::QoS::AtLeastOnce, false, &packet_id);
        if (sent == mqtt::Status::PendingFull) return;
        if (sent != mqtt::Status::Ok) {
            lose_link(sent);
            return;
        }
        // Cannot fail: the window is not full and count >= 1.
        window_.sent(header.first_seq, header.first_seq + count - 1, packet_id, now);
        ++counters_.batches_sent;
        if (events_ != nullptr) events_->on_batch_sent(header, packet_id);
    }
}

void Reader::on_connack(bool /*session_present*/) { connack_seen_ = true; }

// A PUBACK only says the broker has the batch; the window moves on commit
// acks. The session's PUBACK table still bounds what the broker holds for us.
void Reader::on_puback(std::uint16_t /*packet_id*/) {}

void Reader::on_suback(std::uint16_t packet_id, const std::uint8_t* codes, std::size_t count) {
    if (packet_id != subscribe_id_) return;
    suback_seen_ = true;
    suback_ok_ = count >= 1 && codes[0] != mqtt::kSubackFailure;
}

void Reader::on_message(const mqtt::IncomingMessage& message) { handle_ack(message); }

void Reader::handle_ack(const mqtt::IncomingMessage& message) noexcept {
    if (message.topic_length != ack_topic_length_ || std::memcmp(message.topic, ack_topic_, ack_topic_length_) != 0) {
        return;  // only the ack topic is subscribed
    }
    protocol::Ack ack;
    AckOutcome outcome = AckOutcome::Accepted;
    if (protocol::decode_ack(message.payload, message.payload_length, &ack) != protocol::CodecResult::Ok) {
        outcome = AckOutcome::Undecodable;
        ++counters_.acks_invalid;
    } else if (ack.incarnation != store_.incarnation()) {
        outcome = AckOutcome::OtherIncarnation;
        ++counters_.acks_foreign;
    } else {
        outcome = window_.judge(ack.watermark, store_.next_seq());
        if (outcome == AckOutcome::Stale) ++counters_.acks_stale;
        if (outcome == AckOutcome::AheadOfProduced) ++counters_.acks_invalid;
    }
    if (outcome != AckOutcome::Accepted) {
        if (events_ != nullptr) events_->on_ack(ack, outcome);
        return;
    }

    ++counters_.acks_accepted;
    // Readings stay held when the trim fails; a later trim covers them.
    if (const StoreStatus trimmed = store_.trim(ack.watermark); trimmed != StoreStatus::Ok) count_store_error(trimmed);
    const std::uint64_t now = clock_.now_ms();
    window_.acknowledge(ack.watermark, now);
    if (const StoreStatus noted = wall_clock_.learn(ack.gateway_unix_ms, now); noted != StoreStatus::Ok) {
        count_store_error(noted);  // tried again with the next ack
    }
    if (events_ != nullptr) events_->on_ack(ack, outcome);
}

void Reader::count_store_error(StoreStatus status) noexcept {
    ++counters_.store_errors;
    if (events_ != nullptr) events_->on_store_error(status);
}

protocol::Telemetry Reader::telemetry() noexcept {
    return telemetry_.build(clock_.now_ms(), counters_.reconnects, window_.acked_through());
}

void Reader::publish_telemetry(std::uint64_t now) noexcept {
    if (!telemetry_.take_due(now)) return;
    const protocol::Telemetry t = telemetry();
    std::uint8_t payload[protocol::kTelemetrySize];
    std::size_t length = 0;
    if (protocol::encode_telemetry(t, payload, sizeof payload, &length) != protocol::CodecResult::Ok) return;
    std::uint16_t packet_id = 0;
    // QoS 0: health is a snapshot; a lost one is replaced by the next.
    const mqtt::Status sent =
        session_.publish(telemetry_topic_, payload, length, mqtt::QoS::AtMostOnce, false, &packet_id);
    if (sent != mqtt::Status::Ok) {
        if (session_.state() == mqtt::SessionState::Failed) lose_link(sent);
        return;
    }
    ++counters_.telemetry_sent;
    if (events_ != nullptr) events_->on_telemetry_sent(t);
}

bool Reader::drained() const noexcept { return window_.covers(store_.next_seq()); }

void Reader::shutdown() noexcept {
    if (link_ == LinkState::AwaitSuback || link_ == LinkState::Ready) {
        // DISCONNECT discards the last will, so say "offline" ourselves.
        std::uint16_t id = 0;
        static_cast<void>(
            session_.publish(status_topic_, will_payload_, will_length_, mqtt::QoS::AtLeastOnce, true, &id));
        static_cast<void>(session_.disconnect());
    }
    session_.reset();
    transport_.close();
    link_ = LinkState::Offline;
    started_ = false;
}

ReaderCounters Reader::counters() const noexcept {
    ReaderCounters snapshot = counters_;
    const SamplerCounters& sampled = sampler_.counters();
    snapshot.produced = sampled.produced;
    snapshot.refused = sampled.refused;
    snapshot.sensor_errors = sampled.sensor_errors;
    snapshot.store_errors += sampled.store_errors;
    snapshot.offsets_noted = wall_clock_.offsets_noted();
    snapshot.acked_through = window_.acked_through();
    snapshot.dropped = store_.dropped();
    return snapshot;
}

}  // namespace fieldlink::reader
