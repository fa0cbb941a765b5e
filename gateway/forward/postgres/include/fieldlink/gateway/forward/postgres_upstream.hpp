// The PostgreSQL kind of upstream: the gateway's readings go into one table of
// a central PostgreSQL database (DESIGN §9: PostgreSQL, with replicas, Citus or
// TimescaleDB, as the one central database). Exactly once from the sensor to
// that table: every row carries the key (gateway, device, incarnation, seq),
// which is the table's primary key and globally unique; rows go in with a
// plain COPY that fails as a whole on a key already stored, and then with
// INSERT ... ON CONFLICT DO NOTHING, so a resent chunk changes nothing; and a
// chunk is confirmed (the forwarder's cursor advances) only after its COMMIT
// returned.
//
// A transaction carries one chunk (or the chunks queued together, see Threads below), in one
// round trip after the COPY starts. Normally the rows go straight into the table, sorted by
// key (the INSERT's lock order, below):
//
//   BEGIN ISOLATION LEVEL READ COMMITTED;
//   COPY <table> (gateway, device, ...) FROM STDIN (FORMAT binary);  -- the chunk's rows
//   COMMIT;
//
// A key that is already there (a resent chunk) fails that COPY with SQLSTATE 23505 and nothing
// of it stays; the chunk then goes again through the staging table, as does every chunk until
// one had no duplicate (and the first after connect(), which may resend one that committed
// unseen). A table that takes INSERT but refuses COPY (SQLSTATE class 0A, e.g. row-level
// security, or 42) gets every chunk of the connection this way:
//
//   BEGIN ISOLATION LEVEL READ COMMITTED;
//   COPY fieldlink_staging (...) FROM STDIN (FORMAT binary);     -- the chunk's rows
//   INSERT INTO <table> (gateway, ...) SELECT '<gateway_id>', ... FROM fieldlink_staging
//     ORDER BY device COLLATE "C", incarnation, seq ON CONFLICT (gateway, device, incarnation, seq) DO NOTHING;
//   COMMIT;
//
// fieldlink_staging is a temporary table (ON COMMIT DELETE ROWS) created once
// per connection. It has the columns the gateway sends, without `gateway`
// (one literal per chunk) and `stored_at` (the target table's default), so
// columns a DBA adds to the table (with defaults) do not disturb it. Either way
// the table ends up with each key once: the plain COPY inserts every row or none.
// Both paths take the keys in bytewise order (the client sorts the COPY, the
// INSERT sorts COLLATE "C"), so that two sessions inserting overlapping keys (two
// upstreams with one gateway id) wait for each other instead of deadlocking.
// READ COMMITTED is explicit: under REPEATABLE READ or SERIALIZABLE (if a DBA
// made one the default) ON CONFLICT against a concurrently committed key would
// fail with a serialization error instead of skipping it.
//
// If the connection drops after COMMIT was sent but before its reply arrived,
// the chunk is reported failed although it may be committed; the forwarder
// sends it again and ON CONFLICT skips every row: still exactly once. For the
// same reason an abandoned transaction (close() or a client-side timeout while
// a statement runs) may still commit on the server; that too is harmless.
//
// Durability: "COMMIT returned" means durable only if the session's
// synchronous_commit is not off; connect() sets it to `on` when the server or
// role default is `off` (and leaves any stronger setting alone).
//
// Schema (created on connect() when missing, in one transaction under the
// advisory lock pg_advisory_xact_lock(kSchemaLockKey), so that gateways
// connecting at once do not race; version 1):
//
//   CREATE TABLE IF NOT EXISTS fieldlink_schema (
//     component text PRIMARY KEY,          -- the table name as configured, e.g. 'fieldlink_readings'
//     version integer NOT NULL);
//   CREATE TABLE IF NOT EXISTS fieldlink_readings (
//     gateway text NOT NULL,               -- the gateway's id
//     device text NOT NULL,
//     incarnation bigint NOT NULL,         -- the u64 bit-cast to signed, as in the gateway's SQLite
//     seq bigint NOT NULL,                 -- u64 bit-cast (in practice < 2^63)
//     boot bigint NOT NULL,
//     channel smallint NOT NULL,           -- 0..255
//     mono_ms bigint NOT NULL,             -- u64 bit-cast
//     unix_ms bigint,                      -- NULL while unsynchronised
//     value double precision NOT NULL,     -- bit for bit (binary COPY); never NaN
//     received_unix_ms bigint NOT NULL,    -- when the gateway received the reading
//     stored_at timestamptz NOT NULL DEFAULT now(),  -- when the central database committed it
//     PRIMARY KEY (gateway, device, incarnation, seq));
//   INSERT INTO fieldlink_schema (component, version) VALUES ('fieldlink_readings', 1)
//     ON CONFLICT (component) DO UPDATE SET version = excluded.version;
//
// With a schema-qualified table ("central.readings") fieldlink_schema lives in
// that schema too; the schema itself must exist. Identifiers are quoted. When
// the version row already says 1 and the table exists, connect() runs no DDL,
// so a role with no more than
//   GRANT SELECT ON fieldlink_schema TO gw;
//   GRANT INSERT, SELECT (gateway, device, incarnation, seq) ON fieldlink_readings TO gw;
// (ON CONFLICT on the key reads the key's columns) plus CONNECT and TEMP on the
// database (PUBLIC has both by default) runs against a schema a DBA created. A newer version than
// this code knows makes connect() throw UpstreamError(retryable = false).
//
// Doubles: sent and stored bit for bit. PostgreSQL keeps -0.0 (its text output
// is "-0"), subnormals (e.g. 5e-324) and ±Infinity; fieldlink never sends NaN.
//
// Passwords: from `password=` in conninfo, the PGPASSWORD environment variable,
// or a password file (libpq's `passfile=` keyword, the PGPASSFILE environment
// variable, or ~/.pgpass of the user the gateway runs as; mode 0600, lines
// host:port:database:user:password). Prefer the file: the conninfo is part of
// the gateway's configuration. Error texts never contain the conninfo.
//
// Threads: connect(), send() and close() run on the forwarder's thread; close() may also be
// called from any other thread and ends a blocked connect() or chunk promptly (their waits
// poll an eventfd beside the socket). With window 1, send() runs the chunk and calls `done` on
// the calling thread after releasing its lock. With a larger window (the default, 8) send()
// queues the chunk and returns; the upstream's sender thread runs the queue on the one
// connection, one transaction at a time (so they commit in order), and calls the `done`s,
// while the forwarder reads the next chunks and saves its cursor. The chunks that queued up
// while a transaction ran go together in the next one (one COPY, one COMMIT; each chunk is
// confirmed after that COMMIT, or fails with it): under a backlog the transactions grow to
// about window - 1 chunks, and a COMMIT's fixed cost (its WAL flush, the round trips) is paid
// once for all of them. close() and connect() end queued chunks unconfirmed and return once
// every `done` has returned.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "fieldlink/gateway/forward/upstream.hpp"

