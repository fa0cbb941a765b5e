// The saver's view of its database: the seam between the pipeline and SQLite.
// Every call may throw (std::runtime_error or a subclass such as
// sqlite::Error with the SQLite codes); the pipeline then rolls back, does not
// ack, and retries.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fieldlink/gateway/store/device_messages.hpp"
#include "fieldlink/gateway/store/keys.hpp"

namespace fieldlink::gateway {

// What the database knows about one (device, incarnation).
struct StoredWatermark {
    std::uint64_t watermark = 0;         // from the watermarks table (0 when absent)
    std::vector<SeqRange> ranges_above;  // stored readings above it, ascending
};

// Where the tracker loads state on first touch (the store, or a fake).
class WatermarkSource {
public:
    virtual StoredWatermark load_watermark(const DeviceKey& key) = 0;

protected:
    ~WatermarkSource() = default;
};

struct InsertCounts {
    std::uint64_t inserted = 0;
    std::uint64_t duplicates = 0;  // already stored under the same (device, incarnation, seq)
};

// One write transaction. The destructor rolls back unless commit() succeeded.
class StoreTransaction {
public:
    virtual ~StoreTransaction() = default;

    // INSERT OR IGNORE of every record. unix_ms = mono_ms + wall_offset_ms, or
    // NULL when wall_offset_ms is empty or the sum does not fit in 64 bits.
    virtual InsertCounts insert_readings(const ReadingBatch& batch, std::optional<std::int64_t> wall_offset_ms,
                                         std::int64_t received_unix_ms) = 0;
    // Sets unix_ms = mono_ms + wall_offset_ms on this boot's rows that are still NULL, except where the
    // sum does not fit in 64 bits (those stay NULL, as in insert_readings). Returns rows changed.
    virtual std::uint64_t fill_unix_time(const DeviceKey& key, std::uint32_t boot, std::int64_t wall_offset_ms) = 0;
    virtual void save_watermark(const DeviceKey& key, std::uint64_t watermark, std::int64_t now_unix_ms) = 0;
    virtual void add_dead_letter(const Rejected& rejected, std::int64_t received_unix_ms) = 0;
    virtual void upsert_device(const DeviceStatus& status, std::int64_t received_unix_ms) = 0;
    // Appends one row of device health. Not pure: a store that keeps no health
    // data (a benchmark's null store) need not implement it.
    virtual void add_telemetry(const DeviceTelemetry& /*telemetry*/, std::int64_t /*received_unix_ms*/) {}

    // Durable when it returns (as durable as the synchronous setting makes it).
    virtual void commit() = 0;
};

class Store : public WatermarkSource {
public:
    virtual ~Store() = default;

    virtual std::unique_ptr<StoreTransaction> begin() = 0;
};

}  // namespace fieldlink::gateway
