#include "fieldlink/gateway/ingest/device_message_decoder.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <limits>
#include <string>

#include "test_support.hpp"

namespace fieldlink::gateway {
namespace {

using test::BatchSpec;
using test::bytes;

constexpr char kUp[] = "fieldlink/v1/dev-1/up";
constexpr char kStatus[] = "fieldlink/v1/dev-1/status";
constexpr char kTelemetry[] = "fieldlink/v1/dev-1/telemetry";

// The example of docs/protocol.md §6.
const std::string kDocExample =
    R"({"v": 1, "incarnation": "00000000000000a1", "first_seq": 1, "boot": 0,
 "readings": [{"ch": 0, "t": 1500, "v": 21.5}, {"ch": 1, "t": 1500, "v": 40.25}]})";

Inbound decode_text(const std::string& topic, const std::string& payload) {
    return decode_message(topic, bytes(payload));
}

std::string rejection(const Inbound& inbound) {
    const auto* rejected = std::get_if<Rejected>(&inbound);
    return rejected == nullptr ? std::string("(accepted)") : rejected->error;
}

TEST(JsonBatch, DocumentExample) {
    const Inbound inbound = decode_text(kUp, kDocExample);
    const auto* batch = std::get_if<ReadingBatch>(&inbound);
    ASSERT_NE(batch, nullptr) << rejection(inbound);
    EXPECT_EQ(batch->device, "dev-1");
    const auto& h = batch->body.header;
    EXPECT_EQ(h.incarnation, 0xa1u);
    EXPECT_EQ(h.first_seq, 1u);
    EXPECT_EQ(h.floor_seq, 1u) << "floor_seq defaults to 1 (no floor)";
    EXPECT_EQ(h.boot, 0u);
    EXPECT_FALSE(h.offset_known);
    EXPECT_EQ(h.count, 2u);
    ASSERT_EQ(batch->body.records.size(), 2u);
    EXPECT_EQ(batch->body.records[0].channel, 0);
    EXPECT_EQ(batch->body.records[0].mono_ms, 1500u);
    EXPECT_EQ(batch->body.records[0].value, 21.5);
    EXPECT_EQ(batch->body.records[1].channel, 1);
    EXPECT_EQ(batch->body.records[1].value, 40.25);
}

TEST(JsonBatch, AllOptionalKeysAndLeadingBlanks) {
    const std::string json =
        " \r\n\t{\"v\":1,\"incarnation\":\"FFFFFFFFFFFFFFFF\",\"first_seq\":100,\"floor_seq\":90,\"boot\":4294967295,"
        "\"wall_offset_ms\":-5,\"readings\":[{\"ch\":255,\"t\":0,\"v\":-3}]}";
    const Inbound inbound = decode_text(kUp, json);
    const auto* batch = std::get_if<ReadingBatch>(&inbound);
    ASSERT_NE(batch, nullptr) << rejection(inbound);
    const auto& h = batch->body.header;
    EXPECT_EQ(h.incarnation, std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(h.first_seq, 100u);
    EXPECT_EQ(h.floor_seq, 90u);
    EXPECT_EQ(h.boot, 4294967295u);
    EXPECT_TRUE(h.offset_known);
    EXPECT_EQ(h.wall_offset_ms, -5);
    EXPECT_EQ(batch->body.records[0].channel, 255);
    EXPECT_EQ(batch->body.records[0].value, -3.0) << "integer values are numbers too";
}

TEST(JsonBatch, FiveHundredTwelveReadingsAreFine) {
    std::string json = R"({"v":1,"incarnation":"1","first_seq":1,"readings":[)";
    for (int i = 0; i < 512; ++i) json += std::string(i == 0 ? "" : ",") + R"({"ch":1,"t":5,"v":1.5})";
    json += "]}";
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decode_text(kUp, json)));
}

struct InvalidJson {
    const char* name;
    std::string payload;
};

// Keeps gtest from dumping the parameter's bytes.
void PrintTo(const InvalidJson& param, std::ostream* os) { *os << param.name; }

