// The STM32F103's internal flash as the spool's hal::Flash: a run of 1 KiB
// pages at the end of the flash, programmed through the flash program/erase
// controller (FPEC, PM0075 §2.3): unlock with the key sequence, page erase,
// half-word program, wait for BSY, check PGERR/WRPRTERR/EOP, lock again.
//
// The FPEC programs half-words only and refuses (PGERR) any half-word that is
// not 0xFFFF, even to clear more bits; the spool programs every byte once,
// after erasing (firmware/spool/README.md, "Flash model"), so write_size 2
// satisfies it. program() checks the range first and returns NotErased, with
// nothing written, for any half-word that is neither erased nor already the
// value asked for.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fieldlink/hal/flash.hpp"

namespace fieldlink::boards::nucleo_f103rb {

class F103Flash final : public hal::Flash {
public:
    struct Config {
        std::uintptr_t controller = 0;   // FPEC registers (kFlashInterfaceBase)
        std::uintptr_t first_page = 0;   // address of the first page given to the spool
        std::uint32_t page_size = 1024;  // bytes
        std::uint32_t page_count = 0;
        // BSY polls before an operation counts as hung (IoError). An erase
        // takes at most 40 ms, about 0.4 M polls at 64 MHz; this is 25 times that.
        std::uint32_t busy_poll_limit = 10'000'000;
    };

    // Why the last failed operation failed, for logs and tests.
    enum class Fault : std::uint8_t {
        None = 0,
        Busy,          // BSY stayed set past busy_poll_limit
        ProgramError,  // PGERR: the half-word was not erased
        WriteProtect,  // WRPRTERR: the page is write-protected (option bytes)
        NoEndOfOp,     // BSY cleared without EOP or an error flag
        VerifyFailed,  // the flash reads back other than programmed / erased
        Locked,        // the FPEC stayed locked after the key sequence
    };

    explicit F103Flash(const Config& config) noexcept : config_(config) {}

    hal::FlashGeometry geometry() const override { return {config_.page_size, config_.page_count, kWriteSize}; }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override;
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override;
    hal::FlashStatus erase(std::uint32_t sector) override;
    hal::FlashCounters counters() const override { return counters_; }

    Fault last_fault() const noexcept { return fault_; }

    static constexpr std::uint32_t kWriteSize = 2;

private:
    bool in_range(std::uint32_t address, std::size_t length) const noexcept;
    bool unlock() noexcept;
    void lock() noexcept;
    // Reads SR after an operation, clears its flags; Ok or IoError (fault_ set).
    hal::FlashStatus check_result(std::uint32_t sr) noexcept;

    Config config_;
    hal::FlashCounters counters_{};
    Fault fault_ = Fault::None;
};

}  // namespace fieldlink::boards::nucleo_f103rb
