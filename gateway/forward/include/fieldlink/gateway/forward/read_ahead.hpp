// Reads the forwarder's next chunks while the upstream is busy with the last
// ones: its own thread and its own SQLite connection (WAL), so that reading
// the database and sending overlap instead of taking turns on one thread.
//
// It follows one range of ids at a time ([from, end), end 0: open) and keeps
// at most `depth` chunks of `batch_rows` rows read ahead. A chunk it hands out
// holds exactly the rows a read at that moment would return: only full chunks
// are kept on an open range (a partial one may still grow), and a chunk whose
// first row is gone (retention deletes the oldest rows first) is dropped.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fieldlink/gateway/store/forward_store.hpp"

namespace fieldlink::gateway {

class ReadAhead {
public:
    ReadAhead(std::string db_path, int busy_timeout_ms, std::size_t batch_rows, std::size_t depth);
    ~ReadAhead();  // stops and joins the thread
    ReadAhead(const ReadAhead&) = delete;
    ReadAhead& operator=(const ReadAhead&) = delete;

    // The chunk that starts at `from` within [from, end), if it was read ahead
    // (waiting while the thread is reading that very chunk); the thread then
    // reads one more behind the others. Empty: read it yourself.
    // `current` checks, on the caller's connection, that the chunk's first row is still stored.
    std::optional<std::vector<ForwardRow>> take(std::int64_t from, std::int64_t end, ForwardStore& current);

    // Read ahead from `from` within [from, end) from now on (after a miss or a
    // rewind); drops what was read for another position. A no-op when already there.
    void follow(std::int64_t from, std::int64_t end);

    // Chunks read ahead and waiting to be taken.
    std::size_t ready() const;
    // Chunks handed out from the read-ahead, and misses (for tests and stats).
    std::uint64_t hits() const;
    std::uint64_t misses() const;
    // The last error of the read-ahead's own connection, empty if none (it then waits for the next follow()).
    std::string last_error() const;

private:
    struct Ahead {
        std::int64_t from = 0;
        std::vector<ForwardRow> rows;
    };

    void run();

    const std::string db_path_;
    const int busy_timeout_ms_;
    const std::size_t batch_rows_;
    const std::size_t depth_;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool following_ = false;        // a position was given
    bool at_end_ = false;           // the range is read to its end (or its open tail): wait for follow()
    std::uint64_t generation_ = 0;  // changes with every follow() that moves: a read in progress is dropped
    std::int64_t next_from_ = 0;    // where the next chunk read ahead starts
    std::int64_t end_ = 0;
    std::deque<Ahead> ahead_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
    std::string last_error_;

    std::thread thread_;
};

}  // namespace fieldlink::gateway
