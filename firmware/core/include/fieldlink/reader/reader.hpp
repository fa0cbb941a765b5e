// The reader application: samples sensor channels into a ReadingStore and
// delivers them to the gateway over MQTT, trimming the store only when the
// gateway's commit ack covers them. Single-threaded: the board calls poll()
// in a loop; every wait happens inside poll() (on the transport, or on the
// clock while offline). No heap, no exceptions; the caller owns all memory.
// The Reader coordinates the MQTT link, batches and acks; each other job has
// its own part: Sampler, DeliveryWindow, WallClock, TelemetryReporter.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fieldlink/hal/clock.hpp"
#include "fieldlink/hal/random.hpp"
#include "fieldlink/hal/sensors.hpp"
#include "fieldlink/hal/transport.hpp"
#include "fieldlink/mqtt/backoff.hpp"
#include "fieldlink/mqtt/packet.hpp"
#include "fieldlink/mqtt/session.hpp"
#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/topics.hpp"
#include "fieldlink/reader/config_defaults.hpp"
#include "fieldlink/reader/delivery_window.hpp"
#include "fieldlink/reader/reader_events.hpp"
#include "fieldlink/reader/reading_store.hpp"
#include "fieldlink/reader/sampler.hpp"
#include "fieldlink/reader/telemetry_reporter.hpp"
#include "fieldlink/reader/wall_clock.hpp"

namespace fieldlink::reader {

inline constexpr char kClientIdPrefix[] = "reader-";
inline constexpr std::size_t kMaxClientIdLength = sizeof(kClientIdPrefix) - 1 + protocol::kMaxDeviceIdLength;

// Encoded size of a batch of `records` readings.
constexpr std::size_t batch_bytes(std::size_t records) noexcept {
    return protocol::kBatchHeaderSize + records * protocol::kRecordSize + protocol::kCrcSize;
}

// MQTT transmit buffer for batches of `records` readings: the PUBLISH around
// the largest batch, and at least room for CONNECT with will and short
// credentials.
constexpr std::size_t mqtt_tx_bytes(std::size_t records) noexcept {
    const std::size_t publish = mqtt::kMaxFixedHeaderSize + 2 + protocol::kMaxTopicLength + 2 + batch_bytes(records);
    return publish > 512 ? publish : 512;
}

enum class ReaderStatus : std::uint8_t {
    Ok = 0,
    InvalidConfig,   // a ReaderConfig field is out of range (see ReaderConfig)
    BufferTooSmall,  // a ReaderBuffers span cannot hold a batch of batch_size readings
};

const char* to_string(ReaderStatus status) noexcept;

// String pointers must stay valid for the reader's lifetime.
struct ReaderConfig {
    const char* device_id = nullptr;         // protocol::is_valid_device_id
    const char* firmware_version = "0.0.0";  // 1..32 printable ASCII, sent in status messages
    const char* broker_host = "127.0.0.1";
    std::uint16_t broker_port = 1883;
    const char* username = nullptr;  // optional MQTT credentials
    const char* password = nullptr;
    std::uint16_t keep_alive_s = 30;            // 0 disables MQTT keep-alive
    std::uint32_t connect_timeout_ms = 10'000;  // open, and then each of CONNACK and SUBACK
    std::uint32_t send_timeout_ms = 10'000;     // one packet must leave within this time
    std::uint32_t ack_timeout_ms = 5'000;       // no commit-ack progress while in flight: resend
    std::uint16_t batch_size = 32;              // 1 .. protocol::kMaxRecordsPerBatch
    std::uint8_t window = 4;                    // batches in flight, 1 .. kMaxWindow
    std::uint32_t backoff_initial_ms = 500;     // first reconnect delay (before jitter)
    std::uint32_t backoff_max_ms = 30'000;      // cap of the reconnect delay
    std::uint16_t channel_count = 0;            // 1 .. kMaxChannels, at most Sensors::channel_count()
    // Device health (protocol::Telemetry, QoS 0 on .../telemetry) every this
    // many ms while connected; 0 turns it off.
    std::uint32_t telemetry_interval_ms = 10'000;
    // The wall-clock offset goes to the store when the boot first learns it,
    // and again only when an ack moves it by more than this (each note may
    // cost a flash slot). It bounds how far the offset that earlier-boot
    // readings carry after a reboot can be from the last one learnt.
    std::uint32_t offset_tolerance_ms = 250;
    std::array<std::uint32_t, kMaxChannels> channel_period_ms{};  // > 0 for each used channel
};

// Memory the reader works in, owned by the caller (see ReaderMemory).
struct ReaderBuffers {
    std::span<StoredReading> readings;    // >= batch_size
    std::span<protocol::Record> records;  // >= batch_size
    std::span<std::uint8_t> batch;        // >= batch_bytes(batch_size)
    std::span<std::uint8_t> mqtt_tx;      // >= mqtt_tx_bytes(batch_size)
    std::span<std::uint8_t> mqtt_rx;      // >= mqtt::kMinReceiveBuffer
};

// All buffers for batches of up to MaxBatch readings, in one object.
template <std::size_t MaxBatch>
struct ReaderMemory {
    static_assert(MaxBatch >= 1 && MaxBatch <= protocol::kMaxRecordsPerBatch);
    std::array<StoredReading, MaxBatch> readings{};
    std::array<protocol::Record, MaxBatch> records{};
    std::array<std::uint8_t, batch_bytes(MaxBatch)> batch{};
    std::array<std::uint8_t, mqtt_tx_bytes(MaxBatch)> mqtt_tx{};
    std::array<std::uint8_t, FIELDLINK_READER_RX_BUFFER> mqtt_rx{};

