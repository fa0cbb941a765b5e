// STM32F103 USART (RM0008 §27) as an interrupt-driven byte pipe: 8N1, 16x
// oversampling, RX into a fixed ring from the RXNE interrupt, TX from a fixed
// ring by the TXE interrupt. Nothing here waits: write() queues what fits,
// read() takes what has arrived, and the caller sleeps in WFI meanwhile (any
// byte received wakes it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb {

enum class UsartStatus : std::uint8_t {
    Ok = 0,
    InvalidArgument,  // baud 0, or outside what the clock can divide to (BRR 16 .. 0xFFFF)
};

class F103Usart {
public:
    // Powers of two (cheap wrap). RX holds a page erase's worth at 115200 baud
    // (40 ms = 460 bytes) while the main loop is stalled in the spool.
    static constexpr std::size_t kRxCapacity = 512;
    static constexpr std::size_t kTxCapacity = 256;

    struct Config {
        std::uintptr_t base = 0;     // USART registers (kUsart2Base)
        std::uint32_t clock_hz = 0;  // the APB clock feeding it (PCLK1 for USART2)
        std::uint32_t baud = 115'200;
    };

    struct Counters {
        std::uint32_t rx_overruns = 0;  // ORE: a byte came before the last was read (lost in hardware)
        std::uint32_t rx_dropped = 0;   // bytes received with the RX ring full
        std::uint32_t rx_errors = 0;    // bytes with a framing, noise or parity flag (kept: the link's CRC decides)
        std::uint32_t tx_dropped = 0;   // bytes write() could not queue
    };

    // BRR for a baud rate (§27.3.4): USARTDIV = f / (16 * baud) in 12.4 fixed
    // point, i.e. f / baud rounded; 0 when out of range.
    static constexpr std::uint32_t brr_for(std::uint32_t clock_hz, std::uint32_t baud) noexcept {
        if (baud == 0) return 0;
        const std::uint32_t brr = (clock_hz + baud / 2) / baud;
        return brr < 16 || brr > 0xFFFF ? 0 : brr;
    }

    // Programs BRR, 8N1, enables TX, RX and the RXNE interrupt. (Not a
    // constructor, so the object and its rings stay in .bss.) The board
    // enables the interrupt in the NVIC.
    UsartStatus start(const Config& config) noexcept;

    std::size_t write(const std::uint8_t* data, std::size_t length) noexcept;
    std::size_t read(std::uint8_t* out, std::size_t capacity) noexcept;
    std::size_t rx_available() const noexcept;
    std::size_t tx_free() const noexcept;
    // True when every queued byte has left the shift register (TC).
    bool tx_idle() const noexcept;
    Counters counters() const noexcept;

    // The USART's interrupt handler (startup.cpp routes the IRQ here). In RAM:
    // it must run during flash erases.
    void on_interrupt() noexcept;

private:
    std::uintptr_t base_ = 0;
    std::uint8_t rx_[kRxCapacity] = {};
    std::uint8_t tx_[kTxCapacity] = {};
    // Free-running indices: head written by the producer, tail by the consumer.
    volatile std::uint32_t rx_head_ = 0;
    volatile std::uint32_t rx_tail_ = 0;
    volatile std::uint32_t tx_head_ = 0;
    volatile std::uint32_t tx_tail_ = 0;
    volatile std::uint32_t rx_overruns_ = 0;
    volatile std::uint32_t rx_dropped_ = 0;
    volatile std::uint32_t rx_errors_ = 0;
    std::uint32_t tx_dropped_ = 0;
};

}  // namespace fieldlink::boards::nucleo_f103rb
