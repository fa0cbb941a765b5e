#include "fieldlink/gateway/store/sqlite_store.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <bit>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fieldlink::gateway {
namespace {

using test::BatchSpec;

ReadingBatch make_batch(const BatchSpec& spec, const std::string& device = "dev-1") {
    return ReadingBatch{device, BatchBody{test::header_for(spec), test::records_for(spec)}};
}

struct Row {
    std::int64_t seq;
    std::int64_t boot;
    std::int64_t channel;
    std::int64_t mono_ms;
    std::optional<std::int64_t> unix_ms;
    double value;
    std::int64_t received_unix_ms;
};

std::vector<Row> rows(sqlite::Database& db, const std::string& device) {
    sqlite::Statement select = db.prepare(
        "SELECT seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms FROM readings WHERE device = ?1 ORDER BY "
        "seq");
    select.bind_text(1, device);
    std::vector<Row> result;
    while (select.step()) {
        result.push_back({select.column_int64(0), select.column_int64(1), select.column_int64(2),
                          select.column_int64(3),
                          select.column_is_null(4) ? std::nullopt : std::optional(select.column_int64(4)),
                          select.column_double(5), select.column_int64(6)});
    }
    return result;
}

std::int64_t count(sqlite::Database& db, const std::string& sql) {
    sqlite::Statement select = db.prepare(sql);
    select.step();
    return select.column_int64(0);
}

class SqliteStoreTest : public ::testing::Test {
protected:
    StoreOptions options() const {
        StoreOptions o;
        o.path = dir_.file("fieldlink.db");
        return o;
    }

    // Every record of the batch, in one transaction; returns the rows inserted.
    std::uint64_t insert(SqliteStore& store, const ReadingBatch& batch, std::optional<std::int64_t> offset = {}) {
        auto transaction = store.begin();
        const SeqRange all = seqs_of(batch);
        const std::uint64_t inserted = transaction->insert_readings(batch, {&all, 1}, offset, 555);
        transaction->commit();
        return inserted;
    }

