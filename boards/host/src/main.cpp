// fieldlink-reader: the reader firmware's portable core on the host board.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "fieldlink/boards/host/file_flash.hpp"
#include "fieldlink/boards/host/monotonic_clock.hpp"
#include "fieldlink/boards/host/simulated_sensors.hpp"
#include "fieldlink/boards/host/system_random.hpp"
#include "fieldlink/boards/host/tcp_transport.hpp"
#include "fieldlink/boards/host/tls_transport.hpp"
#include "fieldlink/hal/clock.hpp"
#include "fieldlink/boards/host/options.hpp"
#include "fieldlink/reader/ram_store.hpp"
#include "fieldlink/reader/reader.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "host_events.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

namespace fieldlink::boards::host {
namespace {

constexpr int kExitDrained = 0;
constexpr int kExitError = 1;
constexpr int kExitNotDrained = 3;
// Longest single wait, so --duration and the drain deadline are checked in time.
constexpr std::uint32_t kMaxWaitMs = 1'000;

volatile sig_atomic_t g_stop_signals = 0;

void on_stop_signal(int) { g_stop_signals = g_stop_signals + 1; }

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a signal interrupts poll() and sleeps at once
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

int run(const Options& options) {
    const Logger log(options.log_level, options.device);
    SystemRandom random;
    std::uint64_t incarnation = options.incarnation.value_or(0);
    while (!options.incarnation && incarnation == 0) incarnation = random.next_u64();

    RecordFile record;
    if (!options.record_file.empty() && !record.open(options.record_file)) {
        log.log(LogLevel::Error, "cannot open record file {}: {}", options.record_file, std::strerror(errno));
        return kExitError;
    }

    MonotonicClock clock;
    TcpTransport tcp;
    std::unique_ptr<TlsTransport> tls;
    if (options.tls) {
        std::string error;
        tls = TlsTransport::create(
            TlsSettings{options.ca_file, options.cert_file, options.key_file, options.verify_host}, &error);
        if (!tls) {
            log.log(LogLevel::Error, "TLS: {}", error);
            return kExitError;
        }
    }
    hal::Transport& transport = tls ? static_cast<hal::Transport&>(*tls) : tcp;
    SimulatedSensors sensors(sensor_seed(options.device, options.seed), options.channel_periods_ms);
    // The store: a flash file (the spool) with --flash, else a RAM ring.
    std::vector<reader::RamSlot> slots;
    std::optional<reader::RamSpanStore> ram_store;
    FileFlash flash;
    std::optional<spool::FlashSpool> flash_store;
    reader::ReadingStore* store = nullptr;
    if (options.flash_file.empty()) {
        slots.resize(options.buffer);
        ram_store.emplace(incarnation, options.full_policy, std::span<reader::RamSlot>(slots));
        store = &*ram_store;
    } else {
        const hal::FlashGeometry geometry{4096, options.flash_sectors, 8};
        const auto durability =
            options.flash_sync ? FileFlash::Durability::SyncEachOperation : FileFlash::Durability::ProcessCrashOnly;
        if (const hal::FlashStatus status = flash.open(options.flash_file.c_str(), geometry, durability);
            status != hal::FlashStatus::Ok) {
            if (std::strcmp(flash.last_call(), "size") == 0) {
                log.log(LogLevel::Error,
                        "flash file {} is not {} sectors of 4096 bytes (--flash-sectors); left as it is",
                        options.flash_file, options.flash_sectors);
            } else if (flash.last_error() == EWOULDBLOCK) {
                log.log(LogLevel::Error, "flash file {} is in use by another process", options.flash_file);
            } else {
                log.log(LogLevel::Error, "cannot open flash file {}: {} ({}: {})", options.flash_file,
                        hal::to_string(status), flash.last_call(), std::strerror(flash.last_error()));
            }
            return kExitError;
        }
        flash_store.emplace(flash, random, spool::SpoolConfig{options.full_policy});
        if (const reader::StoreStatus status = flash_store->mount(); status != reader::StoreStatus::Ok) {
            log.log(LogLevel::Error, "cannot mount the spool in {}: {}", options.flash_file,
                    status == reader::StoreStatus::IoError ? "flash error" : "unusable geometry");
            return kExitError;
        }
        incarnation = flash_store->incarnation();
        log.log(LogLevel::Info, "flash {}: {}boot {}, {} readings held from seq {}, next seq {}, {} dropped so far",
                options.flash_file, flash_store->stats().formatted ? "formatted, " : "", flash_store->boot(),
                flash_store->held(), flash_store->oldest_seq(), flash_store->next_seq(), flash_store->dropped());
        store = &*flash_store;
    }
    auto memory = std::make_unique<reader::ReaderMemory<protocol::kMaxRecordsPerBatch>>();
    HostEvents events(log, options.record_file.empty() ? nullptr : &record, options.device, incarnation);
    if (tls) events.set_transport_detail([&tls] { return tls->last_error(); });

    reader::ReaderConfig config;
    config.device_id = options.device.c_str();
    config.firmware_version = "host-" FIELDLINK_VERSION;
    config.broker_host = options.broker_host.c_str();
    config.broker_port = options.broker_port;
    config.username = options.username.empty() ? nullptr : options.username.c_str();
    config.password = options.password.empty() ? nullptr : options.password.c_str();
    config.keep_alive_s = options.keep_alive_s;
    config.connect_timeout_ms = options.connect_timeout_ms;
    config.ack_timeout_ms = options.ack_timeout_ms;
    config.batch_size = options.batch_size;
    config.window = options.window;
    config.backoff_initial_ms = options.reconnect_min_ms;
    config.backoff_max_ms = options.reconnect_max_ms;
    config.telemetry_interval_ms = options.telemetry_interval_s * 1000;
    config.channel_count = static_cast<std::uint16_t>(options.channel_periods_ms.size());
    for (std::size_t ch = 0; ch < options.channel_periods_ms.size(); ++ch) {
        config.channel_period_ms[ch] = options.channel_periods_ms[ch];
    }

    reader::Reader reader(config, *store, transport, clock, random, sensors, memory->buffers(), &events);
    if (const reader::ReaderStatus status = reader.start(); status != reader::ReaderStatus::Ok) {
        log.log(LogLevel::Error, "cannot start the reader: {}", reader::to_string(status));
        return kExitError;
    }
    log.log(LogLevel::Info, "incarnation {:016x}, {} channels, broker {}:{}{}{}, batch {} x window {}", incarnation,
            options.channel_periods_ms.size(), options.broker_host, options.broker_port, options.tls ? " (TLS)" : "",
            options.username.empty() ? "" : " as user " + options.username, options.batch_size, options.window);

    const std::uint64_t stop_at = options.duration_s > 0 ? options.duration_s * 1000 : UINT64_MAX;
    bool draining = false;
    std::uint64_t drain_deadline = 0;
    int exit_code = kExitNotDrained;
    for (;;) {
        const std::uint64_t now = clock.now_ms();
        if (!draining && (g_stop_signals > 0 || now >= stop_at)) {
            draining = true;
            reader.stop_sampling();
            drain_deadline = now + options.drain_timeout_s * 1000;
            const reader::ReaderCounters c = reader.counters();
            log.log(LogLevel::Info, "stopping: {} of {} readings acknowledged; draining for up to {} s",
                    c.acked_through, c.produced, options.drain_timeout_s);
        }
        if (events.record_failed()) {
            exit_code = kExitError;
            break;
        }
        if (draining) {
            if (reader.drained()) {
                exit_code = kExitDrained;
                break;
            }
            if (now >= drain_deadline || g_stop_signals > 1) {
                log.log(LogLevel::Warn, "drain {}: readings after seq {} are not acknowledged",
                        g_stop_signals > 1 ? "interrupted" : "timed out", reader.acked_through());
                break;
            }
        }
        reader.poll(hal::ms_until(draining ? drain_deadline : stop_at, now, kMaxWaitMs));
    }
    reader.shutdown();

    const reader::ReaderCounters c = reader.counters();
    log.log(LogLevel::Info,
            "batches sent {}, acks accepted {} (stale {}, foreign {}, invalid {}), refused {}, sensor errors {}, "
            "store errors {}, connect failures {}, telemetry sent {}, wall-clock offsets noted {}",
            c.batches_sent, c.acks_accepted, c.acks_stale, c.acks_foreign, c.acks_invalid, c.refused, c.sensor_errors,
            c.store_errors, c.connect_failures, c.telemetry_sent, c.offsets_noted);
    // Scripts parse this line as key=value pairs; new keys go at the end.
    std::printf(
        "summary device=%s incarnation=%016llx produced=%llu acked_through=%llu dropped=%llu "
        "reconnects=%llu resends=%llu sensor_errors=%llu\n",
        options.device.c_str(), static_cast<unsigned long long>(incarnation),
        static_cast<unsigned long long>(c.produced), static_cast<unsigned long long>(c.acked_through),
        static_cast<unsigned long long>(c.dropped), static_cast<unsigned long long>(c.reconnects),
        static_cast<unsigned long long>(c.resends), static_cast<unsigned long long>(c.sensor_errors));
    std::fflush(stdout);
    return exit_code;
}

}  // namespace
}  // namespace fieldlink::boards::host

int main(int argc, char** argv) {
    // First of all: a stop signal that arrives while the flash is still being
    // mounted must mean "drain and exit", not death by the default action.
    fieldlink::boards::host::install_signal_handlers();
    int exit_code = 0;
    const auto options = fieldlink::boards::host::parse_options(argc, argv, &exit_code);
    if (!options) return exit_code;
    try {
        return fieldlink::boards::host::run(*options);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "fieldlink-reader: %s\n", error.what());
        return 1;
    }
}
