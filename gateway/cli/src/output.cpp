#include "output.hpp"

#include <fmt/format.h>
#include <zstd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "time_text.hpp"

namespace fieldlink::cli {
namespace {

constexpr std::size_t kFlushAt = 64 * 1024;

[[noreturn]] void fail(std::string_view what, const std::string& path) {
    throw std::runtime_error(fmt::format("{} '{}': {}", what, path, std::strerror(errno)));
}

class FileSink final : public Sink {
public:
    FileSink(std::FILE* file, std::string name, std::string final_path, bool owned)
        : file_(file), name_(std::move(name)), final_path_(std::move(final_path)), owned_(owned) {}
    ~FileSink() override {
        if (owned_ && file_ != nullptr) {
            std::fclose(file_);
            std::remove(name_.c_str());  // not finished: leave no partial file behind
        }
    }
    void write(std::string_view bytes) override {
        if (bytes.empty()) return;
        if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) fail("cannot write", name_);
        bytes_out_ += bytes.size();
    }
    void finish() override {
        if (std::fflush(file_) != 0) fail("cannot write", name_);
        if (!owned_) return;
        std::FILE* file = std::exchange(file_, nullptr);
        if (std::fclose(file) != 0) fail("cannot close", name_);
        if (std::rename(name_.c_str(), final_path_.c_str()) != 0) fail("cannot rename to " + final_path_, name_);
    }
    std::uint64_t bytes_out() const override { return bytes_out_; }

private:
    std::FILE* file_;
    std::string name_;
    std::string final_path_;
    bool owned_;
    std::uint64_t bytes_out_ = 0;
};

class ZstdSink final : public Sink {
public:
    ZstdSink(std::unique_ptr<Sink> inner, int level)
        : inner_(std::move(inner)), context_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
        if (context_ == nullptr) throw std::runtime_error("zstd: cannot allocate a compression context");
        check(ZSTD_CCtx_setParameter(context_, ZSTD_c_compressionLevel, level));
        check(ZSTD_CCtx_setParameter(context_, ZSTD_c_checksumFlag, 1));
    }
    ~ZstdSink() override { ZSTD_freeCCtx(context_); }
    void write(std::string_view bytes) override { compress(bytes, ZSTD_e_continue); }
    void finish() override {
        compress({}, ZSTD_e_end);
        inner_->finish();
    }
    std::uint64_t bytes_out() const override { return inner_->bytes_out(); }

private:
    static void check(std::size_t rc) {
        if (ZSTD_isError(rc)) throw std::runtime_error(fmt::format("zstd: {}", ZSTD_getErrorName(rc)));
    }
    void compress(std::string_view bytes, ZSTD_EndDirective mode) {
        ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
        for (;;) {
            ZSTD_outBuffer out{out_.data(), out_.size(), 0};
            const std::size_t remaining = ZSTD_compressStream2(context_, &out, &in, mode);
            check(remaining);
            inner_->write(std::string_view(out_.data(), out.pos));
            const bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
            if (done) return;
        }
    }

    std::unique_ptr<Sink> inner_;
    ZSTD_CCtx* context_;
    std::vector<char> out_;
};

// Collects formatted text and hands it to the sink in chunks.
class Buffered {
public:
    explicit Buffered(Sink& sink) : sink_(sink) { buffer_.reserve(kFlushAt + 4096); }
    std::string& text() { return buffer_; }
    void maybe_flush() {
        if (buffer_.size() >= kFlushAt) flush();
    }
    void flush() {
        sink_.write(buffer_);
        buffer_.clear();
    }

private:
    Sink& sink_;
    std::string buffer_;
};

class CsvWriter final : public ReadingWriter {
public:
    explicit CsvWriter(Sink& sink) : out_(sink) {}
    void begin() override {
        out_.text() += "id,device,incarnation,seq,boot,channel,mono_ms,unix_ms,time,value,received_unix_ms\r\n";
    }
    void row(const Reading& r) override {
        auto it = std::back_inserter(out_.text());
        fmt::format_to(it, "{},{},{},{},{},{},{},", r.id, csv_field(r.device), hex_incarnation(r.incarnation), r.seq,
                       r.boot, r.channel, r.mono_ms);
        if (r.unix_ms) {
            fmt::format_to(it, "{},{},", *r.unix_ms, format_time(*r.unix_ms));
        } else {
            out_.text() += ",,";
        }
        fmt::format_to(it, "{},{}\r\n", number_text(r.value), r.received_unix_ms);
        out_.maybe_flush();
    }
    void end() override { out_.flush(); }

private:
    Buffered out_;
};

