#include "fieldlink/gateway/http/render.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "fieldlink/gateway/http/exposition.hpp"

namespace fieldlink::gateway::http {
namespace {

HistogramData histogram_data(const Histogram::Snapshot& s) {
    return HistogramData{Histogram::kBounds, s.buckets, s.count, s.sum_seconds};
}

std::string fmt_hex(std::uint64_t v) { return fmt::format("{:016x}", v); }

double age_seconds(std::int64_t now_ms, std::int64_t then_ms) {
    return std::max<double>(0, static_cast<double>(now_ms - then_ms) / 1000.0);
}

}  // namespace

std::string render_metrics(const Observation& o, const HealthReport& health, std::string_view version) {
    Exposition e;
    const StatsSnapshot& s = o.stats;
    e.family("fieldlink_build_info", "gauge", "Always 1; the gateway's version in a label.");
    e.sample("fieldlink_build_info", {{"version", version}}, std::uint64_t{1});

    e.counter("fieldlink_messages_received_total", "Messages handed to the saver by the broker link.", s.received);
    e.counter("fieldlink_readings_stored_total", "Readings inserted into the database.", s.stored);
    e.counter("fieldlink_readings_duplicate_total", "Readings received again that were already stored.", s.duplicates);
    e.counter("fieldlink_readings_refused_out_of_order_total",
              "Readings not stored nor acked because their batch would open more ranges above the watermark than "
              "[pipeline] max_ranges_per_incarnation; the device sends them again.",
              s.refused_out_of_order);
    e.counter("fieldlink_batches_committed_total", "Valid batches committed.", s.batches);
    e.family("fieldlink_messages_malformed_total", "counter", "Messages rejected by the decoder, by error.");
    for (const auto& [error, count] : s.malformed)
        e.sample("fieldlink_messages_malformed_total", {{"error", error}}, count);
    e.counter("fieldlink_dead_letters_total", "Rejected messages committed to dead_letters.", s.dead_letters);
    e.counter("fieldlink_status_messages_total", "Device status messages committed.", s.statuses);
    e.counter("fieldlink_telemetry_messages_total", "Device telemetry messages committed.", s.telemetry);
    e.counter("fieldlink_acks_sent_total", "Commit acks handed to the broker link.", s.acks_sent);
    e.counter("fieldlink_ack_failures_total", "Commit acks that could not be published.", s.ack_failures);
    e.counter("fieldlink_commits_total", "Database transactions committed.", s.commits);
    e.counter("fieldlink_commit_failures_total", "Failed commit attempts (each is retried).", s.commit_failures);
    e.family("fieldlink_commit_duration_seconds", "histogram", "Time from BEGIN to COMMIT returned, per commit.");
    e.histogram_samples("fieldlink_commit_duration_seconds", {}, histogram_data(o.commit_seconds));
    e.family("fieldlink_ack_latency_seconds", "histogram",
             "Time from a batch's arrival in the saver to its commit ack handed to the broker link.");
    e.histogram_samples("fieldlink_ack_latency_seconds", {}, histogram_data(o.ack_latency_seconds));
    e.gauge("fieldlink_queue_depth", "Messages waiting between the broker link and the writer.",
            static_cast<double>(s.queue_depth));
    e.gauge("fieldlink_queue_capacity", "Capacity of that queue ([pipeline] queue).",
            static_cast<double>(o.queue_capacity));
    e.gauge("fieldlink_broker_connected", "1 while connected to the local broker.", o.broker_connected ? 1 : 0);

    e.gauge("fieldlink_devices", "Devices the database knows.", static_cast<double>(o.devices_total));
    e.gauge("fieldlink_device_series_omitted",
            "Devices left out of the per-device series ([http] max_device_series; the least recently seen go).",
            static_cast<double>(o.devices_total - o.devices.size()));
    e.family("fieldlink_device_watermark_age_seconds", "gauge",
             "Seconds since the gateway last committed readings of the device's current incarnation.");
    for (const DeviceView& d : o.devices) {
        if (d.watermark_unix_ms == 0) continue;
        e.sample("fieldlink_device_watermark_age_seconds", {{"device", d.device}},
                 age_seconds(o.now_unix_ms, d.watermark_unix_ms));
    }
    e.family("fieldlink_device_readings", "gauge", "Readings of the device in the database now.");
    for (const DeviceView& d : o.devices) e.sample("fieldlink_device_readings", {{"device", d.device}}, d.readings);
    e.family("fieldlink_device_spool_readings", "gauge",
             "Readings the device holds that are not acked yet, from its latest telemetry.");
    for (const DeviceView& d : o.devices) {
        if (d.has_telemetry) e.sample("fieldlink_device_spool_readings", {{"device", d.device}}, d.spool_depth);
    }
    e.family("fieldlink_device_oldest_unacked_age_seconds", "gauge",
             "Age of the device's oldest unacked reading, from its latest telemetry.");
    for (const DeviceView& d : o.devices) {
        if (d.has_telemetry) {
            e.sample("fieldlink_device_oldest_unacked_age_seconds", {{"device", d.device}},
                     static_cast<double>(d.oldest_unacked_age_ms) / 1000.0);
        }
    }
    e.family("fieldlink_device_readings_dropped_total", "counter",
             "Readings the device's store dropped when full (this incarnation), from its latest telemetry.");
    for (const DeviceView& d : o.devices) {
        if (d.has_telemetry) e.sample("fieldlink_device_readings_dropped_total", {{"device", d.device}}, d.dropped);
    }

    e.family("fieldlink_dead_letters_stored", "gauge", "Rows in dead_letters now, by error (retention ages them out).");
    for (const auto& [error, count] : o.dead_letters_by_error)
        e.sample("fieldlink_dead_letters_stored", {{"error", error}}, count);

    if (o.database_bytes) {
        e.gauge("fieldlink_database_bytes", "Size of the database file and its WAL.",
                static_cast<double>(*o.database_bytes));
    }
    if (o.free_disk_bytes) {
        e.gauge("fieldlink_disk_free_bytes", "Free bytes on the database's filesystem (for an unprivileged user).",
                static_cast<double>(*o.free_disk_bytes));
    }
    if (o.retention) {
        e.counter("fieldlink_retention_deleted_readings_total",
                  "Readings retention deleted after every upstream had them.", o.retention->deleted_forwarded_rows);
        e.counter("fieldlink_retention_dropped_unforwarded_total",
                  "Readings a size limit deleted before some upstream had them.",
                  o.retention->dropped_unforwarded_rows);
        e.counter("fieldlink_retention_failed_passes_total", "Retention passes that failed.",
                  o.retention->failed_passes);
    }

    if (!o.forwarders.empty()) {
        e.family("fieldlink_upstream_connected", "gauge", "1 while the upstream is connected.");
        for (const ForwarderStatus& f : o.forwarders) {
            e.sample("fieldlink_upstream_connected", {{"upstream", f.upstream}}, f.connected ? 1.0 : 0.0);
        }
        e.family("fieldlink_upstream_lag_rows", "gauge", "Stored readings the upstream has not confirmed.");
        for (const ForwarderStatus& f : o.forwarders) {
            e.sample("fieldlink_upstream_lag_rows", {{"upstream", f.upstream}}, f.lag_rows);
        }
        e.family("fieldlink_upstream_lag_seconds", "gauge",
                 "Age of the oldest stored reading the upstream has not confirmed (0 when none waits).");
        for (const UpstreamLag& lag : o.upstream_lags) {
            e.sample("fieldlink_upstream_lag_seconds", {{"upstream", lag.name}}, lag.lag_seconds);
        }
        e.family("fieldlink_upstream_forwarded_readings_total", "counter",
                 "Readings the upstream confirmed (kept in its cursor, since the database was made).");
        for (const ForwarderStatus& f : o.forwarders) {
            e.sample("fieldlink_upstream_forwarded_readings_total", {{"upstream", f.upstream}},
                     f.cursor.forwarded_rows);
        }
        e.family("fieldlink_upstream_sent_bytes_total", "counter", "Payload bytes the upstream confirmed.");
        for (const ForwarderStatus& f : o.forwarders) {
            e.sample("fieldlink_upstream_sent_bytes_total", {{"upstream", f.upstream}}, f.cursor.bytes_sent);
        }
    }

    e.family("fieldlink_health_check_ok", "gauge", "1 when the /healthz check passes, 0 when it fails.");
    for (const HealthCheck& check : health.checks) {
        e.sample("fieldlink_health_check_ok", {{"check", check.name}}, check.ok ? 1.0 : 0.0);
    }
    return e.text();
}

std::string render_status_json(const Observation& o, const HealthReport& health, std::string_view version) {
    using nlohmann::json;
    json devices = json::array();
    for (const DeviceView& d : o.devices) {
        json row = {{"device", d.device},
                    {"online", d.online ? json(*d.online) : json(nullptr)},
                    {"firmware", d.firmware},
                    {"incarnation", fmt_hex(d.incarnation)},
                    {"watermark", d.watermark},
                    {"readings", d.readings},
                    {"last_seen_unix_ms", d.last_seen_unix_ms},
                    {"watermark_age_s",
                     d.watermark_unix_ms ? json(age_seconds(o.now_unix_ms, d.watermark_unix_ms)) : json(nullptr)}};
        if (d.has_telemetry) {
            row["spool_depth"] = d.spool_depth;
            row["oldest_unacked_age_s"] = static_cast<double>(d.oldest_unacked_age_ms) / 1000.0;
            row["dropped"] = d.dropped;
            row["reconnects"] = d.reconnects;
            row["telemetry_age_s"] = age_seconds(o.now_unix_ms, d.telemetry_unix_ms);
        }
        devices.push_back(std::move(row));
    }
    json rate = json::array();
    for (const RateHistory::Slot& slot : o.stored_history) {
        rate.push_back(
            {slot.start_unix_s, static_cast<double>(slot.count) / static_cast<double>(RateHistory::kSlotSeconds)});
    }
    json dead = json::array();
    for (const DeadLetterView& d : o.recent_dead_letters) {
        dead.push_back({{"id", d.id},
                        {"received_unix_ms", d.received_unix_ms},
                        {"topic", d.topic},
                        {"error", d.error},
                        {"bytes", d.bytes}});
    }
    json upstreams = json::array();
    for (std::size_t i = 0; i < o.forwarders.size(); ++i) {
        const ForwarderStatus& f = o.forwarders[i];
        upstreams.push_back({{"name", f.upstream},
                             {"connected", f.connected},
                             {"lag_rows", f.lag_rows},
                             {"lag_seconds", i < o.upstream_lags.size() ? o.upstream_lags[i].lag_seconds : 0.0},
                             {"forwarded", f.cursor.forwarded_rows}});
    }
    json checks = json::array();
    for (const HealthCheck& c : health.checks) checks.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    const StatsSnapshot& s = o.stats;
    const json body = {
        {"version", version},
        {"now_unix_ms", o.now_unix_ms},
        {"healthy", health.healthy},
        {"checks", checks},
        {"totals",
         {{"received", s.received},
          {"stored", s.stored},
          {"duplicates", s.duplicates},
          {"dead_letters", s.dead_letters},
          {"commits", s.commits},
          {"queue_depth", s.queue_depth},
          {"queue_capacity", o.queue_capacity}}},
        {"devices", devices},
        {"devices_total", o.devices_total},
        {"rate", {{"slot_seconds", RateHistory::kSlotSeconds}, {"points", rate}}},
        {"dead_letters", {{"by_error", o.dead_letters_by_error}, {"recent", dead}}},
        {"upstreams", upstreams},
        {"database_bytes", o.database_bytes ? json(*o.database_bytes) : json(nullptr)},
        {"free_disk_bytes", o.free_disk_bytes ? json(*o.free_disk_bytes) : json(nullptr)},
    };
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace fieldlink::gateway::http
