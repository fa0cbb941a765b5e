#include "cmsdk_uart.hpp"

#include "registers.hpp"

namespace fieldlink::boards::mps2_an385 {
namespace {

// Register offsets and bits (DDI 0479, APB UART programmers model).
constexpr std::uintptr_t kData = 0x000;
constexpr std::uintptr_t kState = 0x004;
constexpr std::uintptr_t kCtrl = 0x008;
constexpr std::uintptr_t kIntStatus = 0x00C;  // read: status; write 1s: clear (INTCLEAR)
constexpr std::uintptr_t kBaudDiv = 0x010;

constexpr std::uint32_t kStateRxFull = 1u << 1;
constexpr std::uint32_t kStateRxOverrun = 1u << 3;
constexpr std::uint32_t kCtrlTxEnable = 1u << 0;
constexpr std::uint32_t kCtrlRxEnable = 1u << 1;
constexpr std::uint32_t kCtrlTxInterrupt = 1u << 2;
constexpr std::uint32_t kCtrlRxInterrupt = 1u << 3;
constexpr std::uint32_t kIntTx = 1u << 0;
constexpr std::uint32_t kIntRx = 1u << 1;
constexpr std::uint32_t kMinBaudDiv = 16;  // the UART needs at least 16 clocks per bit

static_assert((CmsdkUart::kTxCapacity & (CmsdkUart::kTxCapacity - 1)) == 0);
static_assert((CmsdkUart::kRxCapacity & (CmsdkUart::kRxCapacity - 1)) == 0);

CmsdkUart g_uart0;

}  // namespace

CmsdkUart& uart0() noexcept { return g_uart0; }

std::uint32_t CmsdkUart::load(std::uintptr_t offset) const noexcept { return read32(base_ + offset); }
void CmsdkUart::store(std::uintptr_t offset, std::uint32_t value) const noexcept { write32(base_ + offset, value); }

void CmsdkUart::start(const Config& config) noexcept {
    base_ = config.base;
    std::uint32_t divisor = config.clock_hz / config.baud;
    if (divisor < kMinBaudDiv) divisor = kMinBaudDiv;
    store(kCtrl, 0);
    store(kIntStatus, kIntTx | kIntRx);
    store(kBaudDiv, divisor);
    store(kCtrl, kCtrlTxEnable | kCtrlRxEnable | kCtrlTxInterrupt | kCtrlRxInterrupt);
    const std::uint32_t irqs = (1u << config.rx_irq) | (1u << config.tx_irq);
    write32(kNvicIcpr0, irqs);  // drop anything pending from before
    write32(kNvicIser0, irqs);
}

void CmsdkUart::send_next() noexcept {
    if (tx_tail_ == tx_head_) {
        tx_busy_ = false;
        return;
    }
    tx_busy_ = true;
    const std::uint32_t tail = tx_tail_;
    store(kData, tx_[tail % kTxCapacity]);
    tx_tail_ = tail + 1;
}

std::size_t CmsdkUart::write_some(const std::uint8_t* data, std::size_t length) noexcept {
    std::size_t queued = 0;
    const IrqLock lock;
    while (queued < length && tx_head_ - tx_tail_ < kTxCapacity) {
        const std::uint32_t head = tx_head_;
        tx_[head % kTxCapacity] = data[queued++];
        tx_head_ = head + 1;
    }
    // An idle transmitter raises no interrupt: the first byte starts it.
    if (!tx_busy_) send_next();
    return queued;
}

std::size_t CmsdkUart::write(const std::uint8_t* data, std::size_t length) noexcept {
    const std::size_t queued = write_some(data, length);
    const IrqLock lock;
    tx_dropped_ = tx_dropped_ + static_cast<std::uint32_t>(length - queued);
    return queued;
}

std::size_t CmsdkUart::write(const char* text) noexcept {
    std::size_t length = 0;
    while (text[length] != '\0') ++length;
    return write(reinterpret_cast<const std::uint8_t*>(text), length);
}

std::size_t CmsdkUart::read(std::uint8_t* out, std::size_t capacity) noexcept {
    std::size_t copied = 0;
    while (copied < capacity && rx_tail_ != rx_head_) {
        const std::uint32_t tail = rx_tail_;
        out[copied++] = rx_[tail % kRxCapacity];
        rx_tail_ = tail + 1;
    }
    return copied;
}

bool CmsdkUart::tx_idle() const noexcept {
    const IrqLock lock;
    return !tx_busy_ && tx_head_ == tx_tail_;
}

CmsdkUart::Counters CmsdkUart::counters() const noexcept { return {tx_dropped_, rx_dropped_}; }

void CmsdkUart::on_tx_interrupt() noexcept {
    store(kIntStatus, kIntTx);
    send_next();
}

void CmsdkUart::on_rx_interrupt() noexcept {
    store(kIntStatus, kIntRx);
    if ((load(kState) & kStateRxOverrun) != 0) {
        store(kState, kStateRxOverrun);  // write 1 to clear
        rx_dropped_ = rx_dropped_ + 1;
    }
    while ((load(kState) & kStateRxFull) != 0) {
        const auto byte = static_cast<std::uint8_t>(load(kData));
        const std::uint32_t head = rx_head_;
        if (head - rx_tail_ < kRxCapacity) {
            rx_[head % kRxCapacity] = byte;
            rx_head_ = head + 1;
        } else {
            rx_dropped_ = rx_dropped_ + 1;
        }
    }
}

}  // namespace fieldlink::boards::mps2_an385
