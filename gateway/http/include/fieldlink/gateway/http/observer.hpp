// What /metrics, /healthz and the status page show, gathered in one place:
// the saver's counters and histograms (memory), the broker link, forwarders and
// retention (their status calls), and what only the database knows (devices,
// their latest telemetry, dead letters, the forwarders' oldest waiting reading),
// read through a connection of its own that never writes (PRAGMA query_only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fieldlink/gateway/forward/forwarder.hpp"
#include "fieldlink/gateway/http/health.hpp"
#include "fieldlink/gateway/ingest/stats.hpp"
#include "fieldlink/gateway/store/retention.hpp"
#include "fieldlink/gateway/store/sqlite.hpp"

namespace fieldlink::gateway::http {

// How to reach each part; every function must be safe to call from the HTTP workers.
struct GatewaySources {
    const Stats* stats = nullptr;  // required
    std::function<std::size_t()> queue_depth;
    std::size_t queue_capacity = 0;
    std::function<bool()> broker_connected;
    std::function<std::vector<ForwarderStatus>()> forwarders;
    std::function<RetentionStats()> retention;
    std::string db_path;  // empty: nothing is read from a database
    int busy_timeout_ms = 5000;
    std::function<std::int64_t()> now_unix_ms;  // empty: the system clock
};

struct DeviceView {
    std::string device;
    std::optional<bool> online;  // from the retained status; empty: never sent one
    std::string firmware;
    std::uint64_t incarnation = 0;       // the latest one seen (status or watermark)
    std::uint64_t watermark = 0;         // of that incarnation
    std::int64_t watermark_unix_ms = 0;  // when the gateway last committed for it (0: never)
    std::int64_t last_seen_unix_ms = 0;  // latest of status, commit and telemetry
    std::uint64_t readings = 0;          // rows in readings now (every incarnation)
    bool has_telemetry = false;          // the fields below are from the latest telemetry
    std::int64_t telemetry_unix_ms = 0;
    std::uint64_t spool_depth = 0;  // readings held, not yet acked
    std::uint64_t oldest_unacked_age_ms = 0;
    std::uint64_t dropped = 0;  // readings its store dropped (this incarnation)
    std::uint64_t reconnects = 0;
};

struct DeadLetterView {
    std::int64_t id = 0;
    std::int64_t received_unix_ms = 0;
    std::string topic;
    std::string error;
    std::size_t bytes = 0;
};

struct Observation {
    std::int64_t now_unix_ms = 0;
    StatsSnapshot stats;
    Histogram::Snapshot commit_seconds;
    Histogram::Snapshot ack_latency_seconds;
    std::vector<RateHistory::Slot> stored_history;
    std::size_t queue_capacity = 0;
    bool broker_connected = false;
    std::vector<ForwarderStatus> forwarders;
    std::vector<UpstreamLag> upstream_lags;  // in the order of `forwarders`
    std::optional<RetentionStats> retention;
    std::optional<std::uint64_t> database_bytes;  // main file and WAL
    std::optional<std::uint64_t> free_disk_bytes;
    // Most recently seen first, at most max_devices; devices_total counts all.
    std::vector<DeviceView> devices;
    std::size_t devices_total = 0;
    std::map<std::string, std::uint64_t> dead_letters_by_error;  // in the table now (retention ages them out)
    std::vector<DeadLetterView> recent_dead_letters;             // newest first
    std::string database_error;                                  // empty when the reads succeeded
    HealthInputs health;
};

class GatewayObserver {
public:
    // Throws std::invalid_argument without sources.stats.
    GatewayObserver(GatewaySources sources, std::size_t max_devices, std::size_t recent_dead_letters = 20);
    ~GatewayObserver();
    GatewayObserver(const GatewayObserver&) = delete;
    GatewayObserver& operator=(const GatewayObserver&) = delete;

    // Thread-safe; one database read at a time. Never throws for a database
    // failure (it is in database_error, and the connection is opened again next time).
    Observation observe();

    std::size_t max_devices() const noexcept { return max_devices_; }

private:
    void read_database(Observation& o);
    void count_readings(sqlite::Database& db, const std::optional<RetentionStats>& retention);

    // Readings per device, counted through readings.id counted_through_: each
    // observation counts only the rows added since; after a retention delete
    // (its totals moved) everything is counted again, so the counts stay exact.
    std::map<std::string, std::uint64_t> readings_per_device_;
    std::int64_t counted_through_ = 0;
    std::optional<std::uint64_t> counted_at_retention_deletes_;

    const GatewaySources sources_;
    const std::size_t max_devices_;
    const std::size_t recent_dead_letters_;
    std::mutex mutex_;
    std::unique_ptr<sqlite::Database> db_;  // opened on first use
};

}  // namespace fieldlink::gateway::http
