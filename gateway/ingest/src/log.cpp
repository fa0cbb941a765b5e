#include "fieldlink/gateway/ingest/log.hpp"

#include <cmath>
#include <ctime>
#include <string>
#include <type_traits>

namespace fieldlink::gateway {

std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::Error: return "error";
        case LogLevel::Warn: return "warn";
        case LogLevel::Info: return "info";
        case LogLevel::Debug: return "debug";
    }
    return "?";
}

std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
    for (const LogLevel level : {LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug}) {
        if (text == to_string(level)) return level;
    }
    return std::nullopt;
}

std::string_view to_string(LogFormat format) noexcept { return format == LogFormat::Json ? "json" : "text"; }

std::optional<LogFormat> parse_log_format(std::string_view text) noexcept {
    if (text == "text") return LogFormat::Text;
    if (text == "json") return LogFormat::Json;
    return std::nullopt;
}

namespace {

// Length of the valid UTF-8 sequence at text[i], or 0 when it is not one.
std::size_t utf8_length(std::string_view text, std::size_t i) {
    const auto b = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    std::uint32_t min = 0;
    if (b < 0x80) return 1;
    if ((b & 0xe0) == 0xc0) {
        n = 2;
        min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
        n = 3;
        min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (i + n > text.size()) return 0;
    std::uint32_t code = b & (0x7f >> n);
    for (std::size_t k = 1; k < n; ++k) {
        const auto c = static_cast<unsigned char>(text[i + k]);
        if ((c & 0xc0) != 0x80) return 0;
        code = (code << 6) | (c & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
    return n;
}

// A JSON string; bytes that are not UTF-8 become U+FFFD, so the line always parses.
void append_json_string(std::string& out, std::string_view text) {
    out += '"';
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        const auto byte = static_cast<unsigned char>(c);
        const std::size_t n = utf8_length(text, i);
        if (n == 0) {
            out += "\\ufffd";
            ++i;
            continue;
        }
        if (n > 1) {
            out.append(text.substr(i, n));
            i += n;
            continue;
        }
        ++i;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (byte < 0x20 || byte == 0x7f) {
                    out += fmt::format("\\u{:04x}", byte);
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

// Text: control characters shown escaped, so that one event stays one line.
void append_text(std::string& out, std::string_view text) {
    for (const char c : text) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
            out += c;
        }
    }
}

std::string field_text(const LogField& field) {
    return std::visit(
        [](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string_view>) {
                return std::string(v);
            } else if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else {
                return fmt::to_string(v);
            }
        },
        field.value);
}

}  // namespace

std::string format_log_line(LogFormat format, std::chrono::system_clock::time_point time, LogLevel level,
                            std::string_view message, std::initializer_list<LogField> fields) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    const std::string stamp = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                                          utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    std::string line;
    if (format == LogFormat::Text) {
        line = fmt::format("{} {:<5} ", stamp, to_string(level));
        append_text(line, message);
        for (const LogField& field : fields) {
            line += ' ';
            append_text(line, field.key);
            line += '=';
            const std::string value = field_text(field);
            const bool quote = value.empty() || value.find_first_of(" \"=") != std::string::npos;
            if (quote) line += '"';
            append_text(line, value);
            if (quote) line += '"';
        }
        return line;
    }
    line = fmt::format(R"({{"time":"{}","level":"{}","message":)", stamp, to_string(level));
    append_json_string(line, message);
    for (const LogField& field : fields) {
        line += ',';
        append_json_string(line, field.key);
        line += ':';
        std::visit(
            [&line](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::string_view>) {
                    append_json_string(line, v);
                } else if constexpr (std::is_same_v<T, bool>) {
                    line += v ? "true" : "false";
                } else if constexpr (std::is_same_v<T, double>) {
                    // JSON has no NaN or infinity.
                    line += std::isfinite(v) ? fmt::format("{}", v) : std::string("null");
                } else {
                    line += fmt::to_string(v);
                }
            },
            field.value);
    }
    line += '}';
    return line;
}

void Logger::write(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) noexcept {
    try {
        std::string line = format_log_line(format_, std::chrono::system_clock::now(), level, message, fields);
        line += '\n';
        std::lock_guard lock(mutex_);
        std::fwrite(line.data(), 1, line.size(), sink_);
        std::fflush(sink_);
    } catch (...) {
        // Logging must never take the saver down (e.g. out of memory while formatting).
    }
}

bool RateLimiter::allow(std::chrono::steady_clock::time_point now, std::uint64_t* suppressed) {
    std::lock_guard lock(mutex_);
    if (now - window_start_ >= window_) {
        window_start_ = now;
        used_ = 0;
    }
    if (used_ >= burst_) {
        ++suppressed_;
        return false;
    }
    ++used_;
    if (suppressed != nullptr) *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
}

}  // namespace fieldlink::gateway
