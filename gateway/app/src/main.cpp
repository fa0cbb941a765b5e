// fieldlink-gateway: wires the saver's parts together and runs until SIGINT/SIGTERM.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pthread.h>

#include "fieldlink/gateway/app/config.hpp"
#include "fieldlink/gateway/app/service_manager.hpp"
#include "fieldlink/gateway/app/upstreams.hpp"
#include "fieldlink/gateway/forward/forwarder.hpp"
#include "fieldlink/gateway/http/http_server.hpp"
#include "fieldlink/gateway/http/observer.hpp"
#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/gateway/ingest/paho_broker_link.hpp"
#include "fieldlink/gateway/ingest/saver.hpp"
#include "fieldlink/gateway/ingest/stats.hpp"
#include "fieldlink/gateway/store/retention.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace {

using namespace fieldlink::gateway;

// Waits for SIGINT/SIGTERM (blocked in every thread, taken here synchronously:
// no async-signal handler, no flag polling). Prints stats on every interval.
using Forwarders = std::vector<std::unique_ptr<Forwarder>>;

void log_forwarders(Logger& log, const Forwarders& forwarders) {
    for (const auto& forwarder : forwarders) {
        const ForwarderStatus s = forwarder->status();
        log.info("upstream {}: {} lag={} forwarded={} bytes_sent={} next_id={}{} chunks_failed={} connect_failures={}",
                 s.upstream, s.connected ? "connected" : "disconnected", s.lag_rows, s.cursor.forwarded_rows,
                 s.cursor.bytes_sent, s.cursor.next_id,
                 s.cursor.live_from_id
                     ? fmt::format(" live_from={} live_next={}", *s.cursor.live_from_id, s.cursor.live_next_id)
                     : std::string(),
                 s.chunks_failed, s.connect_failures);
    }
}

void log_retention(Logger& log, const Retention& retention) {
    const RetentionStats s = retention.stats();
    log.info(
        "retention: passes={} deleted_forwarded={} dropped_unforwarded={} deleted_health={} "
        "deleted_dead_letters={} db_file_bytes={} free_disk_bytes={}{}",
        s.passes, s.deleted_forwarded_rows, s.dropped_unforwarded_rows, s.deleted_health_rows, s.deleted_dead_letters,
        s.db_file_bytes, s.free_disk_bytes,
        s.last_error.empty() ? std::string() : fmt::format(" last_error=\"{}\"", s.last_error));
}

int wait_for_stop_signal(const Config& config, Logger& log, const Stats& stats, const Saver& saver,
                         const Forwarders& forwarders, const Retention& retention, const sigset_t& signals) {
    for (;;) {
        if (config.stats_interval_s == 0) {
            int signal = 0;
            if (sigwait(&signals, &signal) == 0) return signal;
            continue;
        }
        const timespec timeout{static_cast<std::time_t>(config.stats_interval_s), 0};
        const int signal = sigtimedwait(&signals, nullptr, &timeout);
        if (signal > 0) return signal;
        if (errno == EAGAIN) {
            StatsSnapshot snapshot = stats.snapshot();
            snapshot.queue_depth = saver.queue_depth();
            log.info("stats: {}", format_stats(snapshot));
            log_forwarders(log, forwarders);
            log_retention(log, retention);
        }
    }
}

// Retention's lines through the gateway's Logger (RetentionLogLevel has LogLevel's values).
class RetentionLogger final : public RetentionLog {
public:
    explicit RetentionLogger(Logger& log) : log_(log) {}
    bool enabled(RetentionLogLevel level) const noexcept override { return log_.enabled(static_cast<LogLevel>(level)); }
    void write(RetentionLogLevel level, std::string_view line) noexcept override {
        if (enabled(level)) log_.write(static_cast<LogLevel>(level), line);
    }

private:
    Logger& log_;
};

