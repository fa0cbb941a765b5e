#include "fieldlink/gateway/ingest/stats.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace fieldlink::gateway {

void Histogram::observe(std::chrono::nanoseconds elapsed) noexcept {
    const std::int64_t ns = std::max<std::int64_t>(0, elapsed.count());
    const double seconds = static_cast<double>(ns) * 1e-9;
    // Linear search: 14 bounds, mostly the first few taken.
    std::size_t bucket = 0;
    while (bucket < kBounds.size() && seconds > kBounds[bucket]) ++bucket;
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const noexcept {
    Snapshot s;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
        s.count += s.buckets[i];
    }
    s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9;
    return s;
}

namespace {
std::int64_t slot_of(std::int64_t unix_ms) {
    const std::int64_t seconds = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
    return seconds >= 0 ? seconds / RateHistory::kSlotSeconds
                        : (seconds - RateHistory::kSlotSeconds + 1) / RateHistory::kSlotSeconds;
}
std::size_t cell_of(std::int64_t slot) {
    const auto n = static_cast<std::int64_t>(RateHistory::kSlots);
    return static_cast<std::size_t>(((slot % n) + n) % n);
}
}  // namespace

void RateHistory::add(std::int64_t now_unix_ms, std::uint64_t count) noexcept {
    const std::int64_t slot = slot_of(now_unix_ms);
    Cell& cell = cells_[cell_of(slot)];
    if (cell.epoch.load(std::memory_order_relaxed) != slot) {
        // Single writer: reset the count before publishing the new epoch.
        cell.count.store(0, std::memory_order_relaxed);
        cell.epoch.store(slot, std::memory_order_release);
    }
    cell.count.fetch_add(count, std::memory_order_relaxed);
}

std::vector<RateHistory::Slot> RateHistory::snapshot(std::int64_t now_unix_ms) const {
    const std::int64_t last = slot_of(now_unix_ms);
    std::vector<Slot> slots;
    slots.reserve(kSlots);
    for (std::int64_t slot = last - static_cast<std::int64_t>(kSlots) + 1; slot <= last; ++slot) {
        const Cell& cell = cells_[cell_of(slot)];
        std::uint64_t count = 0;
        if (cell.epoch.load(std::memory_order_acquire) == slot) {
            count = cell.count.load(std::memory_order_relaxed);
            if (cell.epoch.load(std::memory_order_acquire) != slot) count = 0;  // reused meanwhile
        }
        slots.push_back(Slot{slot * kSlotSeconds, count});
    }
    return slots;
}

std::int64_t steady_now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void Stats::set_commit_error(std::string error) {
    std::lock_guard lock(mutex_);
    commit_error_ = std::move(error);
}

std::string Stats::commit_error() const {
    std::lock_guard lock(mutex_);
    return commit_error_;
}

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
    s.refused_out_of_order = refused_out_of_order.load();
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
