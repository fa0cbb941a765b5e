#include "fieldlink/gateway/ingest/device_message_decoder.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fieldlink/protocol/text.hpp"
#include "fieldlink/protocol/topics.hpp"
#include "fieldlink/protocol/values.hpp"

namespace fieldlink::gateway {
namespace {

using Json = nlohmann::json;

constexpr std::uint64_t kMaxStorableU64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// Keys of the JSON form (docs/protocol.md §6); anything else is rejected so a
// typo such as "wall_offset" does not silently drop the wall time.
constexpr std::string_view kBatchKeys[] = {"v",    "incarnation",    "first_seq", "floor_seq",
                                           "boot", "wall_offset_ms", "readings"};
constexpr std::string_view kReadingKeys[] = {"ch", "t", "v"};

template <std::size_t N>
std::optional<std::string> unknown_key(const Json& object, const std::string_view (&known)[N]) {
    for (const auto& item : object.items()) {
        if (std::find(std::begin(known), std::end(known), item.key()) == std::end(known)) return item.key();
    }
    return std::nullopt;
}

// Non-negative JSON integer (nlohmann parses those as unsigned).
std::optional<std::uint64_t> as_unsigned(const Json& value) {
    if (!value.is_number_unsigned()) return std::nullopt;
    return value.get<std::uint64_t>();
}

std::optional<std::int64_t> as_signed(const Json& value) {
    if (value.is_number_unsigned()) {
        const auto v = value.get<std::uint64_t>();
        if (v > kMaxStorableU64) return std::nullopt;
        return static_cast<std::int64_t>(v);
    }
    if (value.is_number_integer()) return value.get<std::int64_t>();
    return std::nullopt;
}

// The body of decode_json_batch; may throw only std::bad_alloc, which the caller catches.
bool decode_json_body(std::string_view text, BatchBody* out, std::string* error) {
    // nlohmann keeps the last of two equal keys; a batch with two "first_seq"
    // is ambiguous, so the keys of every object are tracked and repeats rejected.
    std::vector<std::set<std::string>> keys_per_object;
    std::optional<std::string> repeated_key;
    const Json::parser_callback_t track_keys = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::object_start) {
            keys_per_object.emplace_back();
        } else if (event == Json::parse_event_t::object_end && !keys_per_object.empty()) {
            keys_per_object.pop_back();
        } else if (event == Json::parse_event_t::key && !keys_per_object.empty() && parsed.is_string()) {
            if (!keys_per_object.back().insert(parsed.get<std::string>()).second && !repeated_key) {
                repeated_key = parsed.get<std::string>();
            }
        }
        return true;
    };
    const Json root = Json::parse(text.begin(), text.end(), track_keys, /*allow_exceptions=*/false);
    if (root.is_discarded()) {
        *error = "not valid JSON";
        return false;
    }
    if (repeated_key) {
        *error = fmt::format("key '{}' appears twice in one object", *repeated_key);
        return false;
    }
    if (!root.is_object()) {
        *error = "the batch must be a JSON object";
        return false;
    }
    if (auto key = unknown_key(root, kBatchKeys)) {
        *error = fmt::format("unknown key '{}'", *key);
        return false;
    }
    const auto field = [&root](const char* key) -> const Json* {
        const auto found = root.find(key);
        return found == root.end() ? nullptr : &*found;
    };

    const Json* version = field("v");
    if (version == nullptr) {
        *error = "missing key 'v'";
        return false;
    }
    if (as_unsigned(*version) != std::optional<std::uint64_t>(1)) {
        *error = "'v' must be 1";
        return false;
    }

    protocol::BatchHeader header;
    const Json* incarnation = field("incarnation");
    if (incarnation == nullptr) {
        *error = "missing key 'incarnation'";
        return false;
    }
    std::optional<std::uint64_t> incarnation_value;
    if (incarnation->is_string()) {
        const auto& digits = incarnation->get_ref<const std::string&>();
        std::uint64_t value = 0;
        if (protocol::parse_hex_u64(digits.data(), digits.size(), &value)) incarnation_value = value;
    }
    if (!incarnation_value) {
        *error = "'incarnation' must be a string of 1 to 16 hex digits";
        return false;
    }
    header.incarnation = *incarnation_value;

    const Json* first_seq = field("first_seq");
    if (first_seq == nullptr) {
        *error = "missing key 'first_seq'";
        return false;
    }
    const auto first_seq_value = as_unsigned(*first_seq);
    if (!first_seq_value || *first_seq_value == 0) {
        *error = "'first_seq' must be an integer >= 1";
        return false;
    }
    header.first_seq = *first_seq_value;

    // No floor unless the sender says so: out-of-order JSON batches must not let the ack pass a gap.
    header.floor_seq = 1;
    if (const Json* floor_seq = field("floor_seq")) {
        const auto value = as_unsigned(*floor_seq);
        if (!value || *value > header.first_seq) {
            *error = "'floor_seq' must be an integer from 0 to first_seq";
            return false;
        }
        header.floor_seq = *value;
    }

