#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "fieldlink/protocol/codec.hpp"

namespace fp = fieldlink::protocol;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes make_batch(std::uint16_t count, std::uint64_t first_seq = 7) {
    fp::BatchHeader h;
    h.incarnation = 0xfeedfacecafebeefULL;
    h.first_seq = first_seq;
    h.floor_seq = first_seq > 2 ? first_seq - 2 : first_seq;
    h.boot = 9;
    h.count = count;
    std::vector<fp::Record> records(count);
    for (std::uint16_t i = 0; i < count; ++i) {
        records[i] = {static_cast<std::uint8_t>(i % 4), 1000u + i, 0.5 * i - 3.0};
    }
    Bytes out(fp::kMaxBatchSize);
    std::size_t n = 0;
    EXPECT_EQ(fp::encode_batch(h, records.data(), out.data(), out.size(), &n), fp::CodecResult::Ok);
    out.resize(n);
    return out;
}

// Rewrites the trailing CRC so a test reaches the check after it.
void reseal(Bytes& b) {
    if (b.size() < fp::kCrcSize) return;
    const std::uint32_t crc = fp::crc32(b.data(), b.size() - fp::kCrcSize);
    for (int i = 0; i < 4; ++i) b[b.size() - 4 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
}

// Decodes from an exactly-sized heap copy so AddressSanitizer sees any overread.
fp::CodecResult decode_exact(const std::uint8_t* data, std::size_t length, fp::BatchView* view = nullptr) {
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[length == 0 ? 1 : length]);
    if (length != 0) std::memcpy(copy.get(), data, length);
    fp::BatchView local;
    fp::CodecResult s = fp::decode_batch(copy.get(), length, view ? view : &local);
    if (s == fp::CodecResult::Ok) {
        fp::BatchView& v = view ? *view : local;
        for (std::size_t i = 0; i < v.header.count; ++i) (void)v.record(i);  // touch every record
        if (view) *view = {};                                                // points into the copy that dies here
    }
    return s;
}

}  // namespace

TEST(Crc32, CheckValue) {
    const char* text = "123456789";
    EXPECT_EQ(fp::crc32(reinterpret_cast<const std::uint8_t*>(text), 9), 0xCBF43926u);
    EXPECT_EQ(fp::crc32(nullptr, 0), 0u);
}

TEST(Crc32, Incremental) {
    const char* text = "123456789";
    const auto* p = reinterpret_cast<const std::uint8_t*>(text);
    EXPECT_EQ(fp::crc32(p + 4, 5, fp::crc32(p, 4)), 0xCBF43926u);
}

TEST(Crc32, FastEqualsTheNibbleLoopForEveryLengthAlignmentAndStart) {
    const char* text = "123456789";
    EXPECT_EQ(fp::crc32_fast(reinterpret_cast<const std::uint8_t*>(text), 9), 0xCBF43926u);
    EXPECT_EQ(fp::crc32_fast(nullptr, 0), 0u);
    std::mt19937 random(7);
    std::vector<std::uint8_t> bytes(300);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
    for (std::size_t offset = 0; offset < 8; ++offset) {
        for (std::size_t length = 0; length + offset <= bytes.size(); length += 1 + length / 16) {
            const std::uint8_t* p = bytes.data() + offset;
            ASSERT_EQ(fp::crc32_fast(p, length), fp::crc32(p, length)) << "offset " << offset << ", length " << length;
            ASSERT_EQ(fp::crc32_fast(p, length, 0x12345678u), fp::crc32(p, length, 0x12345678u));
        }
    }
}

TEST(Batch, RoundTripEverySize) {
    for (std::uint16_t count : {1, 2, 31, 100, 511, 512}) {
        Bytes b = make_batch(count);
        EXPECT_EQ(b.size(), fp::kBatchHeaderSize + count * fp::kRecordSize + fp::kCrcSize);
        fp::BatchView view;
        ASSERT_EQ(fp::decode_batch(b.data(), b.size(), &view), fp::CodecResult::Ok) << count;
        EXPECT_EQ(view.header.count, count);
        EXPECT_EQ(view.header.boot, 9u);
        for (std::uint16_t i = 0; i < count; ++i) {
            const fp::Record r = view.record(i);
            EXPECT_EQ(r.channel, i % 4);
            EXPECT_EQ(r.mono_ms, 1000u + i);
            EXPECT_EQ(r.value, 0.5 * i - 3.0);
        }
    }
}