void json_object(std::string& out, const Reading& r) {
    auto it = std::back_inserter(out);
    fmt::format_to(it, R"({{"id":{},"device":{},"incarnation":"{}","seq":{},"boot":{},"channel":{},"mono_ms":{},)",
                   r.id, json_string(r.device), hex_incarnation(r.incarnation), r.seq, r.boot, r.channel, r.mono_ms);
    if (r.unix_ms) {
        fmt::format_to(it, R"("unix_ms":{},"time":"{}",)", *r.unix_ms, format_time(*r.unix_ms));
    } else {
        out += R"("unix_ms":null,"time":null,)";
    }
    fmt::format_to(it, R"("value":{},"received_unix_ms":{}}})", json_number(r.value), r.received_unix_ms);
}

class JsonWriter final : public ReadingWriter {
public:
    explicit JsonWriter(Sink& sink) : out_(sink) {}
    void begin() override { out_.text() += "["; }
    void row(const Reading& r) override {
        out_.text() += first_ ? "\n" : ",\n";
        first_ = false;
        json_object(out_.text(), r);
        out_.maybe_flush();
    }
    void end() override {
        out_.text() += first_ ? "]\n" : "\n]\n";
        out_.flush();
    }

private:
    Buffered out_;
    bool first_ = true;
};

class NdjsonWriter final : public ReadingWriter {
public:
    explicit NdjsonWriter(Sink& sink) : out_(sink) {}
    void begin() override {}
    void row(const Reading& r) override {
        json_object(out_.text(), r);
        out_.text() += '\n';
        out_.maybe_flush();
    }
    void end() override { out_.flush(); }

private:
    Buffered out_;
};

// Fixed column widths, so the table streams: a longer value widens only its own row. VALUE
// fits every double (the shortest round-trip text is at most 24 characters: -2.2250738585072014e-308).
class TableWriter final : public ReadingWriter {
public:
    explicit TableWriter(Sink& sink) : out_(sink) {}
    void begin() override {
        fmt::format_to(std::back_inserter(out_.text()),
                       "{:<24}  {:<16}  {:<16}  {:>4}  {:>10}  {:>3}  {:>12}  {:>24}\n", "TIME (UTC)", "DEVICE",
                       "INCARNATION", "BOOT", "SEQ", "CH", "MONO_MS", "VALUE");
    }
    void row(const Reading& r) override {
        fmt::format_to(std::back_inserter(out_.text()),
                       "{:<24}  {:<16}  {:<16}  {:>4}  {:>10}  {:>3}  {:>12}  {:>24}\n",
                       r.unix_ms ? format_time(*r.unix_ms) : "(unsynchronised)", r.device,
                       hex_incarnation(r.incarnation), r.boot, r.seq, r.channel, r.mono_ms, number_text(r.value));
        ++rows_;
        out_.maybe_flush();
    }
    void end() override {
        fmt::format_to(std::back_inserter(out_.text()), "({} row{})\n", rows_, rows_ == 1 ? "" : "s");
        out_.flush();
    }

private:
    Buffered out_;
    std::uint64_t rows_ = 0;
};

}  // namespace

std::unique_ptr<Sink> stdout_sink() { return std::make_unique<FileSink>(stdout, "stdout", "", false); }

std::unique_ptr<Sink> file_sink(const std::string& path) {
    const std::string part = path + ".part";
    std::FILE* file = std::fopen(part.c_str(), "wb");
    if (file == nullptr) fail("cannot create", part);
    return std::make_unique<FileSink>(file, part, path, true);
}

std::unique_ptr<Sink> zstd_sink(std::unique_ptr<Sink> inner, int level) {
    return std::make_unique<ZstdSink>(std::move(inner), level);
}

std::unique_ptr<ReadingWriter> make_reading_writer(Format format, Sink& sink) {
    switch (format) {
        case Format::Table: return std::make_unique<TableWriter>(sink);
        case Format::Csv: return std::make_unique<CsvWriter>(sink);
        case Format::Json: return std::make_unique<JsonWriter>(sink);
        case Format::Ndjson: return std::make_unique<NdjsonWriter>(sink);
    }
    throw std::logic_error("unknown format");
}

std::string json_string(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out += '"';
    for (const char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += c;
                }
        }
    }
    out += '"';
    return out;
}

std::string csv_field(std::string_view text) {
    if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

std::string hex_incarnation(std::uint64_t incarnation) { return fmt::format("{:016x}", incarnation); }

std::string number_text(double value) { return fmt::format("{}", value); }

std::string json_number(double value) {
    // JSON has no infinity (the gateway stores it; only NaN is refused): the CSV text, quoted.
    return std::isfinite(value) ? number_text(value) : fmt::format("\"{}\"", number_text(value));
}

}  // namespace fieldlink::cli
