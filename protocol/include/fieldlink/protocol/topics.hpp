// MQTT topic layout of protocol v1: fieldlink/v1/<device>/{up,ack,status,telemetry}.
// Freestanding like the codec: callers pass the buffers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::protocol {

enum class TopicKind : std::uint8_t {
    Up = 0,         // batches from the device
    Ack = 1,        // commit acks to the device
    Status = 2,     // retained birth / last will
    Telemetry = 3,  // device health
};

inline constexpr char kTopicPrefix[] = "fieldlink/v1/";
inline constexpr std::size_t kMaxDeviceIdLength = 32;
// Longest topic: prefix + device id + "/telemetry".
inline constexpr std::size_t kMaxTopicLength = sizeof(kTopicPrefix) - 1 + kMaxDeviceIdLength + 10;

// A device id is 1..32 characters of [A-Za-z0-9_-]: safe in a topic level,
// never an MQTT wildcard.
bool is_valid_device_id(const char* id, std::size_t length) noexcept;

// Writes the NUL-terminated topic; returns its length, or 0 when the id is
// invalid or the buffer is too small.
std::size_t format_topic(const char* device_id, std::size_t id_length, TopicKind kind, char* out,
                         std::size_t capacity) noexcept;

// Splits a topic into device id (pointer into `topic`) and kind. False when
// the topic is not a fieldlink v1 topic.
bool parse_topic(const char* topic, std::size_t length, const char** device_id, std::size_t* id_length,
                 TopicKind* kind) noexcept;

}  // namespace fieldlink::protocol
