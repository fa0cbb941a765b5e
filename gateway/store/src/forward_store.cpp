#include "fieldlink/gateway/store/forward_store.hpp"

#include <fmt/format.h>

#include <bit>

namespace fieldlink::gateway {

ForwardStore::ForwardStore(const std::string& path, int busy_timeout_ms) : db_(path) {
    db_.exec(fmt::format("PRAGMA busy_timeout = {}", busy_timeout_ms));
    // A cursor save records what the upstream confirmed, after every chunk. In WAL mode NORMAL
    // does not fsync it: it survives a crash of the process (the page cache keeps it), but a
    // power loss may take the last saves back, and those chunks are then sent again (the
    // receiver drops them by key); nothing is lost. The readings' own commits stay as the
    // saver's connection sets them. FULL here held the forwarder to one chunk per fsync
    // (docs/benchmarks.md). Outside WAL, NORMAL could corrupt the file on power loss: kept FULL.
    {
        sqlite::Statement mode = db_.prepare("PRAGMA journal_mode");
        mode.step();
        if (mode.column_text(0) == "wal") db_.exec("PRAGMA synchronous = NORMAL");
    }
    load_cursor_ = db_.prepare(
        "SELECT next_id, live_from_id, live_next_id, forwarded_rows, forwarded_batches, bytes_sent"
        " FROM forward_cursors WHERE upstream = ?1");
    save_cursor_ = db_.prepare(
        "INSERT INTO forward_cursors (upstream, next_id, live_from_id, live_next_id, forwarded_rows,"
        " forwarded_batches, bytes_sent, created_unix_ms, updated_unix_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
        " ON CONFLICT (upstream) DO UPDATE SET next_id = excluded.next_id, live_from_id = excluded.live_from_id,"
        " live_next_id = excluded.live_next_id, forwarded_rows = excluded.forwarded_rows,"
        " forwarded_batches = excluded.forwarded_batches, bytes_sent = excluded.bytes_sent,"
        " updated_unix_ms = excluded.updated_unix_ms");
    read_rows_ = db_.prepare(
        "SELECT id, device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms"
        " FROM readings WHERE id >= ?1 AND (?2 = 0 OR id < ?2) ORDER BY id LIMIT ?3");
    last_row_id_ = db_.prepare("SELECT COALESCE(MAX(id), 0) FROM readings");
    count_rows_ = db_.prepare("SELECT COUNT(*) FROM readings WHERE id >= ?1 AND id < ?2");
}

ForwardCursor ForwardStore::load_cursor(const std::string& upstream) {
    ForwardCursor cursor;
    cursor.upstream = upstream;
    load_cursor_.reset();
    load_cursor_.bind_text(1, upstream);
    if (load_cursor_.step()) {
        cursor.next_id = load_cursor_.column_int64(0);
        if (!load_cursor_.column_is_null(1)) cursor.live_from_id = load_cursor_.column_int64(1);
        cursor.live_next_id = load_cursor_.column_int64(2);
        cursor.forwarded_rows = static_cast<std::uint64_t>(load_cursor_.column_int64(3));
        cursor.forwarded_batches = static_cast<std::uint64_t>(load_cursor_.column_int64(4));
        cursor.bytes_sent = static_cast<std::uint64_t>(load_cursor_.column_int64(5));
    }
    load_cursor_.reset();
    return cursor;
}

void ForwardStore::save_cursor(const ForwardCursor& cursor, std::int64_t now_unix_ms) {
    sqlite::Transaction transaction(db_);
    save_cursor_.reset();
    save_cursor_.bind_text(1, cursor.upstream)
        .bind_int64(2, cursor.next_id)
        .bind_int64(4, cursor.live_next_id)
        .bind_int64(5, static_cast<std::int64_t>(cursor.forwarded_rows))
        .bind_int64(6, static_cast<std::int64_t>(cursor.forwarded_batches))
        .bind_int64(7, static_cast<std::int64_t>(cursor.bytes_sent))
        .bind_int64(8, now_unix_ms);
    if (cursor.live_from_id) {
        save_cursor_.bind_int64(3, *cursor.live_from_id);
    } else {
        save_cursor_.bind_null(3);
    }
    save_cursor_.step();
    save_cursor_.reset();
    transaction.commit();
}

std::vector<ForwardRow> ForwardStore::read_rows(std::int64_t first_id, std::int64_t end_id, std::size_t limit) {
    std::vector<ForwardRow> rows;
    rows.reserve(limit);
    read_rows_.reset();
    read_rows_.bind_int64(1, first_id).bind_int64(2, end_id).bind_int64(3, static_cast<std::int64_t>(limit));
    while (read_rows_.step()) {
        ForwardRow row;
        row.id = read_rows_.column_int64(0);
        row.device = read_rows_.column_text(1);
        row.incarnation = std::bit_cast<std::uint64_t>(read_rows_.column_int64(2));
        row.seq = static_cast<std::uint64_t>(read_rows_.column_int64(3));
        row.boot = static_cast<std::uint32_t>(read_rows_.column_int64(4));
        row.channel = static_cast<std::uint8_t>(read_rows_.column_int64(5));
        row.mono_ms = static_cast<std::uint64_t>(read_rows_.column_int64(6));
        if (!read_rows_.column_is_null(7)) row.unix_ms = read_rows_.column_int64(7);
        row.value = read_rows_.column_double(8);
        row.received_unix_ms = read_rows_.column_int64(9);
        rows.push_back(std::move(row));
    }
    read_rows_.reset();
    return rows;
}

std::int64_t ForwardStore::last_row_id() {
    last_row_id_.reset();
    last_row_id_.step();
    const std::int64_t id = last_row_id_.column_int64(0);
    last_row_id_.reset();
    return id;
}

std::int64_t ForwardStore::count_rows(std::int64_t first_id, std::int64_t end_id) {
    if (end_id <= first_id) return 0;
    count_rows_.reset();
    count_rows_.bind_int64(1, first_id);
    count_rows_.bind_int64(2, end_id);
    count_rows_.step();
    const std::int64_t n = count_rows_.column_int64(0);
    count_rows_.reset();
    return n;
}

}  // namespace fieldlink::gateway
