#include "fieldlink/gateway/http/observer.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <utility>

namespace fieldlink::gateway::http {
namespace {

std::uint64_t as_u64(std::int64_t v) { return std::bit_cast<std::uint64_t>(v); }

std::optional<std::uint64_t> file_bytes(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(st.st_size);
}

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

GatewayObserver::GatewayObserver(GatewaySources sources, std::size_t max_devices, std::size_t recent_dead_letters)
    : sources_(std::move(sources)), max_devices_(max_devices), recent_dead_letters_(recent_dead_letters) {
    if (sources_.stats == nullptr) throw std::invalid_argument("GatewayObserver needs the saver's stats");
}

GatewayObserver::~GatewayObserver() = default;

Observation GatewayObserver::observe() {
    Observation o;
    o.now_unix_ms = sources_.now_unix_ms ? sources_.now_unix_ms() : system_now_ms();
    const Stats& stats = *sources_.stats;
    o.stats = stats.snapshot();
    o.stats.queue_depth = sources_.queue_depth ? sources_.queue_depth() : 0;
    o.commit_seconds = stats.commit_seconds.snapshot();
    o.ack_latency_seconds = stats.ack_latency_seconds.snapshot();
    o.stored_history = stats.stored_history.snapshot(o.now_unix_ms);
    o.queue_capacity = sources_.queue_capacity;
    o.broker_connected = sources_.broker_connected && sources_.broker_connected();
    if (sources_.forwarders) o.forwarders = sources_.forwarders();
    if (sources_.retention) o.retention = sources_.retention();
    if (!sources_.db_path.empty()) {
        const auto main = file_bytes(sources_.db_path);
        if (main) o.database_bytes = *main + file_bytes(sources_.db_path + "-wal").value_or(0);
        try {
            o.free_disk_bytes = free_disk_bytes(directory_of(sources_.db_path));
        } catch (const std::exception&) {
            // left empty: the disk check says it cannot measure
        }
    }
    {
        std::lock_guard lock(mutex_);
        try {
            read_database(o);
        } catch (const std::exception& e) {
            o.database_error = e.what();
            db_.reset();  // opened again next time
        }
    }

    HealthInputs& h = o.health;
    h.broker_connected = o.broker_connected;
    h.commit_failing = stats.commit_failing.load();
    if (h.commit_failing) h.commit_error = stats.commit_error();
    h.database_error = o.database_error;
    const std::int64_t busy_since = stats.writer_busy_since_ns.load();
    if (busy_since != 0) h.writer_busy_seconds = static_cast<double>(steady_now_ns() - busy_since) * 1e-9;
    h.queue_depth = o.stats.queue_depth;
    h.free_disk_bytes = o.free_disk_bytes;
    h.upstreams = o.upstream_lags;
    return o;
}

void GatewayObserver::read_database(Observation& o) {
    // Per upstream: the lag in seconds needs the oldest reading it has not confirmed.
    auto fill_lags_without_database = [&o] {
        o.upstream_lags.clear();
        for (const ForwarderStatus& f : o.forwarders)
            o.upstream_lags.push_back({f.upstream, f.connected, f.lag_rows, 0});
    };
    fill_lags_without_database();
    if (sources_.db_path.empty()) return;
    if (!db_) {
        auto db = std::make_unique<sqlite::Database>(sources_.db_path, sqlite::Database::Mode::ReadOnly);
        db->exec("PRAGMA query_only = 1");
        db->exec("PRAGMA busy_timeout = " + std::to_string(sources_.busy_timeout_ms));
        db_ = std::move(db);
    }
    sqlite::Database& db = *db_;
    // One read transaction: every table from the same moment.
    db.exec("BEGIN");
    struct Rollback {
        sqlite::Database& db;
        ~Rollback() {
            try {
                db.exec("ROLLBACK");
            } catch (...) {
                // a failed read leaves nothing to undo
            }
        }
    } rollback{db};

    for (std::size_t i = 0; i < o.forwarders.size(); ++i) {
        const ForwarderStatus& f = o.forwarders[i];
        if (f.lag_rows <= 0) continue;
        // The backlog lane's next id is the oldest unconfirmed; when it has reached the
        // live lane, the oldest is past the live lane's confirmed part.
        std::int64_t first = f.cursor.next_id;
        if (f.cursor.live_from_id && first >= *f.cursor.live_from_id) first = f.cursor.live_next_id;
        sqlite::Statement oldest =
            db.prepare("SELECT received_unix_ms FROM readings WHERE id >= ? ORDER BY id LIMIT 1");
        oldest.bind_int64(1, first);
        if (oldest.step()) {
            o.upstream_lags[i].lag_seconds =
                std::max<double>(0, static_cast<double>(o.now_unix_ms - oldest.column_int64(0)) / 1000.0);
        }
    }

    std::map<std::string, DeviceView> devices;
    auto device = [&devices](const std::string& name) -> DeviceView& {
        DeviceView& d = devices[name];
        d.device = name;
        return d;
    };
    {
        sqlite::Statement s =
            db.prepare("SELECT device, online, incarnation, firmware_version, updated_unix_ms FROM devices");
        while (s.step()) {
            DeviceView& d = device(s.column_text(0));
            if (!s.column_is_null(1)) d.online = s.column_int64(1) != 0;
            if (!s.column_is_null(2)) d.incarnation = as_u64(s.column_int64(2));
            d.firmware = s.column_text(3);
            d.last_seen_unix_ms = std::max(d.last_seen_unix_ms, s.column_int64(4));
        }
    }
    {
        // The device's watermark: of the incarnation its status names, else of the one
        // committed most recently.
        std::map<std::string, bool> incarnation_from_status;
        for (const auto& [name, d] : devices) incarnation_from_status[name] = d.incarnation != 0;
        sqlite::Statement s = db.prepare("SELECT device, incarnation, watermark, updated_unix_ms FROM watermarks");
        while (s.step()) {
            DeviceView& d = device(s.column_text(0));
            const std::uint64_t incarnation = as_u64(s.column_int64(1));
            const std::int64_t updated = s.column_int64(3);
            d.last_seen_unix_ms = std::max(d.last_seen_unix_ms, updated);
            const bool current =
                incarnation_from_status[d.device] ? incarnation == d.incarnation : updated >= d.watermark_unix_ms;
            if (!current) continue;
            d.incarnation = incarnation;
            d.watermark = as_u64(s.column_int64(2));
            d.watermark_unix_ms = updated;
        }
    }
    {
        // The latest telemetry per device (index device_health_by_device).
        sqlite::Statement s = db.prepare(
            "SELECT h.device, h.received_unix_ms, h.held, h.oldest_unacked_age_ms, h.dropped, h.reconnects "
            "FROM device_health h JOIN (SELECT device, max(received_unix_ms) AS latest FROM device_health "
            "GROUP BY device) l ON h.device = l.device AND h.received_unix_ms = l.latest");
        while (s.step()) {
            DeviceView& d = device(s.column_text(0));
            d.has_telemetry = true;
            d.telemetry_unix_ms = s.column_int64(1);
            d.spool_depth = as_u64(s.column_int64(2));
            d.oldest_unacked_age_ms = as_u64(s.column_int64(3));
            d.dropped = as_u64(s.column_int64(4));
            d.reconnects = as_u64(s.column_int64(5));
            d.last_seen_unix_ms = std::max(d.last_seen_unix_ms, d.telemetry_unix_ms);
        }
    }
    count_readings(db, o.retention);
    for (const auto& [name, count] : readings_per_device_) device(name).readings = count;
    o.devices_total = devices.size();
    o.devices.reserve(devices.size());
    for (auto& [name, d] : devices) o.devices.push_back(std::move(d));
    // Most recently seen first; ties by name, so the kept set is stable.
    std::sort(o.devices.begin(), o.devices.end(), [](const DeviceView& a, const DeviceView& b) {
        return a.last_seen_unix_ms != b.last_seen_unix_ms ? a.last_seen_unix_ms > b.last_seen_unix_ms
                                                          : a.device < b.device;
    });
    if (o.devices.size() > max_devices_) o.devices.resize(max_devices_);

    {
        sqlite::Statement s = db.prepare("SELECT error, count(*) FROM dead_letters GROUP BY error");
        while (s.step()) o.dead_letters_by_error[s.column_text(0)] = as_u64(s.column_int64(1));
    }
    {
        sqlite::Statement s = db.prepare(
            "SELECT id, received_unix_ms, topic, error, length(payload) FROM dead_letters ORDER BY id DESC LIMIT ?");
        s.bind_int64(1, static_cast<std::int64_t>(recent_dead_letters_));
        while (s.step()) {
            o.recent_dead_letters.push_back(DeadLetterView{s.column_int64(0), s.column_int64(1), s.column_text(2),
                                                           s.column_text(3),
                                                           static_cast<std::size_t>(s.column_int64(4))});
        }
    }
}

void GatewayObserver::count_readings(sqlite::Database& db, const std::optional<RetentionStats>& retention) {
    // Without retention's totals a delete cannot be noticed: count everything each time.
    const std::optional<std::uint64_t> deletes =
        retention ? std::optional(retention->deleted_forwarded_rows + retention->dropped_unforwarded_rows)
                  : std::nullopt;
    // Into copies, so a failed read leaves the counts as they were.
    const bool again = !deletes || deletes != counted_at_retention_deletes_;
    std::map<std::string, std::uint64_t> counts = again ? std::map<std::string, std::uint64_t>() : readings_per_device_;
    const std::int64_t from = again ? 0 : counted_through_;
    sqlite::Statement newest = db.prepare("SELECT COALESCE(MAX(id), 0) FROM readings");
    const std::int64_t through = newest.step() ? newest.column_int64(0) : 0;
    if (through > from) {
        sqlite::Statement s =
            db.prepare("SELECT device, COUNT(*) FROM readings WHERE id > ?1 AND id <= ?2 GROUP BY device");
        s.bind_int64(1, from).bind_int64(2, through);
        while (s.step()) counts[s.column_text(0)] += as_u64(s.column_int64(1));
    }
    readings_per_device_ = std::move(counts);
    counted_through_ = through;
    counted_at_retention_deletes_ = deletes;
}

}  // namespace fieldlink::gateway::http
