// The reader image for MPS2 AN385: the portable reader core and the flash
// spool, unchanged, on this board's HAL. Until the serial link exists the
// transport refuses every connection, so this run samples kReadings readings
// into the spool, checks them, remounts the spool, prints a summary over
// semihosting and UART0, and exits (0 = every check passed).
#include <cstddef>
#include <cstdint>

#include "cmsdk_uart.hpp"
#include "fieldlink/reader/reader.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "jitter_random.hpp"
#include "null_transport.hpp"
#include "ram_flash.hpp"
#include "registers.hpp"
#include "semihosting.hpp"
#include "simulated_sensors.hpp"
#include "startup.hpp"
#include "systick_clock.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

extern "C" std::uint8_t __fieldlink_spool_start[];  // mps2-an385.ld

namespace fieldlink::boards::mps2_an385 {
namespace {

constexpr std::uint64_t kReadings = 64;
constexpr std::uint32_t kChannelPeriodMs = 10;
constexpr std::uint64_t kRunDeadlineMs = 10'000;  // a hung loop fails instead of timing out
constexpr std::uint16_t kBatchSize = 16;
// 1 KiB sectors like the STM32F1's pages; 16 KiB is the spool region in the linker script.
constexpr hal::FlashGeometry kSpoolGeometry{1024, 16, 4};

// One line of text at a time, no printf (it would bring newlib's stdio).
class Line {
public:
    Line& text(const char* s) noexcept {
        while (*s != '\0' && length_ + 1 < sizeof buffer_) buffer_[length_++] = *s++;
        buffer_[length_] = '\0';
        return *this;
    }
    Line& dec(std::uint64_t value) noexcept {
        char digits[21];
        std::size_t n = 0;
        do {
            digits[n++] = static_cast<char>('0' + value % 10);
            value /= 10;
        } while (value != 0);
        char reversed[21];
        for (std::size_t i = 0; i < n; ++i) reversed[i] = digits[n - 1 - i];
        reversed[n] = '\0';
        return text(reversed);
    }
    Line& hex(std::uint64_t value) noexcept {
        char digits[17];
        for (int i = 15; i >= 0; --i) {
            digits[i] = "0123456789abcdef"[value & 0xF];
            value >>= 4;
        }
        digits[16] = '\0';
        return text(digits);
    }
    // To the host console (semihosting) and to UART0.
    void emit() noexcept {
        text("\n");
        semihosting::write0(buffer_);
        uart0().write(buffer_);
        length_ = 0;
        buffer_[0] = '\0';
    }

private:
    char buffer_[192] = {};
    std::size_t length_ = 0;
};

reader::ReaderConfig make_config() noexcept {
    reader::ReaderConfig config;
    config.device_id = "qemu-m3-0001";
    config.firmware_version = "mps2-an385-" FIELDLINK_VERSION;
    config.batch_size = kBatchSize;
    config.window = 2;
    config.backoff_initial_ms = 100;
    config.backoff_max_ms = 1'000;
    config.channel_count = SimulatedSensors::kChannels;
    for (std::size_t ch = 0; ch < SimulatedSensors::kChannels; ++ch) config.channel_period_ms[ch] = kChannelPeriodMs;
    return config;
}

// Everything static: RAM use is fixed and shows in `size`, not on the stack.
SysTickClock g_clock;
JitterRandom g_random;
NullTransport g_transport;
SimulatedSensors g_sensors(0x5EED'0385u);
RamFlash g_flash(__fieldlink_spool_start, kSpoolGeometry);
spool::FlashSpool g_spool(g_flash, g_random);
reader::ReaderMemory<kBatchSize> g_memory;
const reader::ReaderConfig g_config = make_config();
reader::Reader g_reader(g_config, g_spool, g_transport, g_clock, g_random, g_sensors, g_memory.buffers());

int fail(const char* why) noexcept {
    Line().text("FAIL: ").text(why).emit();
    return 1;
}

bool plausible(const protocol::Record& record) noexcept {
    if (record.channel == 0) return record.value >= 19.8 && record.value <= 25.2;
    return record.channel == 1 && record.value >= 3.28 && record.value <= 3.32;
}

// Reads every held reading back: ascending seqs without gaps, plausible values.
bool check_spool(std::uint64_t expected) noexcept {
    std::uint64_t seq = g_spool.oldest_seq();
    std::uint64_t seen = 0;
    reader::StoredReading chunk[8];
    for (;;) {
        const std::size_t n = g_spool.read(seq, chunk, sizeof chunk / sizeof chunk[0]);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) {
            if (chunk[i].seq != seq || !plausible(chunk[i].record)) return false;
            ++seq;
            ++seen;
        }
    }
    return seen == expected;
}

void drain_uart() noexcept {
    const std::uint64_t until = g_clock.now_ms() + 1'000;
    while (!uart0().tx_idle() && g_clock.now_ms() < until) wait_for_interrupt();
}

int run() noexcept {
    uart0().start({kUart0Base, kUart0RxIrq, kUart0TxIrq, kCoreClockHz, kUartBaud});
    g_clock.start();
    Line().text("fieldlink reader " FIELDLINK_VERSION " on mps2-an385 (Cortex-M3): uart0 up").emit();
    // Seed from the host's clock and the SysTick phase around host-timed events.
    g_random.stir(semihosting::host_time());
    for (int i = 0; i < 4; ++i) {
        g_random.stir(SysTickClock::current_count());
        semihosting::write0("");
        g_random.stir(SysTickClock::current_count() << 8);
    }

    if (g_spool.mount() != reader::StoreStatus::Ok) return fail("spool mount");
    const std::uint64_t incarnation = g_spool.incarnation();
    if (g_reader.start() != reader::ReaderStatus::Ok) return fail("reader start");
    const std::uint64_t started = g_clock.now_ms();
    while (g_reader.counters().produced < kReadings) {
        if (g_clock.now_ms() - started > kRunDeadlineMs) return fail("readings not produced in time");
        g_reader.poll(50);
    }
    g_reader.stop_sampling();
    g_reader.shutdown();
    const std::uint64_t elapsed = g_clock.now_ms() - started;
    const reader::ReaderCounters c = g_reader.counters();
    const std::uint64_t held = g_spool.held();
    const std::uint32_t boot = g_spool.boot();
    if (!check_spool(held)) return fail("spool contents");

    // Mount again, as after a reset: the same readings, the same incarnation, the next boot.
    if (g_spool.mount() != reader::StoreStatus::Ok) return fail("spool remount");
    const std::uint64_t remount_held = g_spool.held();
    if (remount_held != held || g_spool.incarnation() != incarnation || g_spool.boot() != boot + 1 ||
        !check_spool(remount_held)) {
        return fail("spool after remount");
    }

    Line()
        .text("summary board=mps2-an385 incarnation=")
        .hex(incarnation)
        .text(" produced=")
        .dec(c.produced)
        .text(" held=")
        .dec(held)
        .text(" remount_held=")
        .dec(remount_held)
        .text(" boot=")
        .dec(g_spool.boot())
        .text(" next_seq=")
        .dec(g_spool.next_seq())
        .text(" sensor_errors=")
        .dec(c.sensor_errors)
        .text(" store_errors=")
        .dec(c.store_errors)
        .text(" connect_attempts=")
        .dec(g_transport.opens())
        .text(" elapsed_ms=")
        .dec(elapsed)
        .emit();
    if (c.produced < kReadings || held != c.produced || c.sensor_errors != 0 || c.store_errors != 0) {
        return fail("counters");
    }
    const hal::FlashCounters f = g_flash.counters();
    Line()
        .text("flash programs=")
        .dec(f.programs)
        .text(" erases=")
        .dec(f.erases)
        .text(" uart_tx_dropped=")
        .dec(uart0().counters().tx_dropped)
        .text(" stack_used=")
        .dec(stack_used())
        .emit();
    Line().text("PASS").emit();
    return 0;
}

}  // namespace

int board_main() noexcept {
    const int code = run();
    drain_uart();
    return code;
}

}  // namespace fieldlink::boards::mps2_an385
