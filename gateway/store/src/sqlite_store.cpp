#include "fieldlink/gateway/store/sqlite_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <iterator>
#include <chrono>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <span>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "fieldlink/gateway/store/retention.hpp"

namespace fieldlink::gateway {
namespace {

// One entry per schema version: entry i takes the database from version i to i + 1.
// Never edit a released step; add a new one.
constexpr std::string_view kMigrations[] = {
    // v1: the first schema.
    R"sql(
CREATE TABLE readings (
    -- AUTOINCREMENT: ids never come back after retention deletes, so the
    -- forwarder's cursor (last forwarded id) can never skip a new row.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    incarnation INTEGER NOT NULL,       -- u64 bit-cast to i64
    seq INTEGER NOT NULL,               -- 1 .. 2^63-1 (larger ones are dead-lettered)
    boot INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    mono_ms INTEGER NOT NULL,
    unix_ms INTEGER,                    -- NULL while the boot's clock offset is unknown
    value REAL NOT NULL,
    received_unix_ms INTEGER NOT NULL,
    UNIQUE (device, incarnation, seq)
);
-- Finds a boot's rows that still lack wall time; stays small because rows leave it once filled.
CREATE INDEX readings_without_unix_ms ON readings (device, incarnation, boot) WHERE unix_ms IS NULL;
CREATE TABLE watermarks (
    device TEXT,
    incarnation INTEGER,
    watermark INTEGER NOT NULL,
    updated_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (device, incarnation)
);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    received_unix_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    error TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE devices (
    device TEXT PRIMARY KEY,
    online INTEGER,
    incarnation INTEGER,
    boot INTEGER,
    firmware_version TEXT,
    updated_unix_ms INTEGER
);
)sql",
    // v2: device health from .../telemetry (docs/protocol.md §5a), one row per message.
    R"sql(
CREATE TABLE device_health (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    received_unix_ms INTEGER NOT NULL,  -- the gateway's clock (devices may have none)
    incarnation INTEGER NOT NULL,       -- u64 bit-cast to i64
    boot INTEGER NOT NULL,
    uptime_ms INTEGER NOT NULL,
    held INTEGER NOT NULL,
    oldest_unacked_age_ms INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    reconnects INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    acked_through INTEGER NOT NULL
);
-- "Latest health of each device" and per-device history.
CREATE INDEX device_health_by_device ON device_health (device, received_unix_ms);
)sql",
    // v3: store-and-forward. One durable cursor per upstream (docs/operations.md).
    R"sql(
CREATE TABLE forward_cursors (
    upstream TEXT PRIMARY KEY,           -- the [[upstream]] name in the gateway's config
    next_id INTEGER NOT NULL,            -- every reading with id < next_id is confirmed by the upstream
    live_from_id INTEGER,                -- fresh data first: readings from here on are sent before the backlog
    live_next_id INTEGER,                -- ...and those in [live_from_id, live_next_id) are confirmed too
    forwarded_rows INTEGER NOT NULL DEFAULT 0,
    forwarded_batches INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    created_unix_ms INTEGER NOT NULL,
    updated_unix_ms INTEGER NOT NULL
);
)sql",
    // v4: retention (store/retention.hpp). Readings a size limit deleted before an
    // upstream confirmed them, counted since the file was made: one row per
    // upstream, device and limit, so the table stays small.
    R"sql(
CREATE TABLE retention_drops (
    upstream TEXT NOT NULL,              -- the [[upstream]] that had not confirmed them
    device TEXT NOT NULL,
    reason TEXT NOT NULL,                -- the limit: 'max_db_bytes' or 'min_free_disk_bytes'
    rows INTEGER NOT NULL,               -- readings dropped
    first_id INTEGER NOT NULL,           -- lowest readings.id dropped
    last_id INTEGER NOT NULL,            -- highest readings.id dropped
    first_unix_ms INTEGER NOT NULL,      -- gateway clock at the first drop
    last_unix_ms INTEGER NOT NULL,       -- ...and at the latest
    PRIMARY KEY (upstream, device, reason)
) WITHOUT ROWID;
)sql",
    // v5: dedupe moves from a UNIQUE index on readings to the saver, which saves
    // what is stored of each key beside its watermark (ranges_above). The index
    // cost one random page per device per commit and grew with the file; now a
    // commit appends to readings and updates one small watermark row per device.
    // Both tables are rebuilt (SQLite cannot drop a constraint): the ranges are
    // computed while the old index still exists, and readings keep their ids and
    // AUTOINCREMENT high mark, so the forwarders' cursors stay valid.
    R"sql(
