#include "f103_usart.hpp"

#include "f103_registers.hpp"
#include "hw_access.hpp"
#include "ramfunc.hpp"

namespace fieldlink::boards::nucleo_f103rb {

using namespace usart;

static_assert((F103Usart::kRxCapacity & (F103Usart::kRxCapacity - 1)) == 0);
static_assert((F103Usart::kTxCapacity & (F103Usart::kTxCapacity - 1)) == 0);

UsartStatus F103Usart::start(const Config& config) noexcept {
    const std::uint32_t brr = brr_for(config.clock_hz, config.baud);
    if (brr == 0) return UsartStatus::InvalidArgument;
    base_ = config.base;
    rx_head_ = 0;
    rx_tail_ = 0;
    tx_head_ = 0;
    tx_tail_ = 0;
    hw::write32(base_ + kCr1, 0);  // UE off while configuring (§27.3.2)
    hw::write32(base_ + kCr2, 0);  // 1 stop bit
    hw::write32(base_ + kCr3, 0);  // no flow control, no DMA
    hw::write32(base_ + kBrr, brr);
    // M = 0 (8 data bits), no parity; TXEIE only while bytes are queued.
    hw::write32(base_ + kCr1, kCr1Ue | kCr1Te | kCr1Re | kCr1Rxneie);
    return UsartStatus::Ok;
}

std::size_t F103Usart::write(const std::uint8_t* data, std::size_t length) noexcept {
    std::size_t queued = 0;
    const hw::IrqLock lock;
    while (queued < length && tx_head_ - tx_tail_ < kTxCapacity) {
        const std::uint32_t head = tx_head_;
        tx_[head % kTxCapacity] = data[queued++];
        tx_head_ = head + 1;
    }
    tx_dropped_ += static_cast<std::uint32_t>(length - queued);
    // TXE is set whenever the data register is empty: enabling its interrupt
    // starts the transmission, and the handler turns it off when done.
    if (queued != 0) hw::write32(base_ + kCr1, hw::read32(base_ + kCr1) | kCr1Txeie);
    return queued;
}

std::size_t F103Usart::read(std::uint8_t* out, std::size_t capacity) noexcept {
    std::size_t copied = 0;
    while (copied < capacity && rx_tail_ != rx_head_) {
        const std::uint32_t tail = rx_tail_;
        out[copied++] = rx_[tail % kRxCapacity];
        rx_tail_ = tail + 1;
    }
    return copied;
}

std::size_t F103Usart::rx_available() const noexcept { return rx_head_ - rx_tail_; }

std::size_t F103Usart::tx_free() const noexcept { return kTxCapacity - (tx_head_ - tx_tail_); }

bool F103Usart::tx_idle() const noexcept { return tx_head_ == tx_tail_ && (hw::read32(base_ + kSr) & kSrTc) != 0; }

F103Usart::Counters F103Usart::counters() const noexcept {
    const hw::IrqLock lock;
    return {rx_overruns_, rx_dropped_, rx_errors_, tx_dropped_};
}

FIELDLINK_F103_RAMFUNC void F103Usart::on_interrupt() noexcept {
    const std::uint32_t sr = hw::read32(base_ + kSr);
    // RXNEIE also raises the interrupt on ORE. Reading SR and then DR clears
    // RXNE, ORE, NE, FE and PE together (§27.6.1); with ORE the byte in DR is
    // the one before the lost one(s), still valid.
    if ((sr & (kSrRxne | kSrOre)) != 0) {
        const auto byte = static_cast<std::uint8_t>(hw::read32(base_ + kDr));
        if ((sr & kSrOre) != 0) rx_overruns_ = rx_overruns_ + 1;
        if ((sr & (kSrFe | kSrNe | kSrPe)) != 0) rx_errors_ = rx_errors_ + 1;
        const std::uint32_t head = rx_head_;
        if (head - rx_tail_ < kRxCapacity) {
            rx_[head % kRxCapacity] = byte;
            rx_head_ = head + 1;
        } else {
            rx_dropped_ = rx_dropped_ + 1;
        }
    }
    const std::uint32_t cr1 = hw::read32(base_ + kCr1);
    if ((cr1 & kCr1Txeie) != 0 && (sr & kSrTxe) != 0) {
        const std::uint32_t tail = tx_tail_;
        if (tail != tx_head_) {
            hw::write32(base_ + kDr, tx_[tail % kTxCapacity]);
            tx_tail_ = tail + 1;
        } else {
            hw::write32(base_ + kCr1, cr1 & ~kCr1Txeie);
        }
    }
}

}  // namespace fieldlink::boards::nucleo_f103rb
