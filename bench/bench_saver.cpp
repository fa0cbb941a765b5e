// fieldlink-bench-saver: fieldlink-gateway's pipeline (same Paho link,
// decoding, bounded queue, group commit, watermark tracker, commit acks),
// wired like gateway/app/src/main.cpp, with two knobs the gateway does not have:
//
//   --store null    a store that keeps nothing and commits at once: the
//                   drain's ceiling, what is left when SQLite costs nothing.
//                   It acks and forgets: never use it for real data.
//   --tcp-nodelay   sets TCP_NODELAY on the link's socket to the broker once
//                   it is subscribed. Paho C 1.3 (Debian 12) leaves Nagle's
//                   algorithm on; this shows what the drain would gain
//                   without it (docs/benchmarks.md).
//
// For benchmarks only (bench/run.py).
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "fieldlink/gateway/ingest/clock.hpp"
#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/gateway/ingest/paho_broker_link.hpp"
#include "fieldlink/gateway/ingest/saver.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "fieldlink/gateway/ingest/stats.hpp"
#include "fieldlink/gateway/store/store.hpp"
#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"

namespace {

using namespace fieldlink::gateway;

class NullTransaction final : public StoreTransaction {
public:
    std::uint64_t insert_readings(const ReadingBatch&, std::span<const SeqRange> seqs, std::optional<std::int64_t>,
                                  std::int64_t) override {
        std::uint64_t rows = 0;
        for (const SeqRange& range : seqs) rows += range.last - range.first + 1;
        return rows;
    }
    std::uint64_t fill_unix_time(const DeviceKey&, std::uint32_t, std::int64_t) override { return 0; }
    void save_watermark(const DeviceKey&, std::uint64_t, std::span<const SeqRange>, std::int64_t) override {}
    void add_dead_letter(const Rejected&, std::int64_t) override {}
    void upsert_device(const DeviceStatus&, std::int64_t) override {}
    void commit() override {}
};

// Remembers nothing, so every device starts from watermark 0 (right for the
// fresh incarnations that the benchmark sends).
class NullStore final : public Store {
public:
    std::unique_ptr<StoreTransaction> begin() override { return std::make_unique<NullTransaction>(); }
    StoredWatermark load_watermark(const DeviceKey&) override { return {}; }
};

struct Options {
    std::string store = "null";
    std::string db = "bench.db";
    std::string broker = "tcp://127.0.0.1:1883";
    std::string client_id = "fieldlink-bench-saver";
    std::size_t batch_rows = SaverSettings{}.batch_max_rows;
    long batch_delay_ms = SaverSettings{}.commit_interval_min.count();
    std::size_t queue = SaverSettings{}.queue_capacity;
    bool tcp_nodelay = false;
    std::string log_level = "info";
};

std::unique_ptr<Store> make_store(const Options& options) {
    if (options.store == "null") return std::make_unique<NullStore>();
    StoreOptions store;
    store.path = options.db;
    store.synchronous = Synchronous::Full;
    return std::make_unique<SqliteStore>(store);
}

int run(const Options& options, const sigset_t& stop_signals) {
    Logger log(*parse_log_level(options.log_level));
    try {
        SaverSettings settings;
        settings.batch_max_rows = options.batch_rows;
        settings.commit_interval_min = std::chrono::milliseconds(options.batch_delay_ms);
        settings.queue_capacity = options.queue;
        MqttSettings mqtt;
        mqtt.broker_uri = options.broker;
        mqtt.client_id = options.client_id;

        const std::unique_ptr<Store> store = make_store(options);
        SystemClock clock;
        Stats stats;
        PahoBrokerLink link(mqtt, log);
        Saver saver(settings, *store, link, clock, log, stats);
        link.set_message_handler(
            [&saver](std::string_view topic, std::span<const std::uint8_t> payload) { saver.submit(topic, payload); });
        saver.start();
        link.start();
        if (options.tcp_nodelay) {
            // A benchmark knob, so a short poll for the first subscription is fine here.
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (!link.subscribed() && std::chrono::steady_clock::now() < give_up) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            const int changed = set_nodelay_to_peer_port(plain_tcp_port(options.broker).value_or(1883));
            log.info("TCP_NODELAY set on {} socket(s) to the broker", changed);
        }
        log.info("bench saver ready: store {}, broker {}, batch {} rows / {} ms, queue {}", options.store,
                 options.broker, options.batch_rows, options.batch_delay_ms, options.queue);

        int signal = 0;
        sigwait(&stop_signals, &signal);
        saver.stop();
        link.stop();
        const StatsSnapshot s = stats.snapshot();
        // One JSON line for bench/run.py.
        fmt::print(
            "{{\"received\": {}, \"batches\": {}, \"readings\": {}, \"duplicates\": {}, \"commits\": {}, "
            "\"acks_sent\": {}, \"rejected\": {}}}\n",
            s.received, s.batches, s.stored, s.duplicates, s.commits, s.acks_sent, s.dead_letters);
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        log.error("{}", e.what());
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{
        "fieldlink-bench-saver: fieldlink-gateway's pipeline with benchmark knobs (a store that keeps\n"
        "nothing, TCP_NODELAY on the broker link). For benchmarks only (bench/run.py)."};
    app.option_defaults()->always_capture_default();
    app.add_option("--store", options.store, "null (keeps nothing, acks at once) or sqlite (the gateway's store)")
        ->check(CLI::IsMember({"null", "sqlite"}));
    app.add_option("--db", options.db, "SQLite file for --store sqlite (synchronous=full, like the gateway)");
    app.add_option("--broker", options.broker, "Broker URI");
    app.add_option("--client-id", options.client_id, "MQTT client id (persistent session)");
    app.add_option("--batch-rows", options.batch_rows, "Readings per group commit")->check(CLI::Range(1, 100000));
    app.add_option("--batch-delay-ms", options.batch_delay_ms, "Least milliseconds between the starts of two commits")
        ->check(CLI::Range(0, 10000));
    app.add_option("--queue", options.queue, "Messages between the link and the writer")->check(CLI::Range(1, 1000000));
    app.add_flag("--tcp-nodelay", options.tcp_nodelay, "Turn Nagle's algorithm off on the link's socket");
    app.add_option("--log-level", options.log_level, "error, warn, info or debug")
        ->check(CLI::IsMember({"error", "warn", "info", "debug"}));
    CLI11_PARSE(app, argc, argv);

    // Blocked before any thread starts, so that only sigwait() receives them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    return run(options, stop_signals);
}
