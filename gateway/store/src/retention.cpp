#include "fieldlink/gateway/store/retention.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <set>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace fieldlink::gateway {
namespace {

constexpr std::int64_t kMinId = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxId = std::numeric_limits<std::int64_t>::max();
// Pages incremental_vacuum moves per transaction: about 1 MiB of WAL each, so
// the WAL stays small even on a nearly full disk.
constexpr int kVacuumPagesPerStep = 256;
constexpr std::int64_t kReserveCap = 16LL << 20;
// The final TRUNCATE checkpoint holds new writers while it waits for readers:
// wait only briefly, the next pass tries again.
constexpr int kTruncateBusyTimeoutMs = 100;
constexpr std::int64_t kAutoVacuumIncremental = 2;

constexpr const char* kReasonBytes = "max_db_bytes";
constexpr const char* kReasonDisk = "min_free_disk_bytes";

enum AuxTable { kDeadLetters = 0, kHealth = 1 };
constexpr const char* kAuxNames[] = {"dead_letters", "device_health"};

const RetentionSettings& checked(const RetentionSettings& s) {
    if (s.max_age_s < 0 || s.max_db_bytes < 0 || s.min_free_disk_bytes < 0 || s.health_max_age_s < 0 ||
        s.dead_letters_max_age_s < 0 || (s.reserve_bytes && *s.reserve_bytes < 0)) {
        throw std::invalid_argument("retention settings: limits must not be negative (0 turns one off)");
    }
    if (s.delete_batch_rows < 1)
        throw std::invalid_argument("retention settings: delete_batch_rows must be at least 1");
    if (s.interval < std::chrono::milliseconds(1)) {
        throw std::invalid_argument("retention settings: the interval must be at least 1 ms");
    }
    return s;
}

// Opening would create a missing file; retention must never make an empty database.
const std::string& existing(const std::string& path) {
    if (!std::filesystem::exists(path)) {
        throw std::runtime_error(fmt::format("retention: no database at '{}' (open it with SqliteStore first)", path));
    }
    return path;
}

bool disk_full(const sqlite::Error& e) { return e.code() == SQLITE_FULL || e.extended_code() == SQLITE_IOERR_SHMSIZE; }

std::uint64_t file_size_or_zero(const std::string& path) {
    std::error_code ignored;
    const auto size = std::filesystem::file_size(path, ignored);
    return ignored ? 0 : static_cast<std::uint64_t>(size);
}

std::int64_t step_int(sqlite::Statement& statement) {
    statement.reset();
    statement.step();
    const std::int64_t value = statement.column_int64(0);
    statement.reset();
    return value;
}

std::string limit_text(std::int64_t value, const char* unit) {
    return value == 0 ? std::string("off") : fmt::format("{} {}", value, unit);
}

}  // namespace

// One stored reading as retention sees it.
struct Retention::Row {
    std::int64_t id = 0;
    std::int64_t received_unix_ms = 0;
    std::string device;
    std::uint64_t incarnation = 0;
    std::int64_t seq = 0;
};

struct Retention::Sizes {
    std::int64_t page_count = 0;
    std::int64_t freelist_count = 0;
    std::uint64_t file_bytes = 0;  // main file as the filesystem has it
    std::uint64_t wal_bytes = 0;

    std::uint64_t used_bytes(std::int64_t page_size) const {
        return static_cast<std::uint64_t>(std::max<std::int64_t>(0, page_count - freelist_count) * page_size);
    }
    // Free inside the file, and the tail the next complete checkpoint truncates.
    std::uint64_t reusable_bytes(std::int64_t page_size) const {
        const auto logical = static_cast<std::uint64_t>(page_count * page_size);
        return static_cast<std::uint64_t>(freelist_count * page_size) +
               (file_bytes > logical ? file_bytes - logical : 0);
    }
};

// Sorted, disjoint, non-empty half-open id ranges [from, to).
class Retention::Ranges {
public:
    struct Range {
        std::int64_t from;
        std::int64_t to;
    };

    static Ranges everything() { return Ranges({{kMinId, kMaxId}}); }
    static Ranges none() { return Ranges({}); }

    // ForwardCursor's rule: id < next_id, and live_from_id <= id < live_next_id while split.
    static Ranges confirmed_by(std::int64_t next_id, std::optional<std::int64_t> live_from, std::int64_t live_next) {
        std::vector<Range> ranges{{kMinId, next_id}};
        if (live_from && live_next > *live_from) ranges.push_back({*live_from, live_next});
        return Ranges(std::move(ranges));
    }

