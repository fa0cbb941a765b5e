#include "fieldlink/boards/host/options.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdio>
#include <map>

#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/text.hpp"
#include "fieldlink/protocol/topics.hpp"
#include "fieldlink/reader/reader.hpp"

namespace fieldlink::boards::host {
namespace {

template <class T>
bool parse_unsigned(std::string_view text, T* value) {
    if (text.empty()) return false;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
    return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

bool parse_broker(std::string_view text, std::string* host, std::uint16_t* port) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view host_part = text.substr(0, colon);
    if (host_part.front() == '[') {
        if (host_part.size() < 3 || host_part.back() != ']') return false;
        host_part = host_part.substr(1, host_part.size() - 2);
    } else if (host_part.find(':') != std::string_view::npos) {
        return false;  // an IPv6 address needs brackets
    }
    unsigned value = 0;
    if (!parse_unsigned(text.substr(colon + 1), &value) || value == 0 || value > 65535) return false;
    *host = std::string(host_part);
    *port = static_cast<std::uint16_t>(value);
    return true;
}

bool parse_channel_period(std::string_view text, unsigned* channel, std::uint32_t* period_ms) {
    const std::size_t equals = text.find('=');
    if (equals == std::string_view::npos) return false;
    return parse_unsigned(text.substr(0, equals), channel) && parse_unsigned(text.substr(equals + 1), period_ms) &&
           *period_ms > 0;
}

bool parse_hex_u64(std::string_view text, std::uint64_t* value) {
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
    return protocol::parse_hex_u64(text.data(), text.size(), value);
}

bool parse_log_level(std::string_view text, LogLevel* level) {
    static const std::map<std::string_view, LogLevel> kLevels = {
        {"error", LogLevel::Error}, {"warn", LogLevel::Warn}, {"info", LogLevel::Info}, {"debug", LogLevel::Debug}};
    const auto found = kLevels.find(text);
    if (found == kLevels.end()) return false;
    *level = found->second;
    return true;
}

std::optional<Options> parse_options(int argc, char** argv, int* exit_code) {
    Options o;
    std::string broker = "127.0.0.1:1883";
    unsigned channels = 3;
    std::uint32_t period_ms = 1'000;
    std::vector<std::string> channel_periods;
    unsigned window = o.window;
    std::string incarnation;
    std::string full_policy = "drop-oldest";
    std::string log_level = "info";

    CLI::App app{
        "fieldlink-reader: the fieldlink reader firmware on the host board.\n"
        "Samples simulated sensors, keeps readings in RAM (or in a flash file with --flash)\n"
        "until the gateway's commit ack covers them, and publishes them in batches to\n"
        "fieldlink/v1/<device>/up over MQTT, with device health on fieldlink/v1/<device>/telemetry."};
    app.option_defaults()->always_capture_default();
    app.get_formatter()->column_width(34);

    app.add_option("--device", o.device, "Device id: 1 to 32 characters from A-Z a-z 0-9 _ -")
        ->required()
        ->check([](const std::string& id) -> std::string {
            if (protocol::is_valid_device_id(id.data(), id.size())) return {};
            return "device id must be 1 to 32 characters from A-Z a-z 0-9 _ - (got '" + id + "')";
        });
    app.add_option("--broker", broker, "MQTT broker as HOST:PORT ([v6addr]:PORT for IPv6)")
        ->check([](const std::string& text) -> std::string {
            std::string host;
            std::uint16_t port = 0;
            return parse_broker(text, &host, &port) ? std::string() : "expected HOST:PORT with a port 1..65535";
        });
    app.add_option("--username", o.username,
                   "MQTT user name (a broker with a password file: the device id, docs/operations.md)");
    auto* password = app.add_option("--password", o.password, "MQTT password (visible in ps: prefer --password-file)")
                         ->default_str("none");
    std::string password_file;
    app.add_option("--password-file", password_file, "Read the MQTT password from the first line of this file")
        ->check(CLI::ExistingFile)
        ->excludes(password);
    auto* tls = app.add_flag("--tls", o.tls, "Connect with TLS (the broker's TLS listener, usually port 8883)");
    app.add_option("--ca-file", o.ca_file, "TLS: CA certificates (PEM) the broker's certificate must chain to")
        ->default_str("the system's trust store")
        ->check(CLI::ExistingFile)
        ->needs(tls);
    auto* cert = app.add_option("--cert-file", o.cert_file, "TLS: client certificate (PEM), if the broker wants one")
                     ->check(CLI::ExistingFile)
                     ->needs(tls);
    auto* key =
        app.add_option("--key-file", o.key_file, "TLS: key of --cert-file (PEM)")->check(CLI::ExistingFile)->needs(tls);
    cert->needs(key);
    key->needs(cert);
    app.add_flag("!--no-verify-host", o.verify_host,
                 "TLS: accept a broker certificate that does not name the --broker host (the CA is still checked)")
        ->needs(tls);
    app.add_option("--channels", channels,
                   "Number of simulated sensor channels (0 temperature, 1 humidity, "
                   "2 pressure, 3 battery, then analog inputs)")
        ->check(CLI::Range(1u, static_cast<unsigned>(reader::kMaxChannels)));
    app.add_option("--period", period_ms, "Sampling period of every channel, in milliseconds")
        ->check(CLI::Range(1u, 86'400'000u));
    app.add_option("--channel-period", channel_periods,
                   "Sampling period of one channel as CH=MS (repeatable; overrides --period)")
        ->check([](const std::string& text) -> std::string {
            unsigned ch = 0;
            std::uint32_t ms = 0;
            return parse_channel_period(text, &ch, &ms) ? std::string() : "expected CH=MS with MS > 0";
        });
    app.add_option("--batch-size", o.batch_size, "Most readings per published batch")
        ->check(CLI::Range(1u, static_cast<unsigned>(protocol::kMaxRecordsPerBatch)));
    app.add_option("--window", window, "Batches in flight (published, not yet covered by a commit ack)")
        ->check(CLI::Range(1u, static_cast<unsigned>(reader::kMaxWindow)));
    app.add_option("--keepalive", o.keep_alive_s, "MQTT keep-alive in seconds (0 disables)");
    app.add_option("--ack-timeout", o.ack_timeout_ms,
                   "Resend from the commit-ack watermark when it has not moved for this many ms "
                   "while batches are in flight")
        ->check(CLI::Range(1u, 86'400'000u));
    app.add_option("--connect-timeout", o.connect_timeout_ms,
                   "Milliseconds allowed for TCP connect, and then each of CONNACK and SUBACK")
        ->check(CLI::Range(1u, 3'600'000u));
    app.add_option("--reconnect-min", o.reconnect_min_ms,
                   "First reconnect delay in ms (doubles per failure, "
                   "with jitter)")
        ->check(CLI::Range(1u, 3'600'000u));
    app.add_option("--reconnect-max", o.reconnect_max_ms, "Cap of the reconnect delay in ms")
        ->check(CLI::Range(1u, 3'600'000u));
    app.add_option("--buffer", o.buffer, "RAM store capacity in readings (24 bytes each; not used with --flash)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000'000}));
    auto* flash = app.add_option("--flash", o.flash_file,
                                 "Keep readings in this flash file (NOR flash semantics; survives restarts, "
                                 "kill -9 and, with sync, power loss). Created erased if missing")
                      ->default_str("none: RAM store");
    app.add_option("--flash-sectors", o.flash_sectors,
                   "Sectors of 4096 bytes in the flash file; each holds 126 readings and one stays free")
        ->check(CLI::Range(2u, 1'048'575u));
    app.add_flag("!--no-flash-sync", o.flash_sync,
                 "Skip fdatasync after each flash write: survives kill -9 but not power loss");
    app.add_option("--full-policy", full_policy,
                   "When the store is full: drop-oldest (counted in 'dropped') or refuse (stop sampling)")
        ->check(CLI::IsMember({"drop-oldest", "refuse"}));
    app.add_option("--incarnation", incarnation,
                   "Incarnation id as 1 to 16 hex digits (default: random for every run; with --flash "
                   "the flash file keeps its own)")
        ->default_str("random")
        ->excludes(flash)
        ->check([](const std::string& text) -> std::string {
            std::uint64_t value = 0;
            return parse_hex_u64(text, &value) ? std::string() : "expected 1 to 16 hex digits";
        });
    app.add_option("--seed", o.seed, "Extra seed for the simulated sensors (the device id is always mixed in)");
    app.add_option("--duration", o.duration_s,
                   "Seconds to sample before draining and exiting (0: until "
                   "SIGINT/SIGTERM)");
    app.add_option("--drain-timeout", o.drain_timeout_s,
                   "After stop: seconds to keep sending until every reading is acked (exit 0), else exit 3");
    app.add_option("--telemetry-interval", o.telemetry_interval_s,
                   "Seconds between device health messages on fieldlink/v1/<device>/telemetry (QoS 0; 0: none)")
        ->check(CLI::Range(0u, 86'400u));
    app.add_option("--record-file", o.record_file,
                   "Append one line per produced reading, after the store has it durably: "
                   "device,incarnation(16 hex),seq,boot,channel,mono_ms,value(%.17g)")
        ->default_str("none");
    app.add_option("--log-level", log_level, "Log verbosity on stderr: error, warn, info or debug")
        ->check(CLI::IsMember({"error", "warn", "info", "debug"}));
    app.footer(
        "Exit status: 0 when every produced reading was acknowledged before exit, 3 when the\n"
        "drain timed out, 2 for a usage error, 1 for a runtime error. At exit one line goes to stdout:\n"
        "summary device=<id> incarnation=<16 hex> produced=<n> acked_through=<seq> dropped=<n> "
        "reconnects=<n> resends=<n> sensor_errors=<n>");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int code = app.exit(error);
        *exit_code = code == 0 ? 0 : 2;
        return std::nullopt;
    }

    parse_broker(broker, &o.broker_host, &o.broker_port);
    if (!password_file.empty()) {
        std::FILE* file = std::fopen(password_file.c_str(), "r");
        char line[1024] = {};
        const bool read = file != nullptr && std::fgets(line, sizeof line, file) != nullptr;
        if (file != nullptr) std::fclose(file);
        if (!read) {
            std::fprintf(stderr, "--password-file %s: cannot read a line\n", password_file.c_str());
            *exit_code = 2;
            return std::nullopt;
        }
        o.password = line;
        while (!o.password.empty() && (o.password.back() == '\n' || o.password.back() == '\r')) o.password.pop_back();
    }
    if (!o.password.empty() && o.username.empty()) {
        std::fprintf(stderr, "a password needs --username (MQTT 3.1.1 sends no password alone)\n");
        *exit_code = 2;
        return std::nullopt;
    }
    o.window = static_cast<std::uint8_t>(window);
    o.channel_periods_ms.assign(channels, period_ms);
    for (const std::string& text : channel_periods) {
        unsigned ch = 0;
        std::uint32_t ms = 0;
        parse_channel_period(text, &ch, &ms);
        if (ch >= channels) {
            std::fprintf(stderr, "--channel-period %s: channel %u does not exist (--channels %u)\n", text.c_str(), ch,
                         channels);
            *exit_code = 2;
            return std::nullopt;
        }
        o.channel_periods_ms[ch] = ms;
    }
    if (!incarnation.empty()) {
        std::uint64_t value = 0;
        parse_hex_u64(incarnation, &value);
        o.incarnation = value;
    }
    o.full_policy = full_policy == "refuse" ? reader::FullPolicy::RefuseNew : reader::FullPolicy::DropOldest;
    parse_log_level(log_level, &o.log_level);
    if (o.reconnect_max_ms < o.reconnect_min_ms) o.reconnect_max_ms = o.reconnect_min_ms;
    return o;
}

}  // namespace fieldlink::boards::host
