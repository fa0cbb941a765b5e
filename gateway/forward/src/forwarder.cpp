#include "fieldlink/gateway/forward/forwarder.hpp"

#include <algorithm>
#include <exception>

namespace fieldlink::gateway {

Forwarder::Forwarder(const ForwarderSettings& settings, std::unique_ptr<Upstream> upstream, const Clock& clock,
                     Logger& log)
    : settings_(settings), upstream_(std::move(upstream)), clock_(clock), log_(log), backoff_(settings.retry_min) {
    status_.upstream = upstream_->name();
}

Forwarder::~Forwarder() { stop(); }

void Forwarder::start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable() || stopping_) return;
    thread_ = std::thread([this] { run(); });
}

void Forwarder::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Forwarder::notify_new_rows() {
    {
        std::lock_guard lock(mutex_);
        new_rows_ = true;
    }
    cv_.notify_all();
}

ForwarderStatus Forwarder::status() const {
    std::lock_guard lock(mutex_);
    ForwarderStatus copy = status_;
    copy.connected = upstream_->connected();
    return copy;
}

void Forwarder::run() {
    while (true) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) break;
        }
        try {
            if (!store_) {
                store_ = std::make_unique<ForwardStore>(settings_.db_path, settings_.busy_timeout_ms);
                if (settings_.read_ahead_chunks > 0) {
                    read_ahead_ = std::make_unique<ReadAhead>(settings_.db_path, settings_.busy_timeout_ms,
                                                              settings_.batch_rows, settings_.read_ahead_chunks);
                }
                cursor_ = store_->load_cursor(upstream_->name());
                backlog_pending_.reset();
                live_pending_.reset();
                backlog_ = Lane{cursor_.next_id, cursor_.next_id, cursor_.live_from_id.value_or(0), {}};
                live_.reset();
                if (cursor_.live_from_id) live_ = Lane{cursor_.live_next_id, cursor_.live_next_id, 0, {}};
                log_.info("upstream {}: forwarding from reading id {}{}", upstream_->name(), cursor_.next_id,
                          live_ ? fmt::format(" (backlog up to {}; live data from {})", *cursor_.live_from_id,
                                              cursor_.live_next_id)
                                : std::string());
                save_cursor();
            }
            if (failed_) {
                // Every outstanding chunk must have ended before the lanes rewind.
                if (outstanding() == 0) {
                    restart_lanes_after_failure();
                } else {
                    wait_for_work();
                    take_results();
                }
                continue;
            }
            if (!upstream_->connected()) {
                if (outstanding() > 0) {
                    // Lost while chunks were out: none of them counts; rewind once they all ended.
                    failed_ = true;
                    log_.warn(
                        "upstream {}: a chunk was not confirmed (the connection was lost with {} chunk(s) "
                        "out); sending again from the cursor",
                        upstream_->name(), outstanding());
                    upstream_->close();
                    continue;
                }
                connect_or_wait();
                continue;
            }
            fill_window();
            wait_for_work();
            take_results();
        } catch (const std::exception& e) {
            // The database or the upstream threw outside a chunk: start over from the durable cursor.
            log_.error("upstream {}: {}; starting again from the saved cursor in {} ms", upstream_->name(), e.what(),
                       backoff_.count());
            {
                std::lock_guard lock(mutex_);
                status_.last_error = e.what();
            }
            upstream_->close();
            std::unique_lock lock(mutex_);
            results_.clear();
            cv_.wait_for(lock, backoff_, [this] { return stopping_; });
            lock.unlock();
            backoff_ = std::min(backoff_ * 2, settings_.retry_max);
            read_ahead_.reset();
            store_.reset();
            failed_ = false;
        }
    }
    // Stopping: chunks in flight end unconfirmed; what was confirmed is saved.
    upstream_->close();
    try {
        if (store_) {
            take_results();
            save_cursor();
        }
    } catch (const std::exception& e) {
        log_.warn("upstream {}: cannot save the cursor while stopping: {}; the last chunks are sent again",
                  upstream_->name(), e.what());
    }
    log_.debug("upstream {}: forwarder stopped at reading id {}", upstream_->name(), cursor_.next_id);
}

void Forwarder::connect_or_wait() {
    update_lag();  // readings keep arriving while the upstream is away
    try {
        upstream_->connect();
        log_.info("upstream {}: connected", upstream_->name());
        backoff_ = settings_.retry_min;
        maybe_split_for_fresh_data();
        return;
    } catch (const UpstreamError& e) {
        std::uint64_t failures = 0;
        {
            std::lock_guard lock(mutex_);
            failures = ++status_.connect_failures;
            status_.last_error = e.what();
        }
        // Loud at first, then every tenth attempt, so a long outage does not flood the log.
        if (failures <= 3 || failures % 10 == 0) {
            if (e.retryable()) {
                log_.warn("upstream {}: cannot connect (attempt {}): {}; retrying in {} ms", upstream_->name(),
                          failures, e.what(), backoff_.count());
            } else {
                log_.error(
                    "upstream {}: cannot connect (attempt {}): {}; this needs a fix in the configuration "
                    "or upstream; retrying every {} ms",
                    upstream_->name(), failures, e.what(), settings_.retry_max.count());
            }
        }
        // Wait out the backoff in slices of a second, keeping the lag in status() current.
        const auto until = std::chrono::steady_clock::now() + (e.retryable() ? backoff_ : settings_.retry_max);
        for (;;) {
            {
                std::unique_lock lock(mutex_);
                const auto slice = std::min(until, std::chrono::steady_clock::now() + std::chrono::seconds(1));
                if (cv_.wait_until(lock, slice, [this] { return stopping_; })) break;
            }
            if (std::chrono::steady_clock::now() >= until) break;
            update_lag();
        }
        backoff_ = std::min(backoff_ * 2, settings_.retry_max);
    }
}

