// The saver's view of its database: the seam between the pipeline and SQLite.
// Every call may throw (std::runtime_error or a subclass such as
// sqlite::Error with the SQLite codes); the pipeline then rolls back, does not
// ack, and retries.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fieldlink/gateway/store/device_messages.hpp"
#include "fieldlink/gateway/store/keys.hpp"

namespace fieldlink::gateway {

// What the database knows about one (device, incarnation).
struct StoredWatermark {
    std::uint64_t watermark = 0;         // from the watermarks table (0 when absent)
    std::vector<SeqRange> ranges_above;  // stored readings above it, ascending (saved beside it)
};

// Where the tracker loads state on first touch (the store, or a fake).
class WatermarkSource {
public:
    virtual StoredWatermark load_watermark(const DeviceKey& key) = 0;

protected:
    ~WatermarkSource() = default;
};

// One write transaction. The destructor rolls back unless commit() succeeded.
class StoreTransaction {
public:
    virtual ~StoreTransaction() = default;

    // Inserts the batch's records whose seqs lie in `seqs` (ascending parts of
    // the batch's own seqs), and returns how many. The caller dedupes: it knows
    // what is stored from the watermark and ranges it saves (save_watermark).
    // unix_ms = mono_ms + wall_offset_ms, or NULL when wall_offset_ms is empty
    // or the sum does not fit in 64 bits.
    virtual std::uint64_t insert_readings(const ReadingBatch& batch, std::span<const SeqRange> seqs,
                                          std::optional<std::int64_t> wall_offset_ms,
                                          std::int64_t received_unix_ms) = 0;
    // Sets unix_ms = mono_ms + wall_offset_ms on this boot's rows that are still NULL, except where the
    // sum does not fit in 64 bits (those stay NULL, as in insert_readings). Returns rows changed.
    virtual std::uint64_t fill_unix_time(const DeviceKey& key, std::uint32_t boot, std::int64_t wall_offset_ms) = 0;
    // Saves what is stored of the key: every seq up to the watermark, and the ranges above it.
    virtual void save_watermark(const DeviceKey& key, std::uint64_t watermark, std::span<const SeqRange> ranges_above,
                                std::int64_t now_unix_ms) = 0;
    virtual void add_dead_letter(const Rejected& rejected, std::int64_t received_unix_ms) = 0;
    virtual void upsert_device(const DeviceStatus& status, std::int64_t received_unix_ms) = 0;
    // Appends one row of device health. Not pure: a store that keeps no health
    // data (a benchmark's null store) need not implement it.
    virtual void add_telemetry(const DeviceTelemetry& /*telemetry*/, std::int64_t /*received_unix_ms*/) {}

    // Durable when it returns (as durable as the synchronous setting makes it).
    virtual void commit() = 0;
};

// The seqs of every record of a batch (first..first + n - 1), for insert_readings of all of
// them; a batch without records has none (first > last).
inline SeqRange seqs_of(const ReadingBatch& batch) {
    const std::uint64_t first = batch.body.header.first_seq;
    return batch.body.records.empty() ? SeqRange{1, 0} : SeqRange{first, first + (batch.body.records.size() - 1)};
}

class Store : public WatermarkSource {
public:
    virtual ~Store() = default;

    virtual std::unique_ptr<StoreTransaction> begin() = 0;
};

}  // namespace fieldlink::gateway
