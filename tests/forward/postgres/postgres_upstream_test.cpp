// PostgresUpstream against a real PostgreSQL 15 that the tests start themselves
// (pg_server.hpp): schema creation and versions, bit-exact rows and duplicate
// skipping, the server killed between and during chunks, refused logins and
// timeouts, concurrent gateways; and a throughput measurement for the benchmark
// (printed, not asserted). Skipped when the server binaries are not installed.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "fieldlink/gateway/forward/postgres_copy.hpp"
#include "fieldlink/gateway/forward/postgres_upstream.hpp"
#include "pg_server.hpp"

namespace fieldlink::gateway {
namespace {

using namespace std::chrono_literals;
using test::PgClient;
using test::PgServer;

// Only bounds a failing test; never asserted as a speed.
constexpr auto kWaitLimit = 30s;

template <typename Condition>
bool eventually(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

#define FIELDLINK_SKIP_WITHOUT_POSTGRES()                                                         \
    do {                                                                                          \
        if (const std::string missing = test::pg_missing_binary(); !missing.empty()) {            \
            GTEST_SKIP() << missing                                                               \
                         << " is not installed (Debian package postgresql-15); PostgreSQL tests " \
                            "skipped";                                                            \
        }                                                                                         \
    } while (false)

// A row whose fields all depend on its key, so that every column is checked.
ForwardRow make_row(const std::string& device, std::uint64_t incarnation, std::uint64_t seq) {
    ForwardRow row;
    row.id = static_cast<std::int64_t>(seq);
    row.device = device;
    row.incarnation = incarnation;
    row.seq = seq;
    row.boot = static_cast<std::uint32_t>(1 + seq / 100);
    row.channel = static_cast<std::uint8_t>(seq % 4);
    row.mono_ms = 1000 * seq;
    if (seq % 3 != 0) row.unix_ms = 1'760'000'000'000 + static_cast<std::int64_t>(seq);
    row.value = static_cast<double>(seq) / 7.0 - 3.25;
    row.received_unix_ms = 1'760'000'100'000 + static_cast<std::int64_t>(seq);
    return row;
}

std::vector<ForwardRow> make_rows(const std::string& device, std::uint64_t incarnation, std::uint64_t first_seq,
                                  std::size_t count) {
    std::vector<ForwardRow> rows;
    for (std::size_t i = 0; i < count; ++i) rows.push_back(make_row(device, incarnation, first_seq + i));
    return rows;
}

// Sends and returns the result once done ran (inside send() with window 1, on the sender
// thread otherwise), checking that it ran exactly once.
ChunkResult send_one(Upstream& upstream, std::vector<ForwardRow> rows, std::uint64_t sequence = 1) {
    struct Shared {
        std::mutex mutex;
        std::condition_variable cv;
        int calls = 0;
        ChunkResult result;
    };
    const auto shared = std::make_shared<Shared>();
    upstream.send(Chunk{sequence, std::move(rows)}, [shared](ChunkResult r) {
        std::lock_guard lock(shared->mutex);
        ++shared->calls;
        shared->result = std::move(r);
        shared->cv.notify_all();
    });
    std::unique_lock lock(shared->mutex);
    EXPECT_TRUE(shared->cv.wait_for(lock, kWaitLimit, [&] { return shared->calls > 0; })) << "done never ran";
    EXPECT_EQ(shared->calls, 1) << "done must run exactly once";
    return shared->result;
}

using Key = std::tuple<std::string, std::string, std::uint64_t, std::uint64_t>;  // gateway, device, inc, seq

// Everything in `table`, by key; the value is rebuilt from its stored bits (float8send).
std::map<Key, ForwardRow> read_table(PgClient& client, const std::string& table) {
    std::map<Key, ForwardRow> rows;
    const auto result = client.query(
        "SELECT gateway, device, incarnation, seq, boot, channel, mono_ms, unix_ms,"
        " encode(float8send(value), 'hex'), received_unix_ms FROM " +
        table);
    for (const auto& r : result) {
        ForwardRow row;
        row.device = *r[1];
        row.incarnation = std::bit_cast<std::uint64_t>(std::stoll(*r[2]));
        row.seq = std::bit_cast<std::uint64_t>(std::stoll(*r[3]));
        row.boot = static_cast<std::uint32_t>(std::stoll(*r[4]));
        row.channel = static_cast<std::uint8_t>(std::stoi(*r[5]));
        row.mono_ms = std::bit_cast<std::uint64_t>(std::stoll(*r[6]));
        if (r[7]) row.unix_ms = std::stoll(*r[7]);
        row.value = std::bit_cast<double>(static_cast<std::uint64_t>(std::stoull(*r[8], nullptr, 16)));
        row.received_unix_ms = std::stoll(*r[9]);
        const Key key{*r[0], row.device, row.incarnation, row.seq};
        EXPECT_EQ(rows.count(key), 0u) << "key stored twice";
        rows[key] = row;
    }
    return rows;
}

std::uint64_t bits(double value) { return std::bit_cast<std::uint64_t>(value); }

// What the table must hold for `rows` sent by `gateway` (ids are not stored upstream).
void expect_stored(const std::map<Key, ForwardRow>& stored, const std::string& gateway,
                   const std::vector<ForwardRow>& rows) {
    for (ForwardRow expected : rows) {
        const auto it = stored.find(Key{gateway, expected.device, expected.incarnation, expected.seq});
        ASSERT_NE(it, stored.end()) << expected.device << " seq " << expected.seq << " missing";
        ForwardRow got = it->second;
        EXPECT_EQ(bits(got.value), bits(expected.value)) << expected.device << " seq " << expected.seq;
        got.id = expected.id = 0;
        got.value = expected.value = 0;
        EXPECT_EQ(got, expected) << expected.device << " seq " << expected.seq;
    }
}

// One server for every test of a suite; each test has its own table.
class PostgresUpstreamTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!test::pg_missing_binary().empty()) return;
        try {
            server_ = new PgServer();
        } catch (const std::exception& error) {
            start_error_ = error.what();
        }
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        FIELDLINK_SKIP_WITHOUT_POSTGRES();
        ASSERT_NE(server_, nullptr) << "PostgreSQL did not start: " << start_error_;
        admin_ = std::make_unique<PgClient>(server_->conninfo());
    }