    test::TempDir dir_;
};

TEST_F(SqliteStoreTest, FreshDatabaseGetsTheCurrentSchemaInWalMode) {
    SqliteStore store(options());
    EXPECT_EQ(schema_version(store.database()), kSchemaVersion);
    EXPECT_EQ(store.journal_mode(), "wal");
    EXPECT_EQ(count(store.database(), "PRAGMA synchronous"), 2) << "FULL by default";
    for (const char* table : {"readings", "watermarks", "dead_letters", "devices", "device_health"}) {
        EXPECT_EQ(
            count(store.database(),
                  std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '") + table + "'"),
            1)
            << table;
    }
}

TEST_F(SqliteStoreTest, SynchronousNormalIsApplied) {
    StoreOptions o = options();
    o.synchronous = Synchronous::Normal;
    SqliteStore store(o);
    EXPECT_EQ(count(store.database(), "PRAGMA synchronous"), 1);
}

TEST_F(SqliteStoreTest, ReopeningKeepsDataAndVersion) {
    {
        SqliteStore store(options());
        insert(store, make_batch({}));
    }
    SqliteStore store(options());
    EXPECT_EQ(schema_version(store.database()), kSchemaVersion);
    EXPECT_EQ(rows(store.database(), "dev-1").size(), 2u);
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefusedWithAClearError) {
    {
        sqlite::Database db(options().path);
        db.exec("PRAGMA user_version = 99");
    }
    try {
        SqliteStore store(options());
        FAIL() << "a database from the future was opened";
    } catch (const SchemaTooNewError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("schema version 99"), std::string::npos) << message;
        EXPECT_NE(message.find(options().path), std::string::npos) << message;
        EXPECT_NE(message.find("newer gateway"), std::string::npos) << message;
    }
    // And it was left alone: still the version it had, not switched to WAL.
    sqlite::Database db(options().path);
    EXPECT_EQ(schema_version(db), 99);
    sqlite::Statement mode = db.prepare("PRAGMA journal_mode");
    mode.step();
    EXPECT_EQ(mode.column_text(0), "delete");
}

TEST_F(SqliteStoreTest, MigrateIsIdempotent) {
    sqlite::Database db(options().path);
    migrate(db);
    migrate(db);
    EXPECT_EQ(schema_version(db), kSchemaVersion);
}

TEST_F(SqliteStoreTest, VersionOneFileIsUpgradedAndKeepsItsData) {
    {
        // A file as the first released gateway left it: schema v1 with data.
        sqlite::Database db(options().path);
        migrate(db, 1);
        ASSERT_EQ(schema_version(db), 1);
        db.exec(
            "INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value,"
            " received_unix_ms) VALUES ('old-1', 161, 1, 0, 2, 1000, NULL, 21.5, 5)");
        db.exec("INSERT INTO watermarks (device, incarnation, watermark, updated_unix_ms) VALUES ('old-1', 161, 1, 5)");
        EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'device_health'"), 0);
    }
    SqliteStore store(options());
    EXPECT_EQ(schema_version(store.database()), kSchemaVersion) << "every step up to the current one";
    EXPECT_EQ(count(store.database(),
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
                    "'device_health'"),
              1);
    EXPECT_EQ(count(store.database(),
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
                    "'forward_cursors'"),
              1)
        << "v3";
    EXPECT_EQ(count(store.database(),
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = "
                    "'device_health_by_device'"),
              1);
    ASSERT_EQ(rows(store.database(), "old-1").size(), 1u);
    EXPECT_EQ(rows(store.database(), "old-1")[0].value, 21.5);
    EXPECT_EQ(store.load_watermark({"old-1", 161}).watermark, 1u);
    // The upgraded file takes telemetry like a new one.
    {
        auto transaction = store.begin();
        transaction->add_telemetry(DeviceTelemetry{"old-1", {}}, 7);
        transaction->commit();
    }
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM device_health"), 1);
}

TEST_F(SqliteStoreTest, MigrateStopsAtTheTargetAndNeverGoesBack) {
    sqlite::Database db(options().path);
    migrate(db, 1);
    EXPECT_EQ(schema_version(db), 1);
    migrate(db, 2);
    EXPECT_EQ(schema_version(db), 2);
    migrate(db, 1);
    EXPECT_EQ(schema_version(db), 2);
    EXPECT_THROW(migrate(db, kSchemaVersion + 1), std::invalid_argument);
}

TEST_F(SqliteStoreTest, NotADatabaseFileFailsWithTheSqliteCode) {
    {
        std::FILE* f = std::fopen(options().path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        const std::string junk(4096, 'x');
        std::fwrite(junk.data(), 1, junk.size(), f);
        std::fclose(f);
    }
    try {
        SqliteStore store(options());
        FAIL() << "opened a file that is not a database";
    } catch (const sqlite::Error& e) {
        EXPECT_EQ(e.code(), SQLITE_NOTADB);
        EXPECT_NE(std::string(e.what()).find(options().path), std::string::npos) << e.what();
    }
}

TEST_F(SqliteStoreTest, InsertsOnlyTheSeqsItIsGiven) {
    // The saver dedupes and passes the parts of a batch not stored yet.
    SqliteStore store(options());
    BatchSpec spec;
    spec.first_seq = 10;
    spec.count = 8;  // seqs 10..17
    const ReadingBatch batch = make_batch(spec);
    const std::vector<SeqRange> parts{{10, 11}, {14, 14}, {16, 30}, {40, 50}};
    auto transaction = store.begin();
    EXPECT_EQ(transaction->insert_readings(batch, parts, std::nullopt, 1), 5u) << "10, 11, 14, 16, 17";
    EXPECT_EQ(transaction->insert_readings(batch, std::vector<SeqRange>{{1, 9}}, std::nullopt, 1), 0u)
        << "below the batch: nothing of it";
    transaction->commit();
    std::vector<std::int64_t> seqs;
    for (const Row& row : rows(store.database(), "dev-1")) seqs.push_back(row.seq);
    EXPECT_EQ(seqs, (std::vector<std::int64_t>{10, 11, 14, 16, 17}));
}

TEST_F(SqliteStoreTest, ReadingsHaveNoIndexOnTheInsertPath) {
    // Appends at the end of the table, whatever the file's size (docs/benchmarks.md "Growth"):
    // the only index is the partial one of rows still without wall time.
    SqliteStore store(options());
    sqlite::Statement indexes =
        store.database().prepare("SELECT name, partial FROM pragma_index_list('readings') ORDER BY name");
    std::vector<std::pair<std::string, std::int64_t>> found;
    while (indexes.step()) found.emplace_back(indexes.column_text(0), indexes.column_int64(1));
    EXPECT_EQ(found, (std::vector<std::pair<std::string, std::int64_t>>{{"readings_without_unix_ms", 1}}));
}

TEST_F(SqliteStoreTest, StoresEveryField) {
    SqliteStore store(options());
    BatchSpec spec;
    spec.first_seq = 10;
    spec.boot = 3;
    spec.count = 2;
    spec.mono_start_ms = 7000;
    insert(store, make_batch(spec), 1'000'000);
    const auto stored = rows(store.database(), "dev-1");
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[1].seq, 11);
    EXPECT_EQ(stored[1].boot, 3);
    EXPECT_EQ(stored[1].channel, 1);
    EXPECT_EQ(stored[1].mono_ms, 7100);
    EXPECT_EQ(stored[1].unix_ms, 1'007'100);
    EXPECT_EQ(stored[1].value, 11.5);
    EXPECT_EQ(stored[1].received_unix_ms, 555);
}

TEST_F(SqliteStoreTest, IncarnationIsStoredBitCast) {
    SqliteStore store(options());
    BatchSpec spec;
    spec.incarnation = 0xFEDCBA9876543210ull;
    insert(store, make_batch(spec));
    EXPECT_EQ(count(store.database(), "SELECT incarnation FROM readings LIMIT 1"),
              std::bit_cast<std::int64_t>(spec.incarnation));
}

TEST_F(SqliteStoreTest, FillUnixTimeTouchesOnlyThatBootsNullRows) {
    SqliteStore store(options());
    BatchSpec boot1;
    boot1.boot = 1;
    boot1.count = 3;
    insert(store, make_batch(boot1));  // no offset: NULL
    BatchSpec boot2 = boot1;
    boot2.boot = 2;
    boot2.first_seq = 4;
    insert(store, make_batch(boot2));  // another boot, also NULL
    BatchSpec synced = boot1;
    synced.first_seq = 7;
    synced.count = 1;
    insert(store, make_batch(synced), 100);  // boot 1, already with time

    auto transaction = store.begin();
    EXPECT_EQ(transaction->fill_unix_time({"dev-1", 0xa1}, 1, 5000), 3u);
    transaction->commit();

    const auto stored = rows(store.database(), "dev-1");
    ASSERT_EQ(stored.size(), 7u);
    EXPECT_EQ(stored[0].unix_ms, 6000);
    EXPECT_EQ(stored[2].unix_ms, 6200);
    EXPECT_EQ(stored[3].unix_ms, std::nullopt) << "boot 2 is not touched";
    EXPECT_EQ(stored[6].unix_ms, 1100) << "a row with time keeps it";
}

TEST_F(SqliteStoreTest, DeadLettersAreWritten) {
    SqliteStore store(options());
    Rejected rejected{"fieldlink/v1/x/up", "bad_magic", "detail", {'a', 0, 'b'}};
    Rejected empty{"fieldlink/v1/x/up", "truncated", "", {}};
    {
        auto transaction = store.begin();
        transaction->add_dead_letter(rejected, 1234);
        transaction->add_dead_letter(empty, 1235);
        transaction->commit();
    }
    sqlite::Statement select = store.database().prepare(
        "SELECT received_unix_ms, topic, error, payload, typeof(payload) FROM dead_letters ORDER BY id");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_int64(0), 1234);
    EXPECT_EQ(select.column_text(1), "fieldlink/v1/x/up");
    EXPECT_EQ(select.column_text(2), "bad_magic");
    EXPECT_EQ(select.column_text(3), std::string("a\0b", 3));
    EXPECT_EQ(select.column_text(4), "blob");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_text(4), "blob") << "an empty payload is an empty blob, not NULL";
}

