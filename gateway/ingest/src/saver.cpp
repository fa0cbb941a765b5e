#include "fieldlink/gateway/ingest/saver.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "fieldlink/gateway/store/sqlite.hpp"
#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/topics.hpp"

namespace fieldlink::gateway {
namespace {

// What a queued message weighs against batch_max_rows.
std::size_t row_weight(const Inbound& message) {
    if (const auto* batch = std::get_if<ReadingBatch>(&message)) return batch->body.records.size();
    return 1;
}

const SaverSettings& checked(const SaverSettings& settings) {
    if (settings.max_incarnations == 0) {
        throw std::invalid_argument("saver settings: max_incarnations must be at least 1");
    }
    if (settings.max_ranges_per_incarnation == 0) {
        throw std::invalid_argument("saver settings: max_ranges_per_incarnation must be at least 1");
    }
    return settings;
}

}  // namespace

Saver::Saver(const SaverSettings& settings, Store& store, AckPublisher& acks, const Clock& clock, Logger& log,
             Stats& stats)
    : settings_(checked(settings)),
      store_(store),
      acks_(acks),
      clock_(clock),
      log_(log),
      stats_(stats),
      queue_(settings.queue_capacity),
      tracker_(store, settings.max_incarnations, settings.max_ranges_per_incarnation),
      boot_clocks_(settings.max_incarnations),
      reported_drops_(settings.max_incarnations),
      decoder_(settings.max_incarnations) {}

Saver::~Saver() { stop(); }

void Saver::start() {
    std::lock_guard lock(stop_mutex_);
    if (writer_.joinable() || stopping_) return;
    writer_ = std::thread([this] { run_writer(); });
}

bool Saver::submit(std::string_view topic, std::span<const std::uint8_t> payload) {
    ++stats_.received;
    try {
        Inbound message = decoder_.decode(topic, payload);
        if (const auto* rejected = std::get_if<Rejected>(&message)) {
            stats_.count_malformed(rejected->error);
            log_rejection(*rejected);
        } else if (const auto* ignored = std::get_if<Ignored>(&message)) {
            log_.debug("ignoring message on {}: {}", topic, ignored->reason);
            return true;
        }
        // Counted before the push so that flush() never waits for less than was queued.
        {
            std::lock_guard lock(progress_mutex_);
            ++queued_count_;
        }
        if (!queue_.push(Queued{std::move(message), clock_.unix_ms(), steady_now_ns()})) {
            {
                std::lock_guard lock(progress_mutex_);
                --queued_count_;
            }
            progress_cv_.notify_all();
            ++stats_.dropped_at_stop;
            return false;
        }
        return true;
    } catch (const std::exception& e) {
        // Only resource exhaustion gets here. The device re-sends: it got no ack.
        log_.error("dropping a message on {}: {}", topic, e.what());
        return false;
    }
}

void Saver::flush() {
    std::unique_lock lock(progress_mutex_);
    const std::uint64_t target = queued_count_;
    progress_cv_.wait(lock, [&] { return done_count_ >= target || writer_finished_; });
}

TrackedState Saver::tracked_state() const {
    std::lock_guard lock(progress_mutex_);
    return tracked_;
}

TrackedState Saver::measure_tracked_state() const {
    return TrackedState{tracker_.size(), boot_clocks_.size(), reported_drops_.size(), tracker_.loads()};
}

void Saver::stop() {
    {
        std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    queue_.close();
    if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
    {
        // Also when the writer never ran, so that flush() cannot wait forever.
        std::lock_guard lock(progress_mutex_);
        writer_finished_ = true;
    }
    progress_cv_.notify_all();
}

void Saver::log_rejection(const Rejected& rejected) {
    std::uint64_t suppressed = 0;
    if (!log_.enabled(LogLevel::Warn) || !rejection_log_limit_.allow(std::chrono::steady_clock::now(), &suppressed)) {
        return;
    }
    log_.warn("malformed message on {} ({} bytes): {}: {}{}", rejected.topic, rejected.payload.size(), rejected.error,
              rejected.detail, suppressed == 0 ? std::string() : fmt::format(" ({} more not logged)", suppressed));
}

void Saver::run_writer() {
    try {
        std::vector<Queued> group;
        std::chrono::steady_clock::time_point last_commit_start{};
        for (;;) {
            group.clear();
            Queued first;
            PopResult popped = PopResult::Timeout;
            if (heartbeat_) {
                while (popped == PopResult::Timeout) popped = queue_.pop_until(&first, beat_if_due());
            } else {
                popped = queue_.pop(&first);
            }
            if (popped != PopResult::Item) break;  // closed and drained
            std::size_t rows = row_weight(first.message);
            group.push_back(std::move(first));
            // The group takes what is waiting and closes when nothing more is, so
            // one fsync serves every message that arrived during the previous one;
            // it waits for more only to keep commits commit_interval_min apart.
            const auto earliest = last_commit_start + settings_.commit_interval_min;
            while (rows < settings_.batch_max_rows) {
                Queued next;
                if (queue_.try_pop(&next) != PopResult::Item &&
                    (std::chrono::steady_clock::now() >= earliest ||
                     queue_.pop_until(&next, earliest) != PopResult::Item)) {
                    break;
                }
                rows += row_weight(next.message);
                group.push_back(std::move(next));
            }
            last_commit_start = std::chrono::steady_clock::now();
            stats_.writer_busy_since_ns.store(steady_now_ns());
            commit_with_retry(group);
            stats_.writer_busy_since_ns.store(0);
            if (heartbeat_) beat_if_due();
            const TrackedState tracked = measure_tracked_state();
            {
                std::lock_guard lock(progress_mutex_);
                done_count_ += group.size();
                tracked_ = tracked;
            }
            progress_cv_.notify_all();
        }
    } catch (const std::exception& e) {
        // Nothing is expected to get here; a stalled writer would silently stop
        // the whole gateway, so end the process and let the supervisor restart it.
        log_.error("writer thread failed: {}; aborting", e.what());
        std::abort();
    }
    {
        std::lock_guard lock(progress_mutex_);
        writer_finished_ = true;
    }
    progress_cv_.notify_all();
    log_.debug("writer thread finished");
}

std::chrono::steady_clock::time_point Saver::beat_if_due() {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_beat_) {
        heartbeat_();
        next_beat_ = now + heartbeat_interval_;
    }
    return next_beat_;
}

namespace {

// Errors that come from what is being stored, not from the disk or a lock: the same
// message fails the same way on every retry, so retrying the group would stall it forever.
bool refused_for_content(const std::exception& e) {
    const auto* error = dynamic_cast<const sqlite::Error*>(&e);
    if (error == nullptr) return false;
    switch (error->code()) {
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_TOOBIG:
        case SQLITE_RANGE: return true;
        default: return false;
    }
}

// A refused batch as a dead letter: re-encoded in the binary form, under its device's up topic.
Rejected dead_letter_of(const Inbound& message, const std::string& reason) {
    Rejected rejected;
    rejected.error = "store_rejected";
    rejected.detail = reason;
    const std::string* device = nullptr;
    protocol::TopicKind kind = protocol::TopicKind::Up;
    if (const auto* batch = std::get_if<ReadingBatch>(&message)) {
        device = &batch->device;
        rejected.payload.resize(protocol::kBatchHeaderSize + batch->body.records.size() * protocol::kRecordSize +
                                protocol::kCrcSize);
        std::size_t written = 0;
        if (protocol::encode_batch(batch->body.header, batch->body.records.data(), rejected.payload.data(),
                                   rejected.payload.size(), &written) == protocol::CodecResult::Ok) {
            rejected.payload.resize(written);
        } else {
            rejected.payload.clear();
        }
    } else if (const auto* status = std::get_if<DeviceStatus>(&message)) {
        device = &status->device;
        kind = protocol::TopicKind::Status;
    } else if (const auto* health = std::get_if<DeviceTelemetry>(&message)) {
        device = &health->device;
        kind = protocol::TopicKind::Telemetry;
    }
    if (device != nullptr) {
        char topic[protocol::kMaxTopicLength + 1] = {};
        const std::size_t length = protocol::format_topic(device->data(), device->size(), kind, topic, sizeof topic);
        rejected.topic.assign(topic, length);
    }
    return rejected;
}

}  // namespace

void Saver::commit_with_retry(std::span<const Queued> group, const std::string* refused) {
    auto backoff = settings_.retry_min;
    int failures_while_stopping = 0;
    for (;;) {
        try {
            commit_group(group, refused);
            if (stats_.commit_failing.exchange(false)) stats_.set_commit_error({});
            return;
        } catch (const std::exception& e) {
            stats_.commit_failing.store(true);
            stats_.set_commit_error(e.what());
            if (refused != nullptr && refused_for_content(e)) {
                ++stats_.commit_failures;
                log_.error("database refuses even the dead letter of a message ({}); it is not acked", e.what());
                return;
            }
            if (refused_for_content(e)) {
                ++stats_.commit_failures;
                if (group.size() > 1) {
                    log_.warn(
                        "database refused a commit of {} messages ({}); committing them in halves to find "
                        "the message it refuses",
                        group.size(), e.what());
                    commit_with_retry(group.first(group.size() / 2));
                    commit_with_retry(group.subspan(group.size() / 2));
                    return;
                }
                const std::string reason = e.what();
                log_.error(
                    "database refuses a message every time ({}); it goes to dead_letters as store_rejected "
                    "and is acked, so its device moves on",
                    reason);
                commit_with_retry(group, &reason);
                return;
            }
            ++stats_.commit_failures;
            bool stopping = false;
            {
                std::lock_guard lock(stop_mutex_);
                stopping = stopping_;
            }
            if (stopping && ++failures_while_stopping > settings_.retries_after_stop) {
                log_.error(
                    "giving up on {} messages while stopping: {}; none of them was acked, so their devices "
                    "will send them again",
                    group.size(), e.what());
                return;
            }
            log_.error("database commit of {} messages failed, no acks sent, retrying in {} ms: {}", group.size(),
                       backoff.count(), e.what());
        }
        // Waits in steps of the heartbeat: a writer retrying a failing disk is
        // alive, not wedged, and a restart would not mend the disk.
        const auto retry_at = std::chrono::steady_clock::now() + backoff;
        for (;;) {
            auto until = retry_at;
            if (heartbeat_) until = std::min(until, beat_if_due());
            std::unique_lock lock(stop_mutex_);
            if (stop_cv_.wait_until(lock, until, [this] { return stopping_; }) ||
                std::chrono::steady_clock::now() >= retry_at) {
                break;
            }
        }
        backoff = std::min(backoff * 2, settings_.retry_max);
    }
}

void Saver::commit_group(std::span<const Queued> group, const std::string* refused) {
    const std::int64_t began_ns = steady_now_ns();
    std::unique_ptr<StoreTransaction> transaction = store_.begin();
    // Changes to in-memory state are staged here and kept only if the commit succeeds.
    // A snapshot in `touched` is this commit's own copy: the tracker may evict its
    // cached entry meanwhile (more keys in the group than it keeps), and put() below
    // stores the copy all the same.
    std::map<DeviceKey, ContiguousWatermark> touched;
    BootClocks learnt(std::max<std::size_t>(1, group.size()));  // never evicts: a group has no more keys than messages
    struct {
        std::uint64_t inserted = 0;
        std::uint64_t duplicates = 0;
    } counts;
    std::uint64_t batches = 0;
    std::uint64_t statuses = 0;
    std::uint64_t telemetry = 0;
    std::uint64_t dead_letters = 0;
    std::uint64_t filled = 0;
    std::uint64_t refused_out_of_order = 0;

    for (const Queued& queued : group) {
        if (refused != nullptr && !std::holds_alternative<Rejected>(queued.message)) {
            transaction->add_dead_letter(dead_letter_of(queued.message, *refused), queued.received_unix_ms);
            ++dead_letters;
        }
        if (const auto* batch = std::get_if<ReadingBatch>(&queued.message)) {
            const protocol::BatchHeader& header = batch->body.header;
            const DeviceKey key{batch->device, header.incarnation};
            auto state = touched.find(key);
            if (state == touched.end()) state = touched.emplace(key, tracker_.snapshot(key)).first;
            const std::uint64_t last_seq = header.first_seq + (batch->body.records.size() - 1);
            if (refused != nullptr) {
                // Kept in dead_letters instead: acked like a stored batch, so the device's window moves on.
                if (!state->second.add(header.first_seq, last_seq)) refused_out_of_order += batch->body.records.size();
                state->second.apply_floor(header.floor_seq);
                continue;
            }

            std::optional<std::int64_t> offset;
            if (header.offset_known) {
                offset = header.wall_offset_ms;
                const bool boot_known =
                    boot_clocks_.offset_for(key, header.boot) || learnt.offset_for(key, header.boot);
                learnt.learn(key, header.boot, header.wall_offset_ms);
                // First offset for this boot in this run: earlier rows of the boot get their wall time now.
                if (!boot_known) filled += transaction->fill_unix_time(key, header.boot, header.wall_offset_ms);
            } else {
                offset = learnt.offset_for(key, header.boot);
                if (!offset) offset = boot_clocks_.offset_for(key, header.boot);
            }
            ++batches;
            // Only the seqs not stored yet are written; the rest are duplicates (a resend).
            const std::vector<SeqRange> fresh = state->second.missing(header.first_seq, last_seq);
            std::uint64_t inserted = 0;
            if (fresh.empty() || state->second.add(header.first_seq, last_seq)) {
                if (!fresh.empty())
                    inserted = transaction->insert_readings(*batch, fresh, offset, queued.received_unix_ms);
                counts.inserted += inserted;
                counts.duplicates += batch->body.records.size() - inserted;
            } else {
                refused_out_of_order += batch->body.records.size();
            }
            state->second.apply_floor(header.floor_seq);
        } else if (refused != nullptr) {
            continue;  // a status or telemetry message: only its dead letter
        } else if (const auto* status = std::get_if<DeviceStatus>(&queued.message)) {
            transaction->upsert_device(*status, queued.received_unix_ms);
            ++statuses;
        } else if (const auto* health = std::get_if<DeviceTelemetry>(&queued.message)) {
            transaction->add_telemetry(*health, queued.received_unix_ms);
            ++telemetry;
        } else if (const auto* rejected = std::get_if<Rejected>(&queued.message)) {
            transaction->add_dead_letter(*rejected, queued.received_unix_ms);
            ++dead_letters;
        }
    }
    const std::int64_t now = clock_.unix_ms();
    for (const auto& [key, state] : touched)
        transaction->save_watermark(key, state.watermark(), state.ranges_above(), now);
    transaction->commit();
    transaction.reset();
    const std::int64_t committed_ns = steady_now_ns();
    stats_.commit_seconds.observe(std::chrono::nanoseconds(committed_ns - began_ns));
    stats_.last_commit_ns.store(committed_ns);

    // Committed: memory may follow the database now, and acks may go out.
    std::vector<std::pair<const DeviceKey*, std::uint64_t>> acks;
    acks.reserve(touched.size());
    for (auto& [key, state] : touched) {
        acks.emplace_back(&key, state.watermark());
        tracker_.put(key, std::move(state));
    }
    boot_clocks_.merge(learnt);
    ++stats_.commits;
    if (counts.inserted > 0 && commit_listener_) commit_listener_();
    stats_.batches += batches;
    stats_.stored += counts.inserted;
    if (counts.inserted > 0) stats_.stored_history.add(now, counts.inserted);
    stats_.duplicates += counts.duplicates;
    if (refused_out_of_order > 0) {
        stats_.refused_out_of_order += refused_out_of_order;
        std::uint64_t suppressed = 0;
        if (out_of_order_log_limit_.allow(std::chrono::steady_clock::now(), &suppressed)) {
            log_.warn(
                "{} readings not stored nor acked: their batches would open more than {} ranges above a device's "
                "watermark ([pipeline] max_ranges_per_incarnation); the device sends them again after the gaps "
                "below them{}",
                refused_out_of_order, settings_.max_ranges_per_incarnation,
                suppressed == 0 ? std::string() : fmt::format(" ({} more such commits not logged)", suppressed));
        }
    }
    stats_.statuses += statuses;
    stats_.telemetry += telemetry;
    stats_.dead_letters += dead_letters;
    stats_.unix_ms_filled += filled;
    log_.debug("committed {} messages: {} readings stored, {} duplicates, {} statuses, {} telemetry, {} dead letters",
               group.size(), counts.inserted, counts.duplicates, statuses, telemetry, dead_letters);
    for (const auto& [key, watermark] : acks) publish_ack(*key, watermark);
    if (!acks.empty()) {
        const std::int64_t acked_ns = steady_now_ns();
        for (const Queued& queued : group) {
            if (std::holds_alternative<ReadingBatch>(queued.message)) {
                stats_.ack_latency_seconds.observe(std::chrono::nanoseconds(acked_ns - queued.received_steady_ns));
            }
        }
    }
    if (telemetry > 0) {
        for (const Queued& queued : group) {
            if (const auto* health = std::get_if<DeviceTelemetry>(&queued.message)) report_drops(*health);
        }
    }
}

void Saver::report_drops(const DeviceTelemetry& health) {
    const protocol::Telemetry& t = health.telemetry;
    // A device not remembered (never seen, or pushed out of the LRU) starts from nothing, so it warns again.
    const DropCount* remembered = reported_drops_.find(health.device);
    const DropCount last = remembered != nullptr ? *remembered : DropCount{};
    const bool changed = last.incarnation != t.incarnation || last.dropped != t.dropped;
    if (changed && t.dropped > 0) {
        log_.warn("device {} (incarnation {:016x}) has dropped {} readings because its store was full{}", health.device,
                  t.incarnation, t.dropped,
                  last.incarnation == t.incarnation && last.dropped > 0 && t.dropped > last.dropped
                      ? fmt::format(" ({} more since the last report)", t.dropped - last.dropped)
                      : std::string());
    }
    reported_drops_.insert_or_assign(health.device, DropCount{t.incarnation, t.dropped});
}

void Saver::publish_ack(const DeviceKey& key, std::uint64_t watermark) {
    const protocol::Ack ack{key.incarnation, watermark, clock_.unix_ms()};
    std::uint8_t payload[protocol::kAckSize];
    std::size_t written = 0;
    char topic[protocol::kMaxTopicLength + 1];
    const std::size_t topic_length =
        protocol::format_topic(key.device.data(), key.device.size(), protocol::TopicKind::Ack, topic, sizeof(topic));
    if (protocol::encode_ack(ack, payload, sizeof(payload), &written) != protocol::CodecResult::Ok ||
        topic_length == 0) {
        // Cannot happen for ids that came through parse_topic; keep going for the others.
        log_.error("cannot encode a commit ack for device '{}'", key.device);
        ++stats_.ack_failures;
        return;
    }
    bool sent = false;
    try {
        sent = acks_.publish_ack(std::string(topic, topic_length), key.incarnation,
                                 std::span<const std::uint8_t>(payload, written));
    } catch (const std::exception& e) {
        log_.debug("publishing an ack to {} threw: {}", topic, e.what());
    }
    if (sent) {
        ++stats_.acks_sent;
        return;
    }
    ++stats_.ack_failures;
    std::uint64_t suppressed = 0;
    if (ack_failure_log_limit_.allow(std::chrono::steady_clock::now(), &suppressed)) {
        log_.warn(
            "cannot publish the commit ack to {} (broker not connected?); the device re-sends and is acked "
            "after a later commit{}",
            topic, suppressed == 0 ? std::string() : fmt::format(" ({} more failures not logged)", suppressed));
    }
}

}  // namespace fieldlink::gateway
