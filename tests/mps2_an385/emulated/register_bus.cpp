#include "register_bus.hpp"

#include <array>
#include <cstdio>
#include <stdexcept>

#include "hw_access.hpp"

namespace fieldlink::test::mps2 {
namespace {

struct Slot {
    Device* device = nullptr;
    std::uintptr_t base = 0;
    std::size_t length = 0;
};
std::array<Slot, 4> g_slots;
BusState g_bus;

Slot* find(std::uintptr_t address) {
    for (Slot& slot : g_slots) {
        if (slot.device != nullptr && address >= slot.base && address - slot.base < slot.length) return &slot;
    }
    return nullptr;
}

void unmapped(const char* kind, std::uintptr_t address) {
    char text[64];
    std::snprintf(text, sizeof text, "%s of unmapped 0x%llx", kind, static_cast<unsigned long long>(address));
    g_bus.errors.emplace_back(text);
}

}  // namespace

Mapping::Mapping(Device& device, std::uintptr_t base, std::size_t length) {
    for (std::size_t i = 0; i < g_slots.size(); ++i) {
        if (g_slots[i].device == nullptr) {
            g_slots[i] = {&device, base, length};
            slot_ = i;
            return;
        }
    }
    throw std::logic_error("register_bus: too many devices mapped");
}

Mapping::~Mapping() { g_slots[slot_] = {}; }

BusState& bus() { return g_bus; }
void reset_bus() { g_bus = {}; }

}  // namespace fieldlink::test::mps2

namespace fieldlink::boards::mps2_an385 {

using test::mps2::g_bus;

std::uint32_t read32(std::uintptr_t address) noexcept {
    auto* slot = test::mps2::find(address);
    if (slot == nullptr) {
        test::mps2::unmapped("read", address);
        return 0;
    }
    const std::uint32_t value = slot->device->on_read(address - slot->base);
    g_bus.log.push_back({false, address, value});
    return value;
}

void write32(std::uintptr_t address, std::uint32_t value) noexcept {
    auto* slot = test::mps2::find(address);
    if (slot == nullptr) {
        test::mps2::unmapped("write", address);
        return;
    }
    g_bus.log.push_back({true, address, value});
    slot->device->on_write(address - slot->base, value);
}

void wait_for_interrupt() noexcept { ++g_bus.wfi_calls; }

IrqLock::IrqLock() noexcept {
    ++g_bus.lock_depth;
    ++g_bus.locks;
}
IrqLock::~IrqLock() { --g_bus.lock_depth; }

}  // namespace fieldlink::boards::mps2_an385
