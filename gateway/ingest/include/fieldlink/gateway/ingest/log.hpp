// Log lines through fmt, one write per event, safe from any thread:
//   text: 2024-05-01T12:00:00.123Z warn  message key=value
//   json: {"time":"2024-05-01T12:00:00.123Z","level":"warn","message":"message","key":"value"}
// A line break inside a message never splits an event: text shows it as \n.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace fieldlink::gateway {

enum class LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
};

std::string_view to_string(LogLevel level) noexcept;
std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;

enum class LogFormat {
    Text,  // for people and journald
    Json,  // one JSON object per line, for log shippers
};

std::string_view to_string(LogFormat format) noexcept;
std::optional<LogFormat> parse_log_format(std::string_view text) noexcept;

// One named value of an event: text shows it as key=value after the message,
// JSON as a member of the object (numbers as numbers).
struct LogField {
    std::string_view key;
    std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool> value;
};

// The finished line of one event, without the trailing newline (for tests and the Logger).
std::string format_log_line(LogFormat format, std::chrono::system_clock::time_point time, LogLevel level,
                            std::string_view message, std::initializer_list<LogField> fields = {});

class Logger {
public:
    explicit Logger(LogLevel level = LogLevel::Info, std::FILE* sink = stderr, LogFormat format = LogFormat::Text)
        : level_(level), sink_(sink), format_(format) {}

    void set_level(LogLevel level) noexcept { level_.store(level, std::memory_order_relaxed); }
    LogLevel level() const noexcept { return level_.load(std::memory_order_relaxed); }
    bool enabled(LogLevel level) const noexcept { return static_cast<int>(level) <= static_cast<int>(this->level()); }

    template <typename... Args>
    void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
        if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
    }
    template <typename... Args>
    void error(fmt::format_string<Args...> format, Args&&... args) {
        log(LogLevel::Error, format, std::forward<Args>(args)...);
    }
    template <typename... Args>
    void warn(fmt::format_string<Args...> format, Args&&... args) {
        log(LogLevel::Warn, format, std::forward<Args>(args)...);
    }
    template <typename... Args>
    void info(fmt::format_string<Args...> format, Args&&... args) {
        log(LogLevel::Info, format, std::forward<Args>(args)...);
    }
    template <typename... Args>
    void debug(fmt::format_string<Args...> format, Args&&... args) {
        log(LogLevel::Debug, format, std::forward<Args>(args)...);
    }

    // Writes one event (timestamp and level are added here). Never throws.
    void write(LogLevel level, std::string_view message) noexcept { write(level, message, {}); }
    void write(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) noexcept;
    // An event with fields, when `level` is enabled.
    void event(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) noexcept {
        if (enabled(level)) write(level, message, fields);
    }

    LogFormat format() const noexcept { return format_; }

private:
    std::atomic<LogLevel> level_;
    std::FILE* sink_;
    const LogFormat format_;
    std::mutex mutex_;
};

// Lets `burst` events through per `window` and counts the rest, so a flood of
// bad messages costs one log line per window, not one per message.
class RateLimiter {
public:
    RateLimiter(std::size_t burst, std::chrono::steady_clock::duration window) : burst_(burst), window_(window) {}

    // True when this event may be logged; then *suppressed says how many were
    // dropped since the last one that was let through.
    bool allow(std::chrono::steady_clock::time_point now, std::uint64_t* suppressed);

private:
    const std::size_t burst_;
    const std::chrono::steady_clock::duration window_;
    std::mutex mutex_;
    std::chrono::steady_clock::time_point window_start_{};
    std::size_t used_ = 0;
    std::uint64_t suppressed_ = 0;
};

}  // namespace fieldlink::gateway