void Forwarder::maybe_split_for_fresh_data() {
    if (!settings_.fresh_first || live_) return;
    const std::int64_t last = store_->last_row_id();
    const std::int64_t behind = last + 1 - backlog_.confirmed_end;
    if (behind <= settings_.fresh_first_rows) return;
    const std::int64_t live_from = last + 1;
    backlog_.limit = live_from;
    live_ = Lane{live_from, live_from, 0, {}};
    cursor_.live_from_id = live_from;
    log_.info(
        "upstream {}: {} readings behind; readings stored from now on (id {} on) go first, the backlog "
        "follows with what is left of the window",
        upstream_->name(), behind, live_from);
    save_cursor();
}

void Forwarder::refill_tokens() {
    if (settings_.max_bytes_per_s == 0) return;
    const auto now = std::chrono::steady_clock::now();
    const double rate = static_cast<double>(settings_.max_bytes_per_s);
    if (tokens_at_ == std::chrono::steady_clock::time_point{}) {
        tokens_ = rate;
    } else {
        const double elapsed = std::chrono::duration<double>(now - tokens_at_).count();
        tokens_ = std::min(rate, tokens_ + rate * elapsed);
    }
    tokens_at_ = now;
}

void Forwarder::fill_window() {
    refill_tokens();
    partial_deadline_ = {};
    while (outstanding() < upstream_->window()) {
        // The cap is paid after the fact (bytes are known once encoded), so a chunk may overdraw once.
        if (settings_.max_bytes_per_s != 0 && tokens_ <= 0) break;
        bool sent = live_ && send_from(*live_);
        if (!sent) sent = send_from(backlog_);
        if (!sent) break;
    }
    update_lag();
}

bool Forwarder::send_from(Lane& lane) {
    if (lane.limit != 0 && lane.send_next >= lane.limit) return false;
    // The backlog lane reads ahead (the live lane is at the tail, where chunks are still growing).
    ReadAhead* const ahead = &lane == &backlog_ ? read_ahead_.get() : nullptr;
    std::optional<std::vector<ForwardRow>> read_before;
    if (ahead != nullptr) read_before = ahead->take(lane.send_next, lane.limit, *store_);
    std::vector<ForwardRow> rows =
        read_before ? std::move(*read_before) : store_->read_rows(lane.send_next, lane.limit, settings_.batch_rows);
    if (rows.empty()) return false;
    if (rows.size() < settings_.batch_rows && lane.limit == 0) {
        // A partial chunk of fresh rows waits a little for company, bounded by batch_delay.
        const std::int64_t age_ms = clock_.unix_ms() - rows.front().received_unix_ms;
        const std::int64_t wait_ms = settings_.batch_delay.count() - age_ms;
        if (wait_ms > 0) {
            partial_deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
            return false;
        }
    }
    Sent sent;
    sent.sequence = next_sequence_++;
    sent.first_id = lane.send_next;
    sent.end_id = rows.back().id + 1;
    sent.rows = rows.size();
    lane.sent.push_back(sent);
    lane.send_next = sent.end_id;
    if (read_before) {
        std::lock_guard lock(mutex_);
        ++status_.chunks_read_ahead;
    } else if (ahead != nullptr && sent.rows == settings_.batch_rows) {
        ahead->follow(sent.end_id, lane.limit);  // a full chunk: more may follow it
    }
    const std::uint64_t sequence = sent.sequence;
    upstream_->send(Chunk{sequence, std::move(rows)}, [this, sequence](ChunkResult result) {
        {
            std::lock_guard lock(mutex_);
            results_.emplace_back(sequence, std::move(result));
        }
        cv_.notify_all();
    });
    return true;
}

void Forwarder::wait_for_work() {
    std::unique_lock lock(mutex_);
    auto deadline = std::chrono::steady_clock::now() + settings_.batch_delay;
    if (partial_deadline_ != std::chrono::steady_clock::time_point{}) deadline = std::min(deadline, partial_deadline_);
    if (settings_.max_bytes_per_s != 0 && tokens_ <= 0) {
        const double seconds = -tokens_ / static_cast<double>(settings_.max_bytes_per_s);
        deadline = std::min(deadline, std::chrono::steady_clock::now() +
                                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                              std::chrono::duration<double>(seconds)));
    }
    cv_.wait_until(lock, deadline, [this] { return stopping_ || !results_.empty() || new_rows_; });
    new_rows_ = false;
}

