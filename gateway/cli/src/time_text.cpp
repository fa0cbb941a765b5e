#include "time_text.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>

namespace fieldlink::cli {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
    std::int64_t y;
    unsigned m;
    unsigned d;
};

Civil civil_from_days(std::int64_t z) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

// Reads exactly `digits` decimal digits at `pos`.
bool take_digits(std::string_view text, std::size_t& pos, std::size_t digits, unsigned& out) {
    if (pos + digits > text.size()) return false;
    out = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        const char c = text[pos + i];
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<unsigned>(c - '0');
    }
    pos += digits;
    return true;
}

bool take(std::string_view text, std::size_t& pos, char c) {
    if (pos < text.size() && text[pos] == c) {
        ++pos;
        return true;
    }
    return false;
}

std::optional<std::int64_t> parse_iso(std::string_view text) {
    std::size_t pos = 0;
    unsigned year = 0;
    unsigned month = 0;
    unsigned day = 0;
    if (!take_digits(text, pos, 4, year) || !take(text, pos, '-') || !take_digits(text, pos, 2, month) ||
        !take(text, pos, '-') || !take_digits(text, pos, 2, day)) {
        return std::nullopt;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
    // Day beyond the month's end (2026-02-30): refuse rather than roll over.
    static constexpr unsigned kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > kDaysIn[month - 1] || (month == 2 && day == 29 && !leap)) return std::nullopt;
    std::int64_t ms = days_from_civil(year, month, day) * 86400000;
    if (pos == text.size()) return ms;
    if (!take(text, pos, 'T') && !take(text, pos, 't') && !take(text, pos, ' ')) return std::nullopt;
    unsigned hour = 0;
    unsigned minute = 0;
    unsigned second = 0;
    if (!take_digits(text, pos, 2, hour) || !take(text, pos, ':') || !take_digits(text, pos, 2, minute)) {
        return std::nullopt;
    }
    if (take(text, pos, ':') && !take_digits(text, pos, 2, second)) return std::nullopt;
    if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
    ms += (hour * 3600 + minute * 60 + second) * 1000LL;
    if (take(text, pos, '.') || take(text, pos, ',')) {
        // Fractions below a millisecond are cut: readings carry milliseconds.
        std::int64_t fraction = 0;
        std::size_t digits = 0;
        while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
            if (digits < 3) fraction = fraction * 10 + (text[pos] - '0');
            ++digits;
            ++pos;
        }
        if (digits == 0) return std::nullopt;
        for (std::size_t i = digits; i < 3; ++i) fraction *= 10;
        ms += fraction;
    }
    if (pos == text.size()) return ms;
    if (take(text, pos, 'Z') || take(text, pos, 'z')) {
        if (pos == text.size()) return ms;
        return std::nullopt;
    }
    const bool plus = take(text, pos, '+');
    if (!plus && !take(text, pos, '-')) return std::nullopt;
    unsigned offset_h = 0;
    unsigned offset_m = 0;
    if (!take_digits(text, pos, 2, offset_h)) return std::nullopt;
    take(text, pos, ':');
    if (pos < text.size() && !take_digits(text, pos, 2, offset_m)) return std::nullopt;
    if (pos != text.size() || offset_h > 23 || offset_m > 59) return std::nullopt;
    const std::int64_t offset_ms = (offset_h * 60 + offset_m) * 60000LL;
    return plus ? ms - offset_ms : ms + offset_ms;
}

}  // namespace

std::optional<std::int64_t> parse_time(std::string_view text, std::int64_t now_ms) {
    if (text == "now") return now_ms;
    if (text.size() >= 2 && text[0] == '@') {
        std::int64_t ms = 0;
        const auto [end, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), ms);
        if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
        return ms;
    }
    if (text.size() >= 3 && text[0] == '-' && std::isdigit(static_cast<unsigned char>(text[1]))) {
        std::int64_t amount = 0;
        const auto [end, ec] = std::from_chars(text.data() + 1, text.data() + text.size() - 1, amount);
        if (ec != std::errc() || end != text.data() + text.size() - 1) return std::nullopt;
        std::int64_t unit = 0;
        switch (text.back()) {
            case 's': unit = 1000; break;
            case 'm': unit = 60000; break;
            case 'h': unit = 3600000; break;
            case 'd': unit = 86400000; break;
            case 'w': unit = 7 * 86400000LL; break;
            default: return std::nullopt;
        }
        std::int64_t ago = 0;
        if (__builtin_mul_overflow(amount, unit, &ago)) return std::nullopt;
        return now_ms - ago;
    }
    return parse_iso(text);
}

std::string format_time(std::int64_t unix_ms) {
    std::int64_t days = unix_ms / 86400000;
    std::int64_t rest = unix_ms % 86400000;
    if (rest < 0) {
        rest += 86400000;
        --days;
    }
    const Civil c = civil_from_days(days);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.y, c.m, c.d, rest / 3600000, rest / 60000 % 60,
                       rest / 1000 % 60, rest % 1000);
}

std::string format_duration(std::int64_t ms) {
    if (ms < 0) return fmt::format("-{}", format_duration(-ms));
    if (ms < 1000) return fmt::format("{} ms", ms);
    if (ms < 60000) return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000);
    if (ms < 3600000) return fmt::format("{:.1f} min", static_cast<double>(ms) / 60000);
    if (ms < 86400000) return fmt::format("{:.1f} h", static_cast<double>(ms) / 3600000);
    return fmt::format("{:.1f} d", static_cast<double>(ms) / 86400000);
}

}  // namespace fieldlink::cli
