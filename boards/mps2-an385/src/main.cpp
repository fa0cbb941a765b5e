// The reader image for MPS2 AN385: the portable reader core and the flash
// spool, unchanged, on this board's HAL. Two modes, chosen by the semihosting
// command line (README.md):
// - self-check (default): samples kReadings readings into RAM flash with a
//   transport that refuses every connection, checks them, remounts the spool,
//   prints a summary and exits (0 = every check passed);
// - `mode=run flash=<host file> [readings=N] [link=uart0|none] ...`: the spool
//   on a host file that survives restarts, MQTT over the serial link on UART0
//   to the gateway's bridge (link=none: no transport, the standalone power-cut
//   test); prints what recovery found, then one line per stored reading,
//   forever or until N are stored and (with the link) all of them acked.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cmsdk_uart.hpp"
#include "fieldlink/link/transport.hpp"
#include "fieldlink/reader/reader.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "host_file_flash.hpp"
#include "jitter_random.hpp"
#include "null_transport.hpp"
#include "registers.hpp"
#include "semihosting.hpp"
#include "simulated_sensors.hpp"
#include "startup.hpp"
#include "systick_clock.hpp"
#include "uart_serial_port.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

extern "C" std::uint8_t __fieldlink_spool_start[];  // mps2-an385.ld

