// The PostgreSQL upstream without a server: settings validation, the binary
// COPY encoder byte for byte, and what send() does before connect().
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fieldlink/gateway/forward/postgres_copy.hpp"
#include "fieldlink/gateway/forward/postgres_upstream.hpp"

namespace fieldlink::gateway {
namespace {

PostgresUpstreamSettings good_settings() {
    PostgresUpstreamSettings settings;
    settings.name = "central";
    settings.conninfo = "host=127.0.0.1 port=5432 dbname=fieldlink user=fieldlink";
    settings.gateway_id = "gw-1";
    return settings;
}

std::string bytes(std::initializer_list<int> values) {
    std::string out;
    for (const int v : values) out.push_back(static_cast<char>(v));
    return out;
}

TEST(PostgresUpstreamSettingsTest, DefaultsAreDocumentedValues) {
    const PostgresUpstreamSettings settings;
    EXPECT_EQ(settings.table, "fieldlink_readings");
    EXPECT_EQ(settings.connect_timeout_s, 10);
    EXPECT_EQ(settings.statement_timeout_ms, 30000);
    EXPECT_EQ(settings.window, 8u);
    EXPECT_EQ(PostgresUpstream::validate(good_settings()), std::nullopt);
}

TEST(PostgresUpstreamSettingsTest, AcceptsPlainAndSchemaQualifiedTablesAndUris) {
    for (const char* table : {"readings", "_r2", "central.readings", "a.b", "fieldlink_readings"}) {
        auto settings = good_settings();
        settings.table = table;
        EXPECT_EQ(PostgresUpstream::validate(settings), std::nullopt) << table;
    }
    auto settings = good_settings();
    settings.conninfo = "postgresql://fieldlink@db.example:5433/fieldlink?sslmode=verify-full&connect_timeout=3";
    EXPECT_EQ(PostgresUpstream::validate(settings), std::nullopt);
    settings.conninfo = "service=central";
    EXPECT_EQ(PostgresUpstream::validate(settings), std::nullopt);
}

TEST(PostgresUpstreamSettingsTest, RejectsTablesThatAreNotPlainIdentifiers) {
    const std::string too_long(64, 'a');
    for (const std::string& table :
         std::vector<std::string>{"", "Readings", "1readings", "read-ings", "read ings", "\"readings\"",
                                  "readings;drop", "a.b.c", ".readings", "central.", "r\xc3\xa9", too_long,
                                  "fieldlink_schema", "central.fieldlink_schema", "pg_catalog.readings"}) {
        auto settings = good_settings();
        settings.table = table;
        const auto problem = PostgresUpstream::validate(settings);
        ASSERT_TRUE(problem.has_value()) << table;
        EXPECT_NE(problem->find("table"), std::string::npos) << *problem;
    }
}

TEST(PostgresUpstreamSettingsTest, ReportsLibpqsMessageForABadConninfo) {
    auto settings = good_settings();
    settings.conninfo = "host=127.0.0.1 bogus_keyword=1";
    auto problem = PostgresUpstream::validate(settings);
    ASSERT_TRUE(problem.has_value());
    EXPECT_NE(problem->find("conninfo: "), std::string::npos) << *problem;
    EXPECT_NE(problem->find("bogus_keyword"), std::string::npos) << *problem;

    settings.conninfo = "host='unterminated";
    problem = PostgresUpstream::validate(settings);
    ASSERT_TRUE(problem.has_value());
    EXPECT_NE(problem->find("conninfo: "), std::string::npos) << *problem;

    settings.conninfo = "";
    EXPECT_TRUE(PostgresUpstream::validate(settings).has_value());
}

TEST(PostgresUpstreamSettingsTest, RejectsOtherBadFields) {
    auto settings = good_settings();
    settings.name = "";
    EXPECT_TRUE(PostgresUpstream::validate(settings).has_value());
    settings = good_settings();
    for (const char* id : {"", "gw 1", "gw'1", "g\xc3\xa9"}) {
        settings.gateway_id = id;
        EXPECT_TRUE(PostgresUpstream::validate(settings).has_value()) << id;
    }
    settings = good_settings();
    settings.connect_timeout_s = 0;
    EXPECT_TRUE(PostgresUpstream::validate(settings).has_value());
    for (std::size_t window : {0, 17}) {
        settings = good_settings();
        settings.window = window;
        EXPECT_TRUE(PostgresUpstream::validate(settings).has_value()) << window;
    }
    settings = good_settings();
    settings.statement_timeout_ms = -1;
    EXPECT_TRUE(PostgresUpstream::validate(settings).has_value());
    settings.statement_timeout_ms = 0;
    EXPECT_EQ(PostgresUpstream::validate(settings), std::nullopt);
}

TEST(PostgresUpstreamSettingsTest, ConstructorThrowsValidatesText) {
    auto settings = good_settings();
    settings.table = "Bad";
    try {
        PostgresUpstream upstream(settings);
        FAIL() << "constructed with a bad table";
    } catch (const std::invalid_argument& error) {
        EXPECT_NE(std::string(error.what()).find("'central'"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("table 'Bad'"), std::string::npos) << error.what();
    }
}

TEST(PostgresUpstreamBeforeConnect, SendFailsOnceAndCloseIsIdempotent) {
    PostgresUpstream upstream(good_settings());
    EXPECT_EQ(upstream.name(), "central");
    EXPECT_EQ(upstream.window(), 8u);  // the default; not connected: done still runs inside send()
    EXPECT_FALSE(upstream.connected());
    int calls = 0;
    ChunkResult result;
    Chunk chunk;
    ForwardRow row;
    row.device = "d";
    row.incarnation = 1;
    row.seq = 1;
    chunk.rows.push_back(row);
    upstream.send(std::move(chunk), [&](ChunkResult r) {
        ++calls;
        result = std::move(r);
    });
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(result.confirmed);
    EXPECT_EQ(result.error, "not connected");
    upstream.close();
    upstream.close();
    EXPECT_FALSE(upstream.connected());
}

TEST(CopyBinaryWriterTest, HeaderTupleAndTrailerAreBigEndian) {
    CopyBinaryWriter writer;
    EXPECT_EQ(writer.size(), CopyBinaryWriter::kHeaderSize);
    writer.begin_row(5);
    writer.add_text("ab");
    writer.add_int16(-2);
    writer.add_int64(0x0102030405060708);
    writer.add_float8(-0.0);
    writer.add_null();
    EXPECT_EQ(writer.rows(), 1u);
    const std::string data = writer.finish();
    const std::string expected = std::string("PGCOPY\n\xff\r\n\0", 11) + std::string(8, '\0') +  // header
                                 bytes({0, 5}) +                                                 // 5 fields
                                 bytes({0, 0, 0, 2}) + "ab" +                                    // text
                                 bytes({0, 0, 0, 2, 0xff, 0xfe}) +                               // smallint -2
                                 bytes({0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}) +                   // bigint
                                 bytes({0, 0, 0, 8, 0x80, 0, 0, 0, 0, 0, 0, 0}) +                // -0.0
                                 bytes({0xff, 0xff, 0xff, 0xff}) +                               // NULL
                                 bytes({0xff, 0xff});                                            // trailer
    EXPECT_EQ(data, expected);
    // The writer starts over.
    EXPECT_EQ(writer.size(), CopyBinaryWriter::kHeaderSize);
    EXPECT_EQ(writer.rows(), 0u);
}

TEST(CopyBinaryWriterTest, DoublesTravelAsTheirBits) {
    CopyBinaryWriter writer;
    writer.begin_row(1);
    writer.add_float8(std::numeric_limits<double>::denorm_min());
    const std::string data = writer.finish();
    EXPECT_EQ(data.substr(CopyBinaryWriter::kHeaderSize + 2, 12), bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1}));
}

}  // namespace
}  // namespace fieldlink::gateway
