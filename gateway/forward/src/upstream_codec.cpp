#include "fieldlink/gateway/forward/upstream_codec.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zstd.h>

#include <limits>

#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/little_endian.hpp"
#include "fieldlink/protocol/text.hpp"
#include "fieldlink/protocol/topics.hpp"
#include "fieldlink/protocol/values.hpp"

namespace fieldlink::gateway {
namespace {

using Json = nlohmann::json;
namespace le = protocol::le;

constexpr std::uint8_t kFlagUnixKnown = 0x01;

bool valid_id_chars(std::string_view id) noexcept {
    for (const char c : id) {
        const bool ok =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

void check_batch(std::string_view gateway, std::string_view device, std::size_t count) {
    if (!is_valid_gateway_id(gateway)) throw std::invalid_argument(fmt::format("invalid gateway id '{}'", gateway));
    if (!protocol::is_valid_device_id(device.data(), device.size())) {
        throw std::invalid_argument(fmt::format("invalid device id '{}'", device));
    }
    if (count == 0 || count > kMaxForwardRecords) {
        throw std::invalid_argument(
            fmt::format("a forwarded batch holds 1 to {} readings, not {}", kMaxForwardRecords, count));
    }
}

std::vector<std::uint8_t> encode_binary(std::string_view gateway, std::string_view device,
                                        std::span<const ForwardRow> rows) {
    const std::size_t header = 4 + 1 + gateway.size() + 1 + device.size() + 2;
    std::vector<std::uint8_t> out(header + rows.size() * kForwardRecordSize + protocol::kCrcSize);
    std::uint8_t* p = out.data();
    p[0] = protocol::kMagic0;
    p[1] = protocol::kMagic1;
    p[2] = protocol::kVersion;
    p[3] = kForwardBatchKind;
    p[4] = static_cast<std::uint8_t>(gateway.size());
    std::copy(gateway.begin(), gateway.end(), p + 5);
    p += 5 + gateway.size();
    p[0] = static_cast<std::uint8_t>(device.size());
    std::copy(device.begin(), device.end(), p + 1);
    p += 1 + device.size();
    le::put_u16(p, static_cast<std::uint16_t>(rows.size()));
    p += 2;
    for (const ForwardRow& row : rows) {
        le::put_u64(p, row.incarnation);
        le::put_u64(p + 8, row.seq);
        le::put_u32(p + 16, row.boot);
        p[20] = row.channel;
        p[21] = row.unix_ms ? kFlagUnixKnown : 0;
        le::put_u64(p + 22, row.mono_ms);
        le::put_u64(p + 30, static_cast<std::uint64_t>(row.unix_ms.value_or(0)));
        le::put_u64(p + 38, protocol::value_bits(row.value));
        le::put_u64(p + 46, static_cast<std::uint64_t>(row.received_unix_ms));
        p += kForwardRecordSize;
    }
    le::put_u32(p, protocol::crc32_fast(out.data(), out.size() - protocol::kCrcSize));
    return out;
}

std::vector<std::uint8_t> encode_json(std::string_view gateway, std::string_view device,
                                      std::span<const ForwardRow> rows) {
    Json readings = Json::array();
    for (const ForwardRow& row : rows) {
        readings.push_back({{"incarnation", fmt::format("{:016x}", row.incarnation)},
                            {"seq", row.seq},
                            {"boot", row.boot},
                            {"ch", row.channel},
                            {"t", row.mono_ms},
                            {"unix_ms", row.unix_ms ? Json(*row.unix_ms) : Json(nullptr)},
                            {"v", row.value},
                            {"received_unix_ms", row.received_unix_ms}});
    }
    const Json batch = {{"v", 1}, {"gateway", gateway}, {"device", device}, {"readings", std::move(readings)}};
    const std::string text = batch.dump();
    return {text.begin(), text.end()};
}

[[noreturn]] void bad(std::string_view what) { throw std::runtime_error(fmt::format("forwarded batch: {}", what)); }

ForwardBatch decode_binary(std::span<const std::uint8_t> data) {
    if (data.size() < 4 + 1 + 1 + 1 + 1 + 2 + protocol::kCrcSize) bad("truncated");
    if (data[0] != protocol::kMagic0 || data[1] != protocol::kMagic1) bad("bad magic");
    if (data[2] != protocol::kVersion) bad("unsupported version");
    if (data[3] != kForwardBatchKind) bad("not a forwarded batch (kind 05)");
    const std::size_t body = data.size() - protocol::kCrcSize;
    if (protocol::crc32_fast(data.data(), body) != le::get_u32(data.data() + body)) bad("bad checksum");
    ForwardBatch batch;
    std::size_t at = 4;
    const auto text = [&](std::size_t max) {
        if (at >= body) bad("truncated");
        const std::size_t length = data[at++];
        if (length == 0 || length > max || at + length > body) bad("bad id length");
        std::string id(reinterpret_cast<const char*>(data.data() + at), length);
        at += length;
        return id;
    };
    batch.gateway = text(kMaxGatewayIdLength);
    batch.device = text(protocol::kMaxDeviceIdLength);
    if (!is_valid_gateway_id(batch.gateway)) bad("invalid gateway id");
    if (!protocol::is_valid_device_id(batch.device.data(), batch.device.size())) bad("invalid device id");
    if (at + 2 > body) bad("truncated");
    const std::size_t count = le::get_u16(data.data() + at);
    at += 2;
    if (count == 0 || count > kMaxForwardRecords) bad("bad count");
    if (body - at != count * kForwardRecordSize) bad("count does not match the records present");
    for (std::size_t i = 0; i < count; ++i, at += kForwardRecordSize) {
        const std::uint8_t* p = data.data() + at;
        ForwardRow row;
        row.device = batch.device;
        row.incarnation = le::get_u64(p);
        row.seq = le::get_u64(p + 8);
        row.boot = le::get_u32(p + 16);
        row.channel = p[20];
        if ((p[21] & ~kFlagUnixKnown) != 0) bad("unknown flag bits");
        row.mono_ms = le::get_u64(p + 22);
        if ((p[21] & kFlagUnixKnown) != 0) row.unix_ms = static_cast<std::int64_t>(le::get_u64(p + 30));
        row.value = protocol::value_from_bits(le::get_u64(p + 38));
        row.received_unix_ms = static_cast<std::int64_t>(le::get_u64(p + 46));
        batch.rows.push_back(std::move(row));
    }
    return batch;
}

ForwardBatch decode_json(std::span<const std::uint8_t> data) {
    const Json root = Json::parse(data.begin(), data.end(), nullptr, false);
    if (root.is_discarded() || !root.is_object()) bad("not a JSON object");
    try {
        if (root.at("v").get<int>() != 1) bad("unsupported version");
        ForwardBatch batch;
        batch.gateway = root.at("gateway").get<std::string>();
        batch.device = root.at("device").get<std::string>();
        for (const Json& r : root.at("readings")) {
            ForwardRow row;
            row.device = batch.device;
            const auto& hex = r.at("incarnation").get_ref<const std::string&>();
            if (!protocol::parse_hex_u64(hex.data(), hex.size(), &row.incarnation)) bad("bad incarnation");
            row.seq = r.at("seq").get<std::uint64_t>();
            row.boot = r.at("boot").get<std::uint32_t>();
            row.channel = r.at("ch").get<std::uint8_t>();
            row.mono_ms = r.at("t").get<std::uint64_t>();
            if (!r.at("unix_ms").is_null()) row.unix_ms = r.at("unix_ms").get<std::int64_t>();
            row.value = r.at("v").get<double>();
            row.received_unix_ms = r.at("received_unix_ms").get<std::int64_t>();
            batch.rows.push_back(std::move(row));
        }
        return batch;
    } catch (const Json::exception& e) {
        bad(e.what());
    }
}

}  // namespace

bool is_valid_gateway_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= kMaxGatewayIdLength && valid_id_chars(id);
}

std::vector<std::uint8_t> encode_forward_batch(ForwardEncoding encoding, std::string_view gateway,
                                               std::string_view device, std::span<const ForwardRow> rows) {
    check_batch(gateway, device, rows.size());
    return encoding == ForwardEncoding::Json ? encode_json(gateway, device, rows)
                                             : encode_binary(gateway, device, rows);
}

ForwardBatch decode_forward_batch(std::span<const std::uint8_t> payload) {
    if (is_zstd_frame(payload)) {
        const std::vector<std::uint8_t> inner = zstd_decompress(payload);
        return decode_forward_batch(inner);
    }
    for (const std::uint8_t byte : payload) {
        if (byte == ' ' || byte == '\t' || byte == '\r' || byte == '\n') continue;
        return byte == '{' ? decode_json(payload) : decode_binary(payload);
    }
    bad("empty");
}

bool is_zstd_frame(std::span<const std::uint8_t> payload) noexcept {
    return payload.size() >= 4 && payload[0] == 0x28 && payload[1] == 0xb5 && payload[2] == 0x2f && payload[3] == 0xfd;
}

std::vector<std::uint8_t> zstd_compress(std::span<const std::uint8_t> data, int level) {
    std::vector<std::uint8_t> out(ZSTD_compressBound(data.size()));
    const std::size_t written = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
    if (ZSTD_isError(written)) throw std::runtime_error(fmt::format("zstd: {}", ZSTD_getErrorName(written)));
    out.resize(written);
    return out;
}

std::vector<std::uint8_t> zstd_decompress(std::span<const std::uint8_t> frame) {
    const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
    // Our frames always record their size; a forwarded batch is at most a few hundred KiB.
    constexpr unsigned long long kMaxContent = 16ull << 20;
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxContent) {
        throw std::runtime_error("zstd: not a frame with a known content size of at most 16 MiB");
    }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
    const std::size_t written = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
    if (ZSTD_isError(written)) throw std::runtime_error(fmt::format("zstd: {}", ZSTD_getErrorName(written)));
    out.resize(written);
    return out;
}

}  // namespace fieldlink::gateway
