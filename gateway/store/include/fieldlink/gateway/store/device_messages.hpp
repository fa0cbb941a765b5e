// Device messages as the store keeps them, decoded and checked (the decoder
// lives in ingest/device_message_decoder.hpp): readings, statuses, health, and
// rejected payloads for the dead-letter table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::gateway {

struct BatchBody {
    protocol::BatchHeader header;
    std::vector<protocol::Record> records;  // record i has seq header.first_seq + i
};

struct ReadingBatch {
    std::string device;
    BatchBody body;
};

struct DeviceStatus {
    std::string device;
    protocol::StatusMessage status;
};

struct DeviceTelemetry {
    std::string device;
    protocol::Telemetry telemetry;
};

struct Rejected {
    std::string topic;
    std::string error;                  // stable error name, stored in dead_letters.error
    std::string detail;                 // human-readable, for the log only
    std::vector<std::uint8_t> payload;  // first kMaxDeadLetterPayload bytes
};

}  // namespace fieldlink::gateway