RetentionSettings retention_settings(const Config& config) {
    RetentionSettings s;
    s.max_age_s = config.retention_max_age_s;
    s.max_db_bytes = config.retention_max_db_bytes;
    s.min_free_disk_bytes = config.retention_min_free_disk_bytes;
    s.health_max_age_s = config.retention_health_max_age_s;
    s.dead_letters_max_age_s = config.retention_dead_letters_max_age_s;
    s.interval = std::chrono::seconds(config.retention_interval_s);
    s.delete_batch_rows = config.retention_delete_batch_rows;
    s.busy_timeout_ms = static_cast<int>(config.busy_timeout_ms);
    return s;
}

http::HttpSettings http_settings(const Config& config) {
    http::HttpSettings s;
    s.listen = {config.http_address, static_cast<int>(config.http_port)};
    s.health.writer_stall_s = config.health_writer_stall_s;
    s.health.min_free_disk_bytes = static_cast<std::uint64_t>(config.health_min_free_disk_bytes);
    s.health.max_forward_lag_s = config.health_max_forward_lag_s;
    s.version = FIELDLINK_VERSION;
    return s;
}

// What the HTTP side reads; every call is safe from its worker threads.
http::GatewaySources http_sources(const Config& config, const Stats& stats, const Saver& saver,
                                  const PahoBrokerLink& link, const Forwarders& forwarders,
                                  const Retention& retention) {
    http::GatewaySources s;
    s.stats = &stats;
    s.queue_depth = [&saver] { return saver.queue_depth(); };
    s.queue_capacity = static_cast<std::size_t>(config.queue);
    s.broker_connected = [&link] { return link.connected(); };
    s.forwarders = [&forwarders] {
        std::vector<ForwarderStatus> statuses;
        statuses.reserve(forwarders.size());
        for (const auto& forwarder : forwarders) statuses.push_back(forwarder->status());
        return statuses;
    };
    s.retention = [&retention] { return retention.stats(); };
    s.db_path = config.db_path;
    s.busy_timeout_ms = static_cast<int>(config.busy_timeout_ms);
    return s;
}

