// /healthz: each check with its state, from a snapshot of the gateway. Pure:
// the inputs are gathered by the caller (GatewayObserver), so tests drive it directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fieldlink::gateway::http {

// Thresholds ([http] keys in the config); 0 turns a check off.
struct HealthSettings {
    std::int64_t writer_stall_s = 30;                 // a commit taking (or retried) longer is a stall
    std::uint64_t min_free_disk_bytes = 64ULL << 20;  // less free on the database's disk is unhealthy
    std::int64_t max_forward_lag_s = 3600;            // an upstream further behind is unhealthy
};

struct UpstreamLag {
    std::string name;
    bool connected = false;
    std::int64_t lag_rows = 0;
    double lag_seconds = 0;  // age of the oldest reading it has not confirmed; 0 when none waits
};

struct HealthInputs {
    bool broker_connected = false;
    bool commit_failing = false;     // the writer's latest commit failed and is being retried
    std::string commit_error;        // ...with this error
    std::string database_error;      // reading the database for this report failed
    double writer_busy_seconds = 0;  // how long the current group has been committing (0: idle)
    std::size_t queue_depth = 0;
    std::optional<std::uint64_t> free_disk_bytes;  // empty: could not be measured
    std::vector<UpstreamLag> upstreams;
};

struct HealthCheck {
    std::string name;  // "broker", "database", "writer", "disk", "upstream:<name>"
    bool ok = true;
    std::string detail;
};

struct HealthReport {
    bool healthy = true;
    std::vector<HealthCheck> checks;
};

HealthReport evaluate_health(const HealthInputs& inputs, const HealthSettings& settings);

// {"status":"ok"|"unhealthy","failing":[names],"checks":[{"name":..,"ok":..,"detail":..},..]}
std::string to_json(const HealthReport& report);

}  // namespace fieldlink::gateway::http
