// fieldlink-gateway settings: built-in defaults, then a TOML file
// (config/gateway.toml documents every key), then command-line options.
// One table of keys (config.cpp, kKeys) drives the TOML reader, the command
// line and --print-config: adding a setting is a field here and one line there.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/gateway/ingest/paho_broker_link.hpp"
#include "fieldlink/gateway/ingest/saver.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace fieldlink::gateway {

// Exit code for a bad configuration or command line.
inline constexpr int kExitUsage = 2;

// One [[upstream]] table: a place stored readings are forwarded to
// (docs/operations.md). Keys of the other kind must not be set.
struct UpstreamConfig {
    std::string name;  // required, unique; names the cursor in forward_cursors
    std::string kind;  // required: "mqtt" or "postgres"
    // Forwarding, both kinds.
    std::int64_t batch_rows = 1000;
    std::int64_t batch_delay_ms = 200;
    bool fresh_first = true;
    std::int64_t fresh_first_rows = 10000;
    std::int64_t max_bytes_per_s = 0;
    std::int64_t retry_min_ms = 500;    // backoff after a failed connect or chunk, doubling...
    std::int64_t retry_max_ms = 30000;  // ...up to this
    // kind = "mqtt"
    std::string uri;
    std::string client_id;  // empty: fieldlink-forward-<gateway id>-<name>
    std::string topic = "fieldlink/v1/{gateway}/{device}/forward";
    std::string mqtt_version = "3.1.1";
    std::int64_t keep_alive_s = 30;
    std::string username;
    std::string password;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    bool verify_host = true;
    std::string encoding = "binary";
    std::int64_t zstd_level = 0;
    std::int64_t window = 0;  // 0: the kind's default (mqtt 4, postgres 8)
    std::int64_t max_message_bytes = 126 * 1024;
    // kind = "postgres"
    std::string conninfo;
    std::string table = "fieldlink_readings";

    bool operator==(const UpstreamConfig&) const = default;
};

struct Config {
    // [gateway]
    std::string gateway_id;  // empty: derived from the host name at start
    // [mqtt]
    std::string broker = "tcp://127.0.0.1:1883";
    std::string client_id = "fieldlink-gateway";
    std::int64_t keep_alive_s = 30;
    std::string mqtt_username;  // empty: none (anonymous)
    std::string mqtt_password;
    std::string mqtt_ca_file;  // TLS (ssl://, mqtts://, wss://); empty: the system's trust store
    std::string mqtt_cert_file;
    std::string mqtt_key_file;
    bool mqtt_verify_host = true;
    // [database]
    std::string db_path = "fieldlink.db";
    Synchronous synchronous = Synchronous::Full;
    std::int64_t busy_timeout_ms = 5000;
    std::int64_t cache_kib = 2048;
    // [pipeline]
    std::int64_t batch_rows = 1000;
    std::int64_t batch_delay_ms = 0;
    std::int64_t queue = 10000;
    std::int64_t max_incarnations = 10000;
    std::int64_t max_ranges_per_incarnation = 64;
    // [retention] (0: that limit is off)
    std::int64_t retention_max_age_s = 0;
    std::int64_t retention_max_db_bytes = 0;
    std::int64_t retention_min_free_disk_bytes = 0;
    std::int64_t retention_health_max_age_s = 30 * 86400;
    std::int64_t retention_dead_letters_max_age_s = 30 * 86400;
    std::int64_t retention_interval_s = 10;
    std::int64_t retention_delete_batch_rows = 2000;
    // [log]
    LogLevel log_level = LogLevel::Info;
    LogFormat log_format = LogFormat::Text;
    std::int64_t stats_interval_s = 10;
    // [http] (docs/operations.md "Metrics, health and the status page")
    bool http_enable = false;
    std::string http_address = "127.0.0.1";
    std::int64_t http_port = 9770;
    std::int64_t http_max_device_series = 1000;
    std::int64_t health_writer_stall_s = 30;               // 0: that check is off
    std::int64_t health_min_free_disk_bytes = 64LL << 20;  // 0: off
    std::int64_t health_max_forward_lag_s = 3600;          // 0: off
    // [[upstream]], in file order
    std::vector<UpstreamConfig> upstreams;

    bool operator==(const Config&) const = default;
};

// A bad config file: what() names the file, the position, the key and what is expected.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Applies the keys present in TOML `text` on top of `config`. `source` names
// the text in errors (usually the file path). Throws ConfigError.
void apply_toml(std::string_view text, const std::string& source, Config& config);
void apply_toml_file(const std::string& path, Config& config);

// The whole configuration as TOML that apply_toml reads back unchanged, each
// key with its help as a comment.
std::string to_toml(const Config& config);

// Every key as "section.key", in the order of the table (for tests and docs);
// the keys of an [[upstream]] table as "upstream.key".
std::vector<std::string> config_key_names();

// The gateway id to use: `configured` when set, else the host name reduced to
// A-Z a-z 0-9 _ - (at most 64 characters), else "gateway".
std::string effective_gateway_id(const std::string& configured);

std::string_view to_string(Synchronous synchronous) noexcept;

// The pieces' own settings, derived from a Config.
MqttSettings mqtt_settings(const Config& config);
StoreOptions store_options(const Config& config);
SaverSettings saver_settings(const Config& config);

struct CommandLine {
    Config config;
    bool print_config = false;
    // When set: print `message` (stdout for 0, stderr otherwise) and exit with this code.
    std::optional<int> exit_code;
    std::string message;
};

// Parses argv (CLI11): --help, --config and every override. Never throws.
CommandLine parse_command_line(int argc, const char* const* argv);

}  // namespace fieldlink::gateway
