// libFuzzer target for every decoder of the wire protocol. Each input is decoded
// as it is and again with a correct CRC written over its last four bytes, so the
// fuzzer also reaches the checks behind the integrity check. Decoders must never
// crash, overread (AddressSanitizer) or hit undefined behaviour (UBSan).
#include <cstddef>
#include <cstdint>

#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/topics.hpp"

namespace fp = fieldlink::protocol;

namespace {

void decode_all(const std::uint8_t* data, std::size_t size) {
    fp::BatchView batch;
    if (fp::decode_batch(data, size, &batch) == fp::CodecResult::Ok) {
        double sum = 0;
        for (std::size_t i = 0; i < batch.header.count; ++i) sum += batch.record(i).value;
        // Re-encoding an accepted batch must give back the same bytes.
        static std::uint8_t out[fp::kMaxBatchSize];
        static fp::Record records[fp::kMaxRecordsPerBatch];
        for (std::size_t i = 0; i < batch.header.count; ++i) records[i] = batch.record(i);
        std::size_t n = 0;
        if (fp::encode_batch(batch.header, records, out, sizeof out, &n) != fp::CodecResult::Ok || n != size)
            __builtin_trap();
        for (std::size_t i = 0; i < n; ++i) {
            if (out[i] != data[i]) __builtin_trap();
        }
        (void)sum;
    }
    fp::Ack ack;
    (void)fp::decode_ack(data, size, &ack);
    fp::StatusMessage status;
    (void)fp::decode_status(data, size, &status);
    const char* id = nullptr;
    std::size_t id_length = 0;
    fp::TopicKind kind;
    (void)fp::parse_topic(reinterpret_cast<const char*>(data), size, &id, &id_length, &kind);
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