    Ranges intersect(const Ranges& other) const {
        std::vector<Range> out;
        std::size_t i = 0;
        std::size_t j = 0;
        while (i < ranges_.size() && j < other.ranges_.size()) {
            const std::int64_t from = std::max(ranges_[i].from, other.ranges_[j].from);
            const std::int64_t to = std::min(ranges_[i].to, other.ranges_[j].to);
            if (from < to) out.push_back({from, to});
            if (ranges_[i].to < other.ranges_[j].to) {
                ++i;
            } else {
                ++j;
            }
        }
        return Ranges(std::move(out));
    }

    bool contains(std::int64_t id) const {
        return std::any_of(ranges_.begin(), ranges_.end(), [id](const Range& r) { return r.from <= id && id < r.to; });
    }

    const std::vector<Range>& ranges() const noexcept { return ranges_; }

private:
    explicit Ranges(std::vector<Range> ranges) {
        std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.from < b.from; });
        for (const Range& r : ranges) {
            if (r.from >= r.to) continue;
            if (!ranges_.empty() && r.from <= ranges_.back().to) {
                ranges_.back().to = std::max(ranges_.back().to, r.to);
            } else {
                ranges_.push_back(r);
            }
        }
    }

    std::vector<Range> ranges_;
};

std::uint64_t free_disk_bytes(const std::string& directory) {
    struct statvfs info {};
    if (::statvfs(directory.c_str(), &info) != 0) {
        throw std::system_error(errno, std::generic_category(), fmt::format("statvfs of '{}'", directory));
    }
    return static_cast<std::uint64_t>(info.f_bavail) * static_cast<std::uint64_t>(info.f_frsize);
}

std::string directory_of(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

std::vector<RetentionDrop> load_retention_drops(sqlite::Database& db) {
    sqlite::Statement select = db.prepare(
        "SELECT upstream, device, reason, rows, first_id, last_id, first_unix_ms, last_unix_ms FROM retention_drops"
        " ORDER BY upstream, device, reason");
    std::vector<RetentionDrop> drops;
    while (select.step()) {
        drops.push_back({select.column_text(0), select.column_text(1), select.column_text(2),
                         static_cast<std::uint64_t>(select.column_int64(3)), select.column_int64(4),
                         select.column_int64(5), select.column_int64(6), select.column_int64(7)});
    }
    return drops;
}

Retention::Retention(const std::string& path, const RetentionSettings& settings, RetentionLog& log,
                     RetentionHooks hooks)
    : settings_(checked(settings)),
      log_(log),
      hooks_(std::move(hooks)),
      path_(path),
      directory_(directory_of(path)),
      reserve_path_(path + "-reserve"),
      db_(existing(path)) {
    db_.exec(fmt::format("PRAGMA busy_timeout = {}", settings_.busy_timeout_ms));
    // A delete lost to a power cut only brings rows back (and their drop counts with
    // them, same transaction); the saver's FULL commits sync the WAL up to its frames.
    db_.exec("PRAGMA synchronous = NORMAL");
    const int version = schema_version(db_);
    if (version != kSchemaVersion) {
        throw std::runtime_error(fmt::format(
            "retention: database '{}' has schema version {}, retention needs {} (open it with SqliteStore first)", path,
            version, kSchemaVersion));
    }
    {
        sqlite::Statement page_size = db_.prepare("PRAGMA page_size");
        page_size_ = step_int(page_size);
    }
    load_cursors_ = db_.prepare("SELECT upstream, next_id, live_from_id, live_next_id FROM forward_cursors");
    select_readings_ = db_.prepare(
        "SELECT id, received_unix_ms, device, incarnation, seq FROM readings WHERE id >= ?1 AND id < ?2"
        " ORDER BY id LIMIT ?3");
    delete_readings_ = db_.prepare("DELETE FROM readings WHERE id >= ?1 AND id <= ?2");
    upsert_drop_ = db_.prepare(
        "INSERT INTO retention_drops (upstream, device, reason, rows, first_id, last_id, first_unix_ms, last_unix_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
        " ON CONFLICT (upstream, device, reason) DO UPDATE SET rows = rows + excluded.rows,"
        " first_id = MIN(first_id, excluded.first_id), last_id = MAX(last_id, excluded.last_id),"
        " last_unix_ms = excluded.last_unix_ms");
    for (int table : {kDeadLetters, kHealth}) {
        select_aux_[table] =
            db_.prepare(fmt::format("SELECT id, received_unix_ms FROM {} ORDER BY id LIMIT ?1", kAuxNames[table]));
        delete_aux_[table] = db_.prepare(fmt::format("DELETE FROM {} WHERE id <= ?1", kAuxNames[table]));
    }
    page_count_ = db_.prepare("PRAGMA page_count");
    freelist_count_ = db_.prepare("PRAGMA freelist_count");
}

Retention::~Retention() { stop(); }

void Retention::set_upstreams(std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::lock_guard lock(upstreams_mutex_);
    upstreams_ = std::move(names);
}

void Retention::start() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    {
        std::lock_guard lock(stop_mutex_);
        if (thread_.joinable() || stopping_) return;
    }
    if (log_.enabled(RetentionLogLevel::Info)) {
        log_.write(
            RetentionLogLevel::Info,
            fmt::format("retention: every {} ms; max age {}, max db {}, min free disk {} (reserve {}), "
                        "device_health {}, dead_letters {}; {} rows per transaction",
                        settings_.interval.count(), limit_text(settings_.max_age_s, "s"),
                        limit_text(settings_.max_db_bytes, "bytes"), limit_text(settings_.min_free_disk_bytes, "bytes"),
                        limit_text(reserve_size(), "bytes"), limit_text(settings_.health_max_age_s, "s"),
                        limit_text(settings_.dead_letters_max_age_s, "s"), settings_.delete_batch_rows));
    }
    thread_ = std::thread([this] {
        for (;;) {
            run_once();
            std::unique_lock lock(stop_mutex_);
            stop_cv_.wait_for(lock, settings_.interval, [this] { return stopping_ || woken_; });
            if (stopping_) return;
            woken_ = false;
        }
    });
}

