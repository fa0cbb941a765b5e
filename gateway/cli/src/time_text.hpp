// Times on the command line and in output: milliseconds since the Unix epoch (UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::cli {

// Accepts, with `now_ms` the current time:
//   ISO 8601   2026-12-02T07:00:00Z, 2026-12-02T07:00:00.250Z, 2026-12-02T09:00:00+02:00,
//              2026-12-02 07:00:00 (no zone: UTC), 2026-12-02 (midnight UTC)
//   relative   -90s, -30m, -1h, -2d, -1w (before now), "now"
//   epoch ms   @1795312677000
// nullopt when the text is none of these.
std::optional<std::int64_t> parse_time(std::string_view text, std::int64_t now_ms);

// What parse_time accepts, for error messages and --help.
inline constexpr std::string_view kTimeExpected =
    "an ISO 8601 time (2026-12-02T07:00:00Z, with optional .mmm and +hh:mm; no zone is UTC), a relative time "
    "(-90s, -30m, -1h, -2d, -1w, now) or @<unix ms>";

// 2026-12-02T07:00:00.000Z
std::string format_time(std::int64_t unix_ms);

// "3.2 s", "5 min", "2.0 h", "4.1 d": a duration for people.
std::string format_duration(std::int64_t ms);

}  // namespace fieldlink::cli