    if (const Json* boot = field("boot")) {
        const auto value = as_unsigned(*boot);
        if (!value || *value > std::numeric_limits<std::uint32_t>::max()) {
            *error = "'boot' must be an integer from 0 to 4294967295";
            return false;
        }
        header.boot = static_cast<std::uint32_t>(*value);
    }

    if (const Json* offset = field("wall_offset_ms")) {
        const auto value = as_signed(*offset);
        if (!value) {
            *error = "'wall_offset_ms' must be a 64-bit signed integer";
            return false;
        }
        header.wall_offset_ms = *value;
        header.offset_known = true;
    }

    const Json* readings = field("readings");
    if (readings == nullptr) {
        *error = "missing key 'readings'";
        return false;
    }
    if (!readings->is_array() || readings->empty() || readings->size() > protocol::kMaxRecordsPerBatch) {
        *error = fmt::format("'readings' must be an array of 1 to {} objects", protocol::kMaxRecordsPerBatch);
        return false;
    }
    if (readings->size() - 1 > std::numeric_limits<std::uint64_t>::max() - header.first_seq) {
        *error = "first_seq + number of readings - 1 does not fit in 64 bits";
        return false;
    }

    std::vector<protocol::Record> records;
    records.reserve(readings->size());
    for (std::size_t i = 0; i < readings->size(); ++i) {
        const Json& reading = (*readings)[i];
        if (!reading.is_object()) {
            *error = fmt::format("readings[{}] must be an object", i);
            return false;
        }
        if (auto key = unknown_key(reading, kReadingKeys)) {
            *error = fmt::format("unknown key '{}' in readings[{}]", *key, i);
            return false;
        }
        const auto ch = reading.find("ch");
        const auto t = reading.find("t");
        const auto v = reading.find("v");
        if (ch == reading.end() || t == reading.end() || v == reading.end()) {
            *error = fmt::format("readings[{}] needs 'ch', 't' and 'v'", i);
            return false;
        }
        const auto channel = as_unsigned(*ch);
        if (!channel || *channel > 255) {
            *error = fmt::format("readings[{}].ch must be an integer from 0 to 255", i);
            return false;
        }
        const auto mono_ms = as_unsigned(*t);
        if (!mono_ms) {
            *error = fmt::format("readings[{}].t must be an integer >= 0", i);
            return false;
        }
        if (!v->is_number()) {
            *error = fmt::format("readings[{}].v must be a number", i);
            return false;
        }
        records.push_back({static_cast<std::uint8_t>(*channel), *mono_ms, v->get<double>()});
    }
    header.count = static_cast<std::uint16_t>(records.size());
    out->header = header;
    out->records = std::move(records);
    return true;
}

Rejected reject(std::string_view topic, std::string_view error, std::string detail,
                std::span<const std::uint8_t> payload) {
    const auto kept = payload.first(std::min(payload.size(), kMaxDeadLetterPayload));
    return Rejected{std::string(topic), std::string(error), std::move(detail), {kept.begin(), kept.end()}};
}

// Checks what the database needs beyond the wire format; returns an error name or empty.
std::string_view storable(const BatchBody& body, std::string* detail) {
    const std::uint64_t last_seq = body.header.first_seq + (body.records.size() - 1);
    if (last_seq > kMaxStorableU64) {
        *detail = fmt::format("last seq {} is above 2^63-1", last_seq);
        return kErrorSeqOutOfRange;
    }
    for (std::size_t i = 0; i < body.records.size(); ++i) {
        if (protocol::is_nan(body.records[i].value)) {
            *detail = fmt::format("record {} has a NaN value", i);
            return kErrorBadValue;
        }
        if (body.records[i].mono_ms > kMaxStorableU64) {
            *detail = fmt::format("record {} has mono_ms above 2^63-1", i);
            return kErrorBadValue;
        }
    }
    return {};
}

Inbound decode_telemetry(std::string_view topic, std::string device, std::span<const std::uint8_t> payload) {
    DeviceTelemetry telemetry{std::move(device), {}};
    protocol::Telemetry& t = telemetry.telemetry;
    const protocol::CodecResult result = protocol::decode_telemetry(payload.data(), payload.size(), &t);
    if (result != protocol::CodecResult::Ok) {
        return reject(topic, protocol::to_string(result), "telemetry rejected by the codec", payload);
    }
    // Stored as signed 64-bit integers (the incarnation is bit-cast like everywhere else).
    const std::pair<const char*, std::uint64_t> counts[] = {
        {"uptime_ms", t.uptime_ms}, {"held", t.held},         {"oldest_unacked_age_ms", t.oldest_unacked_age_ms},
        {"dropped", t.dropped},     {"next_seq", t.next_seq}, {"acked_through", t.acked_through}};
    for (const auto& [name, value] : counts) {
        if (value > kMaxStorableU64) {
            return reject(topic, kErrorBadValue, fmt::format("telemetry {} {} is above 2^63-1", name, value), payload);
        }
    }
    return telemetry;
}

