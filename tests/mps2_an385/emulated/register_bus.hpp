// The bus behind the emulated hw_access.hpp: devices claim address ranges
// (their real addresses; nothing is dereferenced), see every access, and the
// bus keeps one log of all of them in order, so a test can check exact
// register sequences across devices. An access no device claims is an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fieldlink::test::mps2 {

struct Access {
    bool write;
    std::uintptr_t address;
    std::uint32_t value;  // read: what the device returned
};

class Device {
public:
    virtual ~Device() = default;
    virtual std::uint32_t on_read(std::uintptr_t offset) = 0;
    virtual void on_write(std::uintptr_t offset, std::uint32_t value) = 0;
};

// `device` answers [base, base + length) until this is destroyed.
class Mapping {
public:
    Mapping(Device& device, std::uintptr_t base, std::size_t length);
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

private:
    std::size_t slot_;
};

struct BusState {
    std::vector<Access> log;
    std::vector<std::string> errors;  // unmapped accesses
    int lock_depth = 0;               // IrqLock nesting now
    unsigned locks = 0;               // IrqLocks taken
    unsigned wfi_calls = 0;
};
BusState& bus();
void reset_bus();

}  // namespace fieldlink::test::mps2
