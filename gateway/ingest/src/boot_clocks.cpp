#include "fieldlink/gateway/ingest/boot_clocks.hpp"

namespace fieldlink::gateway {

std::optional<std::int64_t> BootClocks::offset_for(const DeviceKey& key, std::uint32_t boot) const {
    const auto device = offsets_.find(key);
    if (device == offsets_.end()) return std::nullopt;
    const auto found = device->second.find(boot);
    if (found == device->second.end()) return std::nullopt;
    return found->second;
}

bool BootClocks::learn(const DeviceKey& key, std::uint32_t boot, std::int64_t offset_ms) {
    auto& boots = offsets_[key];
    const bool is_new = boots.insert_or_assign(boot, offset_ms).second;
    // Boot counters only grow, so the smallest is the oldest.
    while (boots.size() > kBootsPerIncarnation) boots.erase(boots.begin());
    return is_new;
}

void BootClocks::merge(const BootClocks& other) {
    for (const auto& [key, boots] : other.offsets_) {
        for (const auto& [boot, offset] : boots) learn(key, boot, offset);
    }
}

}  // namespace fieldlink::gateway