void Retention::wake() {
    {
        std::lock_guard lock(stop_mutex_);
        woken_ = true;
    }
    stop_cv_.notify_all();
}

void Retention::stop() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    {
        std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool Retention::stopping() const {
    std::lock_guard lock(stop_mutex_);
    return stopping_;
}

bool Retention::pace(std::chrono::steady_clock::duration held) {
    const auto wait = std::max<std::chrono::steady_clock::duration>(held, std::chrono::milliseconds(1));
    std::unique_lock lock(stop_mutex_);
    return !stop_cv_.wait_for(lock, wait, [this] { return stopping_; });
}

RetentionStats Retention::stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
}

std::int64_t Retention::now_unix_ms() const {
    if (hooks_.now_unix_ms) return hooks_.now_unix_ms();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::uint64_t Retention::disk_free() const {
    return hooks_.free_disk_bytes ? hooks_.free_disk_bytes(directory_) : free_disk_bytes(directory_);
}

Retention::Sizes Retention::measure() {
    Sizes sizes;
    sizes.page_count = step_int(page_count_);
    sizes.freelist_count = step_int(freelist_count_);
    sizes.file_bytes = file_size_or_zero(path_);
    sizes.wal_bytes = file_size_or_zero(path_ + "-wal");
    return sizes;
}

const char* Retention::pressure() {
    const Sizes sizes = measure();
    if (settings_.min_free_disk_bytes > 0) {
        // Short of the reserve too while it is missing, so that it can be made again.
        const std::int64_t reserve = reserve_size();
        const auto target = static_cast<std::uint64_t>(settings_.min_free_disk_bytes) +
                            static_cast<std::uint64_t>(reserve > 0 && !reserve_present() ? reserve : 0);
        if (disk_free() + sizes.reusable_bytes(page_size_) < target) return kReasonDisk;
    }
    if (settings_.max_db_bytes > 0 &&
        sizes.used_bytes(page_size_) > static_cast<std::uint64_t>(settings_.max_db_bytes)) {
        return kReasonBytes;
    }
    return nullptr;
}

Retention::Ranges Retention::forwarded_everywhere() {
    std::vector<std::string> upstreams;
    {
        std::lock_guard lock(upstreams_mutex_);
        upstreams = upstreams_;
    }
    if (upstreams.empty()) return Ranges::everything();
    std::map<std::string, Ranges> confirmed;
    load_cursors_.reset();
    while (load_cursors_.step()) {
        std::optional<std::int64_t> live_from;
        if (!load_cursors_.column_is_null(2)) live_from = load_cursors_.column_int64(2);
        confirmed.emplace(load_cursors_.column_text(0), Ranges::confirmed_by(load_cursors_.column_int64(1), live_from,
                                                                             load_cursors_.column_int64(3)));
    }
    load_cursors_.reset();
    Ranges everywhere = Ranges::everything();
    for (const std::string& name : upstreams) {
        const auto found = confirmed.find(name);
        if (found == confirmed.end()) return Ranges::none();  // no cursor yet: it has confirmed nothing
        everywhere = everywhere.intersect(found->second);
    }
    return everywhere;
}

std::vector<Retention::Row> Retention::select_readings(std::int64_t from_id, std::int64_t to_id) {
    std::vector<Row> rows;
    select_readings_.reset();
    select_readings_.bind_int64(1, from_id).bind_int64(2, to_id).bind_int64(3, settings_.delete_batch_rows);
    while (select_readings_.step()) {
        rows.push_back({select_readings_.column_int64(0), select_readings_.column_int64(1),
                        select_readings_.column_text(2), std::bit_cast<std::uint64_t>(select_readings_.column_int64(3)),
                        select_readings_.column_int64(4)});
    }
    select_readings_.reset();
    return rows;
}

std::string Retention::delete_reading_rows(const std::vector<Row>& rows, std::size_t count, std::string_view what) {
    const std::int64_t first = rows.front().id;
    const std::int64_t last = rows[count - 1].id;
    delete_readings_.reset();
    delete_readings_.bind_int64(1, first).bind_int64(2, last);
    delete_readings_.step();
    delete_readings_.reset();
    // The rows were the lowest ids from `first` in this transaction, so the range holds exactly them.
    if (db_.changes() != static_cast<std::int64_t>(count)) {
        throw std::runtime_error(fmt::format("retention: deleting readings {}..{} removed {} rows, expected {}", first,
                                             last, db_.changes(), count));
    }
    if (!log_.enabled(RetentionLogLevel::Debug)) return {};
    // Every deleted key, as runs of seq per device incarnation (tests compare it with what devices sent).
    std::map<std::pair<std::string, std::uint64_t>, std::vector<std::int64_t>> seqs;
    for (std::size_t i = 0; i < count; ++i) seqs[{rows[i].device, rows[i].incarnation}].push_back(rows[i].seq);
    std::string line = fmt::format("retention: deleted readings {}..{} ({}, {}):", first, last, count, what);
    const char* separator = " ";
    for (auto& [key, list] : seqs) {
        std::sort(list.begin(), list.end());
        line += fmt::format("{}{}/{:016x} seq ", separator, key.first, key.second);
        separator = "; ";
        for (std::size_t i = 0; i < list.size();) {
            std::size_t j = i;
            while (j + 1 < list.size() && list[j + 1] == list[j] + 1) ++j;
            line += fmt::format("{}{}-{}", i == 0 ? "" : ",", list[i], list[j]);
            i = j + 1;
        }
    }
    return line;
}

void Retention::log_committed(const std::string& line) {
    if (!line.empty()) log_.write(RetentionLogLevel::Debug, line);
}

void Retention::delete_readings_by_age(std::int64_t cutoff_unix_ms, RetentionPass& pass) {
    std::int64_t from = kMinId;
    while (!stopping()) {
        const auto start = std::chrono::steady_clock::now();
        sqlite::Transaction transaction(db_);
        std::vector<Row> rows;
        const Ranges forwarded = forwarded_everywhere();
        for (const Ranges::Range& range : forwarded.ranges()) {
            if (range.to <= from) continue;
            rows = select_readings(std::max(from, range.from), range.to);
            if (!rows.empty()) break;
        }
        std::size_t old = 0;
        while (old < rows.size() && rows[old].received_unix_ms < cutoff_unix_ms) ++old;
        if (old == 0) return;  // the oldest forwarded reading is young: all old ones are gone
        const std::uint64_t used_before = measure().used_bytes(page_size_);
        const std::string deleted = delete_reading_rows(rows, old, "forwarded everywhere, max_age_s");
        const std::uint64_t used_after = measure().used_bytes(page_size_);
        transaction.commit();
        log_committed(deleted);
        pass.aged_rows += old;
        pass.bytes_freed += used_before > used_after ? used_before - used_after : 0;
        ++pass.delete_transactions;
        if (old < rows.size()) return;
        from = rows[old - 1].id + 1;
        if (!pace(std::chrono::steady_clock::now() - start)) return;
    }
}

void Retention::delete_aux_by_age(int table, std::int64_t cutoff_unix_ms, RetentionPass& pass) {
    sqlite::Statement& select = select_aux_[table];
    sqlite::Statement& remove = delete_aux_[table];
    while (!stopping()) {
        const auto start = std::chrono::steady_clock::now();
        sqlite::Transaction transaction(db_);
        select.reset();
        select.bind_int64(1, settings_.delete_batch_rows);
        std::int64_t last_old = 0;
        std::int64_t old = 0;
        std::int64_t seen = 0;
        bool young = false;
        while (select.step()) {
            ++seen;
            if (young) continue;
            if (select.column_int64(1) >= cutoff_unix_ms) {
                young = true;
                continue;
            }
            last_old = select.column_int64(0);
            ++old;
        }
        select.reset();
        if (old == 0) return;
        const std::uint64_t used_before = measure().used_bytes(page_size_);
        remove.reset();
        remove.bind_int64(1, last_old);
        remove.step();
        remove.reset();
        const std::uint64_t used_after = measure().used_bytes(page_size_);
        transaction.commit();
        (table == kHealth ? pass.health_rows : pass.dead_letters) += static_cast<std::uint64_t>(old);
        pass.bytes_freed += used_before > used_after ? used_before - used_after : 0;
        ++pass.delete_transactions;
        if (young || seen < settings_.delete_batch_rows) return;
        if (!pace(std::chrono::steady_clock::now() - start)) return;
    }
}

void Retention::relieve_pressure(RetentionPass& pass, DropCounts& drops) {
    while (const char* reason = pressure()) {
        if (stopping()) return;
        if (delete_oldest_kept(reason, pass) > 0) continue;
        if (delete_unforwarded(reason, pass, drops) > 0) continue;
        pass.limit_unmet = true;
        return;
    }
}

std::uint64_t Retention::delete_oldest_kept(const char* reason, RetentionPass& pass) {
    const auto start = std::chrono::steady_clock::now();
    sqlite::Transaction transaction(db_);
    std::vector<Row> readings;
    const Ranges forwarded = forwarded_everywhere();
    for (const Ranges::Range& range : forwarded.ranges()) {
        readings = select_readings(range.from, range.to);
        if (!readings.empty()) break;
    }
    // The candidate whose oldest row is oldest, by received_unix_ms: readings forwarded
    // everywhere and the two diagnostic tables are one rolling window.
    int chosen = -1;  // -1: none, 2: readings, else an AuxTable
    std::int64_t oldest = kMaxId;
    std::int64_t last_id[2] = {0, 0};
    std::uint64_t count[2] = {0, 0};
    for (int table : {kDeadLetters, kHealth}) {
        sqlite::Statement& select = select_aux_[table];
        select.reset();
        select.bind_int64(1, settings_.delete_batch_rows);
        bool first = true;
        while (select.step()) {
            if (first && select.column_int64(1) < oldest) {
                oldest = select.column_int64(1);
                chosen = table;
            }
            first = false;
            last_id[table] = select.column_int64(0);
            ++count[table];
        }
        select.reset();
    }
    if (!readings.empty() && readings.front().received_unix_ms < oldest) chosen = 2;
    if (chosen < 0 && !readings.empty()) chosen = 2;
    if (chosen < 0) return 0;

    const std::uint64_t used_before = measure().used_bytes(page_size_);
    std::uint64_t deleted = 0;
    std::string deleted_keys;
    if (chosen == 2) {
        deleted_keys = delete_reading_rows(readings, readings.size(), fmt::format("forwarded everywhere, {}", reason));
        deleted = readings.size();
    } else {
        sqlite::Statement& remove = delete_aux_[chosen];
        remove.reset();
        remove.bind_int64(1, last_id[chosen]);
        remove.step();
        remove.reset();
        deleted = count[chosen];
    }
    const std::uint64_t used_after = measure().used_bytes(page_size_);
    transaction.commit();
    log_committed(deleted_keys);
    if (chosen == 2) {
        pass.forwarded_rows_for_space += deleted;
    } else {
        (chosen == kHealth ? pass.health_rows : pass.dead_letters) += deleted;
    }
    pass.bytes_freed += used_before > used_after ? used_before - used_after : 0;
    ++pass.delete_transactions;
    pace(std::chrono::steady_clock::now() - start);
    return deleted;
}

std::uint64_t Retention::delete_unforwarded(const char* reason, RetentionPass& pass, DropCounts& drops) {
    const auto start = std::chrono::steady_clock::now();
    sqlite::Transaction transaction(db_);
    std::vector<std::string> upstreams;
    {
        std::lock_guard lock(upstreams_mutex_);
        upstreams = upstreams_;
    }
    // Per configured upstream what it has confirmed, read in this transaction (cursors cannot move under it).
    std::vector<Ranges> confirmed(upstreams.size(), Ranges::none());
    load_cursors_.reset();
    while (load_cursors_.step()) {
        const auto it = std::lower_bound(upstreams.begin(), upstreams.end(), load_cursors_.column_text(0));
        if (it == upstreams.end() || *it != load_cursors_.column_text(0)) continue;
        std::optional<std::int64_t> live_from;
        if (!load_cursors_.column_is_null(2)) live_from = load_cursors_.column_int64(2);
        confirmed[static_cast<std::size_t>(it - upstreams.begin())] =
            Ranges::confirmed_by(load_cursors_.column_int64(1), live_from, load_cursors_.column_int64(3));
    }
    load_cursors_.reset();

    const std::vector<Row> rows = select_readings(kMinId, kMaxId);
    if (rows.empty()) return 0;
    struct Batch {
        std::uint64_t rows = 0;
        std::int64_t first_id = 0;
        std::int64_t last_id = 0;
    };
    std::map<std::pair<std::string, std::string>, Batch> batch;  // (upstream, device)
    std::uint64_t dropped = 0;
    for (const Row& row : rows) {
        bool everywhere = true;
        for (std::size_t u = 0; u < upstreams.size(); ++u) {
            if (confirmed[u].contains(row.id)) continue;
            everywhere = false;
            Batch& b = batch[{upstreams[u], row.device}];
            if (b.rows == 0) b.first_id = row.id;
            b.last_id = row.id;
            ++b.rows;
        }
        if (!everywhere) ++dropped;
    }
    const std::uint64_t used_before = measure().used_bytes(page_size_);
    const std::string deleted_keys = delete_reading_rows(rows, rows.size(), fmt::format("oldest, {}", reason));
    const std::int64_t now = now_unix_ms();
    for (const auto& [key, b] : batch) {
        upsert_drop_.reset();
        upsert_drop_.bind_text(1, key.first)
            .bind_text(2, key.second)
            .bind_text(3, reason)
            .bind_int64(4, static_cast<std::int64_t>(b.rows))
            .bind_int64(5, b.first_id)
            .bind_int64(6, b.last_id)
            .bind_int64(7, now);
        upsert_drop_.step();
        upsert_drop_.reset();
    }
    const std::uint64_t used_after = measure().used_bytes(page_size_);
    transaction.commit();
    log_committed(deleted_keys);
    for (const auto& [key, b] : batch) drops[{reason, key.first, key.second}] += b.rows;
    pass.dropped_unforwarded_rows += dropped;
    pass.forwarded_rows_for_space += rows.size() - dropped;  // confirmed meanwhile
    pass.bytes_freed += used_before > used_after ? used_before - used_after : 0;
    ++pass.delete_transactions;
    pace(std::chrono::steady_clock::now() - start);
    return rows.size();
}

void Retention::checkpoint(int mode, int busy_timeout_ms) {
    sqlite3* handle = db_.handle();
    if (busy_timeout_ms != settings_.busy_timeout_ms) sqlite3_busy_timeout(handle, busy_timeout_ms);
    const int rc = sqlite3_wal_checkpoint_v2(handle, nullptr, mode, nullptr, nullptr);
    const int extended = sqlite3_extended_errcode(handle);
    const std::string message = sqlite3_errmsg(handle);
    if (busy_timeout_ms != settings_.busy_timeout_ms) sqlite3_busy_timeout(handle, settings_.busy_timeout_ms);
    // Busy: a reader or the saver is in the way; a later checkpoint finishes the job.
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return;
    throw sqlite::Error(fmt::format("checkpoint of '{}'", path_), extended, message);
}

void Retention::vacuum(RetentionPass& pass, bool deleted_something) {
    const Sizes before = measure();
    sqlite::Statement auto_vacuum = db_.prepare("PRAGMA auto_vacuum");
    if (step_int(auto_vacuum) != kAutoVacuumIncremental) {
        if (!warned_no_vacuum_ && deleted_something) {
            warned_no_vacuum_ = true;
            log_.write(RetentionLogLevel::Warn,
                       fmt::format("retention: database '{}' has no incremental auto_vacuum: the saver reuses the "
                                   "freed pages, but the file does not shrink",
                                   path_));
        }
        if (deleted_something) checkpoint(SQLITE_CHECKPOINT_PASSIVE, settings_.busy_timeout_ms);
        return;
    }
    // Each step moves pages from the end of the file into freed ones; the checkpoint after it
    // truncates the main file and lets the WAL be reused, so the WAL never holds much.
    std::int64_t free_pages = before.freelist_count;
    for (std::int64_t steps = free_pages / kVacuumPagesPerStep + 2; free_pages > 0 && steps > 0; --steps) {
        const auto start = std::chrono::steady_clock::now();
        db_.exec(fmt::format("PRAGMA incremental_vacuum({})", kVacuumPagesPerStep));
        checkpoint(SQLITE_CHECKPOINT_PASSIVE, settings_.busy_timeout_ms);
        free_pages = step_int(freelist_count_);
        if (!pace(std::chrono::steady_clock::now() - start)) break;
    }
    if (deleted_something || before.freelist_count > 0) {
        checkpoint(SQLITE_CHECKPOINT_TRUNCATE, kTruncateBusyTimeoutMs);
    }
    const Sizes after = measure();
    if (before.file_bytes > after.file_bytes) pass.bytes_returned += before.file_bytes - after.file_bytes;
}

std::int64_t Retention::reserve_size() const {
    if (settings_.min_free_disk_bytes <= 0) return 0;
    if (settings_.reserve_bytes) return *settings_.reserve_bytes;
    return std::min(settings_.min_free_disk_bytes / 2, kReserveCap);
}

bool Retention::reserve_present() const {
    const std::int64_t reserve = reserve_size();
    return reserve > 0 && file_size_or_zero(reserve_path_) >= static_cast<std::uint64_t>(reserve);
}

bool Retention::release_reserve() {
    std::error_code error;
    return std::filesystem::remove(reserve_path_, error);
}

void Retention::maintain_reserve() {
    const std::int64_t reserve = reserve_size();
    if (reserve <= 0) {
        release_reserve();  // left by an earlier configuration with a floor
        return;
    }
    if (reserve_present()) return;
    // Only with the floor met and room for the reserve on top.
    if (disk_free() < static_cast<std::uint64_t>(settings_.min_free_disk_bytes + reserve)) return;
    const int fd = ::open(reserve_path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), fmt::format("creating '{}'", reserve_path_));
    int rc = ::posix_fallocate(fd, 0, reserve);
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        // No fallocate on this filesystem: write the blocks.
        static const char zeros[65536] = {};
        rc = 0;
        for (std::int64_t done = 0; done < reserve && rc == 0;) {
            const auto chunk = static_cast<std::size_t>(std::min<std::int64_t>(reserve - done, sizeof(zeros)));
            const ssize_t written = ::pwrite(fd, zeros, chunk, done);
            if (written < 0) {
                rc = errno;
            } else {
                done += written;
            }
        }
    }
    if (rc == 0 && ::fsync(fd) != 0) rc = errno;
    ::close(fd);
    if (rc != 0) {
        release_reserve();
        throw std::system_error(rc, std::generic_category(),
                                fmt::format("making the reserve '{}' of {} bytes", reserve_path_, reserve));
    }
}