TEST(Batch, SpecialValuesSurvive) {
    const double values[] = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max()};
    fp::BatchHeader h;
    h.incarnation = 1;
    h.first_seq = 1;
    h.floor_seq = 1;
    h.count = 5;
    fp::Record records[5];
    for (int i = 0; i < 5; ++i) records[i] = {255, UINT64_MAX, values[i]};
    std::uint8_t out[fp::kMaxBatchSize];
    std::size_t n = 0;
    ASSERT_EQ(fp::encode_batch(h, records, out, sizeof out, &n), fp::CodecResult::Ok);
    fp::BatchView view;
    ASSERT_EQ(fp::decode_batch(out, n, &view), fp::CodecResult::Ok);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(std::memcmp(&values[i], &records[i].value, sizeof(double)), 0);
        const double got = view.record(i).value;
        EXPECT_EQ(std::memcmp(&got, &values[i], sizeof(double)), 0) << i;
        EXPECT_EQ(view.record(i).mono_ms, UINT64_MAX);
    }
}

TEST(Batch, EncoderRejectsWhatCannotDecode) {
    fp::Record r{};
    std::uint8_t out[fp::kMaxBatchSize];
    std::size_t n = 0;
    fp::BatchHeader h;
    h.first_seq = 1;
    h.count = 0;
    EXPECT_EQ(fp::encode_batch(h, &r, out, sizeof out, &n), fp::CodecResult::InvalidArgument);
    h.count = fp::kMaxRecordsPerBatch + 1;
    EXPECT_EQ(fp::encode_batch(h, &r, out, sizeof out, &n), fp::CodecResult::InvalidArgument);
    h.count = 1;
    h.first_seq = 0;
    EXPECT_EQ(fp::encode_batch(h, &r, out, sizeof out, &n), fp::CodecResult::InvalidArgument);
    h.first_seq = 5;
    h.floor_seq = 6;
    EXPECT_EQ(fp::encode_batch(h, &r, out, sizeof out, &n), fp::CodecResult::InvalidArgument);
    h.floor_seq = 5;
    EXPECT_EQ(fp::encode_batch(h, &r, out, 64, &n), fp::CodecResult::BufferTooSmall);
    EXPECT_EQ(fp::encode_batch(h, &r, out, 65, &n), fp::CodecResult::Ok);
    EXPECT_EQ(n, 65u);
}

TEST(BatchMalformed, Truncated) {
    const Bytes b = make_batch(3);
    EXPECT_EQ(decode_exact(b.data(), 0), fp::CodecResult::Truncated);
    EXPECT_EQ(decode_exact(b.data(), 47), fp::CodecResult::Truncated);
    EXPECT_EQ(decode_exact(b.data(), b.size() - 1), fp::CodecResult::Truncated);
    EXPECT_EQ(fp::decode_batch(nullptr, 100, nullptr), fp::CodecResult::Truncated);
}

TEST(BatchMalformed, Oversize) {
    Bytes b(fp::kMaxBatchSize + 1, 0);
    EXPECT_EQ(decode_exact(b.data(), b.size()), fp::CodecResult::Oversize);
    Bytes huge(1 << 20, 0xAB);
    EXPECT_EQ(decode_exact(huge.data(), huge.size()), fp::CodecResult::Oversize);
}

TEST(BatchMalformed, BadMagicVersionKind) {
    Bytes b = make_batch(1);
    Bytes m = b;
    m[0] = 'X';
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadMagic);
    m = b;
    m[2] = 2;
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::UnsupportedVersion);
    m = b;
    m[3] = static_cast<std::uint8_t>(fp::Kind::Ack);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::WrongKind);
}

TEST(BatchMalformed, BadChecksumOnAnySingleBitFlip) {
    const Bytes b = make_batch(2);
    for (std::size_t byte = 4; byte < b.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            Bytes m = b;
            m[byte] ^= static_cast<std::uint8_t>(1u << bit);
            EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadChecksum) << byte << ":" << bit;
        }
    }
}

TEST(BatchMalformed, BadFields) {
    const Bytes b = make_batch(2, 10);
    Bytes m = b;
    m[40] = 0x02;  // unknown flag
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadField);
    m = b;
    m[41] = 1;  // reserved
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadField);
    m = b;
    std::memset(&m[12], 0, 8);  // first_seq 0
    std::memset(&m[20], 0, 8);
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadField);
    m = b;
    m[20] = 11;  // floor above first
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadField);
}

TEST(BatchMalformed, CountClasses) {
    const Bytes b = make_batch(2);
    Bytes m = b;
    m[42] = 0;
    m[43] = 0;
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::EmptyBatch);
    m = b;
    m[42] = 0x01;  // 513
    m[43] = 0x02;
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::TooManyRecords);
    m = b;
    m[42] = 3;
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::CountMismatch);
    m = b;
    m[42] = 1;
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::CountMismatch);
}

TEST(BatchMalformed, SequenceOverflow) {
    Bytes m = make_batch(2, 10);
    std::memset(&m[12], 0xFF, 8);  // first_seq = 2^64-1 with 2 records
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::SequenceOverflow);
    std::memset(&m[12], 0xFF, 8);
    m[12] = 0xFE;  // 2^64-2 + 1 = last valid
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::Ok);
}