void Forwarder::take_results() {
    std::vector<std::pair<std::uint64_t, ChunkResult>> results;
    {
        std::lock_guard lock(mutex_);
        results.swap(results_);
    }
    if (results.empty()) return;
    bool failure = false;
    for (auto& [sequence, result] : results) {
        Sent* found = nullptr;
        for (Lane* lane : {&backlog_, live_ ? &*live_ : nullptr}) {
            if (lane == nullptr) continue;
            for (Sent& s : lane->sent) {
                if (s.sequence == sequence) found = &s;
            }
        }
        if (found == nullptr || found->done) continue;  // from before a restart
        found->done = true;
        if (settings_.max_bytes_per_s != 0) tokens_ -= static_cast<double>(result.bytes_sent);
        if (!result.confirmed) {
            failure = true;
            std::lock_guard lock(mutex_);
            ++status_.chunks_failed;
            status_.last_error = result.error;
        }
        found->result = std::move(result);
    }
    const std::int64_t before = backlog_.confirmed_end + (live_ ? live_->confirmed_end : 0);
    settle(backlog_);
    if (live_) settle(*live_);
    merge_lanes_if_backlog_done();
    const std::int64_t after = backlog_.confirmed_end + (live_ ? live_->confirmed_end : 0);
    if (after != before) save_cursor();
    if (failure && !failed_) {
        failed_ = true;
        log_.warn("upstream {}: a chunk was not confirmed ({}); sending again from the cursor", upstream_->name(),
                  status().last_error);
        upstream_->close();  // ends every other outstanding chunk
    }
}

void Forwarder::settle(Lane& lane) {
    while (!lane.sent.empty() && lane.sent.front().done && lane.sent.front().result.confirmed) {
        const Sent& front = lane.sent.front();
        lane.confirmed_end = front.end_id;
        cursor_.forwarded_rows += front.rows;
        cursor_.forwarded_batches += front.result.batches;
        cursor_.bytes_sent += front.result.bytes_sent;
        lane.sent.pop_front();
    }
}

void Forwarder::merge_lanes_if_backlog_done() {
    if (!live_ || backlog_.confirmed_end < backlog_.limit || !backlog_.sent.empty()) return;
    log_.info("upstream {}: backlog forwarded up to id {}; one lane again", upstream_->name(), backlog_.limit);
    backlog_ = std::move(*live_);
    backlog_.limit = 0;
    live_.reset();
    cursor_.live_from_id.reset();
    cursor_.live_next_id = 0;
}

void Forwarder::restart_lanes_after_failure() {
    for (Lane* lane : {&backlog_, live_ ? &*live_ : nullptr}) {
        if (lane == nullptr) continue;
        lane->sent.clear();
        lane->send_next = lane->confirmed_end;
    }
    failed_ = false;
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, backoff_, [this] { return stopping_; });
    lock.unlock();
    backoff_ = std::min(backoff_ * 2, settings_.retry_max);
}

std::size_t Forwarder::outstanding() const {
    std::size_t count = 0;
    for (const Sent& s : backlog_.sent) count += s.done ? 0 : 1;
    if (live_) {
        for (const Sent& s : live_->sent) count += s.done ? 0 : 1;
    }
    return count;
}

void Forwarder::save_cursor() {
    cursor_.next_id = backlog_.confirmed_end;
    if (live_) cursor_.live_next_id = live_->confirmed_end;
    store_->save_cursor(cursor_, clock_.unix_ms());
    update_lag();
}

void Forwarder::update_lag() {
    const std::int64_t last = store_->last_row_id();
    // Unconfirmed: the backlog lane's rest, and the live lane's rest when split.
    const std::int64_t backlog_end = live_ ? *cursor_.live_from_id : last + 1;
    std::int64_t pending = backlog_pending_.update(*store_, backlog_.confirmed_end, backlog_end);
    if (live_) {
        pending += live_pending_.update(*store_, live_->confirmed_end, last + 1);
    } else {
        live_pending_.reset();
    }
    std::lock_guard lock(mutex_);
    status_.cursor = cursor_;
    status_.last_row_id = last;
    status_.lag_rows = pending;
}

std::int64_t Forwarder::RangeCount::update(ForwardStore& store, std::int64_t from, std::int64_t end) {
    constexpr auto kRecountEvery = std::chrono::seconds(60);
    const auto now = std::chrono::steady_clock::now();
    end = std::max(from, end);
    if (!valid_ || from < from_ || end < end_ || from > end_ || now - counted_at_ >= kRecountEvery) {
        count_ = store.count_rows(from, end);
        counted_at_ = now;
    } else {
        count_ += store.count_rows(end_, end) - store.count_rows(from_, from);
    }
    valid_ = true;
    from_ = from;
    end_ = end;
    return count_;
}

}  // namespace fieldlink::gateway