class JsonBatchInvalid : public ::testing::TestWithParam<InvalidJson> {};

TEST_P(JsonBatchInvalid, IsRejectedAsBadJson) {
    const Inbound inbound = decode_text(kUp, GetParam().payload);
    const auto* rejected = std::get_if<Rejected>(&inbound);
    ASSERT_NE(rejected, nullptr) << "accepted: " << GetParam().payload;
    EXPECT_EQ(rejected->error, "bad_json");
    EXPECT_FALSE(rejected->detail.empty());
    EXPECT_EQ(rejected->topic, kUp);
    EXPECT_EQ(std::string(rejected->payload.begin(), rejected->payload.end()),
              GetParam().payload.substr(0, kMaxDeadLetterPayload));
}

std::string with(const std::string& members) { return "{" + members + "}"; }
const std::string kReadings = R"("readings":[{"ch":0,"t":1,"v":1}])";
const std::string kBase = R"("v":1,"incarnation":"a1","first_seq":1,)";

INSTANTIATE_TEST_SUITE_P(
    EveryKind, JsonBatchInvalid,
    ::testing::Values(
        InvalidJson{"not_json", "{ this is not json"}, InvalidJson{"truncated", R"({"v":1,"incarnation":"a1")"},
        InvalidJson{"object_then_array", R"({"v":1} [1,2])"},
        InvalidJson{"duplicate_key", with(kBase + R"("first_seq":2,)" + kReadings)},
        InvalidJson{"duplicate_key_in_reading", with(kBase + R"("readings":[{"ch":0,"t":1,"v":1,"v":2}])")},
        InvalidJson{"value_beyond_double", with(kBase + R"("readings":[{"ch":0,"t":1,"v":1e400}])")},
        InvalidJson{"t_beyond_u64", with(kBase + R"("readings":[{"ch":0,"t":18446744073709551616,"v":1}])")},
        InvalidJson{"ch_float", with(kBase + R"("readings":[{"ch":1.0,"t":1,"v":1}])")},
        InvalidJson{"trailing_garbage", with(kBase + kReadings) + "x"},
        InvalidJson{"missing_v", with(R"("incarnation":"a1","first_seq":1,)" + kReadings)},
        InvalidJson{"v_2", with(R"("v":2,"incarnation":"a1","first_seq":1,)" + kReadings)},
        InvalidJson{"v_string", with(R"("v":"1","incarnation":"a1","first_seq":1,)" + kReadings)},
        InvalidJson{"v_float", with(R"("v":1.0,"incarnation":"a1","first_seq":1,)" + kReadings)},
        InvalidJson{"missing_incarnation", with(R"("v":1,"first_seq":1,)" + kReadings)},
        InvalidJson{"incarnation_number", with(R"("v":1,"incarnation":161,"first_seq":1,)" + kReadings)},
        InvalidJson{"incarnation_empty", with(R"("v":1,"incarnation":"","first_seq":1,)" + kReadings)},
        InvalidJson{"incarnation_17_digits",
                    with(R"("v":1,"incarnation":"11111111111111111","first_seq":1,)" + kReadings)},
        InvalidJson{"incarnation_not_hex", with(R"("v":1,"incarnation":"0x12","first_seq":1,)" + kReadings)},
        InvalidJson{"missing_first_seq", with(R"("v":1,"incarnation":"a1",)" + kReadings)},
        InvalidJson{"first_seq_0", with(R"("v":1,"incarnation":"a1","first_seq":0,)" + kReadings)},
        InvalidJson{"first_seq_negative", with(R"("v":1,"incarnation":"a1","first_seq":-1,)" + kReadings)},
        InvalidJson{"first_seq_float", with(R"("v":1,"incarnation":"a1","first_seq":1.5,)" + kReadings)},
        InvalidJson{"first_seq_string", with(R"("v":1,"incarnation":"a1","first_seq":"1",)" + kReadings)},
        InvalidJson{"first_seq_too_big",
                    with(R"("v":1,"incarnation":"a1","first_seq":18446744073709551616,)" + kReadings)},
        InvalidJson{"floor_above_first", with(kBase + R"("floor_seq":2,)" + kReadings)},
        InvalidJson{"floor_negative", with(kBase + R"("floor_seq":-1,)" + kReadings)},
        InvalidJson{"boot_too_big", with(kBase + R"("boot":4294967296,)" + kReadings)},
        InvalidJson{"boot_negative", with(kBase + R"("boot":-1,)" + kReadings)},
        InvalidJson{"offset_float", with(kBase + R"("wall_offset_ms":1.5,)" + kReadings)},
        InvalidJson{"offset_null", with(kBase + R"("wall_offset_ms":null,)" + kReadings)},
        InvalidJson{"offset_too_big", with(kBase + R"("wall_offset_ms":9223372036854775808,)" + kReadings)},
        InvalidJson{"missing_readings", with(R"("v":1,"incarnation":"a1","first_seq":1)")},
        InvalidJson{"readings_empty", with(kBase + R"("readings":[])")},
        InvalidJson{"readings_object", with(kBase + R"("readings":{"ch":0,"t":1,"v":1})")},
        InvalidJson{"reading_not_object", with(kBase + R"("readings":[5])")},
        InvalidJson{"reading_missing_v", with(kBase + R"("readings":[{"ch":0,"t":1}])")},
        InvalidJson{"reading_ch_256", with(kBase + R"("readings":[{"ch":256,"t":1,"v":1}])")},
        InvalidJson{"reading_ch_negative", with(kBase + R"("readings":[{"ch":-1,"t":1,"v":1}])")},
        InvalidJson{"reading_t_negative", with(kBase + R"("readings":[{"ch":0,"t":-1,"v":1}])")},
        InvalidJson{"reading_t_float", with(kBase + R"("readings":[{"ch":0,"t":1.5,"v":1}])")},
        InvalidJson{"reading_v_string", with(kBase + R"("readings":[{"ch":0,"t":1,"v":"1"}])")},
        InvalidJson{"reading_v_null", with(kBase + R"("readings":[{"ch":0,"t":1,"v":null}])")},
        InvalidJson{"reading_unknown_key", with(kBase + R"("readings":[{"ch":0,"t":1,"v":1,"unit":"C"}])")},
        InvalidJson{"unknown_key", with(kBase + R"("wall_offset":5,)" + kReadings)},
        InvalidJson{"seq_overflow", with(R"("v":1,"incarnation":"a1","first_seq":18446744073709551615,)"
                                         R"("readings":[{"ch":0,"t":1,"v":1},{"ch":0,"t":1,"v":1}])")},
        InvalidJson{"deep_nesting", "{\"v\":" + std::string(10000, '[') + std::string(10000, ']') + "}"},
        InvalidJson{"invalid_utf8", "{\"v\":1,\"incarnation\":\"\xff\"}"}),
    [](const ::testing::TestParamInfo<InvalidJson>& param_info) { return std::string(param_info.param.name); });

