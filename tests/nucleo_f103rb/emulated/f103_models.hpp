// Register models of the STM32F103 peripherals the board drives, after
// PM0075 (flash controller) and RM0008 §27 (USART), §11 (ADC). Each keeps its
// registers in a RAM block that the drivers get as their base address, reacts
// to accesses like the hardware (key sequence, BSY, flags, RXNE/ORE, EOC), and
// records misuse the hardware would punish in `errors`.
#pragma once

#include <array>
#include <memory>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "register_bus.hpp"

namespace fieldlink::test::f103 {

class FlashControllerModel final : public Model {
public:
    static constexpr std::uint32_t kPageSize = 1024;
    static constexpr std::uint32_t kPages = 4;

    FlashControllerModel();

    std::uintptr_t registers() const { return reinterpret_cast<std::uintptr_t>(regs_.data()); }
    std::uintptr_t memory() const { return reinterpret_cast<std::uintptr_t>(memory_.data()); }
    std::uint8_t* bytes() { return memory_.data(); }

    // Registers the controller at registers() and the array at memory().
    void attach(std::vector<Access>* register_log);

    std::uint32_t busy_polls = 3;             // SR reads that still show BSY after an operation starts
    bool stuck_busy = false;                  // BSY never clears
    int fail_program_at = -1;                 // the n-th half-word program (0-based) ends with PGERR
    std::set<std::uint32_t> protected_pages;  // WRPRTERR on program or erase
    std::vector<std::string> errors;          // misuse: bus errors, writes while busy, ...
    unsigned programs = 0;                    // half-word programs started

    std::uint32_t cr() const { return regs_[4]; }
    std::uint32_t sr() const { return regs_[3]; }

    std::uint32_t on_read(std::uintptr_t offset, unsigned size) override;
    void on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) override;

private:
    struct MemoryPort final : Model {
        FlashControllerModel* owner = nullptr;
        std::uint32_t on_read(std::uintptr_t offset, unsigned size) override;
        void on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) override;
    };
    enum class Pending { None, Program, Erase };

    void finish();
    bool locked() const { return (regs_[4] & (1u << 7)) != 0; }
    bool busy() const { return (regs_[3] & 1u) != 0; }
    void start(Pending op);

    std::array<std::uint32_t, 9> regs_{};
    std::array<std::uint8_t, kPageSize * kPages> memory_{};
    MemoryPort port_;
    unsigned key_step_ = 0;    // 0: expect KEY1, 1: expect KEY2
    bool key_locked_ = false;  // a wrong key: locked until reset
    Pending pending_ = Pending::None;
    std::uint32_t pending_offset_ = 0;
    std::uint16_t pending_value_ = 0;
    std::uint32_t polls_left_ = 0;
    std::vector<std::unique_ptr<Attachment>> attachments_;
};

class UsartModel final : public Model {
public:
    UsartModel();
    std::uintptr_t base() const { return reinterpret_cast<std::uintptr_t>(regs_.data()); }

    // A byte arrives on RX: RXNE, or ORE when the last one was not read yet
    // (then the new byte is lost and DR keeps the old one, §27.6.1).
    void receive(std::uint8_t byte, bool framing_error = false);

    std::uint32_t reg(std::uintptr_t offset) const { return regs_[offset / 4]; }
    std::vector<std::uint8_t> sent;
    std::vector<std::string> errors;

    std::uint32_t on_read(std::uintptr_t offset, unsigned size) override;
    void on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) override;

private:
    std::array<std::uint32_t, 7> regs_{};
    bool sr_read_ = false;  // SR was read since the last DR read (the clear sequence)
};

class AdcModel final : public Model {
public:
    AdcModel();
    std::uintptr_t base() const { return reinterpret_cast<std::uintptr_t>(regs_.data()); }

    std::uint32_t reg(std::uintptr_t offset) const { return regs_[offset / 4]; }
    std::array<std::uint16_t, 18> value{};  // what a conversion of each channel gives
    std::uint32_t calibration_polls = 2;    // CR2 reads before RSTCAL / CAL clear
    bool stuck_calibration = false;
    std::uint32_t conversion_polls = 2;  // SR reads before EOC
    bool stuck_conversion = false;
    unsigned conversions = 0;
    std::vector<std::string> errors;

    std::uint32_t on_read(std::uintptr_t offset, unsigned size) override;
    void on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) override;

private:
    std::array<std::uint32_t, 20> regs_{};
    bool powered_ = false;
    std::size_t delays_at_power_up_ = 0;
    bool calibrated_ = false;
    std::uint32_t cal_left_ = 0;
    std::uint32_t eoc_left_ = 0;
    bool converting_ = false;
    unsigned channel_ = 0;
};

}  // namespace fieldlink::test::f103
