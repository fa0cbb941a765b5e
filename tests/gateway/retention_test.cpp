// Retention against real SQLite files: each limit alone, what counts as
// forwarded (two upstreams, a split cursor), drop accounting, the file
// shrinking, the v3 -> v4 upgrade, and the thread's lifecycle.
#include "fieldlink/gateway/store/retention.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "fieldlink/gateway/store/forward_store.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "test_support.hpp"

namespace fieldlink::gateway {
namespace {

using test::BatchSpec;

class CapturingLog final : public RetentionLog {
public:
    bool enabled(RetentionLogLevel /*level*/) const noexcept override { return true; }
    void write(RetentionLogLevel level, std::string_view line) noexcept override {
        std::lock_guard lock(mutex_);
        lines_.emplace_back(level, std::string(line));
    }
    std::vector<std::string> lines(RetentionLogLevel level) const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& [l, text] : lines_) {
            if (l == level) out.push_back(text);
        }
        return out;
    }
    std::string all() const {
        std::lock_guard lock(mutex_);
        std::string out;
        for (const auto& line : lines_) out += line.second + "\n";
        return out;
    }
    void clear() {
        std::lock_guard lock(mutex_);
        lines_.clear();
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::pair<RetentionLogLevel, std::string>> lines_;
};

std::int64_t query_int(sqlite::Database& db, const std::string& sql) {
    sqlite::Statement statement = db.prepare(sql);
    statement.step();
    return statement.column_int64(0);
}

std::vector<std::int64_t> ids(sqlite::Database& db, const std::string& table = "readings") {
    sqlite::Statement select = db.prepare("SELECT id FROM " + table + " ORDER BY id");
    std::vector<std::int64_t> out;
    while (select.step()) out.push_back(select.column_int64(0));
    return out;
}

std::vector<std::int64_t> range(std::int64_t first, std::int64_t last) {
    std::vector<std::int64_t> out;
    for (std::int64_t id = first; id <= last; ++id) out.push_back(id);
    return out;
}

std::vector<std::int64_t> join(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::uint64_t used_bytes(sqlite::Database& db) {
    return static_cast<std::uint64_t>((query_int(db, "PRAGMA page_count") - query_int(db, "PRAGMA freelist_count")) *
                                      query_int(db, "PRAGMA page_size"));
}

std::uint64_t file_size(const std::string& path) {
    std::error_code ignored;
    const auto size = std::filesystem::file_size(path, ignored);
    return ignored ? 0 : static_cast<std::uint64_t>(size);
}

class RetentionTest : public ::testing::Test {
protected:
    std::string path() const { return dir_.file("fieldlink.db"); }

    StoreOptions options() const {
        StoreOptions o;
        o.path = path();
        o.synchronous = Synchronous::Normal;  // the tests need no power-loss safety, only speed
        return o;
    }

    // Every limit off, small transactions, no reserve, a fixed clock.
    RetentionSettings settings() const {
        RetentionSettings s;
        s.health_max_age_s = 0;
        s.dead_letters_max_age_s = 0;
        s.delete_batch_rows = 50;
        s.reserve_bytes = 0;
        return s;
    }

    RetentionHooks hooks() {
        RetentionHooks h;
        h.now_unix_ms = [this] { return now_.load(); };
        return h;
    }

    // `count` readings of `device` from seq `first_seq`, received at `received` (one transaction).
    void insert(SqliteStore& store, const std::string& device, std::uint64_t first_seq, std::size_t count,
                std::int64_t received) {
        BatchSpec spec;
        spec.first_seq = first_seq;
        spec.count = count;
        auto transaction = store.begin();
        const ReadingBatch batch{device, BatchBody{test::header_for(spec), test::records_for(spec)}};
        const SeqRange all = seqs_of(batch);
        transaction->insert_readings(batch, {&all, 1}, std::nullopt, received);
        transaction->commit();
    }

    // Batches of 10 readings, batch b received at (b + 1) * 10'000: ids 1..10 * batches.
    void insert_batches(SqliteStore& store, int batches, const std::string& device = "dev-1") {
        for (int b = 0; b < batches; ++b)
            insert(store, device, 1 + 10 * static_cast<std::uint64_t>(b), 10, (b + 1) * 10'000);
    }

    void save_cursor(const std::string& upstream, std::int64_t next_id, std::optional<std::int64_t> live_from = {},
                     std::int64_t live_next = 0) {
        ForwardStore forward(path(), 5000);
        ForwardCursor cursor;
        cursor.upstream = upstream;
        cursor.next_id = next_id;
        cursor.live_from_id = live_from;
        cursor.live_next_id = live_next;
        forward.save_cursor(cursor, 1);
    }

    void add_dead_letter(SqliteStore& store, std::int64_t received) {
        auto transaction = store.begin();
        transaction->add_dead_letter(Rejected{"fieldlink/v1/x/up", "bad_crc", "", std::vector<std::uint8_t>(200, 0xab)},
                                     received);
        transaction->commit();
    }

    void add_health(SqliteStore& store, std::int64_t received) {
        auto transaction = store.begin();
        transaction->add_telemetry(DeviceTelemetry{"dev-1", {}}, received);
        transaction->commit();
    }

    test::TempDir dir_;
    CapturingLog log_;
    std::atomic<std::int64_t> now_{1'000'000};
};

// --- age -------------------------------------------------------------------

TEST_F(RetentionTest, AgeDeletesForwardedReadingsOlderThanMaxAge) {
    SqliteStore store(options());
    insert_batches(store, 10);  // ids 1..100, received 10'000 .. 100'000
    save_cursor("central", 71);
    RetentionSettings s = settings();
    s.max_age_s = 50;
    now_ = 110'000;  // cutoff 60'000: batches received 10'000 .. 50'000 are old
    Retention retention(path(), s, log_, hooks());
    retention.set_upstreams({"central"});

    const RetentionPass pass = retention.run_once();
    EXPECT_EQ(pass.error, "");
    EXPECT_EQ(pass.aged_rows, 50u);
    EXPECT_EQ(ids(store.database()), range(51, 100));
    EXPECT_EQ(retention.stats().deleted_forwarded_rows, 50u);
    EXPECT_EQ(retention.stats().dropped_unforwarded_rows, 0u);
}

TEST_F(RetentionTest, AgeNeverDeletesAReadingAnUpstreamWaitsFor) {
    SqliteStore store(options());
    insert_batches(store, 10);
    save_cursor("central", 71);
    RetentionSettings s = settings();
    s.max_age_s = 1;
    now_ = 10'000'000;  // everything is old
    Retention retention(path(), s, log_, hooks());

    retention.set_upstreams({"central"});
    EXPECT_EQ(retention.run_once().aged_rows, 70u);
    EXPECT_EQ(ids(store.database()), range(71, 100));

    // A second upstream without a cursor row has confirmed nothing.
    retention.set_upstreams({"central", "backup"});
    EXPECT_EQ(retention.run_once().aged_rows, 0u);
    EXPECT_EQ(ids(store.database()), range(71, 100));
    EXPECT_TRUE(load_retention_drops(store.database()).empty());
}

TEST_F(RetentionTest, WithoutUpstreamsEveryReadingCountsAsForwarded) {
    SqliteStore store(options());
    insert_batches(store, 10);
    save_cursor("removed-from-config", 1);  // cursors of upstreams no longer configured do not hold rows back
    RetentionSettings s = settings();
    s.max_age_s = 60;
    now_ = 130'000;  // cutoff 70'000
    Retention retention(path(), s, log_, hooks());

    EXPECT_EQ(retention.run_once().aged_rows, 60u);
    EXPECT_EQ(ids(store.database()), range(61, 100));
}

TEST_F(RetentionTest, TwoUpstreamsAndASplitCursorDeleteOnlyWhatBothConfirmed) {
    SqliteStore store(options());
    insert_batches(store, 10);
    save_cursor("a", 61);          // [1, 61)
    save_cursor("b", 21, 41, 81);  // [1, 21) and the live lane [41, 81)
    RetentionSettings s = settings();
    s.max_age_s = 1;
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());
    retention.set_upstreams({"a", "b"});

    EXPECT_EQ(retention.run_once().aged_rows, 40u);
    EXPECT_EQ(ids(store.database()), join(range(21, 40), range(61, 100)));
}

TEST_F(RetentionTest, AgeStopsAtTheFirstForwardedReadingThatIsStillYoung) {
    SqliteStore store(options());
    insert(store, "dev-1", 1, 10, 1'000);   // ids 1..10: old
    insert(store, "dev-1", 11, 10, 9'000);  // ids 11..20: young
    insert(store, "dev-1", 21, 10, 1'000);  // ids 21..30: stamped old by a clock that stepped back
    RetentionSettings s = settings();
    s.max_age_s = 5;
    now_ = 10'000;  // cutoff 5'000
    Retention retention(path(), s, log_, hooks());

    EXPECT_EQ(retention.run_once().aged_rows, 10u);
    EXPECT_EQ(ids(store.database()), range(11, 30)) << "kept longer, never shorter";
}

TEST_F(RetentionTest, HealthAndDeadLettersAreAgedOut) {
    SqliteStore store(options());
    for (int i = 1; i <= 10; ++i) {
        add_health(store, i * 1'000);
        add_dead_letter(store, i * 1'000);
    }
    RetentionSettings s = settings();
    s.health_max_age_s = 4;        // cutoff 6'000: rows 1..5 go
    s.dead_letters_max_age_s = 7;  // cutoff 3'000: rows 1..2 go
    s.delete_batch_rows = 3;
    now_ = 10'000;
    Retention retention(path(), s, log_, hooks());

    const RetentionPass pass = retention.run_once();
    EXPECT_EQ(pass.error, "");
    EXPECT_EQ(pass.health_rows, 5u);
    EXPECT_EQ(pass.dead_letters, 2u);
    EXPECT_EQ(ids(store.database(), "device_health"), range(6, 10));
    EXPECT_EQ(ids(store.database(), "dead_letters"), range(3, 10));
    EXPECT_EQ(retention.stats().deleted_health_rows, 5u);
    EXPECT_EQ(retention.stats().deleted_dead_letters, 2u);
}

// --- size --------------------------------------------------------------------

TEST_F(RetentionTest, MaxDbBytesDeletesForwardedFirstThenUnforwardedAndCountsEveryDrop) {
    SqliteStore store(options());
    const std::uint64_t schema = used_bytes(store.database());  // the empty tables take pages too
    for (int b = 0; b < 100; ++b) {
        insert(store, b % 2 == 0 ? "dev-a" : "dev-b", 1 + 20 * static_cast<std::uint64_t>(b / 2), 20, 1'000 + b);
    }
    std::map<std::int64_t, std::string> device_of;
    {
        sqlite::Statement select = store.database().prepare("SELECT id, device FROM readings");
        while (select.step()) device_of[select.column_int64(0)] = select.column_text(1);
    }
    ASSERT_EQ(device_of.size(), 2000u);
    save_cursor("a", 501);
    save_cursor("b", 1001);

    RetentionSettings s = settings();
    s.max_db_bytes = static_cast<std::int64_t>(schema + (used_bytes(store.database()) - schema) / 4);
    Retention retention(path(), s, log_, hooks());
    retention.set_upstreams({"a", "b"});
    const RetentionPass pass = retention.run_once();
    ASSERT_EQ(pass.error, "");

    const std::vector<std::int64_t> remaining = ids(store.database());
    ASSERT_FALSE(remaining.empty());
    const std::int64_t k = remaining.front();
    EXPECT_EQ(remaining, range(k, 2000)) << "the oldest go first";
    EXPECT_GT(k, 1001) << "a quarter of the size needs more than the forwarded rows";
    EXPECT_LE(used_bytes(store.database()), static_cast<std::uint64_t>(s.max_db_bytes));
    EXPECT_FALSE(pass.limit_unmet);

    EXPECT_EQ(pass.forwarded_rows_for_space, 500u);
    EXPECT_EQ(pass.dropped_unforwarded_rows, static_cast<std::uint64_t>(k - 501));
    EXPECT_EQ(retention.stats().dropped_unforwarded_rows, static_cast<std::uint64_t>(k - 501));

    // Every deleted row that an upstream had not confirmed, per upstream and device.
    std::map<std::pair<std::string, std::string>, RetentionDrop> expected;
    for (const auto& [id, device] : device_of) {
        if (id >= k) break;
        for (const auto& [upstream, next_id] : {std::pair<std::string, std::int64_t>{"a", 501}, {"b", 1001}}) {
            if (id < next_id) continue;
            RetentionDrop& drop = expected[{upstream, device}];
            if (drop.rows == 0) drop = {upstream, device, "max_db_bytes", 0, id, id, now_, now_};
            ++drop.rows;
            drop.last_id = id;
        }
    }
    std::vector<RetentionDrop> expected_rows;
    for (const auto& [key, drop] : expected) expected_rows.push_back(drop);
    EXPECT_EQ(load_retention_drops(store.database()), expected_rows);

    // One warning for the pass, with the counts.
    const auto warnings = log_.lines(RetentionLogLevel::Warn);
    ASSERT_EQ(warnings.size(), 1u) << log_.all();
    EXPECT_NE(warnings[0].find("dropped " + std::to_string(k - 501) + " readings not yet forwarded"), std::string::npos)
        << warnings[0];
    EXPECT_NE(warnings[0].find("upstream 'b': dev-a " + std::to_string(expected[{"b", "dev-a"}].rows)),
              std::string::npos)
        << warnings[0];

    // A second pass with nothing over the limit changes nothing.
    const RetentionPass again = retention.run_once();
    EXPECT_EQ(again.delete_transactions, 0u);
    EXPECT_EQ(ids(store.database()), remaining);
}

TEST_F(RetentionTest, ALiveLaneIsForwardedAndGoesBeforeTheBacklog) {
    SqliteStore store(options());
    const std::uint64_t schema = used_bytes(store.database());
    for (int b = 0; b < 100; ++b) insert(store, "dev-1", 1 + 100 * static_cast<std::uint64_t>(b), 100, 1'000 + b);
    save_cursor("central", 1001, 3001, 4001);  // confirmed: [1, 1001) and [3001, 4001); backlog [1001, 3001)
    RetentionSettings s = settings();
    s.delete_batch_rows = 100;
    // About 3000 rows' worth must go: the 2000 forwarded ones, then the oldest half of the backlog.
    s.max_db_bytes = static_cast<std::int64_t>(schema + (used_bytes(store.database()) - schema) * 7 / 10);
    Retention retention(path(), s, log_, hooks());
    retention.set_upstreams({"central"});
    const RetentionPass pass = retention.run_once();
    ASSERT_EQ(pass.error, "");

    const std::vector<std::int64_t> remaining = ids(store.database());
    ASSERT_FALSE(remaining.empty());
    const std::int64_t k = remaining.front();
    ASSERT_GT(k, 1001);
    ASSERT_LT(k, 3001);
    EXPECT_EQ(remaining, join(range(k, 3000), range(4001, 10'000)));
    EXPECT_EQ(pass.forwarded_rows_for_space, 2000u);
    EXPECT_EQ(pass.dropped_unforwarded_rows, static_cast<std::uint64_t>(k - 1001));
    const std::vector<RetentionDrop> drops = load_retention_drops(store.database());
    ASSERT_EQ(drops.size(), 1u);
    EXPECT_EQ(drops[0].rows, static_cast<std::uint64_t>(k - 1001));
    EXPECT_EQ(drops[0].first_id, 1001);
    EXPECT_EQ(drops[0].last_id, k - 1);
    EXPECT_EQ(drops[0].reason, "max_db_bytes");
}

TEST_F(RetentionTest, FreeDiskFloorUsesTheFreeBytesItIsGiven) {
    SqliteStore store(options());
    for (int b = 0; b < 60; ++b)
        insert(store, b % 2 == 0 ? "dev-a" : "dev-b", 1 + 20 * static_cast<std::uint64_t>(b / 2), 20, 1'000);
    save_cursor("central", 301);
    store.database().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const std::uint64_t file = file_size(path());
    // A small disk: whatever the database files do not take is free.
    const std::uint64_t disk = file + file / 4;
    RetentionSettings s = settings();
    s.min_free_disk_bytes = static_cast<std::int64_t>(file / 2);  // half the file must go
    RetentionHooks h = hooks();
    std::atomic<int> calls{0};
    h.free_disk_bytes = [&](const std::string& directory) -> std::uint64_t {
        EXPECT_EQ(directory, dir_.path().string());
        ++calls;
        const std::uint64_t taken = file_size(path()) + file_size(path() + "-wal");
        return taken < disk ? disk - taken : 0;
    };
    Retention retention(path(), s, log_, h);
    retention.set_upstreams({"central"});
    const RetentionPass pass = retention.run_once();
    ASSERT_EQ(pass.error, "");
    EXPECT_GT(calls.load(), 0);

    const std::vector<std::int64_t> remaining = ids(store.database());
    ASSERT_FALSE(remaining.empty());
    const std::int64_t k = remaining.front();
    EXPECT_GT(k, 301);
    EXPECT_EQ(remaining, range(k, 1200));
    EXPECT_EQ(pass.forwarded_rows_for_space, 300u);
    EXPECT_EQ(pass.dropped_unforwarded_rows, static_cast<std::uint64_t>(k - 301));
    std::uint64_t counted = 0;
    for (const RetentionDrop& drop : load_retention_drops(store.database())) {
        EXPECT_EQ(drop.reason, "min_free_disk_bytes");
        EXPECT_EQ(drop.upstream, "central");
        counted += drop.rows;
    }
    EXPECT_EQ(counted, static_cast<std::uint64_t>(k - 301));
    // The floor holds on the (fake) disk once the file has shrunk.
    const std::uint64_t taken = file_size(path()) + file_size(path() + "-wal");
    EXPECT_GE(disk - taken, static_cast<std::uint64_t>(s.min_free_disk_bytes));
    EXPECT_EQ(retention.stats().free_disk_bytes, disk - taken);
}

TEST_F(RetentionTest, SizeLimitsTakeDiagnosticsAndForwardedReadingsOldestFirst) {
    SqliteStore store(options());
    const std::uint64_t schema = used_bytes(store.database());
    // Received times interleave: dead letter i at 1'000 i, readings of batch i at 1'000 i + 300, health i at + 600.
    for (int i = 0; i < 30; ++i) {
        add_dead_letter(store, 1'000 * i);
        insert(store, "dev-1", 1 + 20 * static_cast<std::uint64_t>(i), 20, 1'000 * i + 300);
        add_health(store, 1'000 * i + 600);
    }
    save_cursor("central", 301);  // readings 1..300 forwarded, 301..600 not
    auto snapshot = [&] {
        std::set<std::tuple<std::string, std::int64_t, std::int64_t>> rows;  // (table, id, received)
        for (const char* table : {"dead_letters", "readings", "device_health"}) {
            sqlite::Statement select =
                store.database().prepare(std::string("SELECT id, received_unix_ms FROM ") + table);
            while (select.step()) rows.insert({table, select.column_int64(0), select.column_int64(1)});
        }
        return rows;
    };
    const auto before = snapshot();
    RetentionSettings s = settings();
    s.delete_batch_rows = 1;  // the order is then exact, row by row
    s.max_db_bytes = static_cast<std::int64_t>(schema + (used_bytes(store.database()) - schema) * 7 / 10);
    Retention retention(path(), s, log_, hooks());
    retention.set_upstreams({"central"});
    const RetentionPass pass = retention.run_once();
    ASSERT_EQ(pass.error, "");
    EXPECT_GT(pass.dead_letters, 0u);
    EXPECT_GT(pass.health_rows, 0u);
    EXPECT_GT(pass.forwarded_rows_for_space, 0u);
    EXPECT_EQ(pass.dropped_unforwarded_rows, 0u) << "not while forwarded readings or diagnostics remain";

    const auto after = snapshot();
    std::int64_t newest_deleted = std::numeric_limits<std::int64_t>::min();
    std::int64_t oldest_kept = std::numeric_limits<std::int64_t>::max();
    for (const auto& row : before) {
        if (after.count(row) != 0) {
            oldest_kept = std::min(oldest_kept, std::get<2>(row));
        } else {
            newest_deleted = std::max(newest_deleted, std::get<2>(row));
        }
    }
    EXPECT_LE(newest_deleted, oldest_kept) << "one rolling window across the three tables";
}

TEST_F(RetentionTest, ALimitThatCannotBeMetDeletesEverythingAndSaysSo) {
    SqliteStore store(options());
    insert_batches(store, 5);
    RetentionSettings s = settings();
    s.max_db_bytes = 1;
    Retention retention(path(), s, log_, hooks());
    const RetentionPass pass = retention.run_once();
    EXPECT_EQ(pass.error, "");
    EXPECT_TRUE(pass.limit_unmet);
    EXPECT_TRUE(ids(store.database()).empty());
    EXPECT_NE(log_.all().find("still exceeded with nothing left to delete"), std::string::npos) << log_.all();
}

// --- shrinking, ids, transactions, the debug record --------------------------

TEST_F(RetentionTest, TheFileShrinksAfterDeletes) {
    SqliteStore store(options());
    EXPECT_EQ(query_int(store.database(), "PRAGMA auto_vacuum"), 2) << "a new file is INCREMENTAL";
    EXPECT_EQ(store.auto_vacuum_upgrade(), AutoVacuumUpgrade::NotNeeded);
    EXPECT_EQ(store.auto_vacuum_notice(), "");
    for (int b = 0; b < 20; ++b) insert(store, "dev-1", 1 + 1000 * static_cast<std::uint64_t>(b), 1000, 1'000 + b);
    store.database().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const std::uint64_t before = file_size(path());
    const std::int64_t pages_before = query_int(store.database(), "PRAGMA page_count");

    RetentionSettings s = settings();
    s.max_age_s = 1;
    s.delete_batch_rows = 2000;
    now_ = 1'000 + 17 + 1'000;  // cutoff 1'017: batches 0..16 (17'000 readings) are old
    Retention retention(path(), s, log_, hooks());
    const RetentionPass pass = retention.run_once();
    ASSERT_EQ(pass.error, "");
    EXPECT_EQ(pass.aged_rows, 17'000u);
    EXPECT_EQ(ids(store.database()), range(17'001, 20'000));

    const std::uint64_t after = file_size(path());
    EXPECT_LT(after, before / 3) << "before " << before << ", after " << after;
    EXPECT_EQ(file_size(path() + "-wal"), 0u) << "the WAL is truncated at the end of the pass";
    EXPECT_EQ(query_int(store.database(), "PRAGMA freelist_count"), 0);
    EXPECT_LT(query_int(store.database(), "PRAGMA page_count"), pages_before / 3);
    EXPECT_EQ(pass.bytes_returned, before - after);
    EXPECT_GT(pass.bytes_freed, 0u);
    sqlite::Statement integrity = store.database().prepare("PRAGMA integrity_check");
    ASSERT_TRUE(integrity.step());
    EXPECT_EQ(integrity.column_text(0), "ok");
}

TEST_F(RetentionTest, IdsAreNeverReusedAfterDeletes) {
    SqliteStore store(options());
    insert_batches(store, 3);  // ids 1..30
    RetentionSettings s = settings();
    s.max_age_s = 1;
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());
    EXPECT_EQ(retention.run_once().aged_rows, 30u);
    ASSERT_TRUE(ids(store.database()).empty());
    insert(store, "dev-1", 31, 2, 1);
    EXPECT_EQ(ids(store.database()), range(31, 32)) << "a forwarder cursor at 31 must not skip these";
}

TEST_F(RetentionTest, DeletesRunInTransactionsOfAtMostDeleteBatchRowsAndLogEveryKey) {
    SqliteStore store(options());
    insert(store, "dev-a", 1, 500, 1'000);
    insert(store, "dev-b", 1, 300, 1'000);
    insert(store, "dev-a", 501, 200, 1'000);
    RetentionSettings s = settings();
    s.max_age_s = 1;
    s.delete_batch_rows = 7;
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());
    const RetentionPass pass = retention.run_once();
    ASSERT_EQ(pass.error, "");
    EXPECT_EQ(pass.aged_rows, 1000u);
    EXPECT_EQ(pass.delete_transactions, (1000u + 6) / 7);

    // Debug lines: "deleted readings F..L (N, what): dev/incarnation seq a-b,c-d; ..."
    const std::regex line_re(R"(^retention: deleted readings (\d+)\.\.(\d+) \((\d+), [^)]*\):(.*)$)");
    const std::regex entry_re(R"(([A-Za-z0-9_-]+)/([0-9a-f]{16}) seq ([0-9,-]+))");
    std::multiset<std::pair<std::string, std::int64_t>> keys;
    std::uint64_t rows = 0;
    for (const std::string& line : log_.lines(RetentionLogLevel::Debug)) {
        std::smatch m;
        if (!std::regex_match(line, m, line_re)) continue;
        const std::uint64_t n = std::stoull(m[3]);
        EXPECT_LE(n, 7u) << line;
        rows += n;
        const std::string entries = m[4];
        for (auto it = std::sregex_iterator(entries.begin(), entries.end(), entry_re); it != std::sregex_iterator();
             ++it) {
            EXPECT_EQ((*it)[2].str(), "00000000000000a1");
            std::string runs = (*it)[3];
            std::size_t start = 0;
            while (start < runs.size()) {
                const std::size_t comma = runs.find(',', start);
                const std::string run =
                    runs.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                const std::size_t dash = run.find('-');
                for (std::int64_t seq = std::stoll(run.substr(0, dash)); seq <= std::stoll(run.substr(dash + 1));
                     ++seq) {
                    keys.insert({(*it)[1].str(), seq});
                }
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        }
    }
    EXPECT_EQ(rows, 1000u);
    std::multiset<std::pair<std::string, std::int64_t>> expected;
    for (std::int64_t seq = 1; seq <= 700; ++seq) expected.insert({"dev-a", seq});
    for (std::int64_t seq = 1; seq <= 300; ++seq) expected.insert({"dev-b", seq});
    EXPECT_EQ(keys, expected);
}

// --- schema and files ----------------------------------------------------------

TEST_F(RetentionTest, AVersion3FileIsMigratedAndConvertedToIncrementalVacuum) {
    {
        sqlite::Database db(path());
        db.exec("PRAGMA journal_mode = WAL");
        migrate(db, 3);
        db.exec(
            "INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms)"
            " SELECT 'dev-1', 161, n, 0, 0, n, NULL, n + 0.5, 1000 FROM"
            " (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 3000) SELECT n FROM s)");
        db.exec(
            "INSERT INTO forward_cursors (upstream, next_id, created_unix_ms, updated_unix_ms) VALUES ('central', "
            "2001, 1, 1)");
        EXPECT_EQ(query_int(db, "PRAGMA auto_vacuum"), 0);
    }
    SqliteStore store(options());
    EXPECT_EQ(schema_version(store.database()), kSchemaVersion);
    EXPECT_EQ(query_int(store.database(), "PRAGMA auto_vacuum"), 2);
    EXPECT_EQ(store.auto_vacuum_upgrade(), AutoVacuumUpgrade::Converted);
    EXPECT_NE(store.auto_vacuum_notice().find("converted to incremental auto_vacuum"), std::string::npos)
        << store.auto_vacuum_notice();
    EXPECT_EQ(ids(store.database()), range(1, 3000));
    EXPECT_EQ(query_int(store.database(), "SELECT count(*) FROM retention_drops"), 0);
    EXPECT_EQ(ForwardStore(path(), 5000).load_cursor("central").next_id, 2001);

    RetentionSettings s = settings();
    s.max_age_s = 1;
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());
    retention.set_upstreams({"central"});
    store.database().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const std::uint64_t before = file_size(path());
    EXPECT_EQ(retention.run_once().aged_rows, 2000u);
    EXPECT_EQ(ids(store.database()), range(2001, 3000));
    EXPECT_LT(file_size(path()), before);
}

TEST_F(RetentionTest, AnOldFileTooLargeToConvertIsKeptAndStillReusesPages) {
    {
        sqlite::Database db(path());
        db.exec("PRAGMA journal_mode = WAL");
        migrate(db, 3);
    }
    StoreOptions o = options();
    o.upgrade_vacuum_max_bytes = 1;
    SqliteStore store(o);
    EXPECT_EQ(query_int(store.database(), "PRAGMA auto_vacuum"), 0);
    EXPECT_EQ(store.auto_vacuum_upgrade(), AutoVacuumUpgrade::Skipped);
    EXPECT_NE(store.auto_vacuum_notice().find("not converted"), std::string::npos) << store.auto_vacuum_notice();
    insert_batches(store, 50);
    const std::int64_t pages = query_int(store.database(), "PRAGMA page_count");

    RetentionSettings s = settings();
    s.max_age_s = 1;
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());
    const RetentionPass pass = retention.run_once();
    EXPECT_EQ(pass.error, "");
    EXPECT_EQ(pass.aged_rows, 500u);
    EXPECT_EQ(query_int(store.database(), "PRAGMA page_count"), pages) << "no vacuum without auto_vacuum";
    EXPECT_GT(query_int(store.database(), "PRAGMA freelist_count"), 0);
    EXPECT_NE(log_.all().find("no incremental auto_vacuum"), std::string::npos) << log_.all();
    // The saver reuses the freed pages: the file does not grow for the next rows.
    insert_batches(store, 20);
    EXPECT_EQ(query_int(store.database(), "PRAGMA page_count"), pages);
}

TEST_F(RetentionTest, RefusesADatabaseThatIsMissingOrNotMigrated) {
    try {
        Retention retention(path(), settings(), log_);
        FAIL() << "opened a missing database";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("no database at"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(path())) << "retention must not create the file";
    {
        sqlite::Database db(path());
        migrate(db, 3);
    }
    try {
        Retention retention(path(), settings(), log_);
        FAIL() << "opened a v3 database";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("schema version 3"), std::string::npos) << e.what();
    }
}

TEST_F(RetentionTest, InvalidSettingsAreRefused) {
    SqliteStore store(options());
    RetentionSettings s = settings();
    s.delete_batch_rows = 0;
    EXPECT_THROW((Retention{path(), s, log_}), std::invalid_argument);
    s = settings();
    s.max_age_s = -1;
    EXPECT_THROW((Retention{path(), s, log_}), std::invalid_argument);
    s = settings();
    s.interval = std::chrono::milliseconds(0);
    EXPECT_THROW((Retention{path(), s, log_}), std::invalid_argument);
}

TEST_F(RetentionTest, TheReserveIsMadeWhenTheFloorAllowsItAndRemovedWithoutAFloor) {
    SqliteStore store(options());
    const std::string reserve = path() + "-reserve";
    RetentionSettings s = settings();
    s.min_free_disk_bytes = 1 << 20;
    s.reserve_bytes.reset();  // default: half the floor
    RetentionHooks h = hooks();
    std::atomic<std::uint64_t> free{(1u << 20) + (1u << 19) - 1};  // one byte short of floor + reserve
    h.free_disk_bytes = [&](const std::string&) { return free.load(); };
    {
        Retention retention(path(), s, log_, h);
        EXPECT_EQ(retention.run_once().error, "");
        EXPECT_FALSE(std::filesystem::exists(reserve)) << "no room for it above the floor";
        free = 1u << 30;
        EXPECT_EQ(retention.run_once().error, "");
        EXPECT_EQ(file_size(reserve), 1u << 19);
    }
    s.min_free_disk_bytes = 0;
    Retention retention(path(), s, log_, h);
    EXPECT_EQ(retention.run_once().error, "");
    EXPECT_FALSE(std::filesystem::exists(reserve)) << "a floor turned off gives its reserve back";
}

TEST_F(RetentionTest, AMissingReserveCountsAgainstTheFloor) {
    SqliteStore store(options());
    insert_batches(store, 200);
    RetentionSettings s = settings();
    s.min_free_disk_bytes = 1 << 20;
    s.reserve_bytes = 1 << 20;
    RetentionHooks h = hooks();
    // Above the floor, but short of floor + reserve: rows go until the reserve fits.
    const std::uint64_t short_by = 2 * 4096;
    h.free_disk_bytes = [&](const std::string&) -> std::uint64_t { return (2u << 20) - short_by; };
    Retention retention(path(), s, log_, h);
    const RetentionPass pass = retention.run_once();
    EXPECT_EQ(pass.error, "");
    EXPECT_GT(pass.forwarded_rows_for_space, 0u);
    EXPECT_LT(pass.forwarded_rows_for_space, 1000u) << "only what the reserve needs";
    EXPECT_FALSE(std::filesystem::exists(path() + "-reserve"));
}

// --- running beside the saver, and the thread ---------------------------------

TEST_F(RetentionTest, RunsWhileTheSaverWrites) {
    SqliteStore store(options());
    RetentionSettings s = settings();
    s.max_age_s = 1;
    s.delete_batch_rows = 20;
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());

    // The writer commits old batches, then young ones, through its own connection.
    std::atomic<bool> done{false};
    std::thread writer([&] {
        SqliteStore writer_store(options());
        for (int b = 0; b < 200; ++b) insert(writer_store, "dev-1", 1 + 10 * static_cast<std::uint64_t>(b), 10, 1);
        for (int b = 200; b < 300; ++b) insert(writer_store, "dev-1", 1 + 10 * static_cast<std::uint64_t>(b), 10, now_);
        done = true;
    });
    std::string first_error;
    while (!done) {
        const RetentionPass pass = retention.run_once();
        if (first_error.empty()) first_error = pass.error;
    }
    writer.join();
    EXPECT_EQ(first_error, "");
    EXPECT_EQ(retention.run_once().error, "");
    EXPECT_EQ(ids(store.database()), range(2001, 3000));
    EXPECT_EQ(retention.stats().deleted_forwarded_rows, 2000u);
}

TEST_F(RetentionTest, StartAndStopAreIdempotentAndTheThreadRunsPasses) {
    SqliteStore store(options());
    insert_batches(store, 2);
    RetentionSettings s = settings();
    s.max_age_s = 1;
    s.interval = std::chrono::milliseconds(5);
    now_ = 10'000'000;
    Retention retention(path(), s, log_, hooks());
    retention.start();
    retention.start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (retention.stats().passes < 3 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    retention.stop();
    retention.stop();
    const RetentionStats stats = retention.stats();
    EXPECT_GE(stats.passes, 3u);
    EXPECT_EQ(stats.deleted_forwarded_rows, 20u);
    EXPECT_EQ(stats.failed_passes, 0u);
    EXPECT_EQ(stats.last_error, "");
    EXPECT_GT(stats.db_used_bytes, 0u);
    retention.start();  // after stop: nothing
    retention.stop();
    EXPECT_EQ(retention.stats().passes, stats.passes);
    EXPECT_EQ(log_.lines(RetentionLogLevel::Info).front().rfind("retention: every 5 ms; max age 1 s", 0), 0u)
        << log_.all();
}

TEST_F(RetentionTest, WakeRunsAPassWithoutWaitingForTheInterval) {
    SqliteStore store(options());
    RetentionSettings s = settings();
    s.interval = std::chrono::hours(1);
    Retention retention(path(), s, log_, hooks());
    retention.start();
    auto wait_for_passes = [&](std::uint64_t n) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (retention.stats().passes < n && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return retention.stats().passes;
    };
    EXPECT_EQ(wait_for_passes(1), 1u) << "the first pass runs at start";
    retention.wake();
    EXPECT_EQ(wait_for_passes(2), 2u) << "an hour early";
    retention.stop();
}

}  // namespace
}  // namespace fieldlink::gateway
