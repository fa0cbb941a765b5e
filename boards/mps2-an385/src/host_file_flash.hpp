// NOR flash that survives emulator restarts: RamFlash over the spool region,
// with every completed erase and program written through to a host file by
// semihosting before the call returns. The RAM copy, loaded from the file at
// boot, stays the authority for NOR checks, so a program that would set a bit
// is still refused. Without a file it is plain RamFlash (the self-check run).
// Limits: README.md, "Persistent flash".
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/flash.hpp"
#include "ram_flash.hpp"

namespace fieldlink::boards::mps2_an385 {

class HostFileFlash final : public hal::Flash {
public:
    HostFileFlash(std::uint8_t* memory, hal::FlashGeometry geometry) noexcept
        : memory_(memory), ram_(memory, geometry) {}

    // Opens `path` on the host and loads it into the region; a missing file
    // (or the part of a file beyond its end) is erased flash (0xFF), and the
    // file is created or extended to the full size. False when the host
    // refuses: the flash then stays RAM only.
    bool attach(const char* path) noexcept;
    bool attached() const noexcept { return handle_ >= 0; }

    hal::FlashGeometry geometry() const override { return ram_.geometry(); }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override {
        return ram_.read(address, out, length);
    }
    // IoError when the host write fails: the file may then lag the RAM copy.
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override;
    hal::FlashStatus erase(std::uint32_t sector) override;
    hal::FlashCounters counters() const override { return ram_.counters(); }

private:
    hal::FlashStatus write_through(std::uint32_t address, std::size_t length) noexcept;

    std::uint8_t* memory_;
    RamFlash ram_;
    int handle_ = -1;
};

}  // namespace fieldlink::boards::mps2_an385
