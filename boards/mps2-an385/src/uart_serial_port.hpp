// UART0 as the link transport's serial port: the CMSDK driver's rings, and
// WFI while the transport waits (the next UART interrupt or SysTick's 1 ms
// tick ends it), so the reader loop never spins on the line.
#pragma once

#include "cmsdk_uart.hpp"
#include "fieldlink/link/transport.hpp"
#include "registers.hpp"

namespace fieldlink::boards::mps2_an385 {

class UartSerialPort final : public link::SerialPort {
public:
    explicit UartSerialPort(CmsdkUart& uart) noexcept : uart_(uart) {}

    std::size_t write(const std::uint8_t* data, std::size_t length) override { return uart_.write_some(data, length); }
    std::size_t read(std::uint8_t* out, std::size_t capacity) override { return uart_.read(out, capacity); }
    void wait(std::uint32_t /*max_ms*/) override {
        // PRIMASK set: an interrupt that comes between the check and the WFI
        // still wakes it (it stays pending), so no byte waits a whole tick.
        const IrqLock lock;
        if (!uart_.rx_available()) wait_for_interrupt();
    }

private:
    CmsdkUart& uart_;
};

}  // namespace fieldlink::boards::mps2_an385
