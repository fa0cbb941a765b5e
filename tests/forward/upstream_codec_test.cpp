// The forwarded-batch payload against its vector in docs/protocol.md §10, and
// the round trips of every form (binary, JSON, zstd).
#include "fieldlink/gateway/forward/upstream_codec.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "support/doc_vectors.hpp"

namespace fieldlink::gateway {
namespace {

std::vector<ForwardRow> vector_rows() {
    ForwardRow first;
    first.device = "plant-7";
    first.incarnation = 0x0123456789abcdefull;
    first.seq = 1;
    first.channel = 0;
    first.mono_ms = 1500;
    first.unix_ms = 1'795'312'800'456;
    first.value = 21.5;
    first.received_unix_ms = 1'795'312'800'500;
    ForwardRow second = first;
    second.seq = 2;
    second.channel = 1;
    second.unix_ms.reset();
    second.value = 40.25;
    return {first, second};
}

TEST(UpstreamCodec, BinaryMatchesTheDocumentedVector) {
    const auto expected = test::doc_vector(FIELDLINK_PROTOCOL_DOC, "forward-batch");
    EXPECT_EQ(encode_forward_batch(ForwardEncoding::Binary, "gw-1", "plant-7", vector_rows()), expected);
    const ForwardBatch decoded = decode_forward_batch(expected);
    EXPECT_EQ(decoded.gateway, "gw-1");
    EXPECT_EQ(decoded.device, "plant-7");
    EXPECT_EQ(decoded.rows, vector_rows());
}

TEST(UpstreamCodec, EveryFormRoundTripsBitForBit) {
    std::vector<ForwardRow> rows = vector_rows();
    // JSON has no infinity or NaN: those only in the binary form, below.
    for (const double v : {-0.0, std::numeric_limits<double>::denorm_min(), 1e308, -123.456789012345678}) {
        ForwardRow row = rows.back();
        row.seq = rows.size() + 1;
        row.value = v;
        row.incarnation = 0xffffffffffffffffull;
        rows.push_back(row);
    }
    for (const auto encoding : {ForwardEncoding::Binary, ForwardEncoding::Json}) {
        for (const int level : {0, 3}) {
            auto payload = encode_forward_batch(encoding, "gw-1", "plant-7", rows);
            if (level > 0) payload = zstd_compress(payload, level);
            EXPECT_EQ(is_zstd_frame(payload), level > 0);
            const ForwardBatch decoded = decode_forward_batch(payload);
            ASSERT_EQ(decoded.rows.size(), rows.size());
            for (std::size_t i = 0; i < rows.size(); ++i) {
                EXPECT_EQ(decoded.rows[i], rows[i]) << "row " << i;
                EXPECT_EQ(std::signbit(decoded.rows[i].value), std::signbit(rows[i].value)) << "row " << i;
            }
        }
    }
    std::vector<ForwardRow> with_infinity = vector_rows();
    with_infinity[0].value = -std::numeric_limits<double>::infinity();
    EXPECT_EQ(decode_forward_batch(encode_forward_batch(ForwardEncoding::Binary, "g", "plant-7", with_infinity)).rows,
              with_infinity);
}

TEST(UpstreamCodec, RefusesWhatItCannotEncodeAndDamageItCannotDecode) {
    EXPECT_THROW(encode_forward_batch(ForwardEncoding::Binary, "", "d", vector_rows()), std::invalid_argument);
    EXPECT_THROW(encode_forward_batch(ForwardEncoding::Binary, "gw/1", "d", vector_rows()), std::invalid_argument);
    EXPECT_THROW(encode_forward_batch(ForwardEncoding::Binary, "gw", "d", {}), std::invalid_argument);
    auto payload = encode_forward_batch(ForwardEncoding::Binary, "gw-1", "plant-7", vector_rows());
    payload[10] ^= 1;
    EXPECT_THROW(decode_forward_batch(payload), std::runtime_error) << "checksum";
    payload[10] ^= 1;
    payload.pop_back();
    EXPECT_THROW(decode_forward_batch(payload), std::runtime_error) << "truncated";
}

}  // namespace
}  // namespace fieldlink::gateway