// The decoder itself is total on any text, not only on what the gateway
// routes to it (payloads starting with '{').
TEST(JsonBatch, TopLevelValuesOtherThanAnObjectAreRefused) {
    for (const std::string text : {"[1,2]", "5", "\"x\"", "null"}) {
        BatchBody body;
        std::string detail;
        EXPECT_FALSE(decode_json_batch(text, &body, &detail)) << text;
        EXPECT_EQ(detail, "the batch must be a JSON object") << text;
    }
}

// Numbers the JSON form reads but the database cannot hold get the same
// errors as in a binary batch, and -0.0 and exponents are ordinary values.
TEST(JsonBatch, RangeErrorsAfterDecodingMatchTheBinaryForm) {
    EXPECT_EQ(
        rejection(decode_text(kUp, with(R"("v":1,"incarnation":"a1","first_seq":9223372036854775808,)" + kReadings))),
        "seq_out_of_range");
    EXPECT_EQ(rejection(decode_text(kUp, with(kBase + R"("readings":[{"ch":0,"t":9223372036854775808,"v":1}])"))),
              "bad_value");
    const Inbound ok =
        decode_text(kUp, with(kBase + R"("readings":[{"ch":0,"t":1,"v":-0.0},{"ch":0,"t":2,"v":2.5e3}])"));
    const auto* batch = std::get_if<ReadingBatch>(&ok);
    ASSERT_NE(batch, nullptr);
    EXPECT_TRUE(std::signbit(batch->body.records[0].value));
    EXPECT_EQ(batch->body.records[1].value, 2500.0);
}

