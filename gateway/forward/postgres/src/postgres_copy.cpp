#include "fieldlink/gateway/forward/postgres_copy.hpp"

#include <bit>
#include <stdexcept>

namespace fieldlink::gateway {

namespace {

constexpr char kSignature[] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\xff', '\r', '\n', '\0'};

void start(std::string& data) {
    data.assign(kSignature, sizeof(kSignature));
    data.append(8, '\0');  // flags (no OIDs), header extension length 0
}

}  // namespace

CopyBinaryWriter::CopyBinaryWriter() { start(data_); }

void CopyBinaryWriter::put_be(std::uint64_t value, int bytes) {
    for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) {
        data_.push_back(static_cast<char>((value >> shift) & 0xFF));
    }
}

void CopyBinaryWriter::begin_row(std::uint16_t fields) {
    put_be(fields, 2);
    ++rows_;
}

void CopyBinaryWriter::add_text(std::string_view text) {
    if (text.size() > 0x7FFFFFFF) throw std::length_error("COPY text field longer than 2 GiB");
    put_be(static_cast<std::uint32_t>(text.size()), 4);
    data_.append(text);
}

void CopyBinaryWriter::add_int16(std::int16_t value) {
    put_be(2, 4);
    put_be(static_cast<std::uint16_t>(value), 2);
}

void CopyBinaryWriter::add_int64(std::int64_t value) {
    put_be(8, 4);
    put_be(static_cast<std::uint64_t>(value), 8);
}

void CopyBinaryWriter::add_float8(double value) {
    put_be(8, 4);
    put_be(std::bit_cast<std::uint64_t>(value), 8);
}

void CopyBinaryWriter::add_null() { put_be(0xFFFFFFFFu, 4); }

std::string CopyBinaryWriter::finish() {
    put_be(0xFFFF, 2);
    std::string out = std::move(data_);
    start(data_);
    rows_ = 0;
    return out;
}

}  // namespace fieldlink::gateway