TEST_F(SqliteStoreTest, DeviceStatusIsUpserted) {
    SqliteStore store(options());
    DeviceStatus status{"dev-1", {}};
    status.status.state = protocol::DeviceState::Online;
    status.status.incarnation = 0xa1;
    status.status.boot = 4;
    std::strcpy(status.status.firmware_version, "1.0.0");
    {
        auto transaction = store.begin();
        transaction->upsert_device(status, 10);
        status.status.state = protocol::DeviceState::Offline;
        transaction->upsert_device(status, 20);
        transaction->commit();
    }
    sqlite::Statement select =
        store.database().prepare("SELECT online, incarnation, boot, firmware_version, updated_unix_ms FROM devices");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_int64(0), 0);
    EXPECT_EQ(select.column_int64(1), 0xa1);
    EXPECT_EQ(select.column_int64(2), 4);
    EXPECT_EQ(select.column_text(3), "1.0.0");
    EXPECT_EQ(select.column_int64(4), 20);
    EXPECT_FALSE(select.step());
}

TEST_F(SqliteStoreTest, TelemetryIsOneRowPerMessage) {
    SqliteStore store(options());
    DeviceTelemetry health{"dev-1", {}};
    protocol::Telemetry& t = health.telemetry;
    t.incarnation = 0xfedcba9876543210ull;  // above 2^63: stored bit-cast, like readings
    t.boot = 3;
    t.reconnects = 4;
    t.uptime_ms = 3'600'000;
    t.held = 1'500;
    t.oldest_unacked_age_ms = 30'000;
    t.dropped = 7;
    t.next_seq = 4'001;
    t.acked_through = 2'500;
    {
        auto transaction = store.begin();
        transaction->add_telemetry(health, 111);
        t.held = 10;
        transaction->add_telemetry(health, 222);
        transaction->commit();
    }
    sqlite::Statement select = store.database().prepare(
        "SELECT device, received_unix_ms, incarnation, boot, uptime_ms, held, oldest_unacked_age_ms, dropped,"
        " reconnects, next_seq, acked_through FROM device_health ORDER BY id");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_text(0), "dev-1");
    EXPECT_EQ(select.column_int64(1), 111);
    EXPECT_EQ(std::bit_cast<std::uint64_t>(select.column_int64(2)), 0xfedcba9876543210ull);
    EXPECT_EQ(select.column_int64(3), 3);
    EXPECT_EQ(select.column_int64(4), 3'600'000);
    EXPECT_EQ(select.column_int64(5), 1'500);
    EXPECT_EQ(select.column_int64(6), 30'000);
    EXPECT_EQ(select.column_int64(7), 7);
    EXPECT_EQ(select.column_int64(8), 4);
    EXPECT_EQ(select.column_int64(9), 4'001);
    EXPECT_EQ(select.column_int64(10), 2'500);
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_int64(1), 222);
    EXPECT_EQ(select.column_int64(5), 10);
    EXPECT_FALSE(select.step());
}

TEST_F(SqliteStoreTest, TransactionRollsBackUnlessCommitted) {
    SqliteStore store(options());
    {
        auto transaction = store.begin();
        const ReadingBatch batch = make_batch({});
        const SeqRange all = seqs_of(batch);
        transaction->insert_readings(batch, {&all, 1}, std::nullopt, 1);
        transaction->save_watermark({"dev-1", 0xa1}, 2, {}, 1);
        // No commit: the destructor rolls back.
    }
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM readings"), 0);
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM watermarks"), 0);
    EXPECT_FALSE(store.database().in_transaction());
}

TEST_F(SqliteStoreTest, DiskFullSurfacesTheSqliteCodeAndKeepsNothing) {
    SqliteStore store(options());
    // A page budget slightly above what the database has: the next big insert runs out of "disk".
    const std::int64_t pages = count(store.database(), "PRAGMA page_count");
    store.database().exec("PRAGMA max_page_count = " + std::to_string(pages + 2));
    BatchSpec spec;
    spec.count = 512;
    try {
        auto transaction = store.begin();
        for (int i = 0; i < 20; ++i) {
            spec.first_seq = 1 + static_cast<std::uint64_t>(i) * 512;
            const ReadingBatch batch = make_batch(spec);
            const SeqRange all = seqs_of(batch);
            transaction->insert_readings(batch, {&all, 1}, std::nullopt, 1);
        }
        transaction->commit();
        FAIL() << "expected SQLITE_FULL";
    } catch (const sqlite::Error& e) {
        EXPECT_EQ(e.code(), SQLITE_FULL) << e.what();
        EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(store.database().in_transaction());
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM readings"), 0);
    // After space is back, the same work succeeds.
    store.database().exec("PRAGMA max_page_count = 1073741823");
    spec.first_seq = 1;
    EXPECT_EQ(insert(store, make_batch(spec)), 512u);
}

TEST_F(SqliteStoreTest, SavedRangesComeBackWithTheWatermark) {
    SqliteStore store(options());
    const DeviceKey key{"dev-1", 0xa1};
    const std::vector<SeqRange> above{{4, 5}, {8, 9}, {12, 12}};
    {
        auto transaction = store.begin();
        transaction->save_watermark(key, 3, above, 1);
        transaction->commit();
    }
    const StoredWatermark stored = store.load_watermark(key);
    EXPECT_EQ(stored.watermark, 3u);
    EXPECT_EQ(stored.ranges_above, above);
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM watermarks WHERE ranges_above = '4-5,8-9,12-12'"), 1);

    {
        auto transaction = store.begin();
        transaction->save_watermark(key, 12, {}, 2);
        transaction->commit();
    }
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM watermarks WHERE ranges_above IS NULL"), 1)
        << "no ranges: NULL";
    EXPECT_TRUE(store.load_watermark(key).ranges_above.empty());

    const StoredWatermark none = store.load_watermark({"dev-1", 0xa2});
    EXPECT_EQ(none.watermark, 0u);
    EXPECT_TRUE(none.ranges_above.empty());
}

TEST_F(SqliteStoreTest, DamagedRangesAreAnErrorNamingTheDevice) {
    SqliteStore store(options());
    for (const char* text : {"4-", "5-4", "3-3", "4-5,5-6", "4-5,", "x", "4-5,2-3", "99999999999999999999-1"}) {
        store.database().exec(
            fmt::format("INSERT OR REPLACE INTO watermarks (device, incarnation, watermark, ranges_above, "
                        "updated_unix_ms) VALUES ('dev-7', 1, 3, '{}', 0)",
                        text));
        try {
            store.load_watermark({"dev-7", 1});
            ADD_FAILURE() << "accepted '" << text << "'";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("dev-7"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
        }
    }
}

TEST_F(SqliteStoreTest, VersionFourFileKeepsItsIdsAndGetsItsRangesSaved) {
    {
        // A v4 file as the gateway before v5 left it: dedupe by the unique index,
        // ranges above a watermark only in the readings themselves.
        sqlite::Database db(options().path);
        migrate(db, 4);
        const auto add = [&db](const char* device, std::int64_t incarnation, std::int64_t first, std::int64_t last) {
            for (std::int64_t seq = first; seq <= last; ++seq) {
                db.exec(
                    fmt::format("INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms,"
                                " value, received_unix_ms) VALUES ('{}', {}, {}, 1, 0, {}, NULL, {}.5, 9)",
                                device, incarnation, seq, seq * 10, seq));
            }
        };
        add("dev-1", 1, 1, 5);
        add("dev-1", 1, 8, 9);
        add("dev-1", 1, 12, 12);
        add("dev-1", -2, 1, 3);  // an incarnation above 2^63, bit-cast
        add("typed", 1, 4, 6);   // rows without a watermark row (put in by hand)
        add("gone", 1, 1, 2);
        db.exec("DELETE FROM readings WHERE device = 'gone'");  // the newest ids: AUTOINCREMENT must remember them
        db.exec(
            "INSERT INTO watermarks (device, incarnation, watermark, updated_unix_ms) VALUES ('dev-1', 1, 3, 5),"
            " ('dev-1', -2, 3, 6)");
    }
    SqliteStore store(options());
    EXPECT_EQ(schema_version(store.database()), kSchemaVersion);
    EXPECT_EQ(store.load_watermark({"dev-1", 1}).ranges_above, (std::vector<SeqRange>{{4, 5}, {8, 9}, {12, 12}}));
    EXPECT_EQ(store.load_watermark({"dev-1", 1}).watermark, 3u);
    EXPECT_EQ(store.load_watermark({"dev-1", 0xFFFFFFFFFFFFFFFEull}).watermark, 3u);
    EXPECT_TRUE(store.load_watermark({"dev-1", 0xFFFFFFFFFFFFFFFEull}).ranges_above.empty());
    EXPECT_EQ(store.load_watermark({"typed", 1}).watermark, 0u);
    EXPECT_EQ(store.load_watermark({"typed", 1}).ranges_above, (std::vector<SeqRange>{{4, 6}}));
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM readings"), 14);
    EXPECT_EQ(count(store.database(), "SELECT max(id) FROM readings"), 14) << "ids kept";
    EXPECT_EQ(count(store.database(),
                    "SELECT count(*) FROM readings WHERE id = seq * 1 AND device = 'dev-1' AND "
                    "incarnation = 1 AND seq <= 5"),
              5);
    EXPECT_EQ(count(store.database(), "SELECT seq FROM sqlite_sequence WHERE name = 'readings'"), 16)
        << "the high mark of the deleted rows";
    EXPECT_EQ(count(store.database(),
                    "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%v5%' OR name LIKE "
                    "'%high_mark%'"),
              0);
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM pragma_index_list('readings') WHERE \"unique\""), 0);
    {
        sqlite::Statement check = store.database().prepare("PRAGMA integrity_check");
        ASSERT_TRUE(check.step());
        EXPECT_EQ(check.column_text(0), "ok");
    }
    // New rows continue above every id ever used.
    BatchSpec spec;
    spec.first_seq = 100;
    insert(store, make_batch(spec, "new"));
    EXPECT_EQ(count(store.database(), "SELECT min(id) FROM readings WHERE device = 'new'"), 17);
}

TEST_F(SqliteStoreTest, SaveWatermarkUpserts) {
    SqliteStore store(options());
    const DeviceKey key{"dev-1", 0xFFFFFFFFFFFFFFFFull};
    for (std::uint64_t w : {5u, 9u}) {
        auto transaction = store.begin();
        transaction->save_watermark(key, w, {}, static_cast<std::int64_t>(w) * 10);
        transaction->commit();
    }
    EXPECT_EQ(count(store.database(), "SELECT count(*) FROM watermarks"), 1);
    EXPECT_EQ(store.load_watermark(key).watermark, 9u);
}

}  // namespace
}  // namespace fieldlink::gateway
