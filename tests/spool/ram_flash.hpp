// Test fakes for the flash HAL: a RAM flash with NOR semantics, and a wrapper
// that cuts the power at a chosen operation, optionally leaving it torn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fieldlink/hal/flash.hpp"
#include "fieldlink/hal/random.hpp"

namespace fieldlink::testing {

// Flash in RAM. Starts erased (0xFF). Rejects programming a 1 over a 0
// (NotErased), misaligned programs and out-of-range access, and counts erases
// per sector so tests can check wear spreading.
class RamFlash final : public hal::Flash {
public:
    explicit RamFlash(hal::FlashGeometry geometry);

    hal::FlashGeometry geometry() const override { return geometry_; }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override;
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override;
    hal::FlashStatus erase(std::uint32_t sector) override;
    hal::FlashCounters counters() const override { return counters_; }

    std::uint64_t erase_count(std::uint32_t sector) const { return erase_counts_.at(sector); }
    // Raw contents, for tests that inspect or corrupt the flash directly.
    std::vector<std::uint8_t>& bytes() { return bytes_; }
    const std::vector<std::uint8_t>& bytes() const { return bytes_; }

private:
    hal::FlashGeometry geometry_;
    std::vector<std::uint8_t> bytes_;
    std::vector<std::uint64_t> erase_counts_;
    hal::FlashCounters counters_;
};

// What happens to the operation at which the power is cut.
enum class CutMode : std::uint8_t {
    Skip,      // the operation does not happen at all
    Torn,      // part of it happens: a program writes a prefix of its units and
               // some bits of the next; an erase resets a prefix or a suffix of
               // the sector, or sets random bits all over it
    Complete,  // it happens completely, but the power fails before it returns
};

const char* to_string(CutMode mode);

// Wraps another flash. Counts program and erase operations (0, 1, 2, ...);
// when the armed operation comes, applies the cut mode and from then on
// fails every call (reads too) with IoError, as a device without power would.
class FaultFlash final : public hal::Flash {
public:
    explicit FaultFlash(hal::Flash& inner) : inner_(inner) {}

    void cut_power_at(std::uint64_t operation, CutMode mode, std::uint64_t seed);
    void power_off() { powered_ = false; }  // from now on every call fails
    // Makes only the read with this index (0, 1, 2, ...) fail, as a glitch on
    // the bus would; everything else keeps working.
    void fail_read_at(std::uint64_t read) {
        read_fault_armed_ = true;
        fail_read_ = read;
    }
    bool read_failed() const { return read_failed_; }
    std::uint64_t reads() const { return reads_; }
    bool powered() const { return powered_; }

    // The operation that the cut hit, and whether it changed the flash at all.
    struct CutReport {
        bool erase = false;
        std::uint32_t address = 0;  // sector number for an erase
        std::size_t length = 0;
        bool changed = false;
        std::vector<std::uint8_t> data;  // what the program meant to write
    };
    const CutReport& cut_report() const { return report_; }
    std::uint64_t operations() const { return operations_; }  // program + erase calls so far

    hal::FlashGeometry geometry() const override { return inner_.geometry(); }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override;
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override;
    hal::FlashStatus erase(std::uint32_t sector) override;
    hal::FlashCounters counters() const override { return inner_.counters(); }

private:
    bool cut_now();
    std::uint64_t next_random();
    void tear_program(std::uint32_t address, const std::uint8_t* data, std::size_t length);
    void tear_erase(std::uint32_t sector);
    std::vector<std::uint8_t> snapshot();

    hal::Flash& inner_;
    bool powered_ = true;
    bool armed_ = false;
    std::uint64_t operations_ = 0;
    std::uint64_t cut_at_ = 0;
    CutMode mode_ = CutMode::Skip;
    std::uint64_t random_state_ = 0;
    CutReport report_;
    bool read_fault_armed_ = false;
    bool read_failed_ = false;
    std::uint64_t fail_read_ = 0;
    std::uint64_t reads_ = 0;
};

// Deterministic hal::Random for tests (splitmix64).
class SeededRandom final : public hal::Random {
public:
    explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
    std::uint32_t next_u32() override { return static_cast<std::uint32_t>(next_u64() >> 32); }
    std::uint64_t next_u64() override;

private:
    std::uint64_t state_;
};

}  // namespace fieldlink::testing