namespace fieldlink::gateway {

struct PostgresUpstreamSettings {
    // The [[upstream]] name (logs, the forwarder's cursor). Required.
    std::string name;
    // libpq connection string or URI, e.g. "host=127.0.0.1 port=5432 dbname=fieldlink user=fieldlink"
    // or "postgresql://fieldlink@db.example/fieldlink?sslmode=verify-full"; "service=name" uses
    // pg_service.conf. Required. Any libpq keyword works; see the passwords note above.
    // connect() adds: connect_timeout (from connect_timeout_s, overriding the string's),
    // fallback_application_name=fieldlink-gateway (application_name in the string wins),
    // tcp_user_timeout = statement_timeout_ms + 5000 unless the string sets one.
    std::string conninfo;
    // This gateway's id, stored in every row (A-Z a-z 0-9 _ -, 1..64). Required.
    std::string gateway_id;
    // Target table: a lowercase plain identifier ([a-z_][a-z0-9_]*, at most 63), optionally
    // schema-qualified ("central.readings"). Not "fieldlink_schema"; no "pg_" schema.
    std::string table = "fieldlink_readings";
    // Bound on connect() as a whole (TCP, TLS, authentication, schema check), 1..3600. A host
    // name is resolved by libpq synchronously (getaddrinfo), outside this bound; hostaddr= avoids it.
    int connect_timeout_s = 10;
    // Server-side statement_timeout of the session, 0..86400000 (0: none). The client also
    // gives up on a chunk when the server sends nothing for statement_timeout_ms + 5000 ms
    // (0: waits as long as the connection lives).
    int statement_timeout_ms = 30000;
    // Chunks outstanding at once, 1..16. 1: send() is synchronous, one transaction per chunk.
    // 2 or more: queued for the sender thread, so that the forwarder's own work (reading the
    // next chunks, saving the cursor) overlaps the running transaction, and the chunks queued
    // meanwhile share the next transaction (see Threads above).
    std::size_t window = 8;
};

class PostgresUpstream final : public Upstream {
public:
    // The schema version this code creates and understands.
    static constexpr int kSchemaVersion = 1;
    // pg_advisory_xact_lock key held while the schema is checked or created ("flSCHEMA").
    static constexpr std::int64_t kSchemaLockKey = 0x666C534348454D41;

