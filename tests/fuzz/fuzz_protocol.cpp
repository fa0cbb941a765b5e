// libFuzzer target for every decoder of the wire protocol (batch, ack, status,
// telemetry, topics). Each input is decoded as it is and again with a correct
// CRC written over its last four bytes, so the fuzzer also reaches the checks
// behind the integrity check. Decoders must never crash, overread
// (AddressSanitizer) or hit undefined behaviour (UBSan), and every message
// they accept must encode back to exactly the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/topics.hpp"

namespace fp = fieldlink::protocol;

namespace {

[[noreturn]] void violated(const char* what, int line) {
    std::fprintf(stderr, "fuzz_protocol: invariant violated (line %d): %s\n", line, what);
    std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : violated(#cond, __LINE__))

// The re-encoded message must be the input, byte for byte.
void check_same(fp::CodecResult encoded, const std::uint8_t* out, std::size_t n, const std::uint8_t* data,
                std::size_t size) {
    FUZZ_CHECK(encoded == fp::CodecResult::Ok);
    FUZZ_CHECK(n == size);
    FUZZ_CHECK(std::memcmp(out, data, n) == 0);
}

void decode_all(const std::uint8_t* data, std::size_t size) {
    static std::uint8_t out[fp::kMaxBatchSize];
    std::size_t n = 0;

    fp::BatchView batch;
    if (fp::decode_batch(data, size, &batch) == fp::CodecResult::Ok) {
        FUZZ_CHECK(batch.header.count >= 1 && batch.header.count <= fp::kMaxRecordsPerBatch);
        FUZZ_CHECK(batch.header.first_seq >= 1 && batch.header.floor_seq <= batch.header.first_seq);
        FUZZ_CHECK(size == fp::kBatchHeaderSize + batch.header.count * fp::kRecordSize + fp::kCrcSize);
        static fp::Record records[fp::kMaxRecordsPerBatch];
        for (std::size_t i = 0; i < batch.header.count; ++i) records[i] = batch.record(i);
        check_same(fp::encode_batch(batch.header, records, out, sizeof out, &n), out, n, data, size);
    }
    fp::Ack ack;
    if (fp::decode_ack(data, size, &ack) == fp::CodecResult::Ok) {
        check_same(fp::encode_ack(ack, out, sizeof out, &n), out, n, data, size);
    }
    fp::StatusMessage status;
    if (fp::decode_status(data, size, &status) == fp::CodecResult::Ok) {
        check_same(fp::encode_status(status, out, sizeof out, &n), out, n, data, size);
    }
    fp::Telemetry telemetry;
    if (fp::decode_telemetry(data, size, &telemetry) == fp::CodecResult::Ok) {
        check_same(fp::encode_telemetry(telemetry, out, sizeof out, &n), out, n, data, size);
    }
    const char* id = nullptr;
    std::size_t id_length = 0;
    fp::TopicKind kind;
    const char* topic = reinterpret_cast<const char*>(data);
    if (fp::parse_topic(topic, size, &id, &id_length, &kind)) {
        FUZZ_CHECK(id > topic && id_length >= 1 && static_cast<std::size_t>(id - topic) + id_length < size);
        // format_topic of what was parsed gives back the topic.
        static char text[fp::kMaxDeviceIdLength + 64];
        const std::size_t length = fp::format_topic(id, id_length, kind, text, sizeof text);
        FUZZ_CHECK(length == size && std::memcmp(text, topic, size) == 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    decode_all(data, size);
    if (size < fp::kCrcSize || size > fp::kMaxBatchSize) return 0;
    static std::uint8_t sealed[fp::kMaxBatchSize];
    std::size_t body = size - fp::kCrcSize;
    for (std::size_t i = 0; i < body; ++i) sealed[i] = data[i];
    const std::uint32_t crc = fp::crc32(sealed, body);
    for (std::size_t i = 0; i < 4; ++i) sealed[body + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    // An exactly-sized heap copy keeps AddressSanitizer's bounds at the input's end.
    auto* exact = new std::uint8_t[size];
    for (std::size_t i = 0; i < size; ++i) exact[i] = sealed[i];
    decode_all(exact, size);
    delete[] exact;
    return 0;
}
