#include "fieldlink/gateway/forward/read_ahead.hpp"

#include <exception>
#include <memory>
#include <utility>

namespace fieldlink::gateway {

ReadAhead::ReadAhead(std::string db_path, int busy_timeout_ms, std::size_t batch_rows, std::size_t depth)
    : db_path_(std::move(db_path)), busy_timeout_ms_(busy_timeout_ms), batch_rows_(batch_rows), depth_(depth) {
    thread_ = std::thread([this] { run(); });
}

ReadAhead::~ReadAhead() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

std::optional<std::vector<ForwardRow>> ReadAhead::take(std::int64_t from, std::int64_t end, ForwardStore& current) {
    std::vector<ForwardRow> rows;
    {
        std::unique_lock lock(mutex_);
        if (following_ && end_ == end && ahead_.empty() && next_from_ == from && !at_end_) {
            // The thread is reading this very chunk: wait for it rather than read it twice.
            const std::uint64_t generation = generation_;
            cv_.wait(lock, [&] { return stopping_ || !ahead_.empty() || at_end_ || generation_ != generation; });
        }
        if (!following_ || end_ != end || ahead_.empty() || ahead_.front().from != from) {
            ++misses_;
            return std::nullopt;
        }
        rows = std::move(ahead_.front().rows);
        ahead_.pop_front();
    }
    cv_.notify_all();  // room for one more
    // Retention deletes the oldest rows first: while the chunk's first row is stored, all of it is.
    const std::int64_t first = rows.front().id;
    if (current.count_rows(first, first + 1) == 0) {
        {
            std::lock_guard lock(mutex_);
            ++misses_;
            ahead_.clear();
            next_from_ = from;
            at_end_ = false;
            ++generation_;
        }
        cv_.notify_all();
        return std::nullopt;
    }
    std::lock_guard lock(mutex_);
    ++hits_;
    return rows;
}

void ReadAhead::follow(std::int64_t from, std::int64_t end) {
    {
        std::lock_guard lock(mutex_);
        const std::int64_t position = ahead_.empty() ? next_from_ : ahead_.front().from;
        if (following_ && end_ == end && position == from) {
            if (!at_end_ || !ahead_.empty()) return;
            at_end_ = false;  // stopped at the tail here before: look again, rows may have come
        } else {
            ++generation_;
        }
        following_ = true;
        ahead_.clear();
        next_from_ = from;
        end_ = end;
        at_end_ = false;
    }
    cv_.notify_all();
}

std::size_t ReadAhead::ready() const {
    std::lock_guard lock(mutex_);
    return ahead_.size();
}

std::uint64_t ReadAhead::hits() const {
    std::lock_guard lock(mutex_);
    return hits_;
}

std::uint64_t ReadAhead::misses() const {
    std::lock_guard lock(mutex_);
    return misses_;
}

std::string ReadAhead::last_error() const {
    std::lock_guard lock(mutex_);
    return last_error_;
}

void ReadAhead::run() {
    std::unique_ptr<ForwardStore> store;
    std::unique_lock lock(mutex_);
    while (true) {
        cv_.wait(lock, [this] { return stopping_ || (following_ && !at_end_ && ahead_.size() < depth_); });
        if (stopping_) return;
        const std::uint64_t generation = generation_;
        const std::int64_t from = next_from_;
        const std::int64_t end = end_;
        lock.unlock();

        std::vector<ForwardRow> rows;
        std::string error;
        try {
            if (!store) store = std::make_unique<ForwardStore>(db_path_, busy_timeout_ms_);
            rows = store->read_rows(from, end, batch_rows_);
        } catch (const std::exception& e) {
            error = e.what();
            store.reset();  // opened again at the next follow()
        }

        lock.lock();
        if (!error.empty()) {
            // The forwarder reads for itself meanwhile; its own connection reports what is wrong.
            last_error_ = std::move(error);
            at_end_ = true;
            cv_.notify_all();
            continue;
        }
        if (generation != generation_) continue;  // moved meanwhile: not what is wanted now
        const bool full = rows.size() == batch_rows_;
        // A partial chunk of an open range may still grow: the forwarder reads the tail itself.
        if (rows.empty() || (!full && end == 0)) {
            at_end_ = true;
            cv_.notify_all();
            continue;
        }
        next_from_ = rows.back().id + 1;
        ahead_.push_back(Ahead{from, std::move(rows)});
        if (!full || (end != 0 && next_from_ >= end)) at_end_ = true;
        cv_.notify_all();  // a take() may be waiting for this chunk
    }
}

}  // namespace fieldlink::gateway