    // Checks settings for the config layer: nullopt when valid, otherwise what is wrong
    // (for a conninfo libpq cannot parse, libpq's own message).
    static std::optional<std::string> validate(const PostgresUpstreamSettings& settings);

    // Throws std::invalid_argument with validate()'s text. Does not connect.
    explicit PostgresUpstream(PostgresUpstreamSettings settings);
    ~PostgresUpstream() override;
    PostgresUpstream(const PostgresUpstream&) = delete;
    PostgresUpstream& operator=(const PostgresUpstream&) = delete;

    const std::string& name() const override { return settings_.name; }
    // Opens a fresh connection (dropping any old one), sets the session up, checks or
    // creates the schema and the staging table, all within connect_timeout_s. Throws
    // UpstreamError; retryable() is false for a refused login (SQLSTATE 28P01, 28000, or a
    // password the server wants and none was given), a missing database (3D000) or schema
    // (3F000), a missing permission (42501), and a schema version newer than kSchemaVersion.
    void connect() override;
    bool connected() const override { return connected_.load(); }
    // Sends the chunk as one transaction and calls done exactly once (window 1: before returning;
    // otherwise on the sender thread, or at once when not connected):
    // confirmed after COMMIT returned (bytes_sent = COPY data bytes, batches = transactions:
    // 1, or 2 when the direct COPY met a key already stored; chunks that shared a transaction
    // share the bytes by rows, and the first counts its transactions), otherwise
    // the SQLSTATE and message (or the connection's failure) in `error`, the transaction
    // rolled back when the connection still allows it, and connected() false until
    // connect() succeeds. An empty chunk is confirmed without a statement.
    void send(Chunk chunk, Done done) override;
    std::size_t window() const override { return settings_.window; }
    void close() noexcept override;

    // Rows of the last confirmed chunk that were already in the table (resent duplicates):
    // rows in the chunk minus rows the INSERT inserted. 0 after an empty chunk.
    std::uint64_t last_duplicates() const noexcept { return last_duplicates_.load(); }
    // The sum of last_duplicates() over every confirmed chunk of this object.
    std::uint64_t total_duplicates() const noexcept { return total_duplicates_.load(); }

    const PostgresUpstreamSettings& settings() const noexcept { return settings_; }

private:
    class Session;

    struct Queued {
        Chunk chunk;
        Done done;
    };

    ChunkResult send_locked(const Chunk& chunk);
    void run_sender();
    // Ends every queued chunk unconfirmed with `why`, then waits for the sender thread's
    // current `done` to return (unless called on that thread).
    void drop_queued(const std::string& why) noexcept;
    void set_up(Session& session);
    void migrate(Session& session);

    const PostgresUpstreamSettings settings_;
    std::string table_sql_;   // quoted, e.g. "central"."readings"
    std::string schema_sql_;  // quoted fieldlink_schema in the same schema
    std::string direct_sql_;  // a chunk's fast path: BEGIN; COPY into the table; COMMIT
    std::string chunk_sql_;   // the four statements of a chunk through the staging table
    int wake_fd_ = -1;        // eventfd: close() interrupts a wait
    std::mutex mutex_;        // guards session_ (held through connect() and send())
    std::unique_ptr<Session> session_;
    bool careful_ = true;          // under mutex_: the next chunk goes through the staging table
    bool direct_refused_ = false;  // under mutex_: the table refused COPY on this connection
    std::atomic<bool> connected_{false};
    std::atomic<std::uint64_t> last_duplicates_{0};
    std::atomic<std::uint64_t> total_duplicates_{0};

    // The sender thread (window > 1).
    std::mutex queue_mutex_;  // guards queue_, sending_, stopping_; never held while calling libpq or `done`
    std::condition_variable queue_cv_;
    std::deque<Queued> queue_;
    bool sending_ = false;  // the sender thread is running a chunk or its `done`
    bool stopping_ = false;
    std::thread sender_;
};

}  // namespace fieldlink::gateway
