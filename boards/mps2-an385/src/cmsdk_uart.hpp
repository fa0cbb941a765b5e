// Driver for the CMSDK APB UART (Arm DDI 0479, "APB UART"): interrupt-driven,
// with fixed ring buffers for both directions, so writers never busy-wait on
// the line. One byte of hardware buffer each way; the TX interrupt fires when
// a byte has left, and the handler feeds the next one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::boards::mps2_an385 {

class CmsdkUart {
public:
    static constexpr std::size_t kTxCapacity = 256;  // powers of two: cheap wrap
    static constexpr std::size_t kRxCapacity = 128;

    struct Counters {
        std::uint32_t tx_dropped = 0;  // bytes write() could not queue (ring full)
        std::uint32_t rx_dropped = 0;  // bytes lost: RX ring full or hardware overrun
    };

    struct Config {
        std::uintptr_t base = 0;
        unsigned rx_irq = 0;
        unsigned tx_irq = 0;
        std::uint32_t clock_hz = 0;
        std::uint32_t baud = 0;
    };

    // Sets the baud divisor, enables TX, RX and their interrupts in the UART
    // and the NVIC. (Configured here, not in a constructor, so that the object
    // and its rings stay in .bss instead of costing flash for .data.)
    void start(const Config& config) noexcept;

    // Queues up to `length` bytes without waiting; returns how many were queued.
    // What did not fit counts as tx_dropped (text output: lost, not retried).
    std::size_t write(const std::uint8_t* data, std::size_t length) noexcept;
    std::size_t write(const char* text) noexcept;
    // The same without counting: the caller (the link) retries the rest.
    std::size_t write_some(const std::uint8_t* data, std::size_t length) noexcept;
    // Copies up to `capacity` received bytes; never waits.
    std::size_t read(std::uint8_t* out, std::size_t capacity) noexcept;
    // True when received bytes wait in the RX ring.
    bool rx_available() const noexcept { return rx_head_ != rx_tail_; }
    // True when every queued byte has left the UART.
    bool tx_idle() const noexcept;
    Counters counters() const noexcept;

    // Interrupt handlers (startup.cpp routes the UART's IRQs here).
    void on_tx_interrupt() noexcept;
    void on_rx_interrupt() noexcept;

private:
    std::uint32_t load(std::uintptr_t offset) const noexcept;  // a register of this UART
    void store(std::uintptr_t offset, std::uint32_t value) const noexcept;
    void send_next() noexcept;  // with interrupts masked or from the TX handler

    std::uintptr_t base_ = 0;
    std::uint8_t tx_[kTxCapacity] = {};
    std::uint8_t rx_[kRxCapacity] = {};
    // Free-running indices; head written by the producer, tail by the consumer.
    volatile std::uint32_t tx_head_ = 0;
    volatile std::uint32_t tx_tail_ = 0;
    volatile bool tx_busy_ = false;  // a byte is in the transmitter
    volatile std::uint32_t rx_head_ = 0;
    volatile std::uint32_t rx_tail_ = 0;
    volatile std::uint32_t tx_dropped_ = 0;
    volatile std::uint32_t rx_dropped_ = 0;
};

// The board's UART0 (its handlers are wired in startup.cpp).
CmsdkUart& uart0() noexcept;

}  // namespace fieldlink::boards::mps2_an385
