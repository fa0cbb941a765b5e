#include "fieldlink/protocol/topics.hpp"

#include <cstring>

namespace fieldlink::protocol {
namespace {

constexpr std::size_t kPrefixLength = sizeof(kTopicPrefix) - 1;

struct Suffix {
    const char* text;
    std::size_t length;
    TopicKind kind;
};

constexpr Suffix kSuffixes[] = {
    {"/up", 3, TopicKind::Up},
    {"/ack", 4, TopicKind::Ack},
    {"/status", 7, TopicKind::Status},
    {"/telemetry", 10, TopicKind::Telemetry},
};

bool is_id_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

}  // namespace

bool is_valid_device_id(const char* id, std::size_t length) noexcept {
    if (id == nullptr || length == 0 || length > kMaxDeviceIdLength) return false;
    for (std::size_t i = 0; i < length; ++i) {
        if (!is_id_char(id[i])) return false;
    }
    return true;
}

std::size_t format_topic(const char* device_id, std::size_t id_length, TopicKind kind, char* out,
                         std::size_t capacity) noexcept {
    if (!is_valid_device_id(device_id, id_length) || out == nullptr) return 0;
    const Suffix& suffix = kSuffixes[static_cast<std::size_t>(kind)];
    const std::size_t length = kPrefixLength + id_length + suffix.length;
    if (capacity < length + 1) return 0;
    std::memcpy(out, kTopicPrefix, kPrefixLength);
    std::memcpy(out + kPrefixLength, device_id, id_length);
    std::memcpy(out + kPrefixLength + id_length, suffix.text, suffix.length);
    out[length] = '\0';
    return length;
}

bool parse_topic(const char* topic, std::size_t length, const char** device_id, std::size_t* id_length,
                 TopicKind* kind) noexcept {
    if (topic == nullptr || length <= kPrefixLength || std::memcmp(topic, kTopicPrefix, kPrefixLength) != 0) {
        return false;
    }
    for (const Suffix& suffix : kSuffixes) {
        if (length < kPrefixLength + suffix.length) continue;
        const std::size_t id_len = length - kPrefixLength - suffix.length;
        if (std::memcmp(topic + length - suffix.length, suffix.text, suffix.length) != 0) continue;
        if (!is_valid_device_id(topic + kPrefixLength, id_len)) return false;
        if (device_id != nullptr) *device_id = topic + kPrefixLength;
        if (id_length != nullptr) *id_length = id_len;
        if (kind != nullptr) *kind = suffix.kind;
        return true;
    }
    return false;
}

}  // namespace fieldlink::protocol
