// Where the reader keeps readings until the gateway's commit ack covers them.
// Implemented by a RAM ring (development) and by the flash spool; the reader
// core only sees this interface.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::reader {

struct StoredReading {
    std::uint64_t seq = 0;
    std::uint32_t boot = 0;  // boot counter in which the reading was taken
    protocol::Record record;
};

enum class StoreStatus : std::uint8_t {
    Ok = 0,
    Full,             // no room and the policy refuses new readings (nothing was changed)
    IoError,          // the storage medium reported a failure
    InvalidArgument,  // e.g. trim below what is already trimmed is a no-op, not this
};

// What happens when the store is full.
enum class FullPolicy : std::uint8_t {
    DropOldest = 0,  // make room by forgetting the oldest readings; each one is counted
    RefuseNew = 1,   // keep everything held; append returns Full and the caller stops sampling
};

class ReadingStore {
public:
    // Appends a reading taken in the current boot and assigns its sequence
    // number (next_seq()). Returns only after the reading is durable.
    virtual StoreStatus append(const protocol::Record& record, std::uint64_t* seq) = 0;

    // Copies up to `max` readings with seq >= from_seq in ascending seq order,
    // stopping early where the boot changes (a batch carries one boot).
    // Returns how many were copied; 0 when none is held at or after from_seq.
    virtual std::size_t read(std::uint64_t from_seq, StoredReading* out, std::size_t max) = 0;

    // Forgets every reading with seq <= through_seq (the gateway committed them).
    virtual StoreStatus trim(std::uint64_t through_seq) = 0;

    virtual std::uint64_t incarnation() const = 0;
    virtual std::uint32_t boot() const = 0;        // boot counter of the running boot
    virtual std::uint64_t oldest_seq() const = 0;  // lowest held seq; next_seq() when empty
    virtual std::uint64_t next_seq() const = 0;    // seq the next append gets (first is 1)
    virtual std::uint64_t held() const = 0;        // readings currently held
    virtual std::uint64_t dropped() const = 0;     // readings forgotten by the full policy

    // Records the wall-clock offset (unix_ms = mono_ms + offset_ms) of the
    // running boot, so that readings of this boot can still carry it after a
    // reboot. Each call may cost storage (a flash slot): call it when the boot
    // first learns its offset and again only when it moves noticeably.
    // Full: kept in RAM for now, made durable later (flash spool); IoError.
    virtual StoreStatus note_wall_offset(std::int64_t offset_ms) = 0;

    // The offset last noted for `boot` (the running one or an earlier one whose
    // readings are still held); false when that boot never noted one, or the
    // store cannot remember it (a RAM store knows only the running boot's).
    // An earlier boot's answer never changes, so callers may cache it.
    virtual bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) = 0;

protected:
    ~ReadingStore() = default;
};

}  // namespace fieldlink::reader