Inbound decode_up(std::string_view topic, std::string device, std::span<const std::uint8_t> payload) {
    if (payload.size() > kMaxUpPayloadSize) {
        return reject(topic, kErrorOversize, fmt::format("{} bytes, limit {}", payload.size(), kMaxUpPayloadSize),
                      payload);
    }
    BatchBody body;
    if (looks_like_json(payload)) {
        std::string detail;
        const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
        if (!decode_json_batch(text, &body, &detail)) return reject(topic, kErrorBadJson, detail, payload);
    } else {
        protocol::BatchView view;
        const protocol::CodecResult status = protocol::decode_batch(payload.data(), payload.size(), &view);
        if (status != protocol::CodecResult::Ok) {
            return reject(topic, protocol::to_string(status), "binary batch rejected by the codec", payload);
        }
        body.header = view.header;
        body.records.reserve(view.header.count);
        for (std::size_t i = 0; i < view.header.count; ++i) body.records.push_back(view.record(i));
    }
    std::string detail;
    if (const std::string_view error = storable(body, &detail); !error.empty()) {
        return reject(topic, error, detail, payload);
    }
    return ReadingBatch{std::move(device), std::move(body)};
}

}  // namespace

bool looks_like_json(std::span<const std::uint8_t> payload) noexcept {
    for (const std::uint8_t byte : payload) {
        if (byte == ' ' || byte == '\t' || byte == '\r' || byte == '\n') continue;
        return byte == '{';
    }
    return false;
}

bool decode_json_batch(std::string_view text, BatchBody* out, std::string* error_detail) noexcept {
    std::string ignored;
    std::string& error = error_detail != nullptr ? *error_detail : ignored;
    try {
        BatchBody body;
        if (!decode_json_body(text, &body, &error)) return false;
        if (out != nullptr) *out = std::move(body);
        return true;
    } catch (...) {
        // Only allocation failure can get here; still a rejection, never a crash.
        error = "out of memory while parsing";
        return false;
    }
}

DeviceMessageDecoder::DeviceMessageDecoder(std::size_t max_incarnations) : owners_(max_incarnations) {}

std::size_t DeviceMessageDecoder::owners() const {
    std::lock_guard lock(mutex_);
    return owners_.size();
}

Inbound DeviceMessageDecoder::decode(std::string_view topic, std::span<const std::uint8_t> payload) {
    Inbound message = decode_message(topic, payload);
    const std::string* device = nullptr;
    std::uint64_t incarnation = 0;
    if (const auto* batch = std::get_if<ReadingBatch>(&message)) {
        device = &batch->device;
        incarnation = batch->body.header.incarnation;
    } else if (const auto* status = std::get_if<DeviceStatus>(&message)) {
        device = &status->device;
        incarnation = status->status.incarnation;
    } else if (const auto* telemetry = std::get_if<DeviceTelemetry>(&message)) {
        device = &telemetry->device;
        incarnation = telemetry->telemetry.incarnation;
    } else {
        return message;
    }
    std::lock_guard lock(mutex_);
    if (const std::string* owner = owners_.find(incarnation); owner != nullptr && *owner != *device) {
        return reject(topic, kErrorDeviceMismatch,
                      fmt::format("incarnation {:016x} belongs to device '{}', not '{}'", incarnation, *owner, *device),
                      payload);
    }
    owners_.insert_or_assign(incarnation, *device);
    return message;
}

Inbound decode_message(std::string_view topic, std::span<const std::uint8_t> payload) {
    const char* device_id = nullptr;
    std::size_t device_length = 0;
    protocol::TopicKind kind{};
    if (!protocol::parse_topic(topic.data(), topic.size(), &device_id, &device_length, &kind)) {
        return reject(topic, kErrorBadTopic, "not a fieldlink/v1/<device>/{up,status,telemetry} topic", payload);
    }
    std::string device(device_id, device_length);
    switch (kind) {
        case protocol::TopicKind::Up: return decode_up(topic, std::move(device), payload);
        case protocol::TopicKind::Status: {
            // An empty retained message is how MQTT deletes a retained status.
            if (payload.empty()) return Ignored{"empty retained status (cleared)"};
            DeviceStatus status{std::move(device), {}};
            const protocol::CodecResult result =
                protocol::decode_status(payload.data(), payload.size(), &status.status);
            if (result != protocol::CodecResult::Ok) {
                return reject(topic, protocol::to_string(result), "status rejected by the codec", payload);
            }
            return status;
        }
        case protocol::TopicKind::Telemetry: return decode_telemetry(topic, std::move(device), payload);
        case protocol::TopicKind::Ack: break;
    }
    return reject(topic, kErrorBadTopic, "ack topics go from the gateway to devices", payload);
}

}  // namespace fieldlink::gateway
