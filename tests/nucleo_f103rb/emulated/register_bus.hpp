// The bus the emulated hw_access.hpp routes to: each model owns a block of
// RAM (its registers, or the flash array) and sees every access to it, in
// order, so a test can check exact register sequences. Accesses outside any
// model go to plain memory (as when the drivers copy from flash).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fieldlink::test::f103 {

struct Access {
    enum class Kind : std::uint8_t { Read, Write, Delay };
    Kind kind;
    std::uintptr_t offset;  // from the model's base (Delay: cycles)
    std::uint32_t value;    // read: what the model returned
    unsigned size;          // bytes: 2 or 4
};

class Model {
public:
    virtual ~Model() = default;
    virtual std::uint32_t on_read(std::uintptr_t offset, unsigned size) = 0;
    virtual void on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) = 0;
};

// Registers `model` for [base, base + length) until the returned token's
// destructor runs; at most a few at once.
class Attachment {
public:
    Attachment(Model& model, std::uintptr_t base, std::size_t length, std::vector<Access>* log = nullptr);
    ~Attachment();
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;

private:
    std::size_t slot_;
};

// Delays (hw::delay_cycles) and wait_for_interrupt calls since the start.
std::vector<std::uint32_t>& delays();
unsigned& wfi_calls();

// "W CR 0x1" style text of a log, for readable failures.
std::string describe(const std::vector<Access>& log, const char* (*name)(std::uintptr_t));

}  // namespace fieldlink::test::f103
