// Log lines through fmt: "2024-05-01T12:00:00.123Z warn  message", one
// write per line, safe from any thread.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string_view>

namespace fieldlink::gateway {

enum class LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
};

std::string_view to_string(LogLevel level) noexcept;
std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;

class Logger {
public:
    explicit Logger(LogLevel level = LogLevel::Info, std::FILE* sink = stderr) : level_(level), sink_(sink) {}

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

    // Writes one finished line (timestamp and level are added here). Never throws.
    void write(LogLevel level, std::string_view message) noexcept;

private:
    std::atomic<LogLevel> level_;
    std::FILE* sink_;
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