CREATE TABLE watermarks_v5 (
    device TEXT NOT NULL,
    incarnation INTEGER NOT NULL,       -- u64 bit-cast to i64
    watermark INTEGER NOT NULL,         -- every seq 1..watermark is stored (or below the device's floor)
    ranges_above TEXT,                  -- stored seqs above it: 'first-last,first-last' ascending; NULL when none
    updated_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (device, incarnation)
) WITHOUT ROWID;
INSERT INTO watermarks_v5 (device, incarnation, watermark, updated_unix_ms)
    SELECT device, incarnation, watermark, updated_unix_ms FROM watermarks
    WHERE device IS NOT NULL AND incarnation IS NOT NULL;
INSERT OR IGNORE INTO watermarks_v5 (device, incarnation, watermark, updated_unix_ms)
    SELECT DISTINCT device, incarnation, 0, 0 FROM readings;
-- Gaps and islands: within one run of consecutive seqs, seq - row_number is constant.
UPDATE watermarks_v5 SET ranges_above = (
    SELECT group_concat(first || '-' || last, ',') FROM (
        SELECT MIN(seq) AS first, MAX(seq) AS last FROM (
            SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS island FROM readings
            WHERE device = watermarks_v5.device AND incarnation = watermarks_v5.incarnation
              AND seq > watermarks_v5.watermark
        ) GROUP BY island ORDER BY first
    )
);
DROP TABLE watermarks;
ALTER TABLE watermarks_v5 RENAME TO watermarks;

CREATE TEMP TABLE readings_high_mark AS SELECT seq FROM sqlite_sequence WHERE name = 'readings';
CREATE TABLE readings_v5 (
    -- AUTOINCREMENT: ids never come back after retention deletes, so the
    -- forwarder's cursor (last forwarded id) can never skip a new row.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    incarnation INTEGER NOT NULL,       -- u64 bit-cast to i64
    seq INTEGER NOT NULL,               -- 1 .. 2^63-1 (larger ones are dead-lettered); unique per (device, incarnation)
    boot INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    mono_ms INTEGER NOT NULL,
    unix_ms INTEGER,                    -- NULL while the boot's clock offset is unknown
    value REAL NOT NULL,
    received_unix_ms INTEGER NOT NULL
);
INSERT INTO readings_v5 SELECT id, device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms
    FROM readings ORDER BY id;
DROP TABLE readings;
ALTER TABLE readings_v5 RENAME TO readings;
INSERT INTO sqlite_sequence (name, seq) SELECT 'readings', seq FROM temp.readings_high_mark
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'readings');
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM temp.readings_high_mark))
    WHERE name = 'readings' AND EXISTS (SELECT 1 FROM temp.readings_high_mark);
DROP TABLE temp.readings_high_mark;
-- Finds a boot's rows that still lack wall time; stays small because rows leave it once filled.
CREATE INDEX readings_without_unix_ms ON readings (device, incarnation, boot) WHERE unix_ms IS NULL;
)sql",
};
static_assert(std::size(kMigrations) == static_cast<std::size_t>(kSchemaVersion),
              "one migration step per schema version");

std::int64_t as_db_int(std::uint64_t value) { return std::bit_cast<std::int64_t>(value); }

// watermarks.ranges_above: "first-last,first-last", ascending.
std::string format_ranges(std::span<const SeqRange> ranges) {
    std::string text;
    for (const SeqRange& range : ranges) {
        if (!text.empty()) text += ',';
        fmt::format_to(std::back_inserter(text), "{}-{}", range.first, range.last);
    }
    return text;
}

bool parse_seq(std::string_view text, std::uint64_t& seq) {
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seq);
    return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

// Strict: disjoint, ascending, all above the watermark; anything else is a damaged row.
bool parse_ranges(std::string_view text, std::uint64_t watermark, std::vector<SeqRange>& ranges) {
    std::uint64_t floor = watermark;
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        const std::string_view item = text.substr(0, comma);
        const std::size_t dash = item.find('-');
        SeqRange range;
        if (dash == std::string_view::npos || !parse_seq(item.substr(0, dash), range.first) ||
            !parse_seq(item.substr(dash + 1), range.last) || range.first <= floor || range.first > range.last) {
            return false;
        }
        ranges.push_back(range);
        floor = range.last;
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
        if (text.empty()) return false;  // a trailing comma
    }
    return true;
}

const char* synchronous_pragma(Synchronous synchronous) {
    return synchronous == Synchronous::Full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
}

std::int64_t pragma_int(sqlite::Database& db, const char* pragma) {
    sqlite::Statement statement = db.prepare(pragma);
    statement.step();
    return statement.column_int64(0);
}

