// libFuzzer target for the gateway's decoding of device messages: the JSON
// batch form (decode_json_batch, docs/protocol.md §6) and decode_message, the
// one function every payload from the broker goes through (binary batch,
// JSON batch, status, telemetry; wrong topics).
//
// Invariants: nothing throws or crashes; an accepted batch has 1..512
// records, header.count equal to their number, first_seq >= 1, floor_seq <=
// first_seq and a last seq that fits in 64 bits; written back as JSON it
// decodes to the same batch, bit for bit; decode_message on an .../up topic
// gives the same batch for an accepted JSON payload (or a database check's
// rejection), and a checked batch or a rejection for a binary one; status and
// telemetry topics give their message, an ack or foreign topic bad_topic;
// every rejection names an error and keeps the payload's first
// kMaxDeadLetterPayload bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fieldlink/gateway/ingest/device_message_decoder.hpp"

namespace gw = fieldlink::gateway;
namespace fp = fieldlink::protocol;

namespace {

[[noreturn]] void violated(const char* what, int line) {
    std::fprintf(stderr, "fuzz_json_batch: invariant violated (line %d): %s\n", line, what);
    std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : violated(#cond, __LINE__))

constexpr std::string_view kDevice = "fuzz-dev";
constexpr std::string_view kUp = "fieldlink/v1/fuzz-dev/up";
constexpr std::string_view kStatus = "fieldlink/v1/fuzz-dev/status";
constexpr std::string_view kTelemetry = "fieldlink/v1/fuzz-dev/telemetry";
constexpr std::string_view kAck = "fieldlink/v1/fuzz-dev/ack";
constexpr std::string_view kBadTopic = "fieldlink/v2/fuzz-dev/up";

std::uint64_t bits_of(double value) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

bool same_batch(const gw::BatchBody& a, const gw::BatchBody& b) {
    const fp::BatchHeader& x = a.header;
    const fp::BatchHeader& y = b.header;
    if (x.incarnation != y.incarnation || x.first_seq != y.first_seq || x.floor_seq != y.floor_seq ||
        x.boot != y.boot || x.offset_known != y.offset_known || x.count != y.count ||
        (x.offset_known && x.wall_offset_ms != y.wall_offset_ms) || a.records.size() != b.records.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.records.size(); ++i) {
        const fp::Record& r = a.records[i];
        const fp::Record& s = b.records[i];
        if (r.channel != s.channel || r.mono_ms != s.mono_ms || bits_of(r.value) != bits_of(s.value)) return false;
    }
    return true;
}

void check_batch(const gw::BatchBody& body) {
    const fp::BatchHeader& h = body.header;
    FUZZ_CHECK(!body.records.empty() && body.records.size() <= fp::kMaxRecordsPerBatch);
    FUZZ_CHECK(h.count == body.records.size());
    FUZZ_CHECK(h.first_seq >= 1 && h.floor_seq <= h.first_seq);
    FUZZ_CHECK(h.first_seq - 1 <= UINT64_MAX - h.count);  // the last seq fits in 64 bits
}

// The accepted batch in the JSON form (every key written), decoded again.
void check_json_round_trip(const gw::BatchBody& body) {
    nlohmann::json root;
    root["v"] = 1;
    root["incarnation"] = fmt::format("{:x}", body.header.incarnation);
    root["first_seq"] = body.header.first_seq;
    root["floor_seq"] = body.header.floor_seq;
    root["boot"] = body.header.boot;
    if (body.header.offset_known) root["wall_offset_ms"] = body.header.wall_offset_ms;
    nlohmann::json readings = nlohmann::json::array();
    for (const fp::Record& r : body.records) {
        readings.push_back({{"ch", r.channel}, {"t", r.mono_ms}, {"v", r.value}});
    }
    root["readings"] = std::move(readings);
    const std::string text = root.dump();
    gw::BatchBody again;
    std::string error;
    FUZZ_CHECK(gw::decode_json_batch(text, &again, &error));
    FUZZ_CHECK(same_batch(body, again));
}

bool storable_rejection(const std::string& error) {
    return error == gw::kErrorSeqOutOfRange || error == gw::kErrorBadValue;
}

void check_rejected(const gw::Rejected& r, std::string_view topic, std::span<const std::uint8_t> payload) {
    FUZZ_CHECK(r.topic == topic && !r.error.empty());
    const std::size_t kept = payload.size() < gw::kMaxDeadLetterPayload ? payload.size() : gw::kMaxDeadLetterPayload;
    FUZZ_CHECK(r.payload.size() == kept);
    FUZZ_CHECK(kept == 0 || std::memcmp(r.payload.data(), payload.data(), kept) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> payload(data, size);
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    gw::BatchBody body;
    std::string error;
    const bool accepted = gw::decode_json_batch(text, &body, &error);
    if (accepted) {
        check_batch(body);
        check_json_round_trip(body);
    } else {
        FUZZ_CHECK(!error.empty());
    }
    // The same bytes as an MQTT message on each kind of topic. A JSON payload
    // that decode_json_batch refused only becomes bad_json there (decode_up
    // calls it), so only accepted ones are decoded again, to check that they
    // come out as the same batch or fail a database check.
    const bool json = gw::looks_like_json(payload);
    if (!json || accepted || size > gw::kMaxUpPayloadSize) {
        const gw::Inbound up = gw::decode_message(kUp, payload);
        if (size > gw::kMaxUpPayloadSize) {
            FUZZ_CHECK(std::holds_alternative<gw::Rejected>(up) &&
                       std::get<gw::Rejected>(up).error == gw::kErrorOversize);
        } else if (json) {
            if (const auto* batch = std::get_if<gw::ReadingBatch>(&up)) {
                FUZZ_CHECK(batch->device == kDevice && same_batch(batch->body, body));
            } else {
                const auto* rejected = std::get_if<gw::Rejected>(&up);
                FUZZ_CHECK(rejected != nullptr && storable_rejection(rejected->error));
            }
        } else if (const auto* batch = std::get_if<gw::ReadingBatch>(&up)) {
            FUZZ_CHECK(batch->device == kDevice);
            check_batch(batch->body);
        } else {
            FUZZ_CHECK(std::holds_alternative<gw::Rejected>(up));
        }
        if (const auto* rejected = std::get_if<gw::Rejected>(&up)) check_rejected(*rejected, kUp, payload);
    }

    const gw::Inbound status = gw::decode_message(kStatus, payload);
    if (size == 0) {
        FUZZ_CHECK(std::holds_alternative<gw::Ignored>(status));
    } else if (const auto* s = std::get_if<gw::DeviceStatus>(&status)) {
        FUZZ_CHECK(s->device == kDevice && std::strlen(s->status.firmware_version) >= 1);
    } else {
        FUZZ_CHECK(std::holds_alternative<gw::Rejected>(status));
        check_rejected(std::get<gw::Rejected>(status), kStatus, payload);
    }

    const gw::Inbound telemetry = gw::decode_message(kTelemetry, payload);
    if (const auto* t = std::get_if<gw::DeviceTelemetry>(&telemetry)) {
        FUZZ_CHECK(t->device == kDevice && size == fp::kTelemetrySize);
    } else {
        FUZZ_CHECK(std::holds_alternative<gw::Rejected>(telemetry));
        check_rejected(std::get<gw::Rejected>(telemetry), kTelemetry, payload);
    }

    for (const std::string_view topic : {kAck, kBadTopic}) {
        const gw::Inbound wrong = gw::decode_message(topic, payload);
        FUZZ_CHECK(std::holds_alternative<gw::Rejected>(wrong));
        const auto& rejected = std::get<gw::Rejected>(wrong);
        FUZZ_CHECK(rejected.error == gw::kErrorBadTopic);
        check_rejected(rejected, topic, payload);
    }
    return 0;
}
