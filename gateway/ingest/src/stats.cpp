#include "fieldlink/gateway/ingest/stats.hpp"

#include <fmt/format.h>

namespace fieldlink::gateway {

void Stats::count_malformed(std::string_view error) {
    std::lock_guard lock(mutex_);
    auto found = malformed_.find(error);
    if (found == malformed_.end()) found = malformed_.emplace(std::string(error), 0).first;
    ++found->second;
}

StatsSnapshot Stats::snapshot() const {
    StatsSnapshot s;
    s.received = received.load();
    s.batches = batches.load();
    s.stored = stored.load();
    s.duplicates = duplicates.load();
    s.unix_ms_filled = unix_ms_filled.load();
    s.statuses = statuses.load();
    s.telemetry = telemetry.load();
    s.dead_letters = dead_letters.load();
    s.acks_sent = acks_sent.load();
    s.ack_failures = ack_failures.load();
    s.commits = commits.load();
    s.commit_failures = commit_failures.load();
    s.dropped_at_stop = dropped_at_stop.load();
    std::lock_guard lock(mutex_);
    s.malformed.insert(malformed_.begin(), malformed_.end());
    return s;
}

std::string format_stats(const StatsSnapshot& s) {
    std::uint64_t malformed_total = 0;
    std::string by_type;
    for (const auto& [error, count] : s.malformed) {
        malformed_total += count;
        by_type += fmt::format("{}{}={}", by_type.empty() ? "" : " ", error, count);
    }
    std::string line = fmt::format(
        "received={} stored={} duplicates={} batches={} statuses={} malformed={}{} dead_letters={} acks={} "
        "ack_failures={} commits={} commit_failures={} queue={}",
        s.received, s.stored, s.duplicates, s.batches, s.statuses, malformed_total,
        by_type.empty() ? "" : fmt::format(" ({})", by_type), s.dead_letters, s.acks_sent, s.ack_failures, s.commits,
        s.commit_failures, s.queue_depth);
    if (s.telemetry != 0) line += fmt::format(" telemetry={}", s.telemetry);
    if (s.unix_ms_filled != 0) line += fmt::format(" unix_ms_filled={}", s.unix_ms_filled);
    if (s.dropped_at_stop != 0) line += fmt::format(" dropped_at_stop={}", s.dropped_at_stop);
    return line;
}

}  // namespace fieldlink::gateway