constexpr std::int64_t kAutoVacuumNone = 0;

// An old file without auto_vacuum gets it by one VACUUM (the setting cannot
// change once tables exist), when that is affordable.
std::pair<AutoVacuumUpgrade, std::string> convert_to_incremental_vacuum(sqlite::Database& db,
                                                                        const StoreOptions& options) {
    if (pragma_int(db, "PRAGMA auto_vacuum") != kAutoVacuumNone) return {AutoVacuumUpgrade::NotNeeded, {}};
    const std::int64_t bytes = pragma_int(db, "PRAGMA page_count") * pragma_int(db, "PRAGMA page_size");
    constexpr const char* kConsequence =
        "retention still deletes and the saver reuses the freed pages, but the file will not shrink";
    if (bytes > options.upgrade_vacuum_max_bytes) {
        return {AutoVacuumUpgrade::Skipped,
                fmt::format("database '{}' ({} bytes) has no incremental auto_vacuum and is larger than {} bytes, so "
                            "it is not converted at start; {}. To convert it, stop the gateway and run: sqlite3 {} "
                            "'PRAGMA auto_vacuum = INCREMENTAL; VACUUM' (needs twice its size free)",
                            db.path(), bytes, options.upgrade_vacuum_max_bytes, kConsequence, db.path())};
    }
    // VACUUM writes a temporary copy, then the whole file again through the WAL.
    std::uint64_t free_bytes = 0;
    try {
        free_bytes = free_disk_bytes(directory_of(db.path()));
    } catch (const std::exception& e) {
        return {AutoVacuumUpgrade::Skipped,
                fmt::format("database '{}' has no incremental auto_vacuum and was not converted ({}); {}", db.path(),
                            e.what(), kConsequence)};
    }
    if (free_bytes < 2 * static_cast<std::uint64_t>(bytes) + (1U << 20)) {
        return {AutoVacuumUpgrade::Skipped,
                fmt::format("database '{}' ({} bytes) has no incremental auto_vacuum and was not converted: VACUUM "
                            "needs twice its size free, the disk has {} bytes; {}",
                            db.path(), bytes, free_bytes, kConsequence)};
    }
    const auto start = std::chrono::steady_clock::now();
    try {
        db.exec("PRAGMA auto_vacuum = INCREMENTAL");
        db.exec("VACUUM");
    } catch (const sqlite::Error& e) {
        // VACUUM is all or nothing: the file is as it was.
        return {AutoVacuumUpgrade::Failed,
                fmt::format("database '{}' could not be converted to incremental auto_vacuum: {}; {}", db.path(),
                            e.what(), kConsequence)};
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    return {AutoVacuumUpgrade::Converted,
            fmt::format("database '{}' converted to incremental auto_vacuum (one VACUUM of {} bytes, {} ms)", db.path(),
                        bytes, ms)};
}

void refuse_newer(sqlite::Database& db) {
    const int version = schema_version(db);
    if (version > kSchemaVersion) {
        throw SchemaTooNewError(
            fmt::format("database '{}' has schema version {}, but this fieldlink-gateway knows versions up to {}; "
                        "it was written by a newer gateway: run that one, or use another database file",
                        db.path(), version, kSchemaVersion));
    }
}

}  // namespace

int schema_version(sqlite::Database& db) {
    sqlite::Statement statement = db.prepare("PRAGMA user_version");
    statement.step();
    return static_cast<int>(statement.column_int64(0));
}

void migrate(sqlite::Database& db) { migrate(db, kSchemaVersion); }

void migrate(sqlite::Database& db, int target_version) {
    refuse_newer(db);
    if (target_version < 0 || target_version > kSchemaVersion) {
        throw std::invalid_argument(fmt::format("no schema version {}", target_version));
    }
    for (int version = schema_version(db); version < target_version; ++version) {
        sqlite::Transaction transaction(db);
        // Re-read inside the write lock: another process may have migrated meanwhile.
        if (schema_version(db) != version) {
            refuse_newer(db);
            continue;
        }
        db.exec(std::string(kMigrations[version]));
        db.exec(fmt::format("PRAGMA user_version = {}", version + 1));
        transaction.commit();
    }
}

class SqliteStoreTransaction final : public StoreTransaction {
public:
    explicit SqliteStoreTransaction(SqliteStore& store) : store_(store), transaction_(store.db_) {}

