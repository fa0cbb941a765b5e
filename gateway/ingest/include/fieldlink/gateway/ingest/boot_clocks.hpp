// The gateway's half of the time rule (DESIGN.md §3, docs/protocol.md §3):
//
//   A reading's unix_ms is mono_ms + wall_offset_ms of its boot, as soon as
//   the device knew that offset at any point of the boot. Until then it is NULL.
//
// The device sends the offset with each batch once it has learnt it from a
// commit ack. So a batch that carries a known offset also fixes every earlier
// reading of the same (device, incarnation, boot), and a later batch of that
// boot that arrives without one (out-of-order redelivery) uses it too.
// BootClocks remembers the offsets learnt in this process run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>

#include "fieldlink/gateway/ingest/watermark.hpp"

namespace fieldlink::gateway {

class BootClocks {
public:
    // Boots remembered per (device, incarnation); older boots are forgotten
    // (their readings keep what they have; a new batch of such a boot re-learns).
    static constexpr std::size_t kBootsPerIncarnation = 8;

    std::optional<std::int64_t> offset_for(const DeviceKey& key, std::uint32_t boot) const;
    // Records (or updates) the offset of a boot. Returns true when this object
    // did not know the boot before, i.e. its earlier NULL rows need filling.
    bool learn(const DeviceKey& key, std::uint32_t boot, std::int64_t offset_ms);
    // Takes over everything `other` learnt.
    void merge(const BootClocks& other);

private:
    std::map<DeviceKey, std::map<std::uint32_t, std::int64_t>> offsets_;
};

}  // namespace fieldlink::gateway
