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
#include "fieldlink/gateway/ingest/device_message_decoder.hpp"
#include "fieldlink/gateway/ingest/stats.hpp"
#include "fieldlink/gateway/store/store.hpp"
#include "fieldlink/gateway/ingest/watermark.hpp"

namespace fieldlink::gateway {

struct SaverSettings {
    std::size_t batch_max_rows = 1000;                 // a transaction closes at this many readings...
    std::chrono::milliseconds batch_max_delay{20};     // ...or this long after its first message
    std::size_t queue_capacity = 10000;                // messages between the link and the writer
    std::chrono::milliseconds retry_min{100};          // backoff after a failed commit, doubling...
    std::chrono::milliseconds retry_max{5000};         // ...up to this
    int retries_after_stop = 3;                        // failed commits tolerated while stopping
};

class Saver {
public:
    Saver(const SaverSettings& settings, Store& store, AckPublisher& acks, const Clock& clock, Logger& log,
          Stats& stats);
    ~Saver();  // stop()
    Saver(const Saver&) = delete;
    Saver& operator=(const Saver&) = delete;

    // Starts the writer thread.
    void start();

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

private:
    struct Queued {
        Inbound message;
        std::int64_t received_unix_ms = 0;
    };

    void run_writer();
    void commit_with_retry(const std::vector<Queued>& group);
    // One attempt: a transaction over the whole group, then acks. Throws on any store error.
    void commit_group(const std::vector<Queued>& group);
    void publish_ack(const DeviceKey& key, std::uint64_t watermark);
    // Warns once per change of a device's count of readings its store dropped.
    void report_drops(const DeviceTelemetry& telemetry);
    void log_rejection(const Rejected& rejected);

    const SaverSettings settings_;
    Store& store_;
    AckPublisher& acks_;
    const Clock& clock_;
    Logger& log_;
    Stats& stats_;

    BoundedQueue<Queued> queue_;
    RateLimiter rejection_log_limit_{5, std::chrono::seconds(10)};
    RateLimiter ack_failure_log_limit_{1, std::chrono::seconds(10)};

    // Writer-thread state.
    WatermarkTracker tracker_;
    BootClocks boot_clocks_;
    struct DropCount {
        std::uint64_t incarnation = 0;
        std::uint64_t dropped = 0;
    };
    std::map<std::string, DropCount, std::less<>> reported_drops_;  // per device, the last count seen

    std::thread writer_;
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;

    // Progress counters for flush(), guarded by progress_mutex_.
    std::mutex progress_mutex_;
    std::condition_variable progress_cv_;
    std::uint64_t queued_count_ = 0;
    std::uint64_t done_count_ = 0;
    bool writer_finished_ = false;
};

}  // namespace fieldlink::gateway