    std::uint64_t insert_readings(const ReadingBatch& batch, std::span<const SeqRange> seqs,
                                  std::optional<std::int64_t> wall_offset_ms, std::int64_t received_unix_ms) override {
        sqlite::Statement& insert = store_.insert_reading_;
        const protocol::BatchHeader& header = batch.body.header;
        const std::size_t count = batch.body.records.size();
        std::uint64_t inserted = 0;
        for (const SeqRange& range : seqs) {
            // Only seqs of this batch: the rest of the range is not ours to write.
            if (count == 0 || range.first < header.first_seq || range.first > range.last) continue;
            const std::uint64_t first_index = range.first - header.first_seq;
            const std::uint64_t last_index = std::min<std::uint64_t>(range.last - header.first_seq, count - 1);
            for (std::uint64_t i = first_index; i <= last_index; ++i) {
                const protocol::Record& record = batch.body.records[i];
                const auto mono_ms = static_cast<std::int64_t>(record.mono_ms);  // <= 2^63-1, checked at decode
                insert.reset();
                insert.bind_text(1, batch.device)
                    .bind_int64(2, as_db_int(header.incarnation))
                    .bind_int64(3, static_cast<std::int64_t>(header.first_seq + i))
                    .bind_int64(4, header.boot)
                    .bind_int64(5, record.channel)
                    .bind_int64(6, mono_ms);
                std::int64_t unix_ms = 0;
                if (wall_offset_ms && !__builtin_add_overflow(mono_ms, *wall_offset_ms, &unix_ms)) {
                    insert.bind_int64(7, unix_ms);
                } else {
                    insert.bind_null(7);
                }
                insert.bind_double(8, record.value).bind_int64(9, received_unix_ms);
                insert.step();
                ++inserted;
            }
        }
        return inserted;
    }

    std::uint64_t fill_unix_time(const DeviceKey& key, std::uint32_t boot, std::int64_t wall_offset_ms) override {
        sqlite::Statement& fill = store_.fill_unix_time_;
        fill.reset();
        fill.bind_text(1, key.device)
            .bind_int64(2, as_db_int(key.incarnation))
            .bind_int64(3, boot)
            .bind_int64(4, wall_offset_ms);
        fill.step();
        return static_cast<std::uint64_t>(store_.db_.changes());
    }

    void save_watermark(const DeviceKey& key, std::uint64_t watermark, std::span<const SeqRange> ranges_above,
                        std::int64_t now_unix_ms) override {
        sqlite::Statement& save = store_.save_watermark_;
        save.reset();
        save.bind_text(1, key.device)
            .bind_int64(2, as_db_int(key.incarnation))
            .bind_int64(3, static_cast<std::int64_t>(watermark))
            .bind_int64(4, now_unix_ms);
        if (ranges_above.empty()) {
            save.bind_null(5);
        } else {
            save.bind_text(5, format_ranges(ranges_above));
        }
        save.step();
    }

    void add_dead_letter(const Rejected& rejected, std::int64_t received_unix_ms) override {
        sqlite::Statement& add = store_.add_dead_letter_;
        add.reset();
        add.bind_int64(1, received_unix_ms)
            .bind_text(2, rejected.topic)
            .bind_text(3, rejected.error)
            .bind_blob(4, rejected.payload);
        add.step();
    }

    void upsert_device(const DeviceStatus& status, std::int64_t received_unix_ms) override {
        sqlite::Statement& upsert = store_.upsert_device_;
        const protocol::StatusMessage& message = status.status;
        upsert.reset();
        upsert.bind_text(1, status.device)
            .bind_int64(2, message.state == protocol::DeviceState::Online ? 1 : 0)
            .bind_int64(3, as_db_int(message.incarnation))
            .bind_int64(4, message.boot)
            .bind_text(5, std::string_view(message.firmware_version,
                                           strnlen(message.firmware_version, sizeof(message.firmware_version))))
            .bind_int64(6, received_unix_ms);
        upsert.step();
    }

    void add_telemetry(const DeviceTelemetry& telemetry, std::int64_t received_unix_ms) override {
        sqlite::Statement& add = store_.add_telemetry_;
        const protocol::Telemetry& t = telemetry.telemetry;
        // Counts above 2^63-1 were rejected at decode.
        add.reset();
        add.bind_text(1, telemetry.device)
            .bind_int64(2, received_unix_ms)
            .bind_int64(3, as_db_int(t.incarnation))
            .bind_int64(4, t.boot)
            .bind_int64(5, static_cast<std::int64_t>(t.uptime_ms))
            .bind_int64(6, static_cast<std::int64_t>(t.held))
            .bind_int64(7, static_cast<std::int64_t>(t.oldest_unacked_age_ms))
            .bind_int64(8, static_cast<std::int64_t>(t.dropped))
            .bind_int64(9, t.reconnects)
            .bind_int64(10, static_cast<std::int64_t>(t.next_seq))
            .bind_int64(11, static_cast<std::int64_t>(t.acked_through));
        add.step();
    }

