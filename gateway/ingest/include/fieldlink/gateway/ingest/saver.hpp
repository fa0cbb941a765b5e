// The saver pipeline:
//
//   broker link thread ── submit(): decode ──► BoundedQueue ──► writer thread
//                                                                 │ group commit (rows or deadline)
//                                                                 ▼
//                                                   Store transaction ──► commit ──► acks
//
// Thread ownership: submit() runs on the link's thread and only decodes and
// queues. The writer thread owns the store, the watermark tracker and the
// boot clocks. An ack is published only after the commit that covers it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fieldlink/gateway/ingest/boot_clocks.hpp"
#include "fieldlink/gateway/ingest/bounded_queue.hpp"
#include "fieldlink/gateway/ingest/broker_link.hpp"
#include "fieldlink/gateway/ingest/clock.hpp"
#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/gateway/ingest/lru_map.hpp"
#include "fieldlink/gateway/ingest/device_message_decoder.hpp"
#include "fieldlink/gateway/ingest/stats.hpp"
#include "fieldlink/gateway/store/store.hpp"
#include "fieldlink/gateway/ingest/watermark.hpp"

namespace fieldlink::gateway {

struct SaverSettings {
    // A transaction takes every message waiting and closes when nothing more
    // is, or at batch_max_rows readings. It waits for more only so that commits
    // start at least commit_interval_min apart: a bound on fsyncs per second.
    std::size_t batch_max_rows = 1000;
    std::chrono::milliseconds commit_interval_min{0};
    std::size_t queue_capacity = 10000;         // messages between the link and the writer
    std::chrono::milliseconds retry_min{100};   // backoff after a failed commit, doubling...
    std::chrono::milliseconds retry_max{5000};  // ...up to this
    int retries_after_stop = 3;                 // failed commits tolerated while stopping

    // Bounds on the writer's per-device state, which is only a cache (least
    // recently used out): watermarks and their ranges are reloaded from the database, boot
    // offsets are relearnt from the next batch that carries one, and a
    // forgotten drop count is warned about again.
    //
    // Memory, measured with mallinfo2 (x86-64, glibc 2.36, libstdc++ 12; it
    // matches the node layouts): per incarnation, a watermark entry of 176
    // bytes plus, once it holds ranges above the watermark, 16 + 16 per range
    // (at most max_ranges_per_incarnation: 1 KB at 64); boot offsets 240
    // bytes with one boot, 688 with eight; per device, a drop count of 128
    // bytes. A device id longer than 15 characters adds 48 to each. So about
    // 1 KB per incarnation sending in order (10 MB with the defaults) and at
    // most about 2 KB at the range cap (20 MB with the defaults: sized for a
    // Raspberry Pi; a batch that would pass the cap waits for its resend). A commit also
    // holds a copy of the watermark entry of each incarnation it touches.
    std::size_t max_incarnations = 10000;         // (device, incarnation)s kept in memory, and devices
    std::size_t max_ranges_per_incarnation = 64;  // stored ranges above the watermark per incarnation
};

// Sizes of the writer's per-device state after the latest commit.
struct TrackedState {
    std::size_t watermarks = 0;         // incarnations in the watermark tracker
    std::size_t boot_clocks = 0;        // incarnations with remembered boot offsets
    std::size_t drop_counts = 0;        // devices with a remembered drop count
    std::uint64_t watermark_loads = 0;  // times a watermark was (re)loaded from the store
};

class Saver {
public:
    // Throws std::invalid_argument when max_incarnations or max_ranges_per_incarnation is 0.
    Saver(const SaverSettings& settings, Store& store, AckPublisher& acks, const Clock& clock, Logger& log,
          Stats& stats);
    ~Saver();  // stop()
    Saver(const Saver&) = delete;
    Saver& operator=(const Saver&) = delete;

    // Starts the writer thread.
    void start();

    // Called on the writer thread after every commit that stored new readings
    // (the forwarders look for them at once). Set before start(); must not block.
    void set_commit_listener(std::function<void()> listener) { commit_listener_ = std::move(listener); }

