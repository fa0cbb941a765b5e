// The saver's SQLite database: WAL journal, versioned schema, prepared
// statements reused for every batch. Owned by one thread (the writer).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "fieldlink/gateway/store/sqlite.hpp"
#include "fieldlink/gateway/store/store.hpp"

namespace fieldlink::gateway {

// Schema version this code writes (PRAGMA user_version).
inline constexpr int kSchemaVersion = 5;

enum class Synchronous {
    // fsync the WAL on every commit: a commit that returned survives a power
    // loss. Needed because the commit ack lets the device delete its copy.
    Full,
    // fsync only at checkpoints: faster, but a power loss can roll back
    // commits that were already acked, and those readings are then lost.
    Normal,
};

struct StoreOptions {
    std::string path = "fieldlink.db";
    Synchronous synchronous = Synchronous::Full;
    int busy_timeout_ms = 5000;
    // SQLite's page cache of the writer's connection (PRAGMA cache_size = -KiB).
    // Commits append at the end of readings and touch the watermark row of each
    // device in them, so the working set stays small at any file size.
    std::int64_t cache_kib = 2048;
    // A file made before auto_vacuum = INCREMENTAL (gateways before schema v4)
    // is rewritten once by VACUUM at open so that retention can shrink it,
    // but only up to this size: VACUUM holds the write lock throughout (about
    // the time to write the file twice) and needs twice its size free on disk.
    std::int64_t upgrade_vacuum_max_bytes = 256LL << 20;
};

// What SqliteStore's constructor did about auto_vacuum.
enum class AutoVacuumUpgrade {
    NotNeeded,  // a new file (made INCREMENTAL), or one that already had auto_vacuum
    Converted,  // an old file rewritten once by VACUUM
    Skipped,    // an old file too large for that, or too little free disk: it keeps working, never shrinks
    Failed,     // VACUUM failed (e.g. SQLITE_FULL); the file is as it was
};

// The database was written by a newer gateway; we refuse to touch it.
class SchemaTooNewError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Brings the database to kSchemaVersion, one transaction per step.
// Throws SchemaTooNewError when its user_version is above kSchemaVersion.
void migrate(sqlite::Database& db);
// Only up to target_version (tests build old files this way); never downgrades.
void migrate(sqlite::Database& db, int target_version);
int schema_version(sqlite::Database& db);

class SqliteStore final : public Store {
public:
    // Opens or creates the database, sets WAL, synchronous and busy_timeout, migrates.
    // A new file gets auto_vacuum = INCREMENTAL; an old one without it is converted (above).
    explicit SqliteStore(const StoreOptions& options);
    ~SqliteStore() override;

    std::unique_ptr<StoreTransaction> begin() override;
    StoredWatermark load_watermark(const DeviceKey& key) override;

    const std::string& journal_mode() const noexcept { return journal_mode_; }
    // With a line for the log unless NotNeeded (info for Converted, a warning otherwise).
    AutoVacuumUpgrade auto_vacuum_upgrade() const noexcept { return auto_vacuum_upgrade_; }
    const std::string& auto_vacuum_notice() const noexcept { return auto_vacuum_notice_; }
    sqlite::Database& database() noexcept { return db_; }

private:
    friend class SqliteStoreTransaction;

    sqlite::Database db_;
    std::string journal_mode_;
    AutoVacuumUpgrade auto_vacuum_upgrade_ = AutoVacuumUpgrade::NotNeeded;
    std::string auto_vacuum_notice_;
    sqlite::Statement insert_reading_;
    sqlite::Statement fill_unix_time_;
    sqlite::Statement save_watermark_;
    sqlite::Statement add_dead_letter_;
    sqlite::Statement upsert_device_;
    sqlite::Statement add_telemetry_;
    sqlite::Statement load_watermark_;
};

}  // namespace fieldlink::gateway
