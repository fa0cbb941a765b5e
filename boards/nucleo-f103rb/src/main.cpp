// The reader image for the Nucleo-F103RB: the portable reader core and the
// flash spool, unchanged, over this board's drivers. The transport is the
// serial link (fieldlink::link::LinkTransport) on USART2, which the on-board
// ST-LINK carries to the host as a USB virtual COM port; the gateway's
// fieldlink-serial-bridge is the other end.
#include <cstddef>
#include <cstdint>

#include "board.hpp"
#include "cortex_m3.hpp"
#include "f103_adc.hpp"
#include "f103_flash.hpp"
#include "f103_rcc.hpp"
#include "f103_registers.hpp"
#include "f103_usart.hpp"
#include "fieldlink/link/transport.hpp"
#include "fieldlink/reader/reader.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "hw_access.hpp"
#include "internal_sensors.hpp"
#include "seed_random.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

extern "C" std::uint8_t __fieldlink_spool_start[];  // nucleo-f103rb.ld
extern "C" const char __fieldlink_spool_pages[];

namespace fieldlink::boards::nucleo_f103rb {
namespace {

constexpr std::uint32_t kBaud = 115'200;
constexpr std::uint32_t kChannelPeriodMs = 30'000;  // flash wear: README.md, "Memory map"
constexpr std::uint16_t kBatchSize = 16;

class SysTickClock final : public hal::Clock {
public:
    void start(std::uint32_t core_hz) noexcept {
        hw::write32(core::kSysTickRvr, core_hz / 1000 - 1);
        hw::write32(core::kSysTickCvr, 0);
        hw::write32(core::kSysTickCsr, 0b111);  // enable, interrupt, processor clock
    }
    std::uint64_t now_ms() const override { return ticks_ms(); }
    void sleep_ms(std::uint32_t ms) override {
        const std::uint64_t until = ticks_ms() + ms;
        while (ticks_ms() < until) hw::wait_for_interrupt();
    }
};

// USART2 as the link transport's serial port; waits in WFI (a received byte
// or the 1 ms tick wakes it).
class UsartPort final : public link::SerialPort {
public:
    std::size_t write(const std::uint8_t* data, std::size_t length) override { return usart2().write(data, length); }
    std::size_t read(std::uint8_t* out, std::size_t capacity) override { return usart2().read(out, capacity); }
    void wait(std::uint32_t max_ms) override {
        if (max_ms != 0 && usart2().rx_available() == 0) hw::wait_for_interrupt();
    }
};

char g_device_id[20] = "nucleo-";

// "nucleo-" and 12 hex digits folded from the 96-bit unique ID.
void make_device_id() noexcept {
    const std::uint32_t w0 = hw::read32(kUniqueIdBase);
    const std::uint32_t w1 = hw::read32(kUniqueIdBase + 4);
    const std::uint32_t w2 = hw::read32(kUniqueIdBase + 8);
    const std::uint64_t folded =
        (static_cast<std::uint64_t>(w2 ^ (w1 >> 16)) << 16) ^ w0 ^ (static_cast<std::uint64_t>(w1) << 32);
    for (int i = 0; i < 12; ++i) g_device_id[7 + i] = "0123456789abcdef"[(folded >> (4 * (11 - i))) & 0xF];
    g_device_id[19] = '\0';
}

reader::ReaderConfig make_config() noexcept {
    reader::ReaderConfig config;
    config.device_id = g_device_id;
    config.firmware_version = "nucleo-f103rb-" FIELDLINK_VERSION;
    config.batch_size = kBatchSize;
    config.window = 2;
    config.backoff_initial_ms = 500;
    config.backoff_max_ms = 10'000;
    config.channel_count = InternalSensors::kChannels;
    for (std::size_t ch = 0; ch < InternalSensors::kChannels; ++ch) config.channel_period_ms[ch] = kChannelPeriodMs;
    return config;
}

F103Flash::Config spool_flash_config() noexcept {
    F103Flash::Config config;
    config.controller = kFlashInterfaceBase;
    config.first_page = reinterpret_cast<std::uintptr_t>(__fieldlink_spool_start);
    config.page_size = kFlashPageSize;
    config.page_count = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(__fieldlink_spool_pages));
    return config;
}

// Everything static: RAM use is fixed and shows in `size`.
SysTickClock g_clock;
UsartPort g_port;
F103Adc g_adc;
SeedRandom g_random;
InternalSensors g_sensors(g_adc);
F103Flash g_flash(spool_flash_config());
spool::FlashSpool g_spool(g_flash, g_random);
reader::ReaderMemory<kBatchSize> g_memory;

[[noreturn]] void halt(LedPattern pattern) noexcept {
    set_led_pattern(pattern);
    for (;;) hw::wait_for_interrupt();
}

}  // namespace

void board_main() noexcept {
    const ClockTree clocks = configure_clocks(kRccBase, kFlashInterfaceBase);
    enable_peripheral_clocks(kRccBase);
    configure_pins(kGpioABase);
    g_clock.start(clocks.sysclk_hz);
    if (usart2().start({kUsart2Base, clocks.pclk1_hz, kBaud}) != UsartStatus::Ok) halt(LedPattern::Fault);
    hw::write32(core::kNvicIcpr0 + 4 * (kUsart2Irq / 32), 1u << (kUsart2Irq % 32));
    hw::write32(core::kNvicIser0 + 4 * (kUsart2Irq / 32), 1u << (kUsart2Irq % 32));
    if (g_adc.start({kAdc1Base, clocks.sysclk_hz, 100'000}) != AdcStatus::Ok) halt(LedPattern::Fault);
    g_random.seed(kUniqueIdBase, g_adc);
    g_random.stir(systick_count());
    make_device_id();
    if (g_spool.mount() != reader::StoreStatus::Ok) halt(LedPattern::Fault);

    static link::LinkTransport transport(g_port, g_clock, {250, static_cast<std::uint16_t>(g_random.next_u32()), 1000});
    static const reader::ReaderConfig config = make_config();
    static reader::Reader reader(config, g_spool, transport, g_clock, g_random, g_sensors, g_memory.buffers());
    if (reader.start() != reader::ReaderStatus::Ok) halt(LedPattern::Fault);
    set_led_pattern(LedPattern::Offline);
    for (;;) {
        reader.poll(1'000);
        const reader::ReaderCounters c = reader.counters();
        if (c.store_errors != 0) {
            set_led_pattern(LedPattern::Fault);
        } else {
            set_led_pattern(reader.link_state() == reader::LinkState::Ready ? LedPattern::Connected
                                                                            : LedPattern::Offline);
        }
    }
}

}  // namespace fieldlink::boards::nucleo_f103rb