// Every prefix and every extension of a valid batch is rejected, never read past.
TEST(BatchMalformed, EveryPrefixIsAnError) {
    Bytes b = make_batch(5);
    for (std::size_t len = 0; len < b.size(); ++len) {
        EXPECT_NE(decode_exact(b.data(), len), fp::CodecResult::Ok) << len;
    }
    b.push_back(0);
    EXPECT_NE(decode_exact(b.data(), b.size()), fp::CodecResult::Ok);
}

// Seeded random mutations: the decoder must give a status for each and stay in bounds
// (meaningful under AddressSanitizer); a mutated-but-accepted batch must reseal consistently.
TEST(BatchMalformed, RandomMutationsAreTotal) {
    std::mt19937 rng(20261122);
    const Bytes base = make_batch(8);
    int accepted = 0;
    for (int round = 0; round < 20000; ++round) {
        Bytes m = base;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            switch (rng() % 3) {
                case 0: m[rng() % m.size()] = static_cast<std::uint8_t>(rng()); break;
                case 1:
                    m.resize(rng() % (m.size() + 1));
                    if (m.empty()) m.push_back(0);
                    break;
                default: m.insert(m.begin() + static_cast<long>(rng() % m.size()), static_cast<std::uint8_t>(rng()));
            }
        }
        if (rng() % 2) reseal(m);
        fp::BatchView view;
        const fp::CodecResult s = decode_exact(m.data(), m.size(), &view);
        EXPECT_LE(static_cast<int>(s), static_cast<int>(fp::CodecResult::SequenceOverflow));
        if (s == fp::CodecResult::Ok) ++accepted;
    }
    EXPECT_LT(accepted, 20000);
}

TEST(Ack, RoundTripAndErrors) {
    const fp::Ack ack{42, 1000000, -5};
    std::uint8_t out[fp::kAckSize];
    std::size_t n = 0;
    EXPECT_EQ(fp::encode_ack(ack, out, sizeof out - 1, &n), fp::CodecResult::BufferTooSmall);
    ASSERT_EQ(fp::encode_ack(ack, out, sizeof out, &n), fp::CodecResult::Ok);
    fp::Ack got;
    ASSERT_EQ(fp::decode_ack(out, n, &got), fp::CodecResult::Ok);
    EXPECT_EQ(got.incarnation, 42u);
    EXPECT_EQ(got.watermark, 1000000u);
    EXPECT_EQ(got.gateway_unix_ms, -5);

    EXPECT_EQ(fp::decode_ack(out, n - 1, &got), fp::CodecResult::Truncated);
    std::uint8_t longer[fp::kAckSize + 1] = {};
    std::memcpy(longer, out, n);
    EXPECT_EQ(fp::decode_ack(longer, sizeof longer, &got), fp::CodecResult::Oversize);
    Bytes m(out, out + n);
    m[3] = static_cast<std::uint8_t>(fp::Kind::Batch);
    EXPECT_EQ(fp::decode_ack(m.data(), m.size(), &got), fp::CodecResult::WrongKind);
    m = Bytes(out, out + n);
    m[15] ^= 1;
    EXPECT_EQ(fp::decode_ack(m.data(), m.size(), &got), fp::CodecResult::BadChecksum);
    m[0] = 0;
    EXPECT_EQ(fp::decode_ack(m.data(), m.size(), &got), fp::CodecResult::BadMagic);
}

TEST(StatusMessage, RoundTripAndErrors) {
    fp::StatusMessage st;
    st.state = fp::DeviceState::Online;
    st.incarnation = 7;
    st.boot = 3;
    std::memset(st.firmware_version, 'v', fp::kMaxFirmwareVersionLength);
    std::uint8_t out[fp::kMaxStatusSize];
    std::size_t n = 0;
    ASSERT_EQ(fp::encode_status(st, out, sizeof out, &n), fp::CodecResult::Ok);
    EXPECT_EQ(n, fp::kMaxStatusSize);
    fp::StatusMessage got;
    ASSERT_EQ(fp::decode_status(out, n, &got), fp::CodecResult::Ok);
    EXPECT_EQ(got.boot, 3u);
    EXPECT_EQ(std::strlen(got.firmware_version), fp::kMaxFirmwareVersionLength);

    EXPECT_EQ(fp::decode_status(out, n - 1, &got), fp::CodecResult::Truncated);
    EXPECT_EQ(fp::decode_status(out, 22, &got), fp::CodecResult::Truncated);
    Bytes m(out, out + n);
    m[5] = 0;
    EXPECT_EQ(fp::decode_status(m.data(), m.size(), &got), fp::CodecResult::BadField);
    m = Bytes(out, out + n);
    m[5] = 10;  // claims shorter text than present
    EXPECT_EQ(fp::decode_status(m.data(), m.size(), &got), fp::CodecResult::BadField);
    m = Bytes(out, out + n);
    m[4] = 2;
    reseal(m);
    EXPECT_EQ(fp::decode_status(m.data(), m.size(), &got), fp::CodecResult::BadField);
    m = Bytes(out, out + n);
    m[20] = '\n';
    reseal(m);
    EXPECT_EQ(fp::decode_status(m.data(), m.size(), &got), fp::CodecResult::BadField);
    m = Bytes(out, out + n);
    m[20] ^= 1;
    EXPECT_EQ(fp::decode_status(m.data(), m.size(), &got), fp::CodecResult::BadChecksum);

    st.firmware_version[0] = '\0';
    EXPECT_EQ(fp::encode_status(st, out, sizeof out, &n), fp::CodecResult::InvalidArgument);
}

