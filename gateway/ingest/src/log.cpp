#include "fieldlink/gateway/ingest/log.hpp"

#include <ctime>
#include <string>

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

void Logger::write(LogLevel level, std::string_view message) noexcept {
    try {
        const auto now = std::chrono::system_clock::now();
        const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
        const auto millis =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
        std::tm utc{};
        gmtime_r(&seconds, &utc);
        const std::string line =
            fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {:<5} {}\n", utc.tm_year + 1900, utc.tm_mon + 1,
                        utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis, to_string(level), message);
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