    ReaderBuffers buffers() noexcept { return {readings, records, batch, mqtt_tx, mqtt_rx}; }
};

struct ReaderCounters {
    std::uint64_t produced = 0;          // readings appended to the store
    std::uint64_t acked_through = 0;     // commit-ack watermark: 1..acked_through are committed
    std::uint64_t dropped = 0;           // readings the store forgot because it was full (DropOldest)
    std::uint64_t refused = 0;           // samples not stored because the store was full (RefuseNew)
    std::uint64_t sensor_errors = 0;     // sensor reads that failed or gave no value (NaN); never stored
    std::uint64_t store_errors = 0;      // append, trim and offset-note failures of the medium
    std::uint64_t reconnects = 0;        // accepted CONNACKs after the first one
    std::uint64_t connect_failures = 0;  // attempts that ended before the link was ready
    std::uint64_t batches_sent = 0;
    std::uint64_t resends = 0;  // times sending restarted at acked_through + 1
    std::uint64_t acks_accepted = 0;
    std::uint64_t acks_stale = 0;      // watermark not above ours: duplicate or out of order
    std::uint64_t acks_foreign = 0;    // for another incarnation
    std::uint64_t acks_invalid = 0;    // undecodable, or claiming readings never produced
    std::uint64_t offsets_noted = 0;   // wall-clock offsets handed to the store (note_wall_offset)
    std::uint64_t telemetry_sent = 0;  // telemetry messages published
};

enum class LinkState : std::uint8_t {
    Offline = 0,   // no connection; waiting for the next attempt
    AwaitConnack,  // transport open, CONNECT sent
    AwaitSuback,   // CONNACK accepted, SUBSCRIBE and birth status sent
    Ready,         // subscribed to acks: publishing batches
};

const char* to_string(LinkState state) noexcept;

class Reader final : private mqtt::EventHandler {
public:
    // All references must outlive the reader. `events` may be null.
    Reader(const ReaderConfig& config, ReadingStore& store, hal::Transport& transport, hal::Clock& clock,
           hal::Random& random, hal::Sensors& sensors, ReaderBuffers buffers, ReaderEvents* events = nullptr) noexcept;

    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    // Checks the configuration and buffers, prepares topics and status
    // messages, and schedules the first samples and connection attempt for
    // now. InvalidConfig or BufferTooSmall leave the reader unusable.
    ReaderStatus start() noexcept;

    // One turn of the loop: samples due channels, connects or reconnects,
    // publishes what the window allows, handles acks and timeouts, and waits
    // at most max_wait_ms for the next thing to do. Problems are reported
    // through ReaderEvents and counters, never returned: the reader keeps going.
    void poll(std::uint32_t max_wait_ms) noexcept;

