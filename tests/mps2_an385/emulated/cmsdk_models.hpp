// Register models of what the board's UART driver touches: the CMSDK APB UART
// (Arm DDI 0479, "APB UART" programmers model) and the Cortex-M3 NVIC's first
// enable/pending words (ARMv7-M ARM B3.4). They react like the hardware
// (one-byte buffers, full flags, overrun, write-1-to-clear) and record in
// `errors` what the hardware would punish or silently lose.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "register_bus.hpp"

namespace fieldlink::test::mps2 {

namespace uart {
inline constexpr std::uintptr_t kData = 0x000;
inline constexpr std::uintptr_t kState = 0x004;
inline constexpr std::uintptr_t kCtrl = 0x008;
inline constexpr std::uintptr_t kIntStatus = 0x00C;  // write: INTCLEAR
inline constexpr std::uintptr_t kBaudDiv = 0x010;
inline constexpr std::uintptr_t kSize = 0x1000;

inline constexpr std::uint32_t kStateTxFull = 1u << 0;
inline constexpr std::uint32_t kStateRxFull = 1u << 1;
inline constexpr std::uint32_t kStateTxOverrun = 1u << 2;
inline constexpr std::uint32_t kStateRxOverrun = 1u << 3;
inline constexpr std::uint32_t kCtrlTxEn = 1u << 0;
inline constexpr std::uint32_t kCtrlRxEn = 1u << 1;
inline constexpr std::uint32_t kCtrlTxIntEn = 1u << 2;
inline constexpr std::uint32_t kCtrlRxIntEn = 1u << 3;
inline constexpr std::uint32_t kCtrlTxOverrunIntEn = 1u << 4;
inline constexpr std::uint32_t kCtrlRxOverrunIntEn = 1u << 5;
inline constexpr std::uint32_t kIntTx = 1u << 0;
inline constexpr std::uint32_t kIntRx = 1u << 1;
inline constexpr std::uint32_t kIntTxOverrun = 1u << 2;
inline constexpr std::uint32_t kIntRxOverrun = 1u << 3;
}  // namespace uart

class CmsdkUartModel final : public Device {
public:
    // The line side. transmit(): the byte in the TX buffer moves on (into
    // `sent`), the buffer empties and, with TX interrupts on, TXINT rises;
    // false when the buffer was empty. receive(): a byte arrives; with the RX
    // buffer still full that is an overrun, and the new byte replaces the
    // unread one (as QEMU's model does); ignored with the receiver off.
    bool transmit();
    void receive(std::uint8_t byte);

    bool tx_line() const { return (intstatus_ & uart::kIntTx) != 0; }
    bool rx_line() const { return (intstatus_ & uart::kIntRx) != 0; }
    std::uint32_t state() const { return state_; }
    std::uint32_t ctrl() const { return ctrl_; }
    std::uint32_t intstatus() const { return intstatus_; }
    std::uint32_t bauddiv() const { return bauddiv_; }

    std::vector<std::uint8_t> sent;
    std::vector<std::string> errors;

    std::uint32_t on_read(std::uintptr_t offset) override;
    void on_write(std::uintptr_t offset, std::uint32_t value) override;

private:
    std::uint32_t state_ = 0;
    std::uint32_t ctrl_ = 0;
    std::uint32_t intstatus_ = 0;
    std::uint32_t bauddiv_ = 0;
    std::uint8_t tx_buffer_ = 0;
    std::uint8_t rx_buffer_ = 0;
};

// ISER0/ICER0/ISPR0/ICPR0 (IRQs 0 to 31), mapped at 0xE000E100.
class NvicModel final : public Device {
public:
    static constexpr std::uintptr_t kBase = 0xE000'E100;
    static constexpr std::uintptr_t kSize = 0x200;
    static constexpr std::uintptr_t kIser = 0x000;
    static constexpr std::uintptr_t kIcer = 0x080;
    static constexpr std::uintptr_t kIspr = 0x100;
    static constexpr std::uintptr_t kIcpr = 0x180;

    std::uint32_t enabled = 0;
    std::uint32_t pending = 0;
    std::vector<std::string> errors;

    bool is_enabled(unsigned irq) const { return ((enabled >> irq) & 1u) != 0; }

    std::uint32_t on_read(std::uintptr_t offset) override;
    void on_write(std::uintptr_t offset, std::uint32_t value) override;
};

}  // namespace fieldlink::test::mps2
