// Streaming output: sinks (a file or stdout, optionally zstd-compressed) and
// row formats (aligned table, CSV, JSON array, NDJSON). Nothing here collects
// rows: each is formatted into a small buffer and written on, so memory stays
// constant however many rows pass.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::cli {

// Where bytes go. write() and finish() throw std::runtime_error naming the path and errno.
class Sink {
public:
    virtual ~Sink() = default;
    virtual void write(std::string_view bytes) = 0;
    // Flushes everything (and ends a compressed frame); call once, at the end.
    virtual void finish() = 0;
    // Bytes handed to the underlying file so far (compressed size for zstd).
    virtual std::uint64_t bytes_out() const = 0;
};

// stdout, not closed.
std::unique_ptr<Sink> stdout_sink();
// A new file at `path` (replaced if it exists). Written as `path`.part and
// renamed by finish(), so a failed export never leaves a half file under the name.
std::unique_ptr<Sink> file_sink(const std::string& path);
// Compresses into `inner` as one zstd frame (streaming, bounded buffers).
std::unique_ptr<Sink> zstd_sink(std::unique_ptr<Sink> inner, int level);

// One stored reading as the fieldlink command shows it.
struct Reading {
    std::int64_t id = 0;
    std::string device;
    std::uint64_t incarnation = 0;
    std::int64_t seq = 0;
    std::int64_t boot = 0;
    std::int64_t channel = 0;
    std::int64_t mono_ms = 0;
    std::optional<std::int64_t> unix_ms;
    double value = 0.0;
    std::int64_t received_unix_ms = 0;
};

enum class Format { Table, Csv, Json, Ndjson };

// Formats readings onto a sink; begin() before the first row, end() after the last.
class ReadingWriter {
public:
    virtual ~ReadingWriter() = default;
    virtual void begin() = 0;
    virtual void row(const Reading& reading) = 0;
    virtual void end() = 0;
};

std::unique_ptr<ReadingWriter> make_reading_writer(Format format, Sink& sink);

// Text helpers shared by every command's output.
std::string json_string(std::string_view text);          // with the quotes
std::string csv_field(std::string_view text);            // quoted only when needed (RFC 4180)
std::string hex_incarnation(std::uint64_t incarnation);  // 16 hex digits, as devices print it
// Shortest text that reads back as the same double.
std::string number_text(double value);
// number_text as a JSON value: infinities (JSON has none) as the strings "inf" and "-inf".
std::string json_number(double value);

}  // namespace fieldlink::cli
