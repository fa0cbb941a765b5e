// NOR flash over a region of memory: erase sets a sector to 0xFF, program only
// clears bits (refuses to set one, like a real part that would corrupt it).
// The region does not survive a restart of the emulator yet.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/flash.hpp"

namespace fieldlink::boards::mps2_an385 {

class RamFlash final : public hal::Flash {
public:
    // `memory` must hold geometry.size() bytes and outlive the object.
    RamFlash(std::uint8_t* memory, hal::FlashGeometry geometry) noexcept : memory_(memory), geometry_(geometry) {}

    hal::FlashGeometry geometry() const override { return geometry_; }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override;
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override;
    hal::FlashStatus erase(std::uint32_t sector) override;
    hal::FlashCounters counters() const override { return counters_; }

private:
    bool in_range(std::uint32_t address, std::size_t length) const noexcept;

    std::uint8_t* memory_;
    hal::FlashGeometry geometry_;
    hal::FlashCounters counters_;
};

}  // namespace fieldlink::boards::mps2_an385
