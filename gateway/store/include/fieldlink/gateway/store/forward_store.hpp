// What the forwarder reads and writes in the gateway's database, on a
// connection of its own (WAL: it reads while the saver writes): stored
// readings in insertion order, and one durable cursor per upstream.
// Owned by one forwarder thread. Every call may throw sqlite::Error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fieldlink/gateway/store/sqlite.hpp"

namespace fieldlink::gateway {

// One stored reading as it is forwarded: its key, what the device sent, and
// what the gateway added.
struct ForwardRow {
    std::int64_t id = 0;  // readings.id: insertion order, never reused
    std::string device;
    std::uint64_t incarnation = 0;
    std::uint64_t seq = 0;
    std::uint32_t boot = 0;
    std::uint8_t channel = 0;
    std::uint64_t mono_ms = 0;
    std::optional<std::int64_t> unix_ms;  // empty while unsynchronised
    double value = 0.0;
    std::int64_t received_unix_ms = 0;

    bool operator==(const ForwardRow&) const = default;
};

// Where an upstream stands. Confirmed: every reading with id < next_id, and,
// while the backlog is split from live data (fresh data first), every reading
// with live_from_id <= id < live_next_id. The backlog is [next_id, live_from_id).
struct ForwardCursor {
    std::string upstream;
    std::int64_t next_id = 1;
    std::optional<std::int64_t> live_from_id;
    std::int64_t live_next_id = 0;  // meaningful with live_from_id
    std::uint64_t forwarded_rows = 0;
    std::uint64_t forwarded_batches = 0;
    std::uint64_t bytes_sent = 0;

    bool operator==(const ForwardCursor&) const = default;
};

class ForwardStore {
public:
    // Opens its own connection to the (already migrated) database at `path`.
    ForwardStore(const std::string& path, int busy_timeout_ms);

    // The cursor of `upstream`; a new upstream starts before the first stored reading.
    ForwardCursor load_cursor(const std::string& upstream);
    // Replaces the cursor in one transaction (after the upstream confirmed).
    void save_cursor(const ForwardCursor& cursor, std::int64_t now_unix_ms);

    // Readings with first_id <= id < end_id (end_id 0: no bound), ascending, at most `limit`.
    std::vector<ForwardRow> read_rows(std::int64_t first_id, std::int64_t end_id, std::size_t limit);
    // The id of the newest stored reading, 0 when there is none.
    std::int64_t last_row_id();
    // How many readings have first_id <= id < end_id. Ids have gaps (a duplicate
    // insert uses one up, retention deletes), so this is not end_id - first_id.
    std::int64_t count_rows(std::int64_t first_id, std::int64_t end_id);

    sqlite::Database& database() noexcept { return db_; }

private:
    sqlite::Database db_;
    sqlite::Statement load_cursor_;
    sqlite::Statement save_cursor_;
    sqlite::Statement read_rows_;
    sqlite::Statement last_row_id_;
    sqlite::Statement count_rows_;
};

}  // namespace fieldlink::gateway