namespace fieldlink::boards::mps2_an385 {
namespace {

constexpr std::uint64_t kReadings = 64;
constexpr std::uint32_t kChannelPeriodMs = 10;
constexpr std::uint64_t kRunDeadlineMs = 10'000;     // a hung loop fails instead of timing out
constexpr std::uint32_t kLinkOpenTimeoutMs = 1'000;  // the bridge answers a Reset at once when it is there
// The longest a link open() may hold up the reader's loop (which cannot sample
// meanwhile): one Reset repeat period. Answers slower than that already count
// as stale inside one open(), so a shorter wait loses no working gateway, and
// with none there the reader samples again after 250 ms instead of 1 s.
constexpr std::uint32_t kLinkOpenWaitMs = link::LinkTransportConfig{}.retry_ms;
constexpr std::uint16_t kBatchSize = 16;
// 1 KiB sectors like the STM32F1's pages; 16 KiB is the spool region in the linker script.
constexpr hal::FlashGeometry kSpoolGeometry{1024, 16, 4};

// False once UART0 carries the serial link: text there would be line noise.
bool g_text_on_uart = true;

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
    // To the host console (semihosting) and, unless it carries the link, to UART0.
    void emit() noexcept {
        text("\n");
        semihosting::write0(buffer_);
        if (g_text_on_uart) uart0().write(buffer_);
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
    config.connect_timeout_ms = kLinkOpenTimeoutMs;
    config.channel_count = SimulatedSensors::kChannels;
    for (std::size_t ch = 0; ch < SimulatedSensors::kChannels; ++ch) config.channel_period_ms[ch] = kChannelPeriodMs;
    return config;
}

// The reader's transport, chosen at start: the serial link or the null one.
class ChosenTransport final : public hal::Transport {
public:
    // open() waits at most `open_wait_ms`, whatever the reader asks for.
    void use(hal::Transport& transport, std::uint32_t open_wait_ms = UINT32_MAX) noexcept {
        chosen_ = &transport;
        open_wait_ms_ = open_wait_ms;
    }
    hal::TransportStatus open(const char* host, std::uint16_t port, std::uint32_t timeout_ms) override {
        return chosen_->open(host, port, timeout_ms < open_wait_ms_ ? timeout_ms : open_wait_ms_);
    }
    void close() override { chosen_->close(); }
    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t timeout_ms) override {
        return chosen_->send(data, length, timeout_ms);
    }
    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override {
        return chosen_->recv(buffer, capacity, timeout_ms, received);
    }

private:
    hal::Transport* chosen_ = nullptr;
    std::uint32_t open_wait_ms_ = UINT32_MAX;
};

// Everything static: RAM use is fixed and shows in `size`, not on the stack.
SysTickClock g_clock;
JitterRandom g_random;
NullTransport g_null_transport;
UartSerialPort g_uart_port(uart0());
link::LinkTransport g_link(g_uart_port, g_clock);
ChosenTransport g_transport;
SimulatedSensors g_sensors(0x5EED'0385u);
// The spool as the reader sees it; in run mode it reports every stored reading.
class ReportingStore final : public reader::ReadingStore {
public:
    explicit ReportingStore(spool::FlashSpool& spool) noexcept : spool_(spool) {}
    void report(bool on) noexcept { report_ = on; }
    std::uint64_t stored() const noexcept { return stored_; }

    reader::StoreStatus append(const protocol::Record& record, std::uint64_t* seq) override {
        std::uint64_t assigned = 0;
        const reader::StoreStatus status = spool_.append(record, &assigned);
        if (seq != nullptr) *seq = assigned;
        if (status == reader::StoreStatus::Ok) {
            ++stored_;
            // Printed only once the append has returned, i.e. is on the host file.
            if (report_) {
                std::uint64_t value_bits = 0;
                static_assert(sizeof value_bits == sizeof record.value);
                std::memcpy(&value_bits, &record.value, sizeof value_bits);
                Line()
                    .text("stored inc=")
                    .hex(spool_.incarnation())
                    .text(" boot=")
                    .dec(spool_.boot())
                    .text(" seq=")
                    .dec(assigned)
                    .text(" ch=")
                    .dec(record.channel)
                    .text(" mono=")
                    .dec(record.mono_ms)
                    .text(" value=")
                    .hex(value_bits)
                    .emit();
            }
        }
        return status;
    }
    std::size_t read(std::uint64_t from_seq, reader::StoredReading* out, std::size_t max) override {
        return spool_.read(from_seq, out, max);
    }
    reader::StoreStatus trim(std::uint64_t through_seq) override { return spool_.trim(through_seq); }
    std::uint64_t incarnation() const override { return spool_.incarnation(); }
    std::uint32_t boot() const override { return spool_.boot(); }
    std::uint64_t oldest_seq() const override { return spool_.oldest_seq(); }
    std::uint64_t next_seq() const override { return spool_.next_seq(); }
    std::uint64_t held() const override { return spool_.held(); }
    std::uint64_t dropped() const override { return spool_.dropped(); }
    reader::StoreStatus note_wall_offset(std::int64_t offset_ms) override { return spool_.note_wall_offset(offset_ms); }
    bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) override {
        return spool_.wall_offset(boot, offset_ms);
    }

private:
    spool::FlashSpool& spool_;
    bool report_ = false;
    std::uint64_t stored_ = 0;
};

HostFileFlash g_flash(__fieldlink_spool_start, kSpoolGeometry);
spool::FlashSpool g_spool(g_flash, g_random);
ReportingStore g_store(g_spool);
reader::ReaderMemory<kBatchSize> g_memory;
// Not const: run mode's options (device=, window=, ...) adjust it before start().
reader::ReaderConfig g_config = make_config();
// The reader copies its configuration when it is built, so it is built on
// first use, once parse_options() has put the run-mode options into g_config.
reader::Reader& the_reader() noexcept {
    static reader::Reader instance(g_config, g_store, g_transport, g_clock, g_random, g_sensors, g_memory.buffers());
    return instance;
}

// The semihosting command line, split in place into key=value words.
struct Options {
    bool run_mode = false;
    bool link = true;  // run mode: MQTT over the serial link on UART0
    const char* flash_path = nullptr;
    std::uint64_t readings = 0;  // 0: forever
};
char g_command_line[192];

bool starts_with(const char* s, const char* prefix) noexcept {
    while (*prefix != '\0') {
        if (*s++ != *prefix++) return false;
    }
    return true;
}

bool parse_decimal(const char* s, std::uint64_t* value) noexcept {
    if (*s == '\0') return false;
    std::uint64_t v = 0;
    for (; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9' || v > (~std::uint64_t{0} - 9) / 10) return false;
        v = v * 10 + static_cast<std::uint64_t>(*s - '0');
    }
    *value = v;
    return true;
}

// window=, ack_timeout=, keepalive=, period= (ms for every channel). False
// for any other word; ranges are checked by Reader::start().
bool parse_number_option(const char* word) noexcept {
    struct Numeric {
        const char* key;
        std::size_t key_length;
        std::uint64_t max;
    };
    static constexpr Numeric kKeys[] = {
        {"window=", 7, 255}, {"ack_timeout=", 12, 600'000}, {"keepalive=", 10, 65'535}, {"period=", 7, 3'600'000}};
    for (std::size_t k = 0; k < sizeof kKeys / sizeof kKeys[0]; ++k) {
        if (!starts_with(word, kKeys[k].key)) continue;
        std::uint64_t value = 0;
        if (!parse_decimal(word + kKeys[k].key_length, &value) || value > kKeys[k].max) return false;
        switch (k) {
            case 0: g_config.window = static_cast<std::uint8_t>(value); break;
            case 1: g_config.ack_timeout_ms = static_cast<std::uint32_t>(value); break;
            case 2: g_config.keep_alive_s = static_cast<std::uint16_t>(value); break;
            default:
                for (std::size_t ch = 0; ch < SimulatedSensors::kChannels; ++ch) {
                    g_config.channel_period_ms[ch] = static_cast<std::uint32_t>(value);
                }
        }
        return true;
    }
    return false;
}

// False on a word it does not understand; no command line is the self-check.
bool parse_options(Options* options) noexcept {
    if (!semihosting::command_line(g_command_line, sizeof g_command_line)) return true;
    char* p = g_command_line;
    while (*p != '\0') {
        while (*p == ' ') ++p;
        if (*p == '\0') break;
        char* word = p;
        while (*p != '\0' && *p != ' ') ++p;
        if (*p == ' ') *p++ = '\0';
        if (starts_with(word, "mode=")) {
            if (!starts_with(word, "mode=run") || word[8] != '\0') return false;
            options->run_mode = true;
        } else if (starts_with(word, "flash=")) {
            options->flash_path = word + 6;
        } else if (starts_with(word, "readings=")) {
            if (!parse_decimal(word + 9, &options->readings)) return false;
        } else if (starts_with(word, "link=")) {
            if (std::strcmp(word + 5, "uart0") == 0) {
                options->link = true;
            } else if (std::strcmp(word + 5, "none") == 0) {
                options->link = false;
            } else {
                return false;
            }
        } else if (starts_with(word, "device=")) {
            g_config.device_id = word + 7;  // checked by Reader::start()
        } else {
            // A word without '=' is a program name the host may put first.
            bool has_equals = false;
            for (const char* q = word; *q != '\0'; ++q) has_equals = has_equals || *q == '=';
            if (has_equals && !parse_number_option(word)) return false;
        }
    }
    return true;
}

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

// Not inlined: its read buffer would otherwise sit in run()'s frame in every mode.
[[gnu::noinline]] void print_held_ranges() noexcept {
    // One line per run of consecutive seqs: gaps come only from cut appends.
    std::uint64_t seq = g_spool.oldest_seq();
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    reader::StoredReading chunk[8];
    for (;;) {
        const std::size_t n = g_spool.read(seq, chunk, sizeof chunk / sizeof chunk[0]);
        for (std::size_t i = 0; i < n; ++i) {
            if (first != 0 && chunk[i].seq != last + 1) {
                Line().text("held seqs=").dec(first).text("-").dec(last).emit();
                first = 0;
            }
            if (first == 0) first = chunk[i].seq;
            last = chunk[i].seq;
        }
        if (n == 0) break;
        seq = last + 1;
    }
    if (first != 0) Line().text("held seqs=").dec(first).text("-").dec(last).emit();
}

// Samples into the spool on the host file: forever, or until `readings` are stored.
int run_mode(const Options& options) noexcept {
    if (options.flash_path == nullptr) return fail("mode=run needs flash=<host file>");
    if (!g_flash.attach(options.flash_path)) return fail("cannot open the flash file");
    if (g_spool.mount() != reader::StoreStatus::Ok) return fail("spool mount");
    const spool::SpoolStats stats = g_spool.stats();
    Line()
        .text("recovered inc=")
        .hex(g_spool.incarnation())
        .text(" boot=")
        .dec(g_spool.boot())
        .text(" next_seq=")
        .dec(g_spool.next_seq())
        .text(" held=")
        .dec(g_spool.held())
        .text(" dropped=")
        .dec(g_spool.dropped())
        .text(" formatted=")
        .dec(stats.formatted ? 1 : 0)
        .text(" bad_slots=")
        .dec(stats.bad_slots)
        .emit();
    print_held_ranges();
    g_store.report(true);
    if (options.link) {
        // From here on UART0 carries only frames (docs/protocol.md, "Serial link").
        drain_uart();
        g_text_on_uart = false;
        g_link.seed_nonce(static_cast<std::uint16_t>(g_random.next_u64()));
        g_transport.use(g_link, kLinkOpenWaitMs);
    } else {
        g_transport.use(g_null_transport);
    }
    reader::Reader& app = the_reader();
    if (app.start() != reader::ReaderStatus::Ok) return fail("reader start");
    while (options.readings == 0 || g_store.stored() < options.readings) app.poll(50);
    app.stop_sampling();
    // With a gateway: keep delivering until every reading is committed (the spool trims on its acks).
    if (options.link) {
        while (g_spool.held() != 0) app.poll(50);
    }
    const reader::ReaderCounters c = app.counters();
    app.shutdown();
    Line()
        .text("done stored=")
        .dec(g_store.stored())
        .text(" next_seq=")
        .dec(g_spool.next_seq())
        .text(" held=")
        .dec(g_spool.held())
        .text(" acked_through=")
        .dec(c.acked_through)
        .text(" stack_used=")
        .dec(stack_used())
        .emit();
    if (options.link) {
        const link::LinkTransportCounters l = g_link.counters();
        Line()
            .text("link opens=")
            .dec(l.opens)
            .text(" opened=")
            .dec(l.opened)
            .text(" breaks=")
            .dec(l.breaks)
            .text(" frames_rejected=")
            .dec(g_link.session().frames_rejected())
            .text(" reconnects=")
            .dec(c.reconnects)
            .text(" resends=")
            .dec(c.resends)
            .text(" rx_dropped=")
            .dec(uart0().counters().rx_dropped)
            .emit();
    }
    return 0;
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
    Options options;
    if (!parse_options(&options)) return fail("unknown word on the semihosting command line");
    if (options.run_mode) return run_mode(options);
    g_transport.use(g_null_transport);

    if (g_spool.mount() != reader::StoreStatus::Ok) return fail("spool mount");
    const std::uint64_t incarnation = g_spool.incarnation();
    reader::Reader& app = the_reader();
    if (app.start() != reader::ReaderStatus::Ok) return fail("reader start");
    const std::uint64_t started = g_clock.now_ms();
    while (app.counters().produced < kReadings) {
        if (g_clock.now_ms() - started > kRunDeadlineMs) return fail("readings not produced in time");
        app.poll(50);
    }
    app.stop_sampling();
    app.shutdown();
    const std::uint64_t elapsed = g_clock.now_ms() - started;
    const reader::ReaderCounters c = app.counters();
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
        .dec(g_null_transport.opens())
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
