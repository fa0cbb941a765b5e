#include "fieldlink/gateway/http/health.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace fieldlink::gateway::http {

HealthReport evaluate_health(const HealthInputs& in, const HealthSettings& settings) {
    HealthReport report;
    auto add = [&report](std::string name, bool ok, std::string detail) {
        report.healthy = report.healthy && ok;
        report.checks.push_back(HealthCheck{std::move(name), ok, std::move(detail)});
    };
    add("broker", in.broker_connected, in.broker_connected ? "connected" : "disconnected");

    if (in.commit_failing) {
        add("database", false, fmt::format("commits fail and are retried: {}", in.commit_error));
    } else if (!in.database_error.empty()) {
        add("database", false, fmt::format("cannot read the database: {}", in.database_error));
    } else {
        add("database", true, "ok");
    }

    const bool stalled = settings.writer_stall_s > 0 && in.writer_busy_seconds >= settings.writer_stall_s;
    add("writer", !stalled,
        stalled ? fmt::format("one commit has taken {:.0f} s (limit {} s), {} messages waiting", in.writer_busy_seconds,
                              settings.writer_stall_s, in.queue_depth)
                : fmt::format("ok, {} messages waiting", in.queue_depth));

    if (!in.free_disk_bytes) {
        add("disk", settings.min_free_disk_bytes == 0, "free space cannot be measured");
    } else {
        const bool low = settings.min_free_disk_bytes > 0 && *in.free_disk_bytes < settings.min_free_disk_bytes;
        add("disk", !low,
            low ? fmt::format("{} bytes free, below the floor of {}", *in.free_disk_bytes, settings.min_free_disk_bytes)
                : fmt::format("{} bytes free", *in.free_disk_bytes));
    }

    for (const UpstreamLag& upstream : in.upstreams) {
        const bool behind = settings.max_forward_lag_s > 0 && upstream.lag_seconds > settings.max_forward_lag_s;
        add("upstream:" + upstream.name, !behind,
            fmt::format("{}, {} readings behind, oldest {:.0f} s old{}",
                        upstream.connected ? "connected" : "disconnected", upstream.lag_rows, upstream.lag_seconds,
                        behind ? fmt::format(" (limit {} s)", settings.max_forward_lag_s) : std::string()));
    }
    return report;
}

std::string to_json(const HealthReport& report) {
    // Ordered: the verdict first, for people reading it with curl.
    using Json = nlohmann::ordered_json;
    Json checks = Json::array();
    Json failing = Json::array();
    for (const HealthCheck& check : report.checks) {
        checks.push_back({{"name", check.name}, {"ok", check.ok}, {"detail", check.detail}});
        if (!check.ok) failing.push_back(check.name);
    }
    const Json body = {{"status", report.healthy ? "ok" : "unhealthy"}, {"failing", failing}, {"checks", checks}};
    // Replace invalid UTF-8 (an error text could carry any byte) rather than throw.
    return body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace fieldlink::gateway::http
