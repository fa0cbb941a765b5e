// Retention: the only way readings leave the gateway's database (DESIGN §2.6).
// A thread of its own with its own SQLite connection (WAL: it works while the
// saver writes); knows nothing of MQTT.
//
// Each pass, every `interval`:
//  1. Age. Readings older than max_age_s (received_unix_ms) that every
//     configured upstream has confirmed, lowest id first. The pass stops at the
//     first forwarded reading that is not yet old: received_unix_ms follows id
//     order (both come from the saver as it takes messages), so that is every
//     old one, and a gateway clock that stepped back only keeps rows longer.
//     Age never deletes a reading that an upstream still waits for.
//     device_health and dead_letters: rows older than their own max ages.
//  2. Size. While the database uses more than max_db_bytes, or the disk has
//     less than min_free_disk_bytes free: first the oldest rows (by
//     received_unix_ms, a transaction at a time from whichever table's oldest
//     row is oldest) of readings forwarded everywhere, dead_letters and
//     device_health, one rolling window; only when those are gone, readings
//     not yet forwarded, lowest id first. Each reading dropped so is counted,
//     in the same transaction as its delete, in retention_drops (one row per
//     upstream that had not confirmed it, device and limit; schema in
//     sqlite_store.cpp), logged (one warning per pass) and in RetentionStats.
//     A limit that cannot be met with everything deleted is logged as a warning.
//     Limits are checked once per interval: leave room for one interval of ingest.
//  3. Shrink. PRAGMA incremental_vacuum gives the freed pages back to the
//     filesystem, a few hundred pages per transaction, each followed by a
//     checkpoint (that is when the main file is truncated), and a TRUNCATE
//     checkpoint at the end returns the WAL's space.
//
// Measures. "Used" is (page_count - freelist_count) * page_size: what the rows
// take, which a delete lowers at once. The file on disk is that plus free pages
// not yet vacuumed plus the WAL (bounded by checkpoints, a few MiB). "Free disk"
// is statvfs f_bavail on the database's folder, plus the free pages inside the
// file and the tail a pending checkpoint will truncate (the saver can use both).
//
// Forwarded everywhere: confirmed by every upstream in set_upstreams() per its
// forward_cursors row (id < next_id, or live_from_id <= id < live_next_id). An
// upstream without a row has confirmed nothing; cursor rows of upstreams no
// longer configured are ignored; with no upstream every reading counts as
// forwarded. A reading deleted while its upstream was sending it is counted as
// dropped (the conservative side). Cursors never skip a row after deletes:
// readings.id is AUTOINCREMENT, ids are never reused.
//
// Deletes run in transactions of delete_batch_rows rows; after each, the lock
// is released for at least as long as it was held, so the saver's writer (which
// waits in its busy handler) always gets in between. At debug level each
// committed delete of readings is logged with every key it removed, as runs of
// seq per device incarnation (the disk-full test checks its exact set with it).
//
// A completely full disk. A delete needs room in the WAL, and the checkpoint
// that lets the WAL be reused needs room to write the saver's newest pages into
// the main file, so on a disk with no free block at all SQLite cannot delete
// anything. The free disk floor is there so that retention acts before that;
// beyond it, with min_free_disk_bytes set, retention keeps a reserve file
// "<database>-reserve" (reserve_bytes, by default half the floor up to 16 MiB),
// made only when the floor is met with room for it. When a pass fails with
// SQLITE_FULL it deletes the reserve, checkpoints (TRUNCATE: the WAL's space
// comes back too) and runs again; while the reserve is missing the floor asks
// for its size on top, so it is made again once space is back. It must hold the
// saver's pages not yet checkpointed, about one WAL (4 MiB at SQLite's default
// autocheckpoint), so a floor of 8 MiB or more is what makes recovery from a
// completely full disk work. Without a reserve (floor off, or already used) a
// completely full disk stays stalled until space is freed by hand. Meanwhile
// the saver's commits fail and are retried, no acks go out, devices keep their
// readings: nothing is lost, and ingest resumes on its own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "fieldlink/gateway/store/sqlite.hpp"

