// What the reader reports while it runs: the observer hooks and the names of
// their outcomes. Shared by the Reader and its parts (sampler, ...), which
// report through the same observer.
#pragma once

#include <cstdint>

#include "fieldlink/hal/sensors.hpp"
#include "fieldlink/hal/transport.hpp"
#include "fieldlink/mqtt/packet.hpp"
#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::reader {

// How an incoming commit ack was judged.
enum class AckOutcome : std::uint8_t {
    Accepted = 0,      // advanced the watermark: store trimmed, offset learned
    Stale,             // watermark not above ours (duplicate or out of order)
    OtherIncarnation,  // about readings of another incarnation of this device
    AheadOfProduced,   // claims readings that were never produced
    Undecodable,       // protocol::decode_ack failed
};

const char* to_string(AckOutcome outcome) noexcept;

enum class ResendReason : std::uint8_t {
    AckTimeout = 0,  // the watermark did not move for ack_timeout_ms with batches in flight
    Reconnect,       // the connection was lost with batches not yet committed
};

const char* to_string(ResendReason reason) noexcept;

// Observer for logs, record files and metrics; every hook is optional.
// Hooks run inside poll() and must not call back into the Reader.
class ReaderEvents {
public:
    virtual void on_reading(const StoredReading& /*reading*/) {}
    virtual void on_sample_failed(std::uint8_t /*channel*/, hal::SensorStatus /*status*/) {}
    // Full is reported once when the store starts refusing, not per sample.
    virtual void on_store_error(StoreStatus /*status*/) {}
    virtual void on_connecting(const char* /*host*/, std::uint16_t /*port*/) {}
    virtual void on_connected(bool /*is_reconnect*/) {}
    virtual void on_ready() {}
    // The link failed (`was_up`: it had been accepted by CONNACK) and the next
    // attempt starts in retry_in_ms. `transport` is the failed transport call's status.
    virtual void on_link_down(mqtt::Status /*reason*/, hal::TransportStatus /*transport*/, bool /*was_up*/,
                              std::uint32_t /*retry_in_ms*/) {}
    virtual void on_batch_sent(const protocol::BatchHeader& /*header*/, std::uint16_t /*packet_id*/) {}
    virtual void on_ack(const protocol::Ack& /*ack*/, AckOutcome /*outcome*/) {}
    virtual void on_resend(std::uint64_t /*from_seq*/, ResendReason /*reason*/) {}
    virtual void on_telemetry_sent(const protocol::Telemetry& /*telemetry*/) {}

protected:
    ~ReaderEvents() = default;
};

}  // namespace fieldlink::reader
