// fieldlink-serial-bridge: bridges serial lines (ttys, TCP sockets) that carry
// a link session to Mosquitto, one MQTT client connection per line, until
// SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fieldlink/gateway/bridge/bridge.hpp"
#include "fieldlink/gateway/bridge/line.hpp"
#include "fieldlink/gateway/ingest/broker_uri.hpp"
#include "fieldlink/gateway/ingest/log.hpp"

namespace {

using namespace fieldlink::gateway;

int run(const std::vector<bridge::LineSpec>& lines, const bridge::BridgeConfig& config, LogLevel level) {
    Logger log(level);
    // SIGINT/SIGTERM are taken synchronously below; a closed socket must not kill us.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    bridge::UniqueFd stop(eventfd(0, EFD_CLOEXEC));
    if (!stop) {
        log.error("cannot create an eventfd: {}", std::strerror(errno));
        return 1;
    }
    log.info("fieldlink-serial-bridge {}: {} line(s) to broker {}:{}", FIELDLINK_VERSION, lines.size(),
             config.broker_host, config.broker_port);
    std::vector<std::thread> threads;
    for (const bridge::LineSpec& line : lines) {
        threads.emplace_back([&line, &config, &stop, &log] { bridge::run_line(line, config, stop.get(), log); });
    }
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    log.info("signal {}: stopping", signal_number);
    const std::uint64_t one = 1;
    if (::write(stop.get(), &one, sizeof(one)) != sizeof(one)) log.error("cannot signal the lines to stop");
    for (std::thread& thread : threads) thread.join();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "fieldlink-serial-bridge: connects boards on serial lines to Mosquitto.\n"
        "Each line carries the fieldlink serial link (docs/protocol.md, \"Serial link\"); its data is one\n"
        "MQTT client connection, which the bridge opens to the broker when the link opens and closes\n"
        "whenever the link resets. Lines that go away are reopened with backoff."};
    app.set_version_flag("--version", std::string(FIELDLINK_VERSION));
    std::string broker = "tcp://127.0.0.1:1883";
    std::vector<std::string> line_texts;
    std::string level_text = "info";
    bridge::BridgeConfig config;
    app.add_option("--broker", broker, "MQTT broker, plain TCP: tcp://HOST:PORT or mqtt://HOST:PORT")
        ->capture_default_str();
    app.add_option("--line", line_texts,
                   "a serial line, repeat for several: tty:/dev/ttyACM0@115200 (tty, raw 8N1 at that baud rate) or "
                   "tcp:127.0.0.1:5555 (connect to a TCP server such as QEMU's -serial tcp:...,server)")
        ->required();
    app.add_option("--log-level", level_text, "error, warn, info or debug")->capture_default_str();
    app.add_option("--link-retry-ms", config.link_retry_ms, "how often an unanswered link reset is repeated")
        ->capture_default_str()
        ->check(CLI::Range(10u, 60000u));
    app.add_option("--backoff-max-ms", config.backoff_max_ms,
                   "longest wait before reopening a line or the broker connection (the wait doubles from "
                   "200 ms up to this)")
        ->capture_default_str()
        ->check(CLI::Range(200u, 600000u));
    CLI11_PARSE(app, argc, argv);

    const auto level = parse_log_level(level_text);
    if (!level) {
        std::fprintf(stderr, "--log-level: '%s' is not one of error, warn, info, debug\n", level_text.c_str());
        return 2;
    }
    const auto uri = parse_broker_uri(broker);
    if (!uri || uri->tls || uri->websocket) {
        std::fprintf(stderr, "--broker: '%s' is not a plain TCP broker address (expected tcp://HOST:PORT, e.g. %s)\n",
                     broker.c_str(), "tcp://127.0.0.1:1883");
        return 2;
    }
    config.broker_host = std::string(uri->host);
    if (config.broker_host.size() > 2 && config.broker_host.front() == '[') {
        config.broker_host = config.broker_host.substr(1, config.broker_host.size() - 2);
    }
    config.broker_port = static_cast<std::uint16_t>(uri->port);
    std::vector<bridge::LineSpec> lines;
    for (const std::string& text : line_texts) {
        try {
            lines.push_back(bridge::parse_line(text));
            // Two readers of one line would each see half of its frames.
            for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
                if (lines[i].name == lines.back().name) throw std::invalid_argument("line '" + text + "' given twice");
            }
        } catch (const std::invalid_argument& e) {
            std::fprintf(stderr, "--line: %s\n", e.what());
            return 2;
        }
    }
    return run(lines, config, *level);
}