void Retention::run_pass(RetentionPass& pass, DropCounts& drops, bool rescue) {
    // After the reserve went: finish the saver's pending checkpoint with its room and give the WAL's space back.
    if (rescue) checkpoint(SQLITE_CHECKPOINT_TRUNCATE, settings_.busy_timeout_ms);
    const std::int64_t now = now_unix_ms();
    if (settings_.max_age_s > 0) delete_readings_by_age(now - settings_.max_age_s * 1000, pass);
    if (settings_.health_max_age_s > 0) delete_aux_by_age(kHealth, now - settings_.health_max_age_s * 1000, pass);
    if (settings_.dead_letters_max_age_s > 0) {
        delete_aux_by_age(kDeadLetters, now - settings_.dead_letters_max_age_s * 1000, pass);
    }
    relieve_pressure(pass, drops);
    vacuum(pass, pass.delete_transactions > 0);
    maintain_reserve();
}

std::string Retention::format_drops(const DropCounts& drops) const {
    std::string text;
    std::string current;
    for (const auto& [key, rows] : drops) {
        const auto& [reason, upstream, device] = key;
        const std::string group = fmt::format("{} upstream '{}'", reason, upstream);
        if (group != current) {
            text += fmt::format("{}{}: ", text.empty() ? "" : "; ", group);
            current = group;
        } else {
            text += ", ";
        }
        text += fmt::format("{} {}", device, rows);
    }
    return text;
}