TEST(StatusNames, AreStableAndDistinct) {
    EXPECT_STREQ(fp::to_string(fp::CodecResult::Ok), "ok");
    EXPECT_STREQ(fp::to_string(fp::CodecResult::BadChecksum), "bad_checksum");
    EXPECT_STREQ(fp::to_string(fp::CodecResult::CountMismatch), "count_mismatch");
    for (int a = 0; a <= static_cast<int>(fp::CodecResult::InvalidArgument); ++a) {
        for (int b = a + 1; b <= static_cast<int>(fp::CodecResult::InvalidArgument); ++b) {
            EXPECT_STRNE(fp::to_string(static_cast<fp::CodecResult>(a)),
                         fp::to_string(static_cast<fp::CodecResult>(b)));
        }
    }
}

TEST(BatchMalformed, NaNValueIsABadField) {
    Bytes m = make_batch(3);
    const std::uint64_t quiet_nan = 0x7FF8000000000001ULL;
    for (int i = 0; i < 8; ++i)
        m[fp::kBatchHeaderSize + fp::kRecordSize + 9 + i] = static_cast<std::uint8_t>(quiet_nan >> (8 * i));
    reseal(m);
    EXPECT_EQ(decode_exact(m.data(), m.size()), fp::CodecResult::BadField);

    fp::BatchHeader h;
    h.first_seq = 1;
    h.floor_seq = 1;
    h.count = 1;
    const fp::Record nan_record{0, 1, std::numeric_limits<double>::quiet_NaN()};
    std::uint8_t out[fp::kMaxBatchSize];
    std::size_t n = 0;
    EXPECT_EQ(fp::encode_batch(h, &nan_record, out, sizeof out, &n), fp::CodecResult::InvalidArgument);
}

TEST(Telemetry, RoundTripAndErrors) {
    fp::Telemetry t;
    t.incarnation = 0x1122334455667788ULL;
    t.boot = 4;
    t.reconnects = 9;
    t.uptime_ms = 86400000;
    t.held = 100000;
    t.oldest_unacked_age_ms = 25000;
    t.dropped = 3;
    t.next_seq = 200001;
    t.acked_through = 100000;
    std::uint8_t out[fp::kTelemetrySize];
    std::size_t n = 0;
    EXPECT_EQ(fp::encode_telemetry(t, out, sizeof out - 1, &n), fp::CodecResult::BufferTooSmall);
    ASSERT_EQ(fp::encode_telemetry(t, out, sizeof out, &n), fp::CodecResult::Ok);
    ASSERT_EQ(n, fp::kTelemetrySize);
    fp::Telemetry got;
    ASSERT_EQ(fp::decode_telemetry(out, n, &got), fp::CodecResult::Ok);
    EXPECT_EQ(got.incarnation, t.incarnation);
    EXPECT_EQ(got.boot, 4u);
    EXPECT_EQ(got.reconnects, 9u);
    EXPECT_EQ(got.held, 100000u);
    EXPECT_EQ(got.oldest_unacked_age_ms, 25000u);
    EXPECT_EQ(got.dropped, 3u);
    EXPECT_EQ(got.next_seq, 200001u);
    EXPECT_EQ(got.acked_through, 100000u);

    EXPECT_EQ(fp::decode_telemetry(out, n - 1, &got), fp::CodecResult::Truncated);
    Bytes m(out, out + n);
    m.push_back(0);
    EXPECT_EQ(fp::decode_telemetry(m.data(), m.size(), &got), fp::CodecResult::Oversize);
    m.pop_back();
    m[30] ^= 4;
    EXPECT_EQ(fp::decode_telemetry(m.data(), m.size(), &got), fp::CodecResult::BadChecksum);
    m[3] = static_cast<std::uint8_t>(fp::Kind::Ack);
    EXPECT_EQ(fp::decode_telemetry(m.data(), m.size(), &got), fp::CodecResult::WrongKind);
}