TEST(JsonBatch, TooManyReadings) {
    std::string json = R"({"v":1,"incarnation":"1","first_seq":1,"readings":[)";
    for (int i = 0; i < 513; ++i) json += std::string(i == 0 ? "" : ",") + R"({"ch":1,"t":5,"v":1.5})";
    json += "]}";
    EXPECT_EQ(rejection(decode_text(kUp, json)), "bad_json");
}

TEST(BinaryBatch, DecodedThroughTheSharedCodec) {
    BatchSpec spec;
    spec.first_seq = 7;
    spec.count = 3;
    spec.boot = 2;
    spec.offset_known = true;
    spec.wall_offset_ms = 1'700'000'000'000;
    const auto payload = test::encode(spec);
    const Inbound inbound = decode_message(kUp, payload);
    const auto* batch = std::get_if<ReadingBatch>(&inbound);
    ASSERT_NE(batch, nullptr) << rejection(inbound);
    EXPECT_EQ(batch->body.header.first_seq, 7u);
    EXPECT_EQ(batch->body.header.boot, 2u);
    EXPECT_TRUE(batch->body.header.offset_known);
    EXPECT_EQ(batch->body.header.wall_offset_ms, 1'700'000'000'000);
    ASSERT_EQ(batch->body.records.size(), 3u);
    EXPECT_EQ(batch->body.records[2].value, 9.5);
}

TEST(BinaryBatch, CodecErrorsKeepTheirNames) {
    auto payload = test::encode(BatchSpec{});
    payload.back() ^= 0x01;
    EXPECT_EQ(rejection(decode_message(kUp, payload)), "bad_checksum");
    // Length is checked before the magic (docs/protocol.md §3): short garbage is truncated.
    EXPECT_EQ(rejection(decode_text(kUp, "this is not a batch")), "truncated");
    EXPECT_EQ(rejection(decode_text(kUp, std::string(48, 'x'))), "bad_magic");
    EXPECT_EQ(rejection(decode_text(kUp, "")), "truncated");
    EXPECT_EQ(rejection(decode_message(kUp, std::vector<std::uint8_t>(protocol::kMaxBatchSize + 1, 'F'))), "oversize");
}

TEST(BinaryBatch, PayloadsAboveTheGatewayLimitAreOversize) {
    std::string huge(kMaxUpPayloadSize + 1, ' ');
    huge[0] = '{';
    const Inbound inbound = decode_text(kUp, huge);
    const auto* rejected = std::get_if<Rejected>(&inbound);
    ASSERT_NE(rejected, nullptr);
    EXPECT_EQ(rejected->error, "oversize");
    EXPECT_EQ(rejected->payload.size(), kMaxDeadLetterPayload) << "dead letters keep a bounded prefix";
}

TEST(BinaryBatch, SequenceAbove2To63IsRefused) {
    BatchSpec spec;
    spec.first_seq = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    spec.count = 1;
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decode_message(kUp, test::encode(spec))));
    spec.count = 2;
    EXPECT_EQ(rejection(decode_message(kUp, test::encode(spec))), "seq_out_of_range");
}

