// The data of `COPY ... FROM STDIN (FORMAT binary)`, PostgreSQL's binary copy
// format: the 19-byte header ("PGCOPY\n\377\r\n\0", flags 0, no header
// extension), one tuple per row (a 16-bit field count, then per field a 32-bit
// byte length, -1 for NULL, and the value's bytes), and a 16-bit -1 trailer;
// every integer big-endian. Binary rather than text because a double travels as
// its 8 IEEE-754 bytes (bit for bit: -0.0, subnormals and infinities included,
// no decimal round trip) and text fields need no escaping.
//
// Field encodings used here: text = its bytes (in the client encoding; fieldlink's
// ids are ASCII), smallint = 2 bytes, bigint = 8 bytes (two's complement),
// double precision = the 8 bytes of the IEEE-754 value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fieldlink::gateway {

class CopyBinaryWriter {
public:
    static constexpr std::size_t kHeaderSize = 19;

    CopyBinaryWriter();  // starts with the header

    // Starts a tuple of `fields` fields; exactly that many add_* calls follow.
    void begin_row(std::uint16_t fields);
    void add_text(std::string_view text);
    void add_int16(std::int16_t value);
    void add_int64(std::int64_t value);
    void add_float8(double value);
    void add_null();

    std::size_t rows() const noexcept { return rows_; }
    std::size_t size() const noexcept { return data_.size(); }

    // Appends the trailer and hands the bytes over; the writer starts again with a header.
    std::string finish();

private:
    void put_be(std::uint64_t value, int bytes);

    std::string data_;
    std::size_t rows_ = 0;
};

}  // namespace fieldlink::gateway
