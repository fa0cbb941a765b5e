#include "fieldlink/reader/reader.hpp"

#include <cstring>
#include <limits>

namespace fieldlink::reader {
namespace {

std::uint32_t clamp_wait(std::uint64_t deadline, std::uint64_t now, std::uint32_t wait) noexcept {
    if (deadline <= now) return 0;
    const std::uint64_t left = deadline - now;
    return left < wait ? static_cast<std::uint32_t>(left) : wait;
}

// |a - b| without overflow for any two offsets.
std::uint64_t distance(std::int64_t a, std::int64_t b) noexcept {
    const auto ua = static_cast<std::uint64_t>(a);
    const auto ub = static_cast<std::uint64_t>(b);
    return a > b ? ua - ub : ub - ua;
}

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

const char* to_string(AckOutcome outcome) noexcept {
    switch (outcome) {
        case AckOutcome::Accepted: return "accepted";
        case AckOutcome::Stale: return "stale";
        case AckOutcome::OtherIncarnation: return "other_incarnation";
        case AckOutcome::AheadOfProduced: return "ahead_of_produced";
        case AckOutcome::Undecodable: return "undecodable";
    }
    return "unknown";
}

const char* to_string(ResendReason reason) noexcept {
    switch (reason) {
        case ResendReason::AckTimeout: return "ack_timeout";
        case ResendReason::Reconnect: return "reconnect";
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
      sensors_(sensors),
      buffers_(buffers),
      events_(events),
      session_(transport, clock, buffers.mqtt_tx, buffers.mqtt_rx, session_config(config)),
      backoff_(config.backoff_initial_ms, config.backoff_max_ms) {}

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
    if (c.channel_count == 0 || c.channel_count > kMaxChannels || c.channel_count > sensors_.channel_count()) {
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
    ack_topic_length_ = protocol::format_topic(config_.device_id, id_length, protocol::TopicKind::Ack, ack_topic_,
                                               sizeof ack_topic_);
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
    if (protocol::encode_status(status, birth_, sizeof birth_, &birth_length_) != protocol::Status::Ok) {
        return ReaderStatus::InvalidConfig;
    }
    status.state = protocol::DeviceState::Offline;
    if (protocol::encode_status(status, will_payload_, sizeof will_payload_, &will_length_) != protocol::Status::Ok) {
        return ReaderStatus::InvalidConfig;
    }
    will_.topic = status_topic_;
    will_.payload = will_payload_;
    will_.payload_length = will_length_;
    will_.qos = mqtt::QoS::AtLeastOnce;
    will_.retain = true;

    const std::uint64_t now = clock_.now_ms();
    for (std::size_t ch = 0; ch < config_.channel_count; ++ch) next_due_ms_[ch] = now;
    // Everything below the oldest held reading was committed or dropped
    // before this start (a flash spool keeps its backlog across reboots).
    acked_through_ = store_.oldest_seq() - 1;
    next_send_seq_ = acked_through_ + 1;
    window_count_ = 0;
    // A store that already knows this boot's offset (the reader restarted
    // within one boot) lets batches carry it before the first ack.
    offset_known_ = store_.wall_offset(store_.boot(), &wall_offset_ms_);
    if (!offset_known_) wall_offset_ms_ = 0;
    offset_noted_ = offset_known_;
    noted_offset_ms_ = wall_offset_ms_;
    boot_offsets_ = {};
    oldest_cached_ = false;
    next_telemetry_ms_ = now;  // the first one as soon as the link is up
    link_ = LinkState::Offline;
    reconnect_at_ms_ = now;
    sampling_ = true;
    started_ = true;
    return ReaderStatus::Ok;
}

void Reader::poll(std::uint32_t max_wait_ms) noexcept {
    if (!started_) return;
    std::uint64_t now = clock_.now_ms();
    sample_due(now);

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
    if (sampling_) {
        for (std::size_t ch = 0; ch < config_.channel_count; ++ch) wait = clamp_wait(next_due_ms_[ch], now, wait);
    }
    if (link_ == LinkState::Offline) return clamp_wait(reconnect_at_ms_, now, wait);
    if (link_ == LinkState::Ready && window_count_ > 0) {
        wait = clamp_wait(last_progress_ms_ + config_.ack_timeout_ms, now, wait);
    }
    if (link_ == LinkState::Ready && config_.telemetry_interval_ms > 0) {
        wait = clamp_wait(next_telemetry_ms_, now, wait);
    }
    return wait;
}

void Reader::sample_due(std::uint64_t now) noexcept {
    if (!sampling_) return;
    for (std::size_t ch = 0; ch < config_.channel_count; ++ch) {
        if (now < next_due_ms_[ch]) continue;
        const auto channel = static_cast<std::uint8_t>(ch);
        double value = 0.0;
        hal::SensorStatus sensed = sensors_.read(channel, &value);
        // NaN means "no value": the protocol cannot carry it, so it is never stored.
        if (sensed == hal::SensorStatus::Ok && __builtin_isnan(value)) sensed = hal::SensorStatus::NoValue;
        if (sensed == hal::SensorStatus::Ok) {
            protocol::Record record;
            record.channel = channel;
            record.mono_ms = now;
            record.value = value;
            std::uint64_t seq = 0;
            const StoreStatus stored = store_.append(record, &seq);
            if (stored == StoreStatus::Ok) {
                refusing_ = false;
                ++counters_.produced;
                if (events_ != nullptr) events_->on_reading(StoredReading{seq, store_.boot(), record});
            } else if (stored == StoreStatus::Full) {
                ++counters_.refused;
                if (!refusing_ && events_ != nullptr) events_->on_store_error(stored);
                refusing_ = true;
            } else {
                ++counters_.store_errors;
                if (events_ != nullptr) events_->on_store_error(stored);
            }
        } else {
            ++counters_.sensor_errors;
            if (events_ != nullptr) events_->on_sample_failed(channel, sensed);
        }
        // Stay on the period grid; after a stall skip the missed slots
        // instead of sampling in a burst.
        const std::uint32_t period = config_.channel_period_ms[ch];
        next_due_ms_[ch] += period;
        if (next_due_ms_[ch] <= now) next_due_ms_[ch] = now + period;
    }
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
    window_count_ = 0;
    last_progress_ms_ = now;
    const std::uint64_t from = acked_through_ + 1;
    if (next_send_seq_ > from) {
        ++counters_.resends;
        if (events_ != nullptr) events_->on_resend(from, reason);
    }
    next_send_seq_ = from;
}

void Reader::check_ack_timeout(std::uint64_t now) noexcept {
    if (window_count_ > 0 && now - last_progress_ms_ >= config_.ack_timeout_ms) {
        rewind(ResendReason::AckTimeout, now);
    }
}

void Reader::publish_batches(std::uint64_t now) noexcept {
    StoredReading* readings = buffers_.readings.data();
    protocol::Record* records = buffers_.records.data();
    while (link_ == LinkState::Ready && window_count_ < config_.window && session_.can_publish_qos1()) {
        if (next_send_seq_ < store_.oldest_seq()) next_send_seq_ = store_.oldest_seq();  // dropped while full
        if (next_send_seq_ >= store_.next_seq()) return;
        std::size_t count = store_.read(next_send_seq_, readings, config_.batch_size);
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
        // Never send below floor again: all of it is committed or dropped.
        std::uint64_t floor = store_.oldest_seq() > acked_through_ + 1 ? store_.oldest_seq() : acked_through_ + 1;
        header.floor_seq = floor < header.first_seq ? floor : header.first_seq;
        header.boot = readings[0].boot;
        // Each boot has its own offset: the running one's from the latest
        // ack, an earlier one's as the store noted it in that boot.
        std::int64_t offset = 0;
        if (readings[0].boot == store_.boot()) {
            header.offset_known = offset_known_;
            offset = wall_offset_ms_;
        } else {
            header.offset_known = boot_offset(readings[0].boot, &offset);
        }
        header.wall_offset_ms = header.offset_known ? offset : 0;
        header.count = static_cast<std::uint16_t>(count);

        std::size_t length = 0;
        if (protocol::encode_batch(header, records, buffers_.batch.data(), buffers_.batch.size(), &length) !=
            protocol::Status::Ok) {
            return;  // cannot happen with validated buffers; never send a broken batch
        }
        std::uint16_t packet_id = 0;
        const mqtt::Status sent = session_.publish(up_topic_, buffers_.batch.data(), length,
                                                   mqtt::QoS::AtLeastOnce, false, &packet_id);
        if (sent == mqtt::Status::PendingFull) return;
        if (sent != mqtt::Status::Ok) {
            lose_link(sent);
            return;
        }
        if (window_count_ == 0) last_progress_ms_ = now;
        window_[window_count_++] = InFlight{header.first_seq, header.first_seq + count - 1, packet_id};
        next_send_seq_ = header.first_seq + count;
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
    if (message.topic_length != ack_topic_length_ ||
        std::memcmp(message.topic, ack_topic_, ack_topic_length_) != 0) {
        return;  // only the ack topic is subscribed
    }
    protocol::Ack ack;
    AckOutcome outcome = AckOutcome::Accepted;
    if (protocol::decode_ack(message.payload, message.payload_length, &ack) != protocol::Status::Ok) {
        outcome = AckOutcome::Undecodable;
        ++counters_.acks_invalid;
    } else if (ack.incarnation != store_.incarnation()) {
        outcome = AckOutcome::OtherIncarnation;
        ++counters_.acks_foreign;
    } else if (ack.watermark <= acked_through_) {
        outcome = AckOutcome::Stale;
        ++counters_.acks_stale;
    } else if (ack.watermark >= store_.next_seq()) {
        outcome = AckOutcome::AheadOfProduced;
        ++counters_.acks_invalid;
    }
    if (outcome != AckOutcome::Accepted) {
        if (events_ != nullptr) events_->on_ack(ack, outcome);
        return;
    }

    acked_through_ = ack.watermark;
    ++counters_.acks_accepted;
    if (const StoreStatus trimmed = store_.trim(acked_through_); trimmed != StoreStatus::Ok) {
        ++counters_.store_errors;  // readings stay held; a later trim covers them
        if (events_ != nullptr) events_->on_store_error(trimmed);
    }
    std::size_t covered = 0;
    while (covered < window_count_ && window_[covered].last_seq <= acked_through_) ++covered;
    for (std::size_t i = covered; i < window_count_; ++i) window_[i - covered] = window_[i];
    window_count_ -= covered;
    if (next_send_seq_ <= acked_through_) next_send_seq_ = acked_through_ + 1;

    const std::uint64_t now = clock_.now_ms();
    // Wrapping arithmetic: an absurd gateway time gives an absurd offset, never UB.
    wall_offset_ms_ = static_cast<std::int64_t>(static_cast<std::uint64_t>(ack.gateway_unix_ms) - now);
    offset_known_ = true;
    note_offset(wall_offset_ms_);
    last_progress_ms_ = now;
    if (events_ != nullptr) events_->on_ack(ack, outcome);
}

void Reader::note_offset(std::int64_t offset_ms) noexcept {
    if (offset_noted_ && distance(offset_ms, noted_offset_ms_) <= config_.offset_tolerance_ms) return;
    const StoreStatus noted = store_.note_wall_offset(offset_ms);
    // Full: the store holds it in RAM and writes it with its next sector.
    if (noted == StoreStatus::Ok || noted == StoreStatus::Full) {
        offset_noted_ = true;
        noted_offset_ms_ = offset_ms;
        ++counters_.offsets_noted;
        return;
    }
    ++counters_.store_errors;  // tried again with the next ack
    if (events_ != nullptr) events_->on_store_error(noted);
}

bool Reader::boot_offset(std::uint32_t boot, std::int64_t* offset_ms) noexcept {
    for (const BootOffset& entry : boot_offsets_) {
        if (entry.valid && entry.boot == boot) {
            *offset_ms = entry.offset_ms;
            return entry.known;
        }
    }
    // A flash spool scans its log to answer: ask once per boot.
    BootOffset& entry = boot_offsets_[boot_offset_victim_];
    boot_offset_victim_ = (boot_offset_victim_ + 1) % boot_offsets_.size();
    entry.valid = true;
    entry.boot = boot;
    entry.offset_ms = 0;
    entry.known = store_.wall_offset(boot, &entry.offset_ms);
    *offset_ms = entry.offset_ms;
    return entry.known;
}

std::uint64_t Reader::oldest_unacked_age_ms(std::uint64_t now) noexcept {
    if (store_.held() == 0) return 0;
    const std::uint64_t oldest = store_.oldest_seq();
    if (!oldest_cached_ || oldest_cached_seq_ != oldest) {
        StoredReading reading;
        if (store_.read(oldest, &reading, 1) != 1) return 0;  // the store failed; it reports that itself
        oldest_cached_ = true;
        oldest_cached_seq_ = oldest;
        oldest_cached_boot_ = reading.boot;
        oldest_cached_mono_ms_ = reading.record.mono_ms;
    }
    if (oldest_cached_boot_ == store_.boot()) {
        return now > oldest_cached_mono_ms_ ? now - oldest_cached_mono_ms_ : 0;
    }
    std::int64_t then_offset = 0;
    if (offset_known_ && boot_offset(oldest_cached_boot_, &then_offset)) {
        // Wall-clock now minus the reading's wall-clock time (wrapping, as above).
        const std::uint64_t wall_now = now + static_cast<std::uint64_t>(wall_offset_ms_);
        const std::uint64_t wall_then = oldest_cached_mono_ms_ + static_cast<std::uint64_t>(then_offset);
        const auto age = static_cast<std::int64_t>(wall_now - wall_then);
        return age > 0 ? static_cast<std::uint64_t>(age) : 0;
    }
    return now;  // taken before this boot started: at least this old
}

protocol::Telemetry Reader::telemetry() noexcept {
    const std::uint64_t now = clock_.now_ms();
    protocol::Telemetry t;
    t.incarnation = store_.incarnation();
    t.boot = store_.boot();
    constexpr std::uint64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();
    t.reconnects = static_cast<std::uint32_t>(counters_.reconnects < kMaxU32 ? counters_.reconnects : kMaxU32);
    t.uptime_ms = now;
    t.held = store_.held();
    t.oldest_unacked_age_ms = oldest_unacked_age_ms(now);
    t.dropped = store_.dropped();
    t.next_seq = store_.next_seq();
    t.acked_through = acked_through_;
    return t;
}

void Reader::publish_telemetry(std::uint64_t now) noexcept {
    if (config_.telemetry_interval_ms == 0 || now < next_telemetry_ms_) return;
    next_telemetry_ms_ = now + config_.telemetry_interval_ms;
    const protocol::Telemetry t = telemetry();
    std::uint8_t payload[protocol::kTelemetrySize];
    std::size_t length = 0;
    if (protocol::encode_telemetry(t, payload, sizeof payload, &length) != protocol::Status::Ok) return;
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

bool Reader::drained() const noexcept { return acked_through_ + 1 >= store_.next_seq(); }

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
    snapshot.acked_through = acked_through_;
    snapshot.dropped = store_.dropped();
    return snapshot;
}

}  // namespace fieldlink::reader