    // Stops sampling (for a drain before exit); delivery continues.
    void stop_sampling() noexcept { sampler_.stop(); }

    // True when every produced reading is covered by a commit ack.
    bool drained() const noexcept;

    // Publishes the offline status, disconnects cleanly and closes the transport.
    void shutdown() noexcept;

    ReaderCounters counters() const noexcept;
    LinkState link_state() const noexcept { return link_; }
    std::uint64_t acked_through() const noexcept { return window_.acked_through(); }
    std::uint64_t next_send_seq() const noexcept { return window_.next_send_seq(); }
    std::size_t in_flight() const noexcept { return window_.in_flight(); }
    bool offset_known() const noexcept { return wall_clock_.known(); }
    std::int64_t wall_offset_ms() const noexcept { return wall_clock_.offset_ms(); }
    const mqtt::Session& session() const noexcept { return session_; }

    // Device health as published on .../telemetry. oldest_unacked_age_ms: for
    // a reading of the running boot, now - its mono_ms; for one of an earlier
    // boot, wall-clock now minus its wall-clock time when both boots' offsets
    // are known, else the running boot's uptime (a lower bound: it is at least
    // that old). Reads the oldest held reading from the store when it changed.
    protocol::Telemetry telemetry() noexcept;

private:
    // mqtt::EventHandler
    void on_connack(bool session_present) override;
    void on_puback(std::uint16_t packet_id) override;
    void on_suback(std::uint16_t packet_id, const std::uint8_t* codes, std::size_t count) override;
    void on_message(const mqtt::IncomingMessage& message) override;

    ReaderStatus validate() const noexcept;
    void try_connect() noexcept;
    void after_connack() noexcept;
    void after_suback() noexcept;
    void lose_link(mqtt::Status reason) noexcept;
    void rewind(ResendReason reason, std::uint64_t now) noexcept;
    void check_ack_timeout(std::uint64_t now) noexcept;
    void publish_batches(std::uint64_t now) noexcept;
    void handle_ack(const mqtt::IncomingMessage& message) noexcept;
    void count_store_error(StoreStatus status) noexcept;
    void publish_telemetry(std::uint64_t now) noexcept;
    std::uint32_t wait_budget(std::uint64_t now, std::uint32_t max_wait_ms) const noexcept;

    ReaderConfig config_;
    ReadingStore& store_;
    hal::Transport& transport_;
    hal::Clock& clock_;
    hal::Random& random_;
    ReaderBuffers buffers_;
    ReaderEvents* events_;
    mqtt::Session session_;
    mqtt::Backoff backoff_;
    Sampler sampler_;
    DeliveryWindow window_;
    WallClock wall_clock_;
    TelemetryReporter telemetry_;  // after wall_clock_, which it uses

    char client_id_[kMaxClientIdLength + 1] = {};
    char up_topic_[protocol::kMaxTopicLength + 1] = {};
    char ack_topic_[protocol::kMaxTopicLength + 1] = {};
    std::size_t ack_topic_length_ = 0;
    char status_topic_[protocol::kMaxTopicLength + 1] = {};
    char telemetry_topic_[protocol::kMaxTopicLength + 1] = {};
    std::uint8_t birth_[protocol::kMaxStatusSize] = {};
    std::size_t birth_length_ = 0;
    std::uint8_t will_payload_[protocol::kMaxStatusSize] = {};
    std::size_t will_length_ = 0;
    mqtt::Will will_;

    bool started_ = false;
    LinkState link_ = LinkState::Offline;
    std::uint64_t reconnect_at_ms_ = 0;
    bool ever_connected_ = false;
    bool connack_seen_ = false;  // set by on_connack, handled after Session::poll
    bool suback_seen_ = false;
    bool suback_ok_ = false;
    std::uint16_t subscribe_id_ = 0;

    // The link's and the acks' counts; the parts keep their own, and
    // counters() puts them together.
    ReaderCounters counters_;
};

}  // namespace fieldlink::reader