TEST(BinaryBatch, NanValueIsRefused) {
    BatchSpec spec;
    auto records = test::records_for(spec);
    std::vector<std::uint8_t> out(protocol::kMaxBatchSize);
    std::size_t written = 0;
    ASSERT_EQ(protocol::encode_batch(test::header_for(spec), records.data(), out.data(), out.size(), &written),
              protocol::CodecResult::Ok);
    out.resize(written);
    // The encoder refuses NaN, so patch one into record 1 by hand and fix the CRC.
    const std::size_t value_at = protocol::kBatchHeaderSize + protocol::kRecordSize + 9;
    const std::uint64_t nan_bits = 0x7FF8000000000000ULL;
    for (int i = 0; i < 8; ++i) out[value_at + i] = static_cast<std::uint8_t>(nan_bits >> (8 * i));
    const std::uint32_t crc = protocol::crc32(out.data(), out.size() - protocol::kCrcSize);
    for (int i = 0; i < 4; ++i) out[out.size() - 4 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    EXPECT_EQ(rejection(decode_message(kUp, out)), "bad_field");
}

TEST(BinaryBatch, InfinityIsStorable) {
    BatchSpec spec;
    auto records = test::records_for(spec);
    records[0].value = std::numeric_limits<double>::infinity();
    std::vector<std::uint8_t> out(protocol::kMaxBatchSize);
    std::size_t written = 0;
    ASSERT_EQ(protocol::encode_batch(test::header_for(spec), records.data(), out.data(), out.size(), &written),
              protocol::CodecResult::Ok);
    out.resize(written);
    EXPECT_TRUE(std::holds_alternative<ReadingBatch>(decode_message(kUp, std::span(out.data(), written))));
}

TEST(Topics, BadTopicsAreRejected) {
    EXPECT_EQ(rejection(decode_text("fieldlink/v1/dev 1/up", kDocExample)), "bad_topic");
    EXPECT_EQ(rejection(decode_text("fieldlink/v2/dev-1/up", kDocExample)), "bad_topic");
    EXPECT_EQ(rejection(decode_text("fieldlink/v1/dev-1/down", kDocExample)), "bad_topic");
    EXPECT_EQ(rejection(decode_text("fieldlink/v1/dev-1/ack", kDocExample)), "bad_topic");
    EXPECT_EQ(rejection(decode_text("", kDocExample)), "bad_topic");
}

std::vector<std::uint8_t> encode_status(protocol::DeviceState state, const char* version) {
    protocol::StatusMessage status;
    status.state = state;
    status.incarnation = 0xa1;
    status.boot = 3;
    std::strncpy(status.firmware_version, version, protocol::kMaxFirmwareVersionLength);
    std::vector<std::uint8_t> out(protocol::kMaxStatusSize);
    std::size_t written = 0;
    EXPECT_EQ(protocol::encode_status(status, out.data(), out.size(), &written), protocol::CodecResult::Ok);
    out.resize(written);
    return out;
}

TEST(Status, BirthIsDecoded) {
    const Inbound inbound = decode_message(kStatus, encode_status(protocol::DeviceState::Online, "1.2.3"));
    const auto* status = std::get_if<DeviceStatus>(&inbound);
    ASSERT_NE(status, nullptr) << rejection(inbound);
    EXPECT_EQ(status->device, "dev-1");
    EXPECT_EQ(status->status.state, protocol::DeviceState::Online);
    EXPECT_EQ(status->status.incarnation, 0xa1u);
    EXPECT_EQ(status->status.boot, 3u);
    EXPECT_STREQ(status->status.firmware_version, "1.2.3");
}

TEST(Status, EmptyRetainedPayloadIsIgnored) { EXPECT_TRUE(std::holds_alternative<Ignored>(decode_text(kStatus, ""))); }

TEST(Status, MalformedStatusIsRejected) {
    auto payload = encode_status(protocol::DeviceState::Offline, "x");
    payload[6] ^= 0xff;
    EXPECT_EQ(rejection(decode_message(kStatus, payload)), "bad_checksum");
    EXPECT_EQ(rejection(decode_text(kStatus, kDocExample)), "oversize");
    EXPECT_EQ(rejection(decode_message(kStatus, test::encode(BatchSpec{}))), "oversize");
}

protocol::Telemetry sample_telemetry() {
    protocol::Telemetry t;
    t.incarnation = 0x0123456789abcdefull;
    t.boot = 2;
    t.reconnects = 1;
    t.uptime_ms = 3'600'000;
    t.held = 1'500;
    t.oldest_unacked_age_ms = 30'000;
    t.dropped = 0;
    t.next_seq = 4'001;
    t.acked_through = 2'500;
    return t;
}

std::vector<std::uint8_t> encode_telemetry(const protocol::Telemetry& t) {
    std::vector<std::uint8_t> out(protocol::kTelemetrySize);
    std::size_t written = 0;
    EXPECT_EQ(protocol::encode_telemetry(t, out.data(), out.size(), &written), protocol::CodecResult::Ok);
    out.resize(written);
    return out;
}

TEST(Telemetry, IsDecodedThroughTheSharedCodec) {
    const Inbound inbound = decode_message(kTelemetry, encode_telemetry(sample_telemetry()));
    const auto* health = std::get_if<DeviceTelemetry>(&inbound);
    ASSERT_NE(health, nullptr) << rejection(inbound);
    EXPECT_EQ(health->device, "dev-1");
    EXPECT_EQ(health->telemetry.incarnation, 0x0123456789abcdefull);
    EXPECT_EQ(health->telemetry.boot, 2u);
    EXPECT_EQ(health->telemetry.reconnects, 1u);
    EXPECT_EQ(health->telemetry.uptime_ms, 3'600'000u);
    EXPECT_EQ(health->telemetry.held, 1'500u);
    EXPECT_EQ(health->telemetry.oldest_unacked_age_ms, 30'000u);
    EXPECT_EQ(health->telemetry.next_seq, 4'001u);
    EXPECT_EQ(health->telemetry.acked_through, 2'500u);
}

TEST(Telemetry, CodecErrorsAreDeadLettersWithTheirNames) {
    auto payload = encode_telemetry(sample_telemetry());
    payload[20] ^= 0x01;
    EXPECT_EQ(rejection(decode_message(kTelemetry, payload)), "bad_checksum");
    EXPECT_EQ(rejection(decode_message(kTelemetry, std::span(payload.data(), 71))), "truncated");
    EXPECT_EQ(rejection(decode_text(kTelemetry, "")), "truncated");
    EXPECT_EQ(rejection(decode_text(kTelemetry, kDocExample)), "oversize");
    const Inbound inbound = decode_message(kTelemetry, payload);
    const auto* rejected = std::get_if<Rejected>(&inbound);
    ASSERT_NE(rejected, nullptr);
    EXPECT_EQ(rejected->topic, kTelemetry);
    EXPECT_EQ(rejected->payload, payload) << "kept whole for the dead-letter table";
}

TEST(Telemetry, CountsAbove2To63AreBadValues) {
    protocol::Telemetry t = sample_telemetry();
    t.held = std::numeric_limits<std::uint64_t>::max();
    EXPECT_EQ(rejection(decode_message(kTelemetry, encode_telemetry(t))), "bad_value");
    t = sample_telemetry();
    t.incarnation = std::numeric_limits<std::uint64_t>::max();  // an id, stored bit-cast: fine
    EXPECT_EQ(rejection(decode_message(kTelemetry, encode_telemetry(t))), "(accepted)");
}

TEST(LooksLikeJson, FirstNonBlankByte) {
    EXPECT_TRUE(looks_like_json(bytes("{")));
    EXPECT_TRUE(looks_like_json(bytes("  \n{")));
    EXPECT_FALSE(looks_like_json(bytes("FL")));
    EXPECT_FALSE(looks_like_json(bytes("   ")));
    EXPECT_FALSE(looks_like_json(bytes("")));
}

}  // namespace
}  // namespace fieldlink::gateway
