// Counters of the saver, updated from the MQTT thread and the writer thread,
// read by whoever prints the stats line or serves /metrics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace fieldlink::gateway {

// A latency histogram with fixed buckets (seconds). observe() is lock-free and
// allocation-free (one relaxed fetch_add per field), so the writer can call it
// on every commit and message without slowing down.
class Histogram {
public:
    // Upper bounds in seconds; a last bucket (+Inf) holds the rest.
    static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

    struct Snapshot {
        std::array<std::uint64_t, kBounds.size() + 1> buckets{};  // per bucket, not cumulative; last is +Inf
        std::uint64_t count = 0;                                  // the sum of buckets
        double sum_seconds = 0;
    };

    void observe(std::chrono::nanoseconds elapsed) noexcept;
    Snapshot snapshot() const noexcept;

private:
    std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

// Readings stored per 10-second slot over the last hour, on the gateway's wall
// clock. One writer (the saver's writer thread) adds; any thread reads.
class RateHistory {
public:
    static constexpr std::int64_t kSlotSeconds = 10;
    static constexpr std::size_t kSlots = 360;

    struct Slot {
        std::int64_t start_unix_s = 0;
        std::uint64_t count = 0;
    };

    void add(std::int64_t now_unix_ms, std::uint64_t count) noexcept;
    // The kSlots slots ending with the one holding now_unix_ms, oldest first;
    // slots nothing was added to count 0.
    std::vector<Slot> snapshot(std::int64_t now_unix_ms) const;

private:
    struct Cell {
        std::atomic<std::int64_t> epoch{-1};  // slot number (unix s / kSlotSeconds) the count belongs to
        std::atomic<std::uint64_t> count{0};
    };
    std::array<Cell, kSlots> cells_{};
};

struct StatsSnapshot {
    std::uint64_t received = 0;                      // messages handed to the saver
    std::uint64_t batches = 0;                       // valid batches committed
    std::uint64_t stored = 0;                        // readings inserted
    std::uint64_t duplicates = 0;                    // readings already stored (redeliveries)
    std::uint64_t refused_out_of_order = 0;          // readings not stored: their batch would pass the range cap
    std::uint64_t unix_ms_filled = 0;                // earlier rows that got wall time late
    std::uint64_t statuses = 0;                      // device status messages committed
    std::uint64_t telemetry = 0;                     // device telemetry messages committed to device_health
    std::uint64_t dead_letters = 0;                  // rejected messages committed to dead_letters
    std::uint64_t acks_sent = 0;                     // commit acks handed to the broker link
    std::uint64_t ack_failures = 0;                  // commit acks that could not be published
    std::uint64_t commits = 0;                       // successful transactions
    std::uint64_t commit_failures = 0;               // failed attempts (each is retried)
    std::uint64_t dropped_at_stop = 0;               // messages refused after shutdown began (never acked)
    std::map<std::string, std::uint64_t> malformed;  // error name -> count
    std::size_t queue_depth = 0;
};

class Stats {
public:
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> batches{0};
    std::atomic<std::uint64_t> stored{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::atomic<std::uint64_t> refused_out_of_order{0};
    std::atomic<std::uint64_t> unix_ms_filled{0};
    std::atomic<std::uint64_t> statuses{0};
    std::atomic<std::uint64_t> telemetry{0};
    std::atomic<std::uint64_t> dead_letters{0};
    std::atomic<std::uint64_t> acks_sent{0};
    std::atomic<std::uint64_t> ack_failures{0};
    std::atomic<std::uint64_t> commits{0};
    std::atomic<std::uint64_t> commit_failures{0};
    std::atomic<std::uint64_t> dropped_at_stop{0};

    // Successful commits, begin to COMMIT returned.
    Histogram commit_seconds;
    // From a batch's arrival in the saver to its commit ack handed to the broker link.
    Histogram ack_latency_seconds;
    // Readings stored, for the status page's chart.
    RateHistory stored_history;

    // Writer state for health checks. Steady-clock nanoseconds since its epoch.
    // busy_since: when the writer began committing its current group (0: idle);
    // commit_failing: the latest attempt failed and is being retried.
    std::atomic<std::int64_t> writer_busy_since_ns{0};
    std::atomic<std::int64_t> last_commit_ns{0};
    std::atomic<bool> commit_failing{false};

    void count_malformed(std::string_view error);
    StatsSnapshot snapshot() const;
    // The last commit failure's message (empty when the latest attempt succeeded).
    void set_commit_error(std::string error);
    std::string commit_error() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::uint64_t, std::less<>> malformed_;
    std::string commit_error_;
};

// Steady-clock nanoseconds since its epoch, as Stats keeps them.
std::int64_t steady_now_ns() noexcept;

// "received=.. stored=.. duplicates=.. malformed=3 (bad_json=2 truncated=1) acks=.. queue=.. commits=.."
std::string format_stats(const StatsSnapshot& stats);

}  // namespace fieldlink::gateway