RetentionPass Retention::run_once() {
    std::lock_guard pass_lock(pass_mutex_);
    RetentionPass pass;
    DropCounts drops;
    try {
        try {
            run_pass(pass, drops, false);
        } catch (const sqlite::Error& e) {
            if (!disk_full(e) || !release_reserve()) throw;
            pass.released_reserve = true;
            log_.write(RetentionLogLevel::Warn,
                       fmt::format("retention: the disk is full ({}); deleted the reserve '{}' to make room", e.what(),
                                   reserve_path_));
            run_pass(pass, drops, true);
        }
    } catch (const std::exception& e) {
        pass.error = e.what();
    }

    Sizes sizes;
    std::uint64_t free = 0;
    try {
        sizes = measure();
        free = disk_free();
    } catch (const std::exception&) {
        // Gauges stay as they were; the pass's own error, if any, is what matters.
    }
    {
        std::lock_guard lock(stats_mutex_);
        ++stats_.passes;
        if (!pass.error.empty()) ++stats_.failed_passes;
        stats_.deleted_forwarded_rows += pass.aged_rows + pass.forwarded_rows_for_space;
        stats_.dropped_unforwarded_rows += pass.dropped_unforwarded_rows;
        stats_.deleted_health_rows += pass.health_rows;
        stats_.deleted_dead_letters += pass.dead_letters;
        stats_.delete_transactions += pass.delete_transactions;
        stats_.bytes_freed += pass.bytes_freed;
        stats_.bytes_returned += pass.bytes_returned;
        if (pass.released_reserve) ++stats_.reserve_releases;
        if (sizes.page_count > 0) {
            stats_.db_used_bytes = sizes.used_bytes(page_size_);
            stats_.db_file_bytes = sizes.file_bytes + sizes.wal_bytes;
            stats_.free_disk_bytes = free;
        }
        stats_.last_pass_unix_ms = now_unix_ms();
        stats_.last_error = pass.error;
    }

    const std::string state = fmt::format("database {} bytes used, {} on disk with its WAL; {} bytes free on disk",
                                          sizes.used_bytes(page_size_), sizes.file_bytes + sizes.wal_bytes, free);
    if (!drops.empty()) {
        log_.write(RetentionLogLevel::Warn,
                   fmt::format("retention: dropped {} readings not yet forwarded (counted in retention_drops): {}",
                               pass.dropped_unforwarded_rows, format_drops(drops)));
    }
    if (pass.limit_unmet) {
        log_.write(RetentionLogLevel::Warn,
                   fmt::format("retention: a size limit is still exceeded with nothing left to delete; {}", state));
    }
    if (pass.delete_transactions > 0 && log_.enabled(RetentionLogLevel::Info)) {
        log_.write(
            RetentionLogLevel::Info,
            fmt::format("retention: deleted {} readings by age, {} forwarded readings for size, {} not yet "
                        "forwarded, {} device_health rows, {} dead letters in {} transactions; freed {} bytes, "
                        "{} bytes back to the filesystem; {}",
                        pass.aged_rows, pass.forwarded_rows_for_space, pass.dropped_unforwarded_rows, pass.health_rows,
                        pass.dead_letters, pass.delete_transactions, pass.bytes_freed, pass.bytes_returned, state));
    } else if (pass.error.empty() && log_.enabled(RetentionLogLevel::Debug)) {
        log_.write(RetentionLogLevel::Debug, fmt::format("retention: pass done, nothing to delete; {}", state));
    }
    if (!pass.error.empty()) {
        log_.write(RetentionLogLevel::Error,
                   fmt::format("retention pass failed: {}; next try in {} ms", pass.error, settings_.interval.count()));
    }
    return pass;
}

}  // namespace fieldlink::gateway
