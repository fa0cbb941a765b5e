// The payload of a forwarded batch (docs/protocol.md §10): the readings of one
// device of one gateway, each with its full key (gateway, device, incarnation,
// seq) so that any receiver can drop duplicates. Binary (the wire codec's
// conventions: "FL" header, little-endian, CRC-32) or JSON, optionally inside
// a zstd frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fieldlink/gateway/store/forward_store.hpp"

namespace fieldlink::gateway {

inline constexpr std::uint8_t kForwardBatchKind = 0x05;
inline constexpr std::size_t kForwardRecordSize = 54;
inline constexpr std::size_t kMaxForwardRecords = 4096;
inline constexpr std::size_t kMaxGatewayIdLength = 64;

enum class ForwardEncoding { Binary, Json };

// A gateway id has the device id's characters (A-Z a-z 0-9 _ -), 1 to 64 of them.
bool is_valid_gateway_id(std::string_view id) noexcept;

// Encodes rows (all of `device`, at most kMaxForwardRecords) as one payload.
// Throws std::invalid_argument for an invalid id or row count.
std::vector<std::uint8_t> encode_forward_batch(ForwardEncoding encoding, std::string_view gateway,
                                               std::string_view device, std::span<const ForwardRow> rows);

// A decoded forwarded batch (for receivers and tests). Row ids are not sent: 0.
struct ForwardBatch {
    std::string gateway;
    std::string device;
    std::vector<ForwardRow> rows;
};

// Decodes either form (a payload whose first non-blank byte is '{' is JSON),
// unwrapping a zstd frame first. Throws std::runtime_error naming what is wrong.
ForwardBatch decode_forward_batch(std::span<const std::uint8_t> payload);

// zstd frame of `data` at `level` (1..19); and back. Throw std::runtime_error on failure.
std::vector<std::uint8_t> zstd_compress(std::span<const std::uint8_t> data, int level);
std::vector<std::uint8_t> zstd_decompress(std::span<const std::uint8_t> frame);
// True when `payload` starts with the zstd frame magic (28 b5 2f fd).
bool is_zstd_frame(std::span<const std::uint8_t> payload) noexcept;

}  // namespace fieldlink::gateway