int run(const Config& config, const sigset_t& signals) {
    Logger log(config.log_level, stderr, config.log_format);
    try {
        SqliteStore store(store_options(config));
        log.info("database {} (schema v{}, journal {}, synchronous {})", config.db_path, kSchemaVersion,
                 store.journal_mode(), to_string(config.synchronous));
        if (store.auto_vacuum_upgrade() == AutoVacuumUpgrade::Converted) {
            log.info("{}", store.auto_vacuum_notice());
        } else if (store.auto_vacuum_upgrade() != AutoVacuumUpgrade::NotNeeded) {
            log.warn("{}", store.auto_vacuum_notice());
        }
        // Its own connection and thread; the destructor stops it on every way out.
        RetentionLogger retention_log(log);
        Retention retention(config.db_path, retention_settings(config), retention_log);
        {
            std::vector<std::string> names;
            for (const UpstreamConfig& upstream : config.upstreams) names.push_back(upstream.name);
            retention.set_upstreams(std::move(names));
        }
        retention.start();
        if (store.journal_mode() != "wal") {
            log.warn("the database is not in WAL mode ({}); commits are slower", store.journal_mode());
        }
        if (config.synchronous == Synchronous::Normal) {
            log.warn(
                "synchronous=normal: a power loss can roll back commits that were already acked to devices, "
                "and those readings are then lost");
        }

        SystemClock clock;
        Stats stats;
        // One forwarder per [[upstream]]; each has its own thread, connection and cursor.
        const std::string gateway_id = effective_gateway_id(config.gateway_id);
        Forwarders forwarders;
        for (const UpstreamConfig& upstream : config.upstreams) {
            forwarders.push_back(std::make_unique<Forwarder>(forwarder_settings(config, upstream),
                                                             make_upstream(upstream, gateway_id), clock, log));
        }
        struct StopForwarders {
            Forwarders& forwarders;
            ~StopForwarders() {
                for (auto& forwarder : forwarders) forwarder->stop();
            }
        } stop_forwarders{forwarders};
        // systemd (Type=notify): READY once the broker confirmed the
        // subscriptions, watchdog pings from the writer thread.
        const ServiceManager service;
        std::atomic<bool> ready_sent{false};
        PahoBrokerLink link(mqtt_settings(config), log);
        Saver saver(saver_settings(config), store, link, clock, log, stats);
        if (service.watchdog_interval().count() > 0) {
            saver.set_heartbeat(service.watchdog_interval(), [&service] { service.watchdog(); });
            log.info("systemd watchdog: pinging every {} ms from the writer", service.watchdog_interval().count());
        }
        link.set_subscribed_listener([&service, &ready_sent, &config] {
            if (!ready_sent.exchange(true)) {
                service.ready(fmt::format("database open, subscribed on {}", config.broker));
            } else {
                service.status(fmt::format("subscribed again on {}", config.broker));
            }
        });
        link.set_message_handler(
            [&saver](std::string_view topic, std::span<const std::uint8_t> payload) { saver.submit(topic, payload); });
        // On every way out, also an exception: the saver stops first (so a
        // handler blocked on its full queue returns), then the link, whose
        // stop() detaches the handler before the saver is destroyed.
        struct StopInOrder {
            Saver& saver;
            PahoBrokerLink& link;
            ~StopInOrder() {
                saver.stop();
                link.stop();
            }
        } stop_in_order{saver, link};
        saver.set_commit_listener([&forwarders] {
            for (auto& forwarder : forwarders) forwarder->notify_new_rows();
        });
        // /metrics, /healthz and the status page; declared after everything it
        // reads, so that on every way out it stops (and joins) before they go.
        std::optional<http::GatewayObserver> observer;
        std::optional<http::HttpServer> http_server;
        if (config.http_enable) {
            observer.emplace(http_sources(config, stats, saver, link, forwarders, retention),
                             static_cast<std::size_t>(config.http_max_device_series));
            http_server.emplace(http_settings(config), *observer, log);
            http_server->start();  // throws when it cannot listen: the gateway does not start
        }
        saver.start();
        for (auto& forwarder : forwarders) forwarder->start();
        if (!forwarders.empty())
            log.info("gateway id '{}': forwarding to {} upstream(s)", gateway_id, forwarders.size());
        link.start();
        log.info("fieldlink-gateway running: broker {}, client id '{}', batch {} rows / {} ms, queue {}", config.broker,
                 config.client_id, config.batch_rows, config.batch_delay_ms, config.queue);

        const int signal = wait_for_stop_signal(config, log, stats, saver, forwarders, retention, signals);
        log.info("{} received: committing what is queued, then disconnecting", signal == SIGINT ? "SIGINT" : "SIGTERM");
        service.stopping("committing what is queued, then disconnecting");
        if (http_server) http_server->stop();
        saver.stop();  // drains the queue, commits, publishes the last acks
        link.stop();
        retention.stop();  // ends its pass at the next transaction
        StatsSnapshot snapshot = stats.snapshot();
        snapshot.queue_depth = saver.queue_depth();
        log.info("stopped: {}", format_stats(snapshot));
        for (auto& forwarder : forwarders) forwarder->stop();  // saves each cursor
        log_forwarders(log, forwarders);
        log_retention(log, retention);
        return 0;
    } catch (const std::exception& e) {
        log.error("{}", e.what());
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    const CommandLine command_line = parse_command_line(argc, argv);
    if (command_line.exit_code) {
        std::fputs(command_line.message.c_str(), *command_line.exit_code == 0 ? stdout : stderr);
        return *command_line.exit_code;
    }
    for (const UpstreamConfig& upstream : command_line.config.upstreams) {
        if (const auto problem = check_upstream(upstream, effective_gateway_id(command_line.config.gateway_id))) {
            std::fprintf(stderr, "fieldlink-gateway: error: %s\n", problem->c_str());
            return kExitUsage;
        }
    }
    if (command_line.print_config) {
        std::fputs(to_toml(command_line.config).c_str(), stdout);
        return 0;
    }

    // Block the stop signals before any thread exists, so every thread inherits
    // the mask and only wait_for_stop_signal() ever receives them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    return run(command_line.config, signals);
}
