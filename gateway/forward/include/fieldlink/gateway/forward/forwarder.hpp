// Store-and-forward to one upstream (DESIGN.md §2, step 5).
//
//   readings table ──► ForwardStore (own connection) ──► chunks ──► Upstream ──► confirmed
//         ▲                                                              │
//         └──────────── cursor (forward_cursors), moved only on ◄────────┘
//
// One Forwarder per [[upstream]], each with its own thread, SQLite connection,
// cursor and backoff, so one upstream that is down never slows another or the
// saver. The thread owns the store and calls the upstream; the upstream's
// confirmations may arrive on its own threads and are handed over under a mutex.
//
// Nothing is deleted on send: the cursor moves over a chunk only once the
// upstream confirmed it and every chunk before it. After a crash the
// forwarder starts again at the cursor, so at most the chunks in flight at the
// crash are sent twice (each row carries its key; PostgreSQL drops them).
//
// Fresh data first: when the upstream comes back with more than
// `fresh_first_rows` unforwarded rows, the rows stored from then on form the
// live lane and go first; the backlog lane fills [next_id, live_from_id)
// behind it with what the window leaves. Both positions are in the cursor, so
// nothing falls between them; when the backlog reaches live_from_id the lanes merge.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fieldlink/gateway/forward/read_ahead.hpp"
#include "fieldlink/gateway/forward/upstream.hpp"
#include "fieldlink/gateway/ingest/clock.hpp"
#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/gateway/store/forward_store.hpp"

namespace fieldlink::gateway {

struct ForwarderSettings {
    std::string db_path = "fieldlink.db";
    int busy_timeout_ms = 5000;
    std::size_t batch_rows = 1000;               // rows per chunk at most
    std::chrono::milliseconds batch_delay{200};  // a partial chunk waits at most this long for more rows
    bool fresh_first = true;
    std::int64_t fresh_first_rows = 10000;       // backlog above this at (re)connect: live data goes first
    std::uint64_t max_bytes_per_s = 0;           // 0: no cap; else a token bucket of one second
    std::chrono::milliseconds retry_min{500};    // backoff after a failed connect or chunk, doubling...
    std::chrono::milliseconds retry_max{30000};  // ...up to this
    std::size_t read_ahead_chunks = 2;           // chunks read ahead on a thread of their own; 0: off
};

// A snapshot for stats, metrics and tests.
struct ForwarderStatus {
    std::string upstream;
    bool connected = false;
    ForwardCursor cursor;
    std::int64_t last_row_id = 0;     // newest stored reading when last looked
    std::int64_t lag_rows = 0;        // stored readings not yet confirmed
    std::uint64_t chunks_failed = 0;  // chunks that ended unconfirmed (sent again)
    std::uint64_t connect_failures = 0;
    std::uint64_t chunks_read_ahead = 0;  // chunks that came from the read-ahead, not read on the forwarder thread
    std::string last_error;
};

class Forwarder {
public:
    Forwarder(const ForwarderSettings& settings, std::unique_ptr<Upstream> upstream, const Clock& clock, Logger& log);
    ~Forwarder();  // stop()
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    void start();
    // Closes the upstream (chunks in flight end unconfirmed), saves the cursor, joins. Idempotent.
    void stop();
    // The saver committed new readings: look now rather than at the next timeout.
    void notify_new_rows();

    ForwarderStatus status() const;
    const std::string& name() const { return upstream_->name(); }

private:
    // One range of ids the forwarder walks: the backlog, or the live rows.
    struct Sent {
        std::uint64_t sequence = 0;
        std::int64_t first_id = 0;
        std::int64_t end_id = 0;  // one past the chunk's last row id
        std::size_t rows = 0;
        bool done = false;
        ChunkResult result;
    };
    struct Lane {
        std::int64_t confirmed_end = 0;  // every id in [lane start, confirmed_end) is confirmed
        std::int64_t send_next = 0;      // next id to read
        std::int64_t limit = 0;          // one past the lane's last id (0: open)
        std::deque<Sent> sent;
    };

    // The number of stored rows in [from, end), kept up to date by reading only
    // the ids that entered or left the range since the last call (both ends only
    // move forward), and recounted in full now and then: retention may delete
    // rows inside it.
    class RangeCount {
    public:
        std::int64_t update(ForwardStore& store, std::int64_t from, std::int64_t end);
        void reset() { valid_ = false; }

    private:
        bool valid_ = false;
        std::int64_t from_ = 0;
        std::int64_t end_ = 0;
        std::int64_t count_ = 0;
        std::chrono::steady_clock::time_point counted_at_{};
    };

    void run();
    void connect_or_wait();
    void maybe_split_for_fresh_data();
    void fill_window();
    bool send_from(Lane& lane);
    void wait_for_work();
    void take_results();
    void settle(Lane& lane);
    void merge_lanes_if_backlog_done();
    void restart_lanes_after_failure();
    void save_cursor();
    // Publishes the cursor, the newest row id and the lag to status().
    void update_lag();
    std::size_t outstanding() const;
    void refill_tokens();

    const ForwarderSettings settings_;
    std::unique_ptr<Upstream> upstream_;
    const Clock& clock_;
    Logger& log_;

    // Forwarder thread only.
    std::unique_ptr<ForwardStore> store_;
    std::unique_ptr<ReadAhead> read_ahead_;  // the backlog lane's next chunks; none with read_ahead_chunks 0
    ForwardCursor cursor_;
    Lane backlog_;
    std::optional<Lane> live_;
    std::uint64_t next_sequence_ = 1;
    std::chrono::milliseconds backoff_;
    double tokens_ = 0;
    std::chrono::steady_clock::time_point tokens_at_{};
    std::chrono::steady_clock::time_point partial_deadline_{};
    bool failed_ = false;  // a chunk failed: close, wait for every outstanding one, then resend
    RangeCount backlog_pending_;
    RangeCount live_pending_;

    // Shared with the upstream's threads and with status().
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::pair<std::uint64_t, ChunkResult>> results_;
    bool stopping_ = false;
    bool new_rows_ = false;
    ForwarderStatus status_;

    std::thread thread_;
};

}  // namespace fieldlink::gateway
