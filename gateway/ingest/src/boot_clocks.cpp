#include "fieldlink/gateway/ingest/boot_clocks.hpp"

namespace fieldlink::gateway {

std::optional<std::int64_t> BootClocks::offset_for(const DeviceKey& key, std::uint32_t boot) const {
    const auto* boots = offsets_.peek(key);
    if (boots == nullptr) return std::nullopt;
    const auto found = boots->find(boot);
    if (found == boots->end()) return std::nullopt;
    return found->second;
}

bool BootClocks::learn(const DeviceKey& key, std::uint32_t boot, std::int64_t offset_ms) {
    auto* found = offsets_.find(key);
    auto& boots = found != nullptr ? *found : offsets_.insert_or_assign(key, std::map<std::uint32_t, std::int64_t>{});
    const bool is_new = boots.insert_or_assign(boot, offset_ms).second;
    // Boot counters only grow, so the smallest is the oldest.
    while (boots.size() > kBootsPerIncarnation) boots.erase(boots.begin());
    return is_new;
}

void BootClocks::merge(const BootClocks& other) {
    other.offsets_.for_each([this](const DeviceKey& key, const std::map<std::uint32_t, std::int64_t>& boots) {
        for (const auto& [boot, offset] : boots) learn(key, boot, offset);
    });
}

}  // namespace fieldlink::gateway