namespace fieldlink::gateway {

// Mirrors Config's [retention] keys; 0 turns a limit off.
struct RetentionSettings {
    std::int64_t max_age_s = 0;
    std::int64_t max_db_bytes = 0;
    std::int64_t min_free_disk_bytes = 0;
    std::int64_t health_max_age_s = 30 * 86400;
    std::int64_t dead_letters_max_age_s = 30 * 86400;
    std::chrono::milliseconds interval{10'000};
    std::int64_t delete_batch_rows = 2000;
    int busy_timeout_ms = 5000;
    // Size of <database>-reserve; empty: min(min_free_disk_bytes / 2, 16 MiB); 0: none.
    std::optional<std::int64_t> reserve_bytes;
};

// Same values as the gateway's LogLevel, so the app can cast.
enum class RetentionLogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// Where log lines go (the app adapts its Logger). Called from the retention
// thread, and from whoever calls run_once(): must be thread-safe.
class RetentionLog {
public:
    virtual bool enabled(RetentionLogLevel level) const noexcept = 0;
    virtual void write(RetentionLogLevel level, std::string_view line) noexcept = 0;

protected:
    ~RetentionLog() = default;
};

// Seams for tests; empty members use the real thing.
struct RetentionHooks {
    std::function<std::int64_t()> now_unix_ms;                                   // system clock
    std::function<std::uint64_t(const std::string& directory)> free_disk_bytes;  // statvfs
};

// What one pass did.
struct RetentionPass {
    std::uint64_t aged_rows = 0;                 // readings deleted by max_age_s (all forwarded everywhere)
    std::uint64_t forwarded_rows_for_space = 0;  // readings forwarded everywhere, deleted by a size limit
    std::uint64_t dropped_unforwarded_rows = 0;  // readings some upstream had not confirmed
    std::uint64_t health_rows = 0;
    std::uint64_t dead_letters = 0;
    std::uint64_t delete_transactions = 0;
    std::uint64_t bytes_freed = 0;     // used bytes the deletes freed
    std::uint64_t bytes_returned = 0;  // file bytes incremental_vacuum gave back
    bool released_reserve = false;
    bool limit_unmet = false;  // a size limit still exceeded with nothing left to delete
    std::string error;         // empty when the pass succeeded
};

// Totals since start, and gauges from the latest pass.
struct RetentionStats {
    std::uint64_t passes = 0;
    std::uint64_t failed_passes = 0;
    std::uint64_t deleted_forwarded_rows = 0;    // by age or size, confirmed by every upstream
    std::uint64_t dropped_unforwarded_rows = 0;  // by size, before some upstream confirmed them
    std::uint64_t deleted_health_rows = 0;
    std::uint64_t deleted_dead_letters = 0;
    std::uint64_t delete_transactions = 0;
    std::uint64_t bytes_freed = 0;
    std::uint64_t bytes_returned = 0;
    std::uint64_t reserve_releases = 0;
    std::uint64_t db_used_bytes = 0;
    std::uint64_t db_file_bytes = 0;    // main file and WAL
    std::uint64_t free_disk_bytes = 0;  // statvfs, as the floor counts it before the reserve
    std::int64_t last_pass_unix_ms = 0;
    std::string last_error;  // empty when the latest pass succeeded
};

// One row of retention_drops.
struct RetentionDrop {
    std::string upstream;
    std::string device;
    std::string reason;  // "max_db_bytes" or "min_free_disk_bytes"
    std::uint64_t rows = 0;
    std::int64_t first_id = 0;
    std::int64_t last_id = 0;
    std::int64_t first_unix_ms = 0;
    std::int64_t last_unix_ms = 0;

    bool operator==(const RetentionDrop&) const = default;
};

// Every row of retention_drops, ordered by upstream, device, reason.
std::vector<RetentionDrop> load_retention_drops(sqlite::Database& db);

// Bytes an unprivileged writer may still use on the filesystem holding
// `directory` (statvfs f_bavail * f_frsize). Throws std::system_error.
std::uint64_t free_disk_bytes(const std::string& directory);
// The folder of a file path ("." for a bare name).
std::string directory_of(const std::string& path);

class Retention {
public:
    // Opens its own connection to the database at `path`, which SqliteStore must
    // already have migrated (throws std::runtime_error naming the version
    // otherwise, sqlite::Error when it cannot open; std::invalid_argument for
    // negative limits, a batch below 1 or an interval below 1 ms).
    Retention(const std::string& path, const RetentionSettings& settings, RetentionLog& log, RetentionHooks hooks = {});
    ~Retention();  // stop()
    Retention(const Retention&) = delete;
    Retention& operator=(const Retention&) = delete;

