// The board's CMSDK UART driver (the same source as in the image) against
// register models of the UART and the NVIC: exact register writes, bytes in
// order, and every lost byte counted.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cmsdk_uart.hpp"
#include "emulated/cmsdk_models.hpp"
#include "registers.hpp"

namespace {

using namespace fieldlink::boards::mps2_an385;
namespace mps2 = fieldlink::test::mps2;
namespace u = mps2::uart;
using mps2::NvicModel;

std::string name_of(std::uintptr_t address) {
    if (address >= kUart0Base && address - kUart0Base < u::kSize) {
        switch (address - kUart0Base) {
            case u::kData: return "DATA";
            case u::kState: return "STATE";
            case u::kCtrl: return "CTRL";
            case u::kIntStatus: return "INTCLEAR";
            case u::kBaudDiv: return "BAUDDIV";
            default: break;
        }
    }
    switch (address) {
        case NvicModel::kBase + NvicModel::kIser: return "ISER0";
        case NvicModel::kBase + NvicModel::kIcer: return "ICER0";
        case NvicModel::kBase + NvicModel::kIspr: return "ISPR0";
        case NvicModel::kBase + NvicModel::kIcpr: return "ICPR0";
        default: break;
    }
    char text[32];
    std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(address));
    return text;
}

std::string bytes_of(const std::vector<std::uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

class CmsdkUartTest : public ::testing::Test {
protected:
    CmsdkUartTest() { mps2::reset_bus(); }

    void TearDown() override {
        for (const auto& e : mps2::bus().errors) ADD_FAILURE() << "bus: " << e;
        for (const auto& e : model.errors) ADD_FAILURE() << "UART: " << e;
        for (const auto& e : nvic.errors) ADD_FAILURE() << "NVIC: " << e;
        EXPECT_EQ(mps2::bus().lock_depth, 0);
    }

    static CmsdkUart::Config board_config() { return {kUart0Base, kUart0RxIrq, kUart0TxIrq, kCoreClockHz, kUartBaud}; }

    void start() {
        driver.start(board_config());
        mark();
    }
    void mark() { from_ = mps2::bus().log.size(); }

    // The register writes since the last mark(), one "NAME 0xVALUE" a line.
    std::string writes() {
        std::string text;
        const auto& log = mps2::bus().log;
        for (std::size_t i = from_; i < log.size(); ++i) {
            if (!log[i].write) continue;
            char value[16];
            std::snprintf(value, sizeof value, " 0x%x\n", log[i].value);
            text += name_of(log[i].address) + value;
        }
        mark();
        return text;
    }

    // What the NVIC would do: run a handler when its line is up and its IRQ
    // enabled. A handler that leaves its line up would run again at once.
    bool service_tx() {
        if (!model.tx_line() || !nvic.is_enabled(kUart0TxIrq)) return false;
        driver.on_tx_interrupt();
        EXPECT_FALSE(model.tx_line()) << "the TX handler left TXINT set";
        return true;
    }
    bool service_rx() {
        if (!model.rx_line() || !nvic.is_enabled(kUart0RxIrq)) return false;
        driver.on_rx_interrupt();
        EXPECT_FALSE(model.rx_line()) << "the RX handler left RXINT set";
        return true;
    }
    // The line takes every byte, one TX interrupt after each.
    void drain() {
        while (model.transmit()) ASSERT_TRUE(service_tx());
    }

    mps2::CmsdkUartModel model;
    NvicModel nvic;
    mps2::Mapping uart_map{model, kUart0Base, u::kSize};
    mps2::Mapping nvic_map{nvic, NvicModel::kBase, NvicModel::kSize};
    CmsdkUart driver;

private:
    std::size_t from_ = 0;
};

TEST_F(CmsdkUartTest, StartProgramsTheDivisorTheUartAndTheNvic) {
    driver.start(board_config());
    // 25 MHz / 115200 = 217.01; off, stale interrupts cleared, divisor, then on.
    EXPECT_EQ(writes(),
              "CTRL 0x0\nINTCLEAR 0x3\nBAUDDIV 0xd9\nCTRL 0xf\n"
              "ICPR0 0x3\nISER0 0x3\n");
    EXPECT_EQ(model.bauddiv(), 217u);
    EXPECT_EQ(model.ctrl(), u::kCtrlTxEn | u::kCtrlRxEn | u::kCtrlTxIntEn | u::kCtrlRxIntEn);
    EXPECT_EQ(nvic.enabled, (1u << kUart0RxIrq) | (1u << kUart0TxIrq));

    // The configured IRQs and clock, not the board's.
    nvic.enabled = 0;
    nvic.pending = (1u << 7) | (1u << 3);
    driver.start({kUart0Base, 7, 12, 12'000'000, 9'600});
    EXPECT_EQ(model.bauddiv(), 1250u);
    EXPECT_EQ(nvic.enabled, (1u << 7) | (1u << 12));
    EXPECT_EQ(nvic.pending, 1u << 3);  // only its own stale pending bits dropped

    // Too fast for the clock: the smallest divisor the UART allows.
    driver.start({kUart0Base, kUart0RxIrq, kUart0TxIrq, 1'000'000, 115'200});
    EXPECT_EQ(model.bauddiv(), 16u);
}

TEST_F(CmsdkUartTest, WriteSendsTheFirstByteAtOnceAndTheRestOnePerTxInterrupt) {
    start();
    EXPECT_EQ(driver.write("ok\n"), 3u);
    EXPECT_EQ(writes(), "DATA 0x6f\n");  // no interrupt comes from an idle transmitter
    EXPECT_NE(model.state() & u::kStateTxFull, 0u);

    ASSERT_TRUE(model.transmit());
    ASSERT_TRUE(service_tx());
    EXPECT_EQ(writes(), "INTCLEAR 0x1\nDATA 0x6b\n");
    ASSERT_TRUE(model.transmit());
    ASSERT_TRUE(service_tx());
    EXPECT_EQ(writes(), "INTCLEAR 0x1\nDATA 0xa\n");
    ASSERT_TRUE(model.transmit());
    ASSERT_TRUE(service_tx());
    EXPECT_EQ(writes(), "INTCLEAR 0x1\n");  // nothing left: no DATA write

    EXPECT_FALSE(model.transmit());
    EXPECT_EQ(bytes_of(model.sent), "ok\n");
    EXPECT_EQ(driver.counters().tx_dropped, 0u);
}

TEST_F(CmsdkUartTest, RingFullCountsTxDroppedButWriteSomeDoesNot) {
    start();
    std::vector<std::uint8_t> data(CmsdkUart::kTxCapacity + 44);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7 + 1);
    EXPECT_EQ(driver.write(data.data(), data.size()), CmsdkUart::kTxCapacity);
    EXPECT_EQ(driver.counters().tx_dropped, 44u);

    // The first byte left the ring for DATA: room for exactly one more.
    const std::uint8_t extra[10] = {0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9};
    EXPECT_EQ(driver.write_some(extra, sizeof extra), 1u);
    EXPECT_EQ(driver.counters().tx_dropped, 44u);
    EXPECT_EQ(driver.write(extra, 5), 0u);
    EXPECT_EQ(driver.counters().tx_dropped, 49u);

    drain();
    std::vector<std::uint8_t> expected(data.begin(), data.begin() + CmsdkUart::kTxCapacity);
    expected.push_back(extra[0]);
    EXPECT_EQ(model.sent, expected);
    EXPECT_EQ(driver.counters().rx_dropped, 0u);
}

TEST_F(CmsdkUartTest, RxInterruptMovesDataIntoTheRingAndReadReturnsItInOrder) {
    start();
    EXPECT_FALSE(driver.rx_available());
    for (const char c : {'a', 'b', 'c'}) {
        model.receive(static_cast<std::uint8_t>(c));
        ASSERT_TRUE(service_rx());
        EXPECT_EQ(writes(), "INTCLEAR 0x2\n");
        EXPECT_EQ(model.state() & u::kStateRxFull, 0u);
    }
    EXPECT_TRUE(driver.rx_available());
    std::uint8_t out[8] = {};
    ASSERT_EQ(driver.read(out, 2), 2u);
    EXPECT_EQ(std::memcmp(out, "ab", 2), 0);
    ASSERT_EQ(driver.read(out, sizeof out), 1u);
    EXPECT_EQ(out[0], 'c');
    EXPECT_FALSE(driver.rx_available());
    EXPECT_EQ(driver.read(out, sizeof out), 0u);
    EXPECT_EQ(driver.counters().rx_dropped, 0u);
}

TEST_F(CmsdkUartTest, RxRingFullCountsRxDroppedAndStillEmptiesTheBuffer) {
    start();
    for (std::size_t i = 0; i < CmsdkUart::kRxCapacity + 1; ++i) {
        model.receive(static_cast<std::uint8_t>(i + 1));
        ASSERT_TRUE(service_rx());
        // Dropped or not, DATA was read: otherwise the next byte would overrun.
        ASSERT_EQ(model.state() & u::kStateRxFull, 0u) << i;
    }
    EXPECT_EQ(driver.counters().rx_dropped, 1u);
    std::uint8_t out[CmsdkUart::kRxCapacity + 8] = {};
    ASSERT_EQ(driver.read(out, sizeof out), CmsdkUart::kRxCapacity);
    for (std::size_t i = 0; i < CmsdkUart::kRxCapacity; ++i) ASSERT_EQ(out[i], i + 1) << i;

    model.receive('z');  // room again
    ASSERT_TRUE(service_rx());
    ASSERT_EQ(driver.read(out, sizeof out), 1u);
    EXPECT_EQ(out[0], 'z');
    EXPECT_EQ(driver.counters().rx_dropped, 1u);
}

TEST_F(CmsdkUartTest, OverrunCountsRxDroppedAndClearsTheFlagByWritingOne) {
    start();
    model.receive('x');
    model.receive('y');  // before the handler ran: 'x' is lost
    ASSERT_NE(model.state() & u::kStateRxOverrun, 0u);
    ASSERT_TRUE(service_rx());
    // DDI 0479: the overrun flag clears by writing 1 to it in STATE.
    EXPECT_EQ(writes(), "INTCLEAR 0x2\nSTATE 0x8\n");
    EXPECT_EQ(model.state() & (u::kStateRxOverrun | u::kStateRxFull), 0u);
    EXPECT_EQ(driver.counters().rx_dropped, 1u);
    std::uint8_t out[4] = {};
    ASSERT_EQ(driver.read(out, sizeof out), 1u);
    EXPECT_EQ(out[0], 'y');

    model.receive('z');  // the flag is really gone: no second count
    ASSERT_TRUE(service_rx());
    EXPECT_EQ(writes(), "INTCLEAR 0x2\n");
    EXPECT_EQ(driver.counters().rx_dropped, 1u);
}

TEST_F(CmsdkUartTest, TxIdleOnlyAfterTheLastByteLeft) {
    start();
    EXPECT_TRUE(driver.tx_idle());
    EXPECT_EQ(driver.write("hi"), 2u);
    EXPECT_FALSE(driver.tx_idle());  // 'h' in DATA, 'i' in the ring
    ASSERT_TRUE(model.transmit());
    EXPECT_FALSE(driver.tx_idle());
    ASSERT_TRUE(service_tx());
    EXPECT_FALSE(driver.tx_idle());  // 'i' in DATA
    ASSERT_TRUE(model.transmit());
    EXPECT_FALSE(driver.tx_idle());  // gone, but the driver learns it from the interrupt
    ASSERT_TRUE(service_tx());
    EXPECT_TRUE(driver.tx_idle());
    EXPECT_EQ(bytes_of(model.sent), "hi");
}

}  // namespace
