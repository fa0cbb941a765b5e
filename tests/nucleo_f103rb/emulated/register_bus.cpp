#include "register_bus.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "hw_access.hpp"

namespace fieldlink::test::f103 {
namespace {

struct Slot {
    Model* model = nullptr;
    std::uintptr_t base = 0;
    std::size_t length = 0;
    std::vector<Access>* log = nullptr;
};
std::array<Slot, 4> g_slots;
std::vector<std::uint32_t> g_delays;
unsigned g_wfi = 0;

Slot* find(std::uintptr_t address) {
    for (Slot& slot : g_slots) {
        if (slot.model != nullptr && address >= slot.base && address < slot.base + slot.length) return &slot;
    }
    return nullptr;
}

}  // namespace

Attachment::Attachment(Model& model, std::uintptr_t base, std::size_t length, std::vector<Access>* log) {
    for (std::size_t i = 0; i < g_slots.size(); ++i) {
        if (g_slots[i].model == nullptr) {
            g_slots[i] = {&model, base, length, log};
            slot_ = i;
            return;
        }
    }
    throw std::logic_error("register_bus: too many models attached");
}

Attachment::~Attachment() { g_slots[slot_] = {}; }

std::vector<std::uint32_t>& delays() { return g_delays; }
unsigned& wfi_calls() { return g_wfi; }

std::string describe(const std::vector<Access>& log, const char* (*name)(std::uintptr_t)) {
    std::string text;
    char line[96];
    for (const Access& a : log) {
        if (a.kind == Access::Kind::Delay) {
            std::snprintf(line, sizeof line, "delay %u\n", static_cast<unsigned>(a.offset));
            text += line;
            continue;
        }
        const char* kind = a.kind == Access::Kind::Read ? "R" : "W";
        std::snprintf(line, sizeof line, "%s%u %s 0x%x\n", kind, a.size * 8, name(a.offset), a.value);
        text += line;
    }
    return text;
}

}  // namespace fieldlink::test::f103

namespace fieldlink::boards::nucleo_f103rb::hw {

using test::f103::Access;

namespace {

std::uint32_t read(std::uintptr_t address, unsigned size) {
    if (auto* slot = test::f103::find(address)) {
        const std::uint32_t value = slot->model->on_read(address - slot->base, size);
        if (slot->log != nullptr) slot->log->push_back({Access::Kind::Read, address - slot->base, value, size});
        return value;
    }
    std::uint32_t value = 0;
    std::memcpy(&value, reinterpret_cast<const void*>(address), size);
    return value;
}

void write(std::uintptr_t address, std::uint32_t value, unsigned size) {
    if (auto* slot = test::f103::find(address)) {
        if (slot->log != nullptr) slot->log->push_back({Access::Kind::Write, address - slot->base, value, size});
        slot->model->on_write(address - slot->base, value, size);
        return;
    }
    std::memcpy(reinterpret_cast<void*>(address), &value, size);
}

}  // namespace

std::uint32_t read32(std::uintptr_t address) noexcept { return read(address, 4); }
void write32(std::uintptr_t address, std::uint32_t value) noexcept { write(address, value, 4); }
std::uint16_t read16(std::uintptr_t address) noexcept { return static_cast<std::uint16_t>(read(address, 2)); }
void write16(std::uintptr_t address, std::uint16_t value) noexcept { write(address, value, 2); }
void delay_cycles(std::uint32_t cycles) noexcept {
    test::f103::g_delays.push_back(cycles);
    // In every attached log, so a test sees where in a sequence the delay fell.
    for (auto& slot : test::f103::g_slots) {
        if (slot.model != nullptr && slot.log != nullptr) slot.log->push_back({Access::Kind::Delay, cycles, 0, 0});
    }
}
void wait_for_interrupt() noexcept { ++test::f103::g_wfi; }
IrqLock::IrqLock() noexcept {}

}  // namespace fieldlink::boards::nucleo_f103rb::hw