    // The names of the configured upstreams ([[upstream]] name). Any thread; the next transaction uses them.
    void set_upstreams(std::vector<std::string> names);

    // Runs a pass now, then one every interval, on a thread of its own. Idempotent.
    void start();
    // Ends the current pass at its next transaction boundary and joins. Idempotent;
    // start() after stop() does nothing.
    void stop();
    // The thread's next pass starts now instead of at the end of the interval
    // (e.g. when a commit failed with SQLITE_FULL). Any thread; cheap.
    void wake();

    // One pass on the calling thread (one pass at a time). Never throws: a failure
    // is in the result's error and in stats().last_error, and logged.
    RetentionPass run_once();

    RetentionStats stats() const;

private:
    struct Row;
    struct Sizes;
    class Ranges;
    // Readings dropped this pass: (limit, upstream, device) -> rows.
    using DropCounts = std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t>;

    void run_pass(RetentionPass& pass, DropCounts& drops, bool rescue);
    void delete_readings_by_age(std::int64_t cutoff_unix_ms, RetentionPass& pass);
    void delete_aux_by_age(int table, std::int64_t cutoff_unix_ms, RetentionPass& pass);
    // While a size limit is exceeded: delete_oldest_kept, then delete_unforwarded.
    void relieve_pressure(RetentionPass& pass, DropCounts& drops);
    // One transaction from whichever of readings forwarded everywhere, dead_letters and
    // device_health has the oldest row. Returns rows deleted (0: all three are empty).
    std::uint64_t delete_oldest_kept(const char* reason, RetentionPass& pass);
    // One transaction of the oldest readings, each counted for every upstream that had not confirmed it.
    std::uint64_t delete_unforwarded(const char* reason, RetentionPass& pass, DropCounts& drops);
    void vacuum(RetentionPass& pass, bool deleted_something);

    // Deletes rows[0, count), which must be the lowest ids from rows[0].id. Returns the debug
    // line naming their keys (empty when debug is off), for log_committed after the COMMIT:
    // a COMMIT can still fail (SQLITE_FULL), and then nothing was deleted.
    std::string delete_reading_rows(const std::vector<Row>& rows, std::size_t count, std::string_view what);
    void log_committed(const std::string& line);
    Ranges forwarded_everywhere();
    // At most delete_batch_rows readings with from_id <= id < to_id, ascending.
    std::vector<Row> select_readings(std::int64_t from_id, std::int64_t to_id);
    Sizes measure();
    // The limit exceeded now ("max_db_bytes", "min_free_disk_bytes"), or nullptr.
    const char* pressure();
    // Busy is not an error (a later one finishes the job); anything else throws sqlite::Error.
    void checkpoint(int mode, int busy_timeout_ms);
    // Waits at least as long as the last transaction held the lock; false when stopping.
    bool pace(std::chrono::steady_clock::duration held);
    bool stopping() const;

    std::int64_t reserve_size() const;
    bool reserve_present() const;
    // Makes the reserve when it is missing and the disk has the floor plus its size free.
    void maintain_reserve();
    bool release_reserve();

    std::int64_t now_unix_ms() const;
    std::uint64_t disk_free() const;
    std::string format_drops(const DropCounts& drops) const;

    const RetentionSettings settings_;
    RetentionLog& log_;
    const RetentionHooks hooks_;
    const std::string path_;
    const std::string directory_;
    const std::string reserve_path_;

    // Used only by the pass that holds pass_mutex_.
    std::mutex pass_mutex_;
    sqlite::Database db_;
    sqlite::Statement load_cursors_;
    sqlite::Statement select_readings_;
    sqlite::Statement delete_readings_;
    sqlite::Statement upsert_drop_;
    sqlite::Statement select_aux_[2];
    sqlite::Statement delete_aux_[2];
    sqlite::Statement page_count_;
    sqlite::Statement freelist_count_;
    std::int64_t page_size_ = 4096;
    bool warned_no_vacuum_ = false;

    mutable std::mutex upstreams_mutex_;
    std::vector<std::string> upstreams_;

    mutable std::mutex stats_mutex_;
    RetentionStats stats_;

    std::mutex lifecycle_mutex_;  // start() and stop()
    mutable std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    bool woken_ = false;
    std::thread thread_;
};

}  // namespace fieldlink::gateway
