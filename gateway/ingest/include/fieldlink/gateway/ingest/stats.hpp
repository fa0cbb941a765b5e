// Counters of the saver, updated from the MQTT thread and the writer thread,
// read by whoever prints the stats line.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace fieldlink::gateway {

struct StatsSnapshot {
    std::uint64_t received = 0;                      // messages handed to the saver
    std::uint64_t batches = 0;                       // valid batches committed
    std::uint64_t stored = 0;                        // readings inserted
    std::uint64_t duplicates = 0;                    // readings already stored (redeliveries)
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
    std::atomic<std::uint64_t> unix_ms_filled{0};
    std::atomic<std::uint64_t> statuses{0};
    std::atomic<std::uint64_t> telemetry{0};
    std::atomic<std::uint64_t> dead_letters{0};
    std::atomic<std::uint64_t> acks_sent{0};
    std::atomic<std::uint64_t> ack_failures{0};
    std::atomic<std::uint64_t> commits{0};
    std::atomic<std::uint64_t> commit_failures{0};
    std::atomic<std::uint64_t> dropped_at_stop{0};

    void count_malformed(std::string_view error);
    StatsSnapshot snapshot() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::uint64_t, std::less<>> malformed_;
};

// "received=.. stored=.. duplicates=.. malformed=3 (bad_json=2 truncated=1) acks=.. queue=.. commits=.."
std::string format_stats(const StatsSnapshot& stats);

}  // namespace fieldlink::gateway