    static PostgresUpstreamSettings settings(const std::string& table, const std::string& gateway = "gw-1") {
        PostgresUpstreamSettings s;
        s.name = "central";
        s.conninfo = server_->conninfo();
        s.gateway_id = gateway;
        s.table = table;
        return s;
    }

    static PgServer* server_;
    static std::string start_error_;
    std::unique_ptr<PgClient> admin_;
};

PgServer* PostgresUpstreamTest::server_ = nullptr;
std::string PostgresUpstreamTest::start_error_;

// --- 1. Schema ---------------------------------------------------------------------------------

TEST_F(PostgresUpstreamTest, SchemaCreatedOnFirstConnectAndIdempotentOnTheSecond) {
    PostgresUpstream upstream(settings("schema_first"));
    EXPECT_FALSE(upstream.connected());
    upstream.connect();
    EXPECT_TRUE(upstream.connected());
    EXPECT_EQ(admin_->value("SELECT version FROM fieldlink_schema WHERE component = 'schema_first'"), "1");

    const auto columns = admin_->query(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_name = 'schema_first' ORDER BY ordinal_position");
    const std::vector<std::vector<std::string>> expected = {{"gateway", "text", "NO"},
                                                            {"device", "text", "NO"},
                                                            {"incarnation", "bigint", "NO"},
                                                            {"seq", "bigint", "NO"},
                                                            {"boot", "bigint", "NO"},
                                                            {"channel", "smallint", "NO"},
                                                            {"mono_ms", "bigint", "NO"},
                                                            {"unix_ms", "bigint", "YES"},
                                                            {"value", "double precision", "NO"},
                                                            {"received_unix_ms", "bigint", "NO"},
                                                            {"stored_at", "timestamp with time zone", "NO"}};
    ASSERT_EQ(columns.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(*columns[i][0], expected[i][0]);
        EXPECT_EQ(*columns[i][1], expected[i][1]) << expected[i][0];
        EXPECT_EQ(*columns[i][2], expected[i][2]) << expected[i][0];
    }
    EXPECT_EQ(admin_->value("SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i"
                            " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true"
                            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                            " WHERE i.indrelid = 'schema_first'::regclass AND i.indisprimary"),
              "gateway,device,incarnation,seq");

    ASSERT_TRUE(send_one(upstream, make_rows("dev-a", 1, 1, 5)).confirmed);

    // Again on the same object and from a second one: nothing recreated, one version row.
    upstream.connect();
    PostgresUpstream second(settings("schema_first", "gw-2"));
    second.connect();
    EXPECT_EQ(admin_->value("SELECT count(*) FROM fieldlink_schema WHERE component = 'schema_first'"), "1");
    EXPECT_EQ(admin_->value("SELECT count(*) FROM schema_first"), "5");
}

TEST_F(PostgresUpstreamTest, NewerSchemaVersionIsRefusedNotRetryable) {
    PostgresUpstream(settings("schema_newer")).connect();
    admin_->query("UPDATE fieldlink_schema SET version = 2 WHERE component = 'schema_newer'");
    PostgresUpstream upstream(settings("schema_newer"));
    try {
        upstream.connect();
        FAIL() << "connected to a newer schema";
    } catch (const UpstreamError& error) {
        EXPECT_FALSE(error.retryable());
        EXPECT_NE(std::string(error.what()).find("schema version 2"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("upgrade the gateway"), std::string::npos) << error.what();
        std::printf("newer schema: %s\n", error.what());
    }
    EXPECT_FALSE(upstream.connected());
    // Other tables' components are unaffected.
    PostgresUpstream other(settings("schema_other"));
    EXPECT_NO_THROW(other.connect());
}

TEST_F(PostgresUpstreamTest, SchemaQualifiedTableKeepsItsVersionTableInThatSchema) {
    admin_->query("CREATE SCHEMA central");
    PostgresUpstream upstream(settings("central.readings"));
    upstream.connect();
    EXPECT_EQ(admin_->value("SELECT version FROM central.fieldlink_schema WHERE component = 'central.readings'"), "1");
    ASSERT_TRUE(send_one(upstream, make_rows("dev-a", 7, 1, 3)).confirmed);
    EXPECT_EQ(admin_->value("SELECT count(*) FROM central.readings"), "3");
}

TEST_F(PostgresUpstreamTest, MissingSchemaOrMisshapenTableIsNotRetryable) {
    for (const char* table : {"nosuch.readings", "misshapen"}) {
        if (std::string(table) == "misshapen") {
            admin_->query("CREATE TABLE misshapen (gateway text, device text)");
        }
        PostgresUpstream upstream(settings(table));
        try {
            upstream.connect();
            FAIL() << "connected with table " << table;
        } catch (const UpstreamError& error) {
            EXPECT_FALSE(error.retryable()) << error.what();
            EXPECT_NE(std::string(error.what()).find("SQLSTATE"), std::string::npos) << error.what();
        }
        EXPECT_FALSE(upstream.connected());
    }
}

TEST_F(PostgresUpstreamTest, GatewaysConnectingAtOnceCreateTheSchemaOnce) {
    constexpr int kGateways = 6;
    std::atomic<bool> go{false};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    std::vector<std::string> errors(kGateways);
    for (int i = 0; i < kGateways; ++i) {
        threads.emplace_back([&, i] {
            PostgresUpstream upstream(settings("schema_race", "gw-" + std::to_string(i)));
            while (!go) std::this_thread::yield();
            try {
                upstream.connect();
                if (!send_one(upstream, make_rows("dev", 1, 1, 10)).confirmed) ++failures;
            } catch (const UpstreamError& error) {
                errors[static_cast<std::size_t>(i)] = error.what();
                ++failures;
            }
        });
    }
    go = true;
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(failures, 0);
    for (const auto& error : errors) EXPECT_EQ(error, "");
    EXPECT_EQ(admin_->value("SELECT count(*) FROM schema_race"), std::to_string(kGateways * 10));
    EXPECT_EQ(admin_->value("SELECT version FROM fieldlink_schema WHERE component = 'schema_race'"), "1");
}

// --- 2. Rows: exact round trip and duplicates -----------------------------------------------------

TEST_F(PostgresUpstreamTest, RowsComeBackBitExact) {
    const std::vector<double> values = {0.0,
                                        -0.0,
                                        1e308,
                                        -1e308,
                                        std::numeric_limits<double>::max(),
                                        std::numeric_limits<double>::lowest(),
                                        std::numeric_limits<double>::min(),
                                        std::numeric_limits<double>::denorm_min(),
                                        -std::numeric_limits<double>::denorm_min(),
                                        2.2250738585072009e-308 /* largest subnormal */,
                                        std::numeric_limits<double>::infinity(),
                                        -std::numeric_limits<double>::infinity(),
                                        0.1,
                                        1.0 / 3.0,
                                        3.141592653589793,
                                        -2.718281828459045e-200,
                                        123456789.125};
    std::vector<ForwardRow> rows;
    std::uint64_t seq = 1;
    for (const char* device : {"dev-a", "dev-b", "DEV_c-3"}) {
        for (const double value : values) {
            ForwardRow row = make_row(device, 0xFEDCBA9876543210ull /* high bit set */, seq++);
            row.value = value;
            rows.push_back(row);
        }
    }
    // Extremes of every integer field.
    ForwardRow extreme = make_row("dev-x", std::numeric_limits<std::uint64_t>::max(), 1);
    extreme.seq = (1ull << 63) + 5;
    extreme.boot = std::numeric_limits<std::uint32_t>::max();
    extreme.channel = 255;
    extreme.mono_ms = std::numeric_limits<std::uint64_t>::max();
    extreme.unix_ms = std::numeric_limits<std::int64_t>::min();
    extreme.received_unix_ms = std::numeric_limits<std::int64_t>::max();
    rows.push_back(extreme);
    ForwardRow zero = make_row("dev-x", 0, 0);
    zero.unix_ms.reset();
    rows.push_back(zero);

    PostgresUpstream upstream(settings("rows_exact"));
    upstream.connect();
    const ChunkResult result = send_one(upstream, rows);
    ASSERT_TRUE(result.confirmed) << result.error;
    EXPECT_EQ(result.error, "");
    EXPECT_EQ(result.batches, 1u);
    EXPECT_GT(result.bytes_sent, CopyBinaryWriter::kHeaderSize + 2 + rows.size() * 2);
    EXPECT_EQ(upstream.last_duplicates(), 0u);
    EXPECT_TRUE(upstream.connected());

    const auto stored = read_table(*admin_, "rows_exact");
    EXPECT_EQ(stored.size(), rows.size());
    expect_stored(stored, "gw-1", rows);

    // PostgreSQL keeps the sign of zero; its text form is "-0". Infinity is "Infinity".
    EXPECT_EQ(admin_->value("SELECT value::text FROM rows_exact WHERE device = 'dev-a' AND seq = 2"), "-0");
    EXPECT_EQ(admin_->value("SELECT value::text FROM rows_exact WHERE device = 'dev-a' AND seq = 8"), "5e-324");
    EXPECT_EQ(admin_->value("SELECT value::text FROM rows_exact WHERE device = 'dev-a' AND seq = 11"), "Infinity");
    EXPECT_EQ(admin_->value("SELECT count(*) FROM rows_exact WHERE unix_ms IS NULL"),
              std::to_string(std::count_if(rows.begin(), rows.end(), [](const ForwardRow& r) { return !r.unix_ms; })));
    EXPECT_EQ(admin_->value("SELECT count(*) FROM rows_exact WHERE stored_at > now() - interval '1 hour'"),
              std::to_string(rows.size()));
}

TEST_F(PostgresUpstreamTest, ResentRowsAreSkippedAndCounted) {
    PostgresUpstream upstream(settings("rows_dup"));
    upstream.connect();
    std::vector<ForwardRow> chunk = make_rows("dev-a", 1, 1, 40);
    const auto more = make_rows("dev-b", 2, 1, 60);
    chunk.insert(chunk.end(), more.begin(), more.end());

    ASSERT_TRUE(send_one(upstream, chunk).confirmed);
    EXPECT_EQ(upstream.last_duplicates(), 0u);
    const ChunkResult again = send_one(upstream, chunk);
    ASSERT_TRUE(again.confirmed) << again.error;
    EXPECT_EQ(upstream.last_duplicates(), chunk.size());
    EXPECT_EQ(admin_->value("SELECT count(*) FROM rows_dup"), std::to_string(chunk.size()));

    // Half old, half new.
    std::vector<ForwardRow> overlap = make_rows("dev-a", 1, 21, 40);
    ASSERT_TRUE(send_one(upstream, overlap).confirmed);
    EXPECT_EQ(upstream.last_duplicates(), 20u);
    EXPECT_EQ(upstream.total_duplicates(), chunk.size() + 20);
    EXPECT_EQ(admin_->value("SELECT count(*) FROM rows_dup"), std::to_string(chunk.size() + 20));

    // The same key twice within one chunk.
    std::vector<ForwardRow> twice = make_rows("dev-c", 3, 1, 2);
    twice.push_back(twice[0]);
    ASSERT_TRUE(send_one(upstream, twice).confirmed);
    EXPECT_EQ(upstream.last_duplicates(), 1u);

    // An empty chunk is confirmed without a statement.
    const ChunkResult empty = send_one(upstream, {});
    EXPECT_TRUE(empty.confirmed);
    EXPECT_EQ(empty.bytes_sent, 0u);
    EXPECT_EQ(upstream.last_duplicates(), 0u);

    expect_stored(read_table(*admin_, "rows_dup"), "gw-1", chunk);
}

TEST_F(PostgresUpstreamTest, CloseIsIdempotentAndConnectReopens) {
    PostgresUpstream upstream(settings("rows_close"));
    upstream.connect();
    upstream.close();
    EXPECT_FALSE(upstream.connected());
    upstream.close();
    EXPECT_FALSE(send_one(upstream, make_rows("d", 1, 1, 1)).confirmed);
    upstream.connect();
    EXPECT_TRUE(send_one(upstream, make_rows("d", 1, 1, 1)).confirmed);
}

// --- 3. Failures mid-chunk: a lock holds the INSERT; statement timeout; close() --------------------

// Holds a lock on `table` that makes the next chunk's INSERT wait, until release().
class TableLock {
public:
    TableLock(const std::string& conninfo, const std::string& table) : client_(conninfo) {
        client_.query("BEGIN");
        client_.query("LOCK TABLE " + table + " IN SHARE ROW EXCLUSIVE MODE");
    }
    void release() { client_.query("COMMIT"); }

private:
    PgClient client_;
};

// True once a session with `application_name` waits for a lock.
bool waiting_for_lock(PgClient& admin, const std::string& application_name) {
    return admin.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + application_name +
                       "' AND wait_event_type = 'Lock'") == "1";
}

// Window 8 (the default): send() queues and returns; the sender thread runs the chunks in
// order on the one connection (chunks queued together may share a transaction). close() ends the running chunk and the queued one, and returns
// only after both `done`s did.
TEST_F(PostgresUpstreamTest, WindowRunsInOrderAndCloseEndsQueuedChunks) {
    auto s = settings("window_queue");
    s.conninfo += " application_name=window_queue";
    PostgresUpstream upstream(s);
    EXPECT_EQ(upstream.window(), 8u);
    upstream.connect();
    std::mutex mutex;
    std::vector<std::pair<std::uint64_t, ChunkResult>> done;
    const auto record = [&](std::uint64_t sequence) {
        return [&mutex, &done, sequence](ChunkResult r) {
            std::lock_guard lock(mutex);
            done.emplace_back(sequence, std::move(r));
        };
    };
    const auto finished = [&] {
        std::lock_guard lock(mutex);
        return done.size();
    };
    const auto a = make_rows("dev-a", 1, 1, 300);
    const auto b = make_rows("dev-b", 1, 1, 300);
    upstream.send(Chunk{1, a}, record(1));
    upstream.send(Chunk{2, b}, record(2));
    ASSERT_TRUE(eventually([&] { return finished() == 2; }));
    EXPECT_EQ(done[0].first, 1u);
    EXPECT_TRUE(done[0].second.confirmed) << done[0].second.error;
    EXPECT_EQ(done[1].first, 2u);
    EXPECT_TRUE(done[1].second.confirmed) << done[1].second.error;
    done.clear();

    // A resent chunk queued with a fresh one: alone or sharing a transaction, each key once.
    const auto e = make_rows("dev-e", 1, 1, 300);
    upstream.send(Chunk{3, a}, record(3));
    upstream.send(Chunk{4, e}, record(4));
    ASSERT_TRUE(eventually([&] { return finished() == 2; }));
    EXPECT_TRUE(done[0].second.confirmed) << done[0].second.error;
    EXPECT_TRUE(done[1].second.confirmed) << done[1].second.error;
    EXPECT_EQ(upstream.total_duplicates(), a.size());
    done.clear();

    const auto c = make_rows("dev-c", 1, 1, 300);
    const auto d = make_rows("dev-d", 1, 1, 300);
    {
        TableLock lock(server_->conninfo(), "window_queue");
        upstream.send(Chunk{5, c}, record(5));
        upstream.send(Chunk{6, d}, record(6));
        ASSERT_TRUE(eventually([&] { return waiting_for_lock(*admin_, "window_queue"); }));
        upstream.close();
        EXPECT_EQ(finished(), 2u);  // both ended before close() returned
        for (const auto& [sequence, result] : done) EXPECT_FALSE(result.confirmed) << "chunk " << sequence;
        EXPECT_FALSE(upstream.connected());
        lock.release();
    }
    // Resent after connect(): every key once, whatever the abandoned transaction did.
    upstream.connect();
    ASSERT_TRUE(send_one(upstream, c).confirmed);
    ASSERT_TRUE(send_one(upstream, d).confirmed);
    const auto stored = read_table(*admin_, "window_queue");
    EXPECT_EQ(stored.size(), a.size() + b.size() + c.size() + d.size() + e.size());
    for (const auto* rows : {&a, &b, &c, &d, &e}) expect_stored(stored, "gw-1", *rows);
}

TEST_F(PostgresUpstreamTest, StatementTimeoutFailsTheChunkThenResendWorks) {
    auto s = settings("fault_timeout");
    s.statement_timeout_ms = 300;
    PostgresUpstream upstream(s);
    upstream.connect();
    const auto rows = make_rows("dev-a", 1, 1, 50);
    {
        TableLock lock(server_->conninfo(), "fault_timeout");
        const ChunkResult result = send_one(upstream, rows);
        EXPECT_FALSE(result.confirmed);
        EXPECT_NE(result.error.find("57014"), std::string::npos) << result.error;  // query_canceled
        std::printf("statement timeout: %s\n", result.error.c_str());
        EXPECT_FALSE(upstream.connected());
        lock.release();
    }
    EXPECT_EQ(admin_->value("SELECT count(*) FROM fault_timeout"), "0");
    upstream.connect();
    const ChunkResult resent = send_one(upstream, rows);
    ASSERT_TRUE(resent.confirmed) << resent.error;
    EXPECT_EQ(upstream.last_duplicates(), 0u);
    expect_stored(read_table(*admin_, "fault_timeout"), "gw-1", rows);
}

TEST_F(PostgresUpstreamTest, CloseFromAnotherThreadEndsABlockedSend) {
    auto s = settings("fault_close");
    s.conninfo += " application_name=fault_close";
    PostgresUpstream upstream(s);
    upstream.connect();
    const auto rows = make_rows("dev-a", 1, 1, 50);
    TableLock lock(server_->conninfo(), "fault_close");
    std::atomic<int> calls{0};
    ChunkResult result;
    std::thread sender([&] {
        upstream.send(Chunk{1, rows}, [&](ChunkResult r) {
            result = std::move(r);
            ++calls;
        });
    });
    ASSERT_TRUE(eventually([&] { return waiting_for_lock(*admin_, "fault_close"); }));
    upstream.close();
    sender.join();
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(result.confirmed);
    EXPECT_NE(result.error, "");
    std::printf("closed mid-chunk: %s\n", result.error.c_str());
    EXPECT_FALSE(upstream.connected());
    lock.release();
    // The abandoned transaction may or may not commit on the server; resending is exact either way.
    upstream.connect();
    ASSERT_TRUE(send_one(upstream, rows).confirmed);
    const auto stored = read_table(*admin_, "fault_close");
    EXPECT_EQ(stored.size(), rows.size());
    expect_stored(stored, "gw-1", rows);
}

// --- 3. The server killed (SIGKILL of the postmaster) -------------------------------------------

class PostgresUpstreamKillTest : public ::testing::Test {
protected:
    void SetUp() override {
        FIELDLINK_SKIP_WITHOUT_POSTGRES();
        server_ = std::make_unique<PgServer>();
    }
    PostgresUpstreamSettings settings() const {
        PostgresUpstreamSettings s;
        s.name = "central";
        s.conninfo = server_->conninfo() + " application_name=kill_test";
        s.gateway_id = "gw-1";
        s.table = "readings";
        s.connect_timeout_s = 5;
        return s;
    }
    std::unique_ptr<PgServer> server_;
};

TEST_F(PostgresUpstreamKillTest, BetweenChunksFailsOnceThenReconnectAndResend) {
    PostgresUpstream upstream(settings());
    upstream.connect();
    const auto first = make_rows("dev-a", 1, 1, 100);
    const auto second = make_rows("dev-a", 1, 101, 100);
    ASSERT_TRUE(send_one(upstream, first).confirmed);

    server_->kill();
    const ChunkResult failed = send_one(upstream, second);
    EXPECT_FALSE(failed.confirmed);
    EXPECT_NE(failed.error, "");
    std::printf("killed between chunks: %s\n", failed.error.c_str());
    EXPECT_FALSE(upstream.connected());
    try {
        upstream.connect();
        FAIL() << "connected to a dead server";
    } catch (const UpstreamError& error) {
        EXPECT_TRUE(error.retryable()) << error.what();
    }

    server_->start();
    upstream.connect();
    const ChunkResult resent = send_one(upstream, second);
    ASSERT_TRUE(resent.confirmed) << resent.error;
    EXPECT_EQ(upstream.last_duplicates(), 0u);
    // The forwarder may also resend the first chunk (its cursor save raced the crash): skipped.
    ASSERT_TRUE(send_one(upstream, first).confirmed);
    EXPECT_EQ(upstream.last_duplicates(), first.size());

    PgClient admin(server_->conninfo());
    const auto stored = read_table(admin, "readings");
    EXPECT_EQ(stored.size(), first.size() + second.size());
    expect_stored(stored, "gw-1", first);
    expect_stored(stored, "gw-1", second);
}

TEST_F(PostgresUpstreamKillTest, MidChunkFailsOnceThenReconnectAndResend) {
    PostgresUpstream upstream(settings());
    upstream.connect();
    const auto first = make_rows("dev-a", 1, 1, 100);
    auto second = make_rows("dev-b", 9, 1, 500);
    ASSERT_TRUE(send_one(upstream, first).confirmed);

    // The chunk's transaction has COPYed its rows and waits in the INSERT when the server dies.
    auto lock = std::make_unique<TableLock>(server_->conninfo(), "readings");
    std::atomic<int> calls{0};
    ChunkResult failed;
    std::thread sender([&] {
        upstream.send(Chunk{2, second}, [&](ChunkResult r) {
            failed = std::move(r);
            ++calls;
        });
    });
    {
        PgClient admin(server_->conninfo());
        ASSERT_TRUE(eventually([&] { return waiting_for_lock(admin, "kill_test"); }));
    }
    server_->kill();
    sender.join();
    lock.reset();
    EXPECT_TRUE(eventually([&] { return calls > 0; }));  // on the sender thread (window > 1)
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(failed.confirmed);
    EXPECT_NE(failed.error, "");
    std::printf("killed mid-chunk: %s\n", failed.error.c_str());
    EXPECT_FALSE(upstream.connected());

    server_->start();
    upstream.connect();
    const ChunkResult resent = send_one(upstream, second);
    ASSERT_TRUE(resent.confirmed) << resent.error;
    EXPECT_EQ(upstream.last_duplicates(), 0u);  // nothing of the killed transaction survived

    PgClient admin(server_->conninfo());
    const auto stored = read_table(admin, "readings");
    EXPECT_EQ(stored.size(), first.size() + second.size());
    expect_stored(stored, "gw-1", first);
    expect_stored(stored, "gw-1", second);
}

// --- 4. Refused logins and unreachable servers ----------------------------------------------------

TEST_F(PostgresUpstreamTest, WrongPasswordIsNotRetryable) {
    auto s = settings("auth_rows");
    s.conninfo = server_->conninfo(test::kPgDatabase, test::kPasswordUser, "wrong-password");
    PostgresUpstream upstream(s);
    try {
        upstream.connect();
        FAIL() << "connected with a wrong password";
    } catch (const UpstreamError& error) {
        EXPECT_FALSE(error.retryable()) << error.what();
        EXPECT_NE(std::string(error.what()).find("28P01"), std::string::npos) << error.what();
        std::printf("wrong password: %s\n", error.what());
        EXPECT_EQ(std::string(error.what()).find("wrong-password"), std::string::npos) << "password leaked";
    }
    EXPECT_FALSE(upstream.connected());
}

TEST_F(PostgresUpstreamTest, MissingPasswordIsNotRetryable) {
    auto s = settings("auth_rows");
    s.conninfo = server_->conninfo(test::kPgDatabase, test::kPasswordUser) + " passfile=" + server_->dir() + "/none";
    PostgresUpstream upstream(s);
    try {
        upstream.connect();
        FAIL() << "connected without a password";
    } catch (const UpstreamError& error) {
        EXPECT_FALSE(error.retryable()) << error.what();
        EXPECT_NE(std::string(error.what()).find("password"), std::string::npos) << error.what();
    }
}

TEST_F(PostgresUpstreamTest, PasswordFileAndLeastPrivilegeRoleWork) {
    // A DBA made the schema; the gateway's role may only read the version and insert rows
    // (ON CONFLICT with a key needs SELECT on the key's columns).
    PostgresUpstream(settings("auth_rows")).connect();
    admin_->query(std::string("GRANT SELECT ON fieldlink_schema TO ") + test::kPasswordUser);
    admin_->query(std::string("GRANT INSERT, SELECT (gateway, device, incarnation, seq) ON auth_rows TO ") +
                  test::kPasswordUser);
    const std::string passfile = server_->dir() + "/pgpass";
    std::ofstream(passfile) << "127.0.0.1:" << server_->port() << ":" << test::kPgDatabase << ":" << test::kPasswordUser
                            << ":" << test::kPassword << "\n";
    ::chmod(passfile.c_str(), 0600);

    auto s = settings("auth_rows");
    s.conninfo = server_->conninfo(test::kPgDatabase, test::kPasswordUser) + " passfile=" + passfile;
    PostgresUpstream upstream(s);
    upstream.connect();
    const auto rows = make_rows("dev-a", 1, 1, 10);
    ASSERT_TRUE(send_one(upstream, rows).confirmed);
    ASSERT_TRUE(send_one(upstream, rows).confirmed);
    EXPECT_EQ(upstream.last_duplicates(), rows.size());
    EXPECT_EQ(admin_->value("SELECT count(*) FROM auth_rows"), "10");

    // Without the INSERT permission the check at connect() refuses, not retryable.
    admin_->query(std::string("REVOKE INSERT ON auth_rows FROM ") + test::kPasswordUser);
    PostgresUpstream refused(s);
    try {
        refused.connect();
        FAIL() << "connected without INSERT permission";
    } catch (const UpstreamError& error) {
        EXPECT_FALSE(error.retryable()) << error.what();
        EXPECT_NE(std::string(error.what()).find("42501"), std::string::npos) << error.what();
    }
}

// Row-level security: PostgreSQL refuses COPY FROM into the table (SQLSTATE 0A000) but not
// INSERT. The chunk that meets it and every later one go through the staging table; none fails.
TEST_F(PostgresUpstreamTest, TableWithRowLevelSecurityTakesEveryChunk) {
    PostgresUpstream(settings("rls_rows")).connect();
    admin_->query("ALTER TABLE rls_rows ENABLE ROW LEVEL SECURITY");
    admin_->query("CREATE POLICY everything ON rls_rows USING (true) WITH CHECK (true)");
    admin_->query(std::string("GRANT SELECT ON fieldlink_schema TO ") + test::kPasswordUser);
    admin_->query(std::string("GRANT INSERT, SELECT ON rls_rows TO ") + test::kPasswordUser);
    const std::string passfile = server_->dir() + "/pgpass-rls";
    std::ofstream(passfile) << "127.0.0.1:" << server_->port() << ":" << test::kPgDatabase << ":" << test::kPasswordUser
                            << ":" << test::kPassword << "\n";
    ::chmod(passfile.c_str(), 0600);

    auto s = settings("rls_rows");
    s.conninfo = server_->conninfo(test::kPgDatabase, test::kPasswordUser) + " passfile=" + passfile;
    PostgresUpstream upstream(s);
    upstream.connect();
    for (std::uint64_t c = 0; c < 3; ++c) {
        const ChunkResult result = send_one(upstream, make_rows("dev-a", 1, c * 100 + 1, 100));
        ASSERT_TRUE(result.confirmed) << "chunk " << c << ": " << result.error;
        // The first after connect() goes through the staging table anyway; the second tries
        // COPY, is refused and goes again; the third goes through the staging table at once.
        EXPECT_EQ(result.batches, c == 1 ? 2u : 1u) << "chunk " << c;
    }
    EXPECT_EQ(upstream.total_duplicates(), 0u);
    EXPECT_EQ(admin_->value("SELECT count(*) FROM rls_rows"), "300");
}

TEST_F(PostgresUpstreamTest, MissingDatabaseIsNotRetryable) {
    auto s = settings("auth_rows");
    s.conninfo = server_->conninfo("no_such_database");
    PostgresUpstream upstream(s);
    try {
        upstream.connect();
        FAIL() << "connected to a missing database";
    } catch (const UpstreamError& error) {
        EXPECT_FALSE(error.retryable()) << error.what();
        EXPECT_NE(std::string(error.what()).find("3D000"), std::string::npos) << error.what();
        std::printf("missing database: %s\n", error.what());
    }
}

TEST(PostgresUpstreamUnreachable, NothingListeningThrowsRetryable) {
    PostgresUpstreamSettings s;
    s.name = "central";
    s.gateway_id = "gw-1";
    s.connect_timeout_s = 2;
    s.conninfo = "host=127.0.0.1 port=" + std::to_string(test::pg_free_loopback_port()) + " dbname=x user=x";
    PostgresUpstream upstream(s);
    try {
        upstream.connect();
        FAIL() << "connected to nothing";
    } catch (const UpstreamError& error) {
        EXPECT_TRUE(error.retryable()) << error.what();
        EXPECT_NE(std::string(error.what()).find("connect failed"), std::string::npos) << error.what();
        std::printf("nothing listening: %s\n", error.what());
    }
    EXPECT_FALSE(upstream.connected());
}

// A listener that completes TCP handshakes (the kernel does) and never answers.
TEST(PostgresUpstreamUnreachable, SilentServerTimesOutWithinTheConnectTimeout) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(::listen(fd, 8), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);

    PostgresUpstreamSettings s;
    s.name = "central";
    s.gateway_id = "gw-1";
    s.connect_timeout_s = 1;
    s.conninfo = "host=127.0.0.1 port=" + std::to_string(ntohs(address.sin_port)) + " dbname=x user=x";
    PostgresUpstream upstream(s);
    const auto start = std::chrono::steady_clock::now();
    try {
        upstream.connect();
        FAIL() << "connected to a silent listener";
    } catch (const UpstreamError& error) {
        EXPECT_TRUE(error.retryable()) << error.what();
        EXPECT_NE(std::string(error.what()).find("timed out after 1 s"), std::string::npos) << error.what();
    }
    std::printf("silent server: connect gave up after %.2f s (connect_timeout_s = 1)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    ::close(fd);
}

// --- 5. Concurrent gateways ------------------------------------------------------------------------

TEST_F(PostgresUpstreamTest, TwoGatewaysWriteTheSameTableConcurrently) {
    constexpr int kChunks = 20;
    constexpr std::size_t kRows = 500;
    PostgresUpstream a(settings("two_gateways", "gw-a"));
    PostgresUpstream b(settings("two_gateways", "gw-b"));
    a.connect();
    b.connect();
    // Both gateways have devices of the same names and seqs: keys differ only in the gateway.
    std::vector<std::vector<ForwardRow>> chunks;
    for (int c = 0; c < kChunks; ++c) {
        std::vector<ForwardRow> rows;
        for (const char* device : {"dev-1", "dev-2"}) {
            const auto part = make_rows(device, 42, static_cast<std::uint64_t>(c) * kRows / 2 + 1, kRows / 2);
            rows.insert(rows.end(), part.begin(), part.end());
        }
        chunks.push_back(rows);
    }
    std::atomic<int> failures{0};
    std::string first_error;
    const auto run = [&](PostgresUpstream& upstream) {
        for (int c = 0; c < kChunks; ++c) {
            const ChunkResult result =
                send_one(upstream, chunks[static_cast<std::size_t>(c)], static_cast<std::uint64_t>(c));
            if (!result.confirmed && failures++ == 0) first_error = result.error;
        }
    };
    std::thread ta(run, std::ref(a));
    std::thread tb(run, std::ref(b));
    ta.join();
    tb.join();
    EXPECT_EQ(failures, 0) << first_error;
    EXPECT_EQ(a.total_duplicates() + b.total_duplicates(), 0u);
    const auto stored = read_table(*admin_, "two_gateways");
    EXPECT_EQ(stored.size(), 2 * kChunks * kRows);
    for (const auto& rows : chunks) {
        expect_stored(stored, "gw-a", rows);
        expect_stored(stored, "gw-b", rows);
    }
}

// Two upstreams with one gateway id (a misconfiguration, or a migration) sending the same
// chunks in opposite orders: they wait for each other on shared keys, never deadlock.
TEST_F(PostgresUpstreamTest, OverlappingWritersOfOneGatewayNeitherFailNorDouble) {
    constexpr int kChunks = 16;
    PostgresUpstream a(settings("one_gateway_twice", "gw-same"));
    PostgresUpstream b(settings("one_gateway_twice", "gw-same"));
    a.connect();
    b.connect();
    std::vector<std::vector<ForwardRow>> chunks;
    for (int c = 0; c < kChunks; ++c) {
        // Devices in opposite orders within a chunk, so only the INSERT's ORDER BY keeps lock order.
        auto rows = make_rows("dev-z", 5, static_cast<std::uint64_t>(c) * 200 + 1, 200);
        const auto more = make_rows("dev-a", 5, static_cast<std::uint64_t>(c) * 200 + 1, 200);
        rows.insert(rows.end(), more.begin(), more.end());
        chunks.push_back(rows);
    }
    std::atomic<int> failures{0};
    std::string first_error;
    std::thread ta([&] {
        for (int c = 0; c < kChunks; ++c) {
            const ChunkResult r = send_one(a, chunks[static_cast<std::size_t>(c)]);
            if (!r.confirmed && failures++ == 0) first_error = r.error;
        }
    });
    std::thread tb([&] {
        for (int c = kChunks - 1; c >= 0; --c) {
            auto reversed = chunks[static_cast<std::size_t>(c)];
            std::reverse(reversed.begin(), reversed.end());
            const ChunkResult r = send_one(b, reversed);
            if (!r.confirmed && failures++ == 0) first_error = r.error;
        }
    });
    ta.join();
    tb.join();
    EXPECT_EQ(failures, 0) << first_error;
    EXPECT_EQ(a.total_duplicates() + b.total_duplicates(), kChunks * 400u);
    EXPECT_EQ(read_table(*admin_, "one_gateway_twice").size(), kChunks * 400u);
}

// --- Throughput for the benchmark (printed, not asserted) -----------------------------------------

// 100,000 rows of 10 devices, in the order the gateway stores them (devices interleaved).
std::vector<ForwardRow> bench_rows() {
    std::vector<ForwardRow> rows;
    rows.reserve(100'000);
    for (std::uint64_t seq = 1; seq <= 10'000; ++seq) {
        for (int device = 0; device < 10; ++device) {
            ForwardRow row = make_row("device-" + std::to_string(device), 0x1234567890ABCDEFull + device, seq);
            row.id = static_cast<std::int64_t>(rows.size() + 1);
            rows.push_back(row);
        }
    }
    return rows;
}

// The rows as a plain binary COPY into the table itself (with the gateway column).
std::string ceiling_copy(const std::vector<ForwardRow>& rows, std::size_t first, std::size_t count) {
    CopyBinaryWriter copy;
    for (std::size_t i = first; i < first + count; ++i) {
        const ForwardRow& row = rows[i];
        copy.begin_row(10);
        copy.add_text("gw-bench");
        copy.add_text(row.device);
        copy.add_int64(std::bit_cast<std::int64_t>(row.incarnation));
        copy.add_int64(std::bit_cast<std::int64_t>(row.seq));
        copy.add_int64(row.boot);
        copy.add_int16(row.channel);
        copy.add_int64(std::bit_cast<std::int64_t>(row.mono_ms));
        if (row.unix_ms) {
            copy.add_int64(*row.unix_ms);
        } else {
            copy.add_null();
        }
        copy.add_float8(row.value);
        copy.add_int64(row.received_unix_ms);
    }
    return copy.finish();
}

void plain_copy(PgClient& client, const std::string& table, const std::string& data) {
    std::unique_ptr<PGresult, decltype(&PQclear)> start(
        PQexec(client.raw(), ("COPY " + table +
                              " (gateway, device, incarnation, seq, boot, channel, mono_ms, unix_ms, value,"
                              " received_unix_ms) FROM STDIN (FORMAT binary)")
                                 .c_str()),
        &PQclear);
    ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQresultErrorMessage(start.get());
    ASSERT_EQ(PQputCopyData(client.raw(), data.data(), static_cast<int>(data.size())), 1);
    ASSERT_EQ(PQputCopyEnd(client.raw(), nullptr), 1);
    std::unique_ptr<PGresult, decltype(&PQclear)> end(PQgetResult(client.raw()), &PQclear);
    ASSERT_EQ(PQresultStatus(end.get()), PGRES_COMMAND_OK) << PQresultErrorMessage(end.get());
    while (PGresult* more = PQgetResult(client.raw())) PQclear(more);
}

TEST_F(PostgresUpstreamTest, BenchRowsPerSecond) {
    constexpr std::size_t kChunkRows = 1000;
    const auto rows = bench_rows();
    using Seconds = std::chrono::duration<double>;

    PostgresUpstream upstream(settings("bench_upstream", "gw-bench"));
    upstream.connect();
    std::uint64_t bytes = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t first = 0; first < rows.size(); first += kChunkRows) {
        std::vector<ForwardRow> chunk(rows.begin() + static_cast<std::ptrdiff_t>(first),
                                      rows.begin() + static_cast<std::ptrdiff_t>(first + kChunkRows));
        const ChunkResult result = send_one(upstream, std::move(chunk));
        ASSERT_TRUE(result.confirmed) << result.error;
        bytes += result.bytes_sent;
    }
    const double upstream_s = Seconds(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(admin_->value("SELECT count(*) FROM bench_upstream"), std::to_string(rows.size()));

    // Ceilings into an identical empty table: one COPY of everything in one transaction, and
    // one COPY + commit per 1000 rows (what remains is the upstream's staging and INSERT).
    PostgresUpstream(settings("bench_ceiling", "gw-bench")).connect();
    PostgresUpstream(settings("bench_ceiling_chunked", "gw-bench")).connect();
    PgClient client(server_->conninfo());
    const std::string all = ceiling_copy(rows, 0, rows.size());
    const auto copy_start = std::chrono::steady_clock::now();
    plain_copy(client, "bench_ceiling", all);
    const double copy_s = Seconds(std::chrono::steady_clock::now() - copy_start).count();
    std::vector<std::string> pieces;
    for (std::size_t first = 0; first < rows.size(); first += kChunkRows) {
        pieces.push_back(ceiling_copy(rows, first, kChunkRows));
    }
    const auto chunked_start = std::chrono::steady_clock::now();
    for (const std::string& piece : pieces) plain_copy(client, "bench_ceiling_chunked", piece);
    const double chunked_s = Seconds(std::chrono::steady_clock::now() - chunked_start).count();
    EXPECT_EQ(admin_->value("SELECT count(*) FROM bench_ceiling"), std::to_string(rows.size()));
    EXPECT_EQ(admin_->value("SELECT count(*) FROM bench_ceiling_chunked"), std::to_string(rows.size()));

    const double n = static_cast<double>(rows.size());
    std::printf("bench: postgres upstream, %zu rows in chunks of %zu: %.0f rows/s (%.3f s, %.1f COPY bytes/row)\n",
                rows.size(), kChunkRows, n / upstream_s, upstream_s, static_cast<double>(bytes) / n);
    std::printf("bench: ceiling, one plain COPY of %zu rows into the table, one transaction: %.0f rows/s (%.3f s)\n",
                rows.size(), n / copy_s, copy_s);
    std::printf("bench: ceiling, plain COPY per %zu rows, one transaction each: %.0f rows/s (%.3f s)\n", kChunkRows,
                n / chunked_s, chunked_s);
    std::printf("bench: upstream / one-COPY ceiling = %.2f\n", copy_s / upstream_s);
}

}  // namespace
}  // namespace fieldlink::gateway