    // Called on the writer thread at least every `interval` while the writer
    // is alive: idle, between commits and between commit retries, but not
    // while a commit hangs (a supervisor's watchdog then sees the silence).
    // Set before start(); must not block. An interval of zero or less: none.
    void set_heartbeat(std::chrono::milliseconds interval, std::function<void()> beat) {
        if (interval.count() <= 0) return;
        heartbeat_interval_ = interval;
        heartbeat_ = std::move(beat);
    }

    // Decodes and queues one message; blocks while the queue is full.
    // False once stop() has begun (the message is dropped; it was never acked,
    // so its device sends it again).
    bool submit(std::string_view topic, std::span<const std::uint8_t> payload);

    // Blocks until every message submitted before the call has been committed
    // and acked (or given up on while stopping). For tests and orderly handovers.
    void flush();

    // Refuses new messages, commits what is queued, publishes its acks, joins
    // the writer. Idempotent.
    void stop();

    std::size_t queue_depth() const { return queue_.size(); }
    // Safe from any thread; each count stays within max_incarnations.
    TrackedState tracked_state() const;

private:
    struct Queued {
        Inbound message;
        std::int64_t received_unix_ms = 0;
        std::int64_t received_steady_ns = 0;  // for the ack latency histogram
    };

    void run_writer();
    // Commits the group, retrying what the store cannot do now (a full or failing disk, a
    // lock) with backoff. What the store refuses for its content every time (a constraint, a
    // value it cannot hold) is split off: halves are committed on their own, and one message
    // refused alone is dead-lettered ("store_rejected") and acked, so the pipeline moves on.
    // With `refused`, the group's one message is dead-lettered with that reason (see commit_group).
    void commit_with_retry(std::span<const Queued> group, const std::string* refused = nullptr);
    // One attempt: a transaction over the whole group, then acks. Throws on any store error.
    // With `refused` (a group of one), its batch goes to dead_letters instead of readings.
    void commit_group(std::span<const Queued> group, const std::string* refused = nullptr);
    void publish_ack(const DeviceKey& key, std::uint64_t watermark);
    // Warns once per change of a device's count of readings its store dropped.
    void report_drops(const DeviceTelemetry& telemetry);
    TrackedState measure_tracked_state() const;
    void log_rejection(const Rejected& rejected);
    // Beats if the heartbeat is due; returns when the next one is.
    std::chrono::steady_clock::time_point beat_if_due();

    const SaverSettings settings_;
    std::function<void()> commit_listener_;
    std::chrono::milliseconds heartbeat_interval_{0};
    std::function<void()> heartbeat_;
    std::chrono::steady_clock::time_point next_beat_{};
    Store& store_;
    AckPublisher& acks_;
    const Clock& clock_;
    Logger& log_;
    Stats& stats_;

    BoundedQueue<Queued> queue_;
    RateLimiter rejection_log_limit_{5, std::chrono::seconds(10)};
    RateLimiter ack_failure_log_limit_{1, std::chrono::seconds(10)};
    RateLimiter out_of_order_log_limit_{1, std::chrono::seconds(10)};

    // Writer-thread state.
    WatermarkTracker tracker_;
    BootClocks boot_clocks_;
    struct DropCount {
        std::uint64_t incarnation = 0;
        std::uint64_t dropped = 0;
    };
    // Per device, the last count seen. A device pushed out warns again at its next report with drops > 0.
    LruMap<std::string, DropCount> reported_drops_;
    // Link thread: which device owns each incarnation (device_mismatch).
    DeviceMessageDecoder decoder_;

    std::thread writer_;
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;

    // Progress counters for flush() and tracked_, guarded by progress_mutex_.
    mutable std::mutex progress_mutex_;
    std::condition_variable progress_cv_;
    std::uint64_t queued_count_ = 0;
    std::uint64_t done_count_ = 0;
    bool writer_finished_ = false;
    TrackedState tracked_;  // copied from the writer's state after each commit
};

}  // namespace fieldlink::gateway