    void commit() override { transaction_.commit(); }

private:
    SqliteStore& store_;
    sqlite::Transaction transaction_;
};

SqliteStore::SqliteStore(const StoreOptions& options) : db_(options.path) {
    db_.exec(fmt::format("PRAGMA busy_timeout = {}", options.busy_timeout_ms));
    // Before anything writes to the file (even the journal mode is stored in it).
    refuse_newer(db_);
    // auto_vacuum can only be chosen before the first table exists. INCREMENTAL lets
    // retention give freed pages back to the filesystem (PRAGMA incremental_vacuum).
    const bool new_file = pragma_int(db_, "PRAGMA page_count") == 0;
    if (new_file) db_.exec("PRAGMA auto_vacuum = INCREMENTAL");
    {
        sqlite::Statement mode = db_.prepare("PRAGMA journal_mode = WAL");
        mode.step();
        journal_mode_ = mode.column_text(0);
    }
    db_.exec(synchronous_pragma(options.synchronous));
    db_.exec(fmt::format("PRAGMA cache_size = -{}", options.cache_kib));
    migrate(db_);
    if (!new_file) std::tie(auto_vacuum_upgrade_, auto_vacuum_notice_) = convert_to_incremental_vacuum(db_, options);

    insert_reading_ = db_.prepare(
        "INSERT INTO readings"
        " (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    // A sum beyond 2^63-1 would turn into a REAL in SQLite: such rows stay NULL
    // (unsynchronised), as insert_readings leaves them. mono_ms >= 0, so only a
    // positive offset can overflow, and 2^63-1 - ?4 cannot overflow then.
    fill_unix_time_ = db_.prepare(
        "UPDATE readings SET unix_ms = mono_ms + ?4"
        " WHERE device = ?1 AND incarnation = ?2 AND boot = ?3 AND unix_ms IS NULL"
        " AND (?4 <= 0 OR mono_ms <= 9223372036854775807 - ?4)");
    save_watermark_ = db_.prepare(
        "INSERT INTO watermarks (device, incarnation, watermark, ranges_above, updated_unix_ms)"
        " VALUES (?1, ?2, ?3, ?5, ?4) ON CONFLICT (device, incarnation) DO UPDATE"
        " SET watermark = excluded.watermark, ranges_above = excluded.ranges_above,"
        " updated_unix_ms = excluded.updated_unix_ms");
    add_dead_letter_ =
        db_.prepare("INSERT INTO dead_letters (received_unix_ms, topic, error, payload) VALUES (?1, ?2, ?3, ?4)");
    upsert_device_ = db_.prepare(
        "INSERT INTO devices (device, online, incarnation, boot, firmware_version, updated_unix_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        " ON CONFLICT (device) DO UPDATE SET online = excluded.online, incarnation = excluded.incarnation,"
        " boot = excluded.boot, firmware_version = excluded.firmware_version,"
        " updated_unix_ms = excluded.updated_unix_ms");
    add_telemetry_ = db_.prepare(
        "INSERT INTO device_health (device, received_unix_ms, incarnation, boot, uptime_ms, held,"
        " oldest_unacked_age_ms, dropped, reconnects, next_seq, acked_through)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    load_watermark_ =
        db_.prepare("SELECT watermark, ranges_above FROM watermarks WHERE device = ?1 AND incarnation = ?2");
}

SqliteStore::~SqliteStore() = default;

std::unique_ptr<StoreTransaction> SqliteStore::begin() { return std::make_unique<SqliteStoreTransaction>(*this); }

StoredWatermark SqliteStore::load_watermark(const DeviceKey& key) {
    StoredWatermark stored;
    load_watermark_.reset();
    load_watermark_.bind_text(1, key.device).bind_int64(2, as_db_int(key.incarnation));
    if (load_watermark_.step()) {
        stored.watermark = static_cast<std::uint64_t>(load_watermark_.column_int64(0));
        if (!load_watermark_.column_is_null(1)) {
            const std::string text = load_watermark_.column_text(1);
            load_watermark_.reset();
            if (!parse_ranges(text, stored.watermark, stored.ranges_above)) {
                throw std::runtime_error(
                    fmt::format("database '{}': watermarks.ranges_above of device '{}' incarnation {:016x} is not "
                                "'first-last,...' ascending above watermark {}: '{}'",
                                db_.path(), key.device, key.incarnation, stored.watermark, text));
            }
        }
    }
    load_watermark_.reset();
    return stored;
}

}  // namespace fieldlink::gateway
