// The gateway's half of the time rule (docs/protocol.md §7):
//
//   A reading's unix_ms is mono_ms + wall_offset_ms of its boot, as soon as
//   the device knew that offset at any point of the boot. Until then it is NULL.
//
// The device sends the offset with each batch once it has learnt it from a
// commit ack. So a batch that carries a known offset also fixes every earlier
// reading of the same (device, incarnation, boot), and a later batch of that
// boot that arrives without one (out-of-order redelivery) uses it too.
// BootClocks remembers the offsets learnt in this process run, in memory only,
// for the max_incarnations (device, incarnation)s that learnt one most recently.
// Forgetting one has the same effect as a gateway restart has for all of them:
// its rows stored without an offset wait for the next batch of their boot that
// carries it, and that batch fills them again (fill_unix_time only touches
// NULL rows, so nothing already filled moves).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>

#include "fieldlink/gateway/ingest/lru_map.hpp"
#include "fieldlink/gateway/store/keys.hpp"

namespace fieldlink::gateway {

class BootClocks {
public:
    // Boots remembered per (device, incarnation); older boots are forgotten
    // (their readings keep what they have; a new batch of such a boot re-learns).
    static constexpr std::size_t kBootsPerIncarnation = 8;
    static constexpr std::size_t kDefaultMaxIncarnations = 10000;

    // Throws std::invalid_argument when max_incarnations is 0.
    explicit BootClocks(std::size_t max_incarnations = kDefaultMaxIncarnations) : offsets_(max_incarnations) {}

    // Only looks: recency is that of learn(), which every batch carrying an offset calls.
    std::optional<std::int64_t> offset_for(const DeviceKey& key, std::uint32_t boot) const;
    // Records (or updates) the offset of a boot and makes the incarnation the most
    // recently used. Returns true when this object did not know the boot before,
    // i.e. its earlier NULL rows need filling.
    bool learn(const DeviceKey& key, std::uint32_t boot, std::int64_t offset_ms);
    // Takes over everything `other` learnt (its most recent incarnation ends up most recent here).
    void merge(const BootClocks& other);

    // (device, incarnation)s remembered; at most max_incarnations.
    std::size_t size() const noexcept { return offsets_.size(); }

private:
    LruMap<DeviceKey, std::map<std::uint32_t, std::int64_t>> offsets_;
};

}  // namespace fieldlink::gateway
