// Command line of fieldlink-reader and the small parsers behind it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::boards::host {

enum class LogLevel : std::uint8_t { Error = 0, Warn, Info, Debug };

struct Options {
    std::string device;
    std::string broker_host = "127.0.0.1";
    std::uint16_t broker_port = 1883;
    std::string username;  // empty: none sent
    std::string password;  // from --password or the first line of --password-file
    bool tls = false;
    std::string ca_file;  // TLS; empty: the system's trust store
    std::string cert_file;
    std::string key_file;
    bool verify_host = true;
    std::vector<std::uint32_t> channel_periods_ms;  // one per channel
    std::uint16_t batch_size = 32;
    std::uint8_t window = 4;
    std::uint16_t keep_alive_s = 30;
    std::uint32_t ack_timeout_ms = 5'000;
    std::uint32_t connect_timeout_ms = 5'000;
    std::uint32_t reconnect_min_ms = 500;
    std::uint32_t reconnect_max_ms = 30'000;
    std::uint64_t buffer = 200'000;
    std::string flash_file;              // empty: readings live in RAM (--buffer)
    std::uint32_t flash_sectors = 2048;  // of 4 KiB: 8 MiB, about 258,000 readings
    bool flash_sync = true;              // fdatasync every flash write (survives power loss)
    reader::FullPolicy full_policy = reader::FullPolicy::DropOldest;
    std::optional<std::uint64_t> incarnation;  // random when absent
    std::uint64_t seed = 0;
    std::uint64_t duration_s = 0;  // 0: until SIGINT/SIGTERM
    std::uint64_t drain_timeout_s = 30;
    std::uint32_t telemetry_interval_s = 10;  // 0: no telemetry
    std::string record_file;
    LogLevel log_level = LogLevel::Info;
};

// Parses argv. Returns the options, or sets *exit_code (0 after --help,
// 2 for a usage error, with the message already printed).
std::optional<Options> parse_options(int argc, char** argv, int* exit_code);

// "HOST:PORT", "[v6addr]:PORT"; false when malformed or the port is not 1..65535.
bool parse_broker(std::string_view text, std::string* host, std::uint16_t* port);
// "CH=MS" with MS > 0.
bool parse_channel_period(std::string_view text, unsigned* channel, std::uint32_t* period_ms);
// 1 to 16 hex digits, optional 0x prefix.
bool parse_hex_u64(std::string_view text, std::uint64_t* value);
bool parse_log_level(std::string_view text, LogLevel* level);

}  // namespace fieldlink::boards::host
