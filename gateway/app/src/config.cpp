#include "fieldlink/gateway/app/config.hpp"

#include "fieldlink/gateway/ingest/broker_uri.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <variant>

namespace fieldlink::gateway {
namespace {

// ---------------------------------------------------------------------------
// The table of keys
// ---------------------------------------------------------------------------

struct IntRange {
    std::int64_t min;
    std::int64_t max;
};

using Value = std::variant<std::string, std::int64_t, bool>;

enum class Kind {
    Text,          // a non-empty string; `check_text` may refuse some
    OptionalText,  // a string, empty allowed (the default: not set)
    Integer,       // within `range`
    Choice,        // one of `choices`
    Boolean,
};

// Empty when the text is fine, else what is expected instead.
using TextCheck = std::string (*)(const std::string& text);

// One key: where it lives in the file, its command-line option (none for
// [[upstream]] keys), type, range, help, and how to get and set it on Target
// (Config, or one UpstreamConfig).
template <typename Target>
struct KeySpec {
    std::string_view section;    // TOML table ("upstream" for the [[upstream]] array)
    std::string_view key;        // TOML key
    std::string_view option;     // command-line option; empty: file only
    std::string_view type_name;  // placeholder in --help
    std::string_view help;
    Kind kind;
    IntRange range{0, 0};                       // Integer
    std::span<const std::string_view> choices;  // Choice
    TextCheck check_text = nullptr;             // Text
    Value (*get)(const Target&);
    void (*set)(Target&, const Value&);
    std::string_view only_for = {};  // [[upstream]]: the kind this key belongs to; empty: every kind

    std::string name() const { return fmt::format("{}.{}", section, key); }
};

template <typename Target, std::string Target::*Member>
Value get_text(const Target& t) {
    return t.*Member;
}
template <typename Target, std::string Target::*Member>
void set_text(Target& t, const Value& v) {
    t.*Member = std::get<std::string>(v);
}
template <typename Target, std::int64_t Target::*Member>
Value get_integer(const Target& t) {
    return t.*Member;
}
template <typename Target, std::int64_t Target::*Member>
void set_integer(Target& t, const Value& v) {
    t.*Member = std::get<std::int64_t>(v);
}
template <typename Target, bool Target::*Member>
Value get_bool(const Target& t) {
    return t.*Member;
}
template <typename Target, bool Target::*Member>
void set_bool(Target& t, const Value& v) {
    t.*Member = std::get<bool>(v);
}

std::string check_broker_uri(const std::string& uri) {
    return parse_broker_uri(uri) ? std::string() : std::string(kBrokerUriExpected);
}

std::string check_id(const std::string& id) {
    if (id.size() > 64) return "at most 64 characters";
    for (const char c : id) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
            return "made of A-Z a-z 0-9 _ - (at most 64)";
        }
    }
    return {};
}

std::string check_gateway_id(const std::string& id) { return id.empty() ? std::string() : check_id(id); }

constexpr std::string_view kSynchronousChoices[] = {"full", "normal"};
Value get_synchronous(const Config& c) { return std::string(to_string(c.synchronous)); }
void set_synchronous(Config& c, const Value& v) {
    c.synchronous = std::get<std::string>(v) == "normal" ? Synchronous::Normal : Synchronous::Full;
}

constexpr std::string_view kLogLevelChoices[] = {"error", "warn", "info", "debug"};
Value get_log_level(const Config& c) { return std::string(to_string(c.log_level)); }
void set_log_level(Config& c, const Value& v) { c.log_level = *parse_log_level(std::get<std::string>(v)); }

constexpr std::string_view kLogFormatChoices[] = {"text", "json"};
Value get_log_format(const Config& c) { return std::string(to_string(c.log_format)); }
void set_log_format(Config& c, const Value& v) { c.log_format = *parse_log_format(std::get<std::string>(v)); }

// A host for getaddrinfo: a name, an IPv4 or a bare IPv6 address.
std::string check_http_address(const std::string& host) {
    for (const char c : host) {
        if (std::isspace(static_cast<unsigned char>(c)) || c == '[' || c == ']' || c == '/') {
            return "a host name or an IPv4/IPv6 address without brackets or port (e.g. 127.0.0.1, ::1, 0.0.0.0)";
        }
    }
    return {};
}

using C = Config;
// In this order in --help, --print-config and config/gateway.toml.
// One key per entry, laid out by hand so that each reads as a row.
// clang-format off
constexpr KeySpec<Config> kKeys[] = {
    {"gateway", "id", "--gateway-id", "ID", "this gateway's id in forwarded readings; empty: the host name",
     Kind::OptionalText, {}, {}, check_gateway_id, get_text<C, &C::gateway_id>, set_text<C, &C::gateway_id>},
    {"mqtt", "broker", "--broker", "URI", "MQTT broker (tcp://, mqtt://, ssl://, ws://...)", Kind::Text, {}, {},
     check_broker_uri, get_text<C, &C::broker>, set_text<C, &C::broker>},
    {"mqtt", "client_id", "--client-id", "ID", "MQTT client id; keep it fixed (persistent session)", Kind::Text, {},
     {}, nullptr, get_text<C, &C::client_id>, set_text<C, &C::client_id>},
    {"mqtt", "keep_alive_s", "--keep-alive", "S", "MQTT keep-alive s, 0 = off", Kind::Integer, {0, 65535}, {},
     nullptr, get_integer<C, &C::keep_alive_s>, set_integer<C, &C::keep_alive_s>},
    {"mqtt", "username", "--mqtt-username", "NAME", "MQTT user name (password_file); empty: none",
     Kind::OptionalText, {}, {}, nullptr, get_text<C, &C::mqtt_username>, set_text<C, &C::mqtt_username>},
    {"mqtt", "password", "--mqtt-password", "TEXT", "MQTT password (visible in ps: prefer the file)",
     Kind::OptionalText, {}, {}, nullptr, get_text<C, &C::mqtt_password>, set_text<C, &C::mqtt_password>},
    {"mqtt", "ca_file", "--mqtt-ca-file", "PEM", "TLS: CA certificates to verify the broker; empty: the system's",
     Kind::OptionalText, {}, {}, nullptr, get_text<C, &C::mqtt_ca_file>, set_text<C, &C::mqtt_ca_file>},
    {"mqtt", "cert_file", "--mqtt-cert-file", "PEM", "TLS: client certificate; empty: none", Kind::OptionalText, {},
     {}, nullptr, get_text<C, &C::mqtt_cert_file>, set_text<C, &C::mqtt_cert_file>},
    {"mqtt", "key_file", "--mqtt-key-file", "PEM", "TLS: the client certificate's key", Kind::OptionalText, {}, {},
     nullptr, get_text<C, &C::mqtt_key_file>, set_text<C, &C::mqtt_key_file>},
    {"mqtt", "verify_host", "--mqtt-verify-host", "true|false", "TLS: the broker's certificate must name its host",
     Kind::Boolean, {}, {}, nullptr, get_bool<C, &C::mqtt_verify_host>, set_bool<C, &C::mqtt_verify_host>},
    {"database", "path", "--db", "PATH", "SQLite database file, created if missing", Kind::Text, {}, {}, nullptr,
     get_text<C, &C::db_path>, set_text<C, &C::db_path>},
    {"database", "synchronous", "--synchronous", "full|normal", "full: on disk before the ack; normal: faster, unsafe",
     Kind::Choice, {}, kSynchronousChoices, nullptr, get_synchronous, set_synchronous},
    {"database", "busy_timeout_ms", "--busy-timeout-ms", "N", "wait for a locked database", Kind::Integer,
     {0, 600000}, {}, nullptr, get_integer<C, &C::busy_timeout_ms>, set_integer<C, &C::busy_timeout_ms>},
    {"database", "cache_kib", "--cache-kib", "N", "SQLite page cache of the writer, KiB", Kind::Integer,
     {64, 1048576}, {}, nullptr, get_integer<C, &C::cache_kib>, set_integer<C, &C::cache_kib>},
    {"pipeline", "batch_rows", "--batch-rows", "N", "commit after this many readings", Kind::Integer, {1, 100000},
     {}, nullptr, get_integer<C, &C::batch_rows>, set_integer<C, &C::batch_rows>},
    {"pipeline", "batch_delay_ms", "--batch-delay-ms", "N", "least milliseconds between two commits' starts", Kind::Integer,
     {0, 10000}, {}, nullptr, get_integer<C, &C::batch_delay_ms>, set_integer<C, &C::batch_delay_ms>},
    {"pipeline", "queue", "--queue", "N", "messages waiting for the database", Kind::Integer, {1, 1000000}, {},
     nullptr, get_integer<C, &C::queue>, set_integer<C, &C::queue>},
    {"pipeline", "max_incarnations", "--max-incarnations", "N",
     "device incarnations whose state stays in memory (older: reloaded from the database)", Kind::Integer,
     {1, 10'000'000}, {}, nullptr, get_integer<C, &C::max_incarnations>, set_integer<C, &C::max_incarnations>},
    {"pipeline", "max_ranges_per_incarnation", "--max-ranges", "N",
     "out-of-order ranges above a watermark per incarnation (a batch that would open more waits for a resend)", Kind::Integer, {1, 1'000'000}, {}, nullptr,
     get_integer<C, &C::max_ranges_per_incarnation>, set_integer<C, &C::max_ranges_per_incarnation>},
    {"retention", "max_age_s", "--retention-max-age", "S",
     "forwarded readings older than this are deleted, 0 = keep", Kind::Integer, {0, 100LL * 365 * 86400}, {},
     nullptr, get_integer<C, &C::retention_max_age_s>, set_integer<C, &C::retention_max_age_s>},
    {"retention", "max_db_bytes", "--retention-max-db-bytes", "BYTES",
     "oldest readings go when the database is larger, 0 = no limit", Kind::Integer, {0, 1LL << 50}, {}, nullptr,
     get_integer<C, &C::retention_max_db_bytes>, set_integer<C, &C::retention_max_db_bytes>},
    {"retention", "min_free_disk_bytes", "--retention-min-free-disk", "BYTES",
     "oldest readings go when the disk has less free, 0 = no floor", Kind::Integer, {0, 1LL << 50}, {}, nullptr,
     get_integer<C, &C::retention_min_free_disk_bytes>, set_integer<C, &C::retention_min_free_disk_bytes>},
    {"retention", "health_max_age_s", "--retention-health-max-age", "S",
     "device_health rows older than this are deleted, 0 = keep", Kind::Integer, {0, 100LL * 365 * 86400}, {},
     nullptr, get_integer<C, &C::retention_health_max_age_s>, set_integer<C, &C::retention_health_max_age_s>},
    {"retention", "dead_letters_max_age_s", "--retention-dead-letters-max-age", "S",
     "dead letters older than this are deleted, 0 = keep", Kind::Integer, {0, 100LL * 365 * 86400}, {}, nullptr,
     get_integer<C, &C::retention_dead_letters_max_age_s>, set_integer<C, &C::retention_dead_letters_max_age_s>},
    {"retention", "interval_s", "--retention-interval", "S", "s between retention checks", Kind::Integer,
     {1, 86400}, {}, nullptr, get_integer<C, &C::retention_interval_s>, set_integer<C, &C::retention_interval_s>},
    {"retention", "delete_batch_rows", "--retention-batch-rows", "N",
     "rows deleted per transaction (small: never stalls ingest)", Kind::Integer, {1, 1000000}, {}, nullptr,
     get_integer<C, &C::retention_delete_batch_rows>, set_integer<C, &C::retention_delete_batch_rows>},
    {"log", "level", "--log-level", "error|warn|info|debug", "stderr log level", Kind::Choice, {}, kLogLevelChoices,
     nullptr, get_log_level, set_log_level},
    {"log", "format", "--log-format", "text|json", "log lines as text or one JSON object each", Kind::Choice, {},
     kLogFormatChoices, nullptr, get_log_format, set_log_format},
    {"log", "stats_interval_s", "--stats-interval", "S", "s between stats lines, 0 = off", Kind::Integer,
     {0, 86400}, {}, nullptr, get_integer<C, &C::stats_interval_s>, set_integer<C, &C::stats_interval_s>},
    {"http", "enable", "--http-enable", "true|false", "serve /metrics, /healthz and the status page",
     Kind::Boolean, {}, {}, nullptr, get_bool<C, &C::http_enable>, set_bool<C, &C::http_enable>},
    {"http", "address", "--http-address", "HOST", "address to listen on (127.0.0.1: this host only)", Kind::Text, {},
     {}, check_http_address, get_text<C, &C::http_address>, set_text<C, &C::http_address>},
    {"http", "port", "--http-port", "N", "TCP port, 0 = any free one (logged)", Kind::Integer, {0, 65535}, {},
     nullptr, get_integer<C, &C::http_port>, set_integer<C, &C::http_port>},
    {"http", "max_device_series", "--http-max-device-series", "N",
     "devices with their own series in /metrics (the most recently seen)", Kind::Integer, {0, 100000}, {}, nullptr,
     get_integer<C, &C::http_max_device_series>, set_integer<C, &C::http_max_device_series>},
    {"http", "health_writer_stall_s", "--health-writer-stall", "S",
     "/healthz fails while one commit takes longer, 0 = off", Kind::Integer, {0, 86400}, {}, nullptr,
     get_integer<C, &C::health_writer_stall_s>, set_integer<C, &C::health_writer_stall_s>},
    {"http", "health_min_free_disk_bytes", "--health-min-free-disk", "BYTES",
     "/healthz fails below this much free disk, 0 = off", Kind::Integer, {0, 1LL << 50}, {}, nullptr,
     get_integer<C, &C::health_min_free_disk_bytes>, set_integer<C, &C::health_min_free_disk_bytes>},
    {"http", "health_max_forward_lag_s", "--health-max-forward-lag", "S",
     "/healthz fails while an upstream's oldest waiting reading is older, 0 = off", Kind::Integer,
     {0, 100LL * 365 * 86400}, {}, nullptr, get_integer<C, &C::health_max_forward_lag_s>,
     set_integer<C, &C::health_max_forward_lag_s>},
};
// clang-format on

constexpr std::string_view kUpstreamKinds[] = {"mqtt", "postgres"};
constexpr std::string_view kMqttVersions[] = {"3.1.1", "5"};
constexpr std::string_view kEncodings[] = {"binary", "json"};

using U = UpstreamConfig;
// The keys of one [[upstream]] table (file only).
// clang-format off
constexpr KeySpec<UpstreamConfig> kUpstreamKeys[] = {
    {"upstream", "name", {}, {}, "unique name; the cursor in forward_cursors is kept under it", Kind::Text, {}, {},
     check_id, get_text<U, &U::name>, set_text<U, &U::name>},
    {"upstream", "kind", {}, {}, "mqtt: a broker or cluster; postgres: a PostgreSQL database", Kind::Choice, {},
     kUpstreamKinds, nullptr, get_text<U, &U::kind>, set_text<U, &U::kind>},
    {"upstream", "batch_rows", {}, {}, "readings per chunk read from the database", Kind::Integer, {1, 100000}, {},
     nullptr, get_integer<U, &U::batch_rows>, set_integer<U, &U::batch_rows>},
    {"upstream", "batch_delay_ms", {}, {}, "a partial chunk of fresh readings waits at most this long",
     Kind::Integer, {0, 60000}, {}, nullptr, get_integer<U, &U::batch_delay_ms>, set_integer<U, &U::batch_delay_ms>},
    {"upstream", "fresh_first", {}, {}, "after an outage, new readings go before the backlog", Kind::Boolean, {}, {},
     nullptr, get_bool<U, &U::fresh_first>, set_bool<U, &U::fresh_first>},
    {"upstream", "fresh_first_rows", {}, {}, "...when at least this many readings are waiting", Kind::Integer,
     {0, 1'000'000'000}, {}, nullptr, get_integer<U, &U::fresh_first_rows>, set_integer<U, &U::fresh_first_rows>},
    {"upstream", "max_bytes_per_s", {}, {}, "bandwidth cap for metered links, 0 = none", Kind::Integer,
     {0, 1'000'000'000}, {}, nullptr, get_integer<U, &U::max_bytes_per_s>, set_integer<U, &U::max_bytes_per_s>},
    {"upstream", "retry_min_ms", {}, {}, "first wait after a failed connect or chunk, doubling each time...",
     Kind::Integer, {1, 3'600'000}, {}, nullptr, get_integer<U, &U::retry_min_ms>, set_integer<U, &U::retry_min_ms>},
    {"upstream", "retry_max_ms", {}, {}, "...up to this", Kind::Integer, {1, 86'400'000}, {}, nullptr,
     get_integer<U, &U::retry_max_ms>, set_integer<U, &U::retry_max_ms>},
    {"upstream", "window", {}, {}, "chunks outstanding at once; 0 = the kind's default (mqtt 4, postgres 8)",
     Kind::Integer, {0, 64}, {}, nullptr, get_integer<U, &U::window>, set_integer<U, &U::window>},
    {"upstream", "uri", {}, {}, "broker URI (tcp://, ssl://, mqtts://, ws://, wss://)", Kind::Text, {}, {},
     check_broker_uri, get_text<U, &U::uri>, set_text<U, &U::uri>, "mqtt"},
    {"upstream", "client_id", {}, {}, "MQTT client id; empty: fieldlink-forward-<gateway>-<name>",
     Kind::OptionalText, {}, {}, nullptr, get_text<U, &U::client_id>, set_text<U, &U::client_id>, "mqtt"},
    {"upstream", "topic", {}, {}, "topic template with {gateway} and {device}", Kind::Text, {}, {}, nullptr,
     get_text<U, &U::topic>, set_text<U, &U::topic>, "mqtt"},
    {"upstream", "mqtt_version", {}, {}, "MQTT protocol version", Kind::Choice, {}, kMqttVersions, nullptr,
     get_text<U, &U::mqtt_version>, set_text<U, &U::mqtt_version>, "mqtt"},
    {"upstream", "keep_alive_s", {}, {}, "MQTT keep-alive s", Kind::Integer, {0, 65535}, {}, nullptr,
     get_integer<U, &U::keep_alive_s>, set_integer<U, &U::keep_alive_s>, "mqtt"},
    {"upstream", "username", {}, {}, "MQTT user name; empty: none", Kind::OptionalText, {}, {}, nullptr,
     get_text<U, &U::username>, set_text<U, &U::username>, "mqtt"},
    {"upstream", "password", {}, {}, "MQTT password", Kind::OptionalText, {}, {}, nullptr,
     get_text<U, &U::password>, set_text<U, &U::password>, "mqtt"},
    {"upstream", "ca_file", {}, {}, "TLS: CA certificates (PEM) to verify the broker", Kind::OptionalText, {}, {},
     nullptr, get_text<U, &U::ca_file>, set_text<U, &U::ca_file>, "mqtt"},
    {"upstream", "cert_file", {}, {}, "TLS: client certificate (PEM)", Kind::OptionalText, {}, {}, nullptr,
     get_text<U, &U::cert_file>, set_text<U, &U::cert_file>, "mqtt"},
    {"upstream", "key_file", {}, {}, "TLS: client key (PEM)", Kind::OptionalText, {}, {}, nullptr,
     get_text<U, &U::key_file>, set_text<U, &U::key_file>, "mqtt"},
    {"upstream", "verify_host", {}, {}, "TLS: check the broker's host name", Kind::Boolean, {}, {}, nullptr,
     get_bool<U, &U::verify_host>, set_bool<U, &U::verify_host>, "mqtt"},
    {"upstream", "encoding", {}, {}, "payload: binary or json (docs/protocol.md 10)", Kind::Choice, {}, kEncodings,
     nullptr, get_text<U, &U::encoding>, set_text<U, &U::encoding>, "mqtt"},
    {"upstream", "zstd_level", {}, {}, "zstd compression level, 0 = off", Kind::Integer, {0, 19}, {}, nullptr,
     get_integer<U, &U::zstd_level>, set_integer<U, &U::zstd_level>, "mqtt"},
    {"upstream", "max_message_bytes", {}, {}, "largest payload; bigger batches go as several messages",
     Kind::Integer, {1024, 256LL << 20}, {}, nullptr, get_integer<U, &U::max_message_bytes>,
     set_integer<U, &U::max_message_bytes>, "mqtt"},
    {"upstream", "conninfo", {}, {}, "libpq connection string or URI", Kind::Text, {}, {}, nullptr,
     get_text<U, &U::conninfo>, set_text<U, &U::conninfo>, "postgres"},
    {"upstream", "table", {}, {}, "table the readings go into (created if missing)", Kind::Text, {}, {}, nullptr,
     get_text<U, &U::table>, set_text<U, &U::table>, "postgres"},
};
// clang-format on

// ---------------------------------------------------------------------------
// Checking a value (the same for the file and the command line)
// ---------------------------------------------------------------------------

template <typename T>
std::string expected_choice(const KeySpec<T>& spec) {
    std::string expected = "one of ";
    for (std::size_t i = 0; i < spec.choices.size(); ++i) {
        expected += fmt::format("{}\"{}\"", i == 0 ? "" : ", ", spec.choices[i]);
    }
    return expected;
}

template <typename T>
std::string expected_integer(const KeySpec<T>& spec) {
    return fmt::format("an integer from {} to {}", spec.range.min, spec.range.max);
}

// What `spec` expects, or empty when `value` is fine. `value` holds the right alternative.
template <typename T>
std::string problem_with(const KeySpec<T>& spec, const Value& value) {
    switch (spec.kind) {
        case Kind::Text:
        case Kind::OptionalText: {
            const auto& text = std::get<std::string>(value);
            if (text.empty()) return spec.kind == Kind::Text ? "a non-empty string" : std::string();
            return spec.check_text != nullptr ? spec.check_text(text) : std::string();
        }
        case Kind::Integer: {
            const std::int64_t v = std::get<std::int64_t>(value);
            return v < spec.range.min || v > spec.range.max ? expected_integer(spec) : std::string();
        }
        case Kind::Choice: {
            const auto& text = std::get<std::string>(value);
            for (const std::string_view c : spec.choices) {
                if (text == c) return {};
            }
            return expected_choice(spec);
        }
        case Kind::Boolean: return {};
    }
    return "a valid value";
}

std::string show(const Value& value) {
    if (const auto* text = std::get_if<std::string>(&value)) return fmt::format("\"{}\"", *text);
    if (const auto* flag = std::get_if<bool>(&value)) return *flag ? "true" : "false";
    return fmt::to_string(std::get<std::int64_t>(value));
}

// ---------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------

std::string_view describe(toml::node_type type) {
    switch (type) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a floating-point number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time: return "a date/time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

std::string position(const std::string& source, const toml::node& node) {
    const auto& begin = node.source().begin;
    return fmt::format("{}:{}:{}", source, begin.line, begin.column);
}

[[noreturn]] void fail(const std::string& source, const toml::node& node, std::string_view name,
                       std::string_view expected, std::string_view got) {
    throw ConfigError(fmt::format("{}: '{}' must be {}, got {}", position(source, node), name, expected, got));
}

// Reads one key's node: the right TOML type first, then the same checks as the command line.
template <typename T>
Value read_node(const std::string& source, const toml::node& node, const KeySpec<T>& spec, std::string_view name) {
    Value value;
    if (spec.kind == Kind::Integer) {
        const auto* integer = node.as_integer();
        if (integer == nullptr) fail(source, node, name, expected_integer(spec), describe(node.type()));
        value = integer->get();
    } else if (spec.kind == Kind::Boolean) {
        const auto* flag = node.as_boolean();
        if (flag == nullptr) fail(source, node, name, "true or false", describe(node.type()));
        value = flag->get();
    } else {
        const auto* text = node.as_string();
        const std::string expected = spec.kind == Kind::Choice ? expected_choice(spec) : "a string";
        if (text == nullptr) fail(source, node, name, expected, describe(node.type()));
        value = text->get();
        if (spec.kind == Kind::Text && text->get().empty())
            fail(source, node, name, "a non-empty string", "an empty string");
    }
    if (const std::string problem = problem_with(spec, value); !problem.empty()) {
        fail(source, node, name, problem, show(value));
    }
    return value;
}

std::string joined(const std::vector<std::string>& items) {
    std::string list;
    for (const std::string& item : items) list += fmt::format("{}{}", list.empty() ? "" : ", ", item);
    return list;
}

template <typename T, std::size_t N>
std::string known_keys(const KeySpec<T> (&keys)[N], std::string_view section) {
    std::vector<std::string> names;
    for (const KeySpec<T>& spec : keys) {
        if (spec.section == section) names.emplace_back(spec.key);
    }
    return joined(names);
}

std::vector<std::string_view> sections() {
    std::vector<std::string_view> list;
    for (const auto& spec : kKeys) {
        if (list.empty() || list.back() != spec.section) list.push_back(spec.section);
    }
    return list;
}

std::string known_sections() {
    std::vector<std::string> names;
    for (const std::string_view section : sections()) names.push_back(fmt::format("[{}]", section));
    names.emplace_back("[[upstream]]");
    return joined(names);
}

template <typename T, std::size_t N>
const KeySpec<T>* find_key(const KeySpec<T> (&keys)[N], std::string_view section, std::string_view key) {
    for (const KeySpec<T>& spec : keys) {
        if (spec.section == section && spec.key == key) return &spec;
    }
    return nullptr;
}

// A TOML basic string ("..."), escaped.
std::string toml_string(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7f) {
            out += fmt::format("\\u{:04X}", byte);
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string toml_value(const Value& value) {
    if (const auto* text = std::get_if<std::string>(&value)) return toml_string(*text);
    if (const auto* flag = std::get_if<bool>(&value)) return *flag ? "true" : "false";
    return fmt::to_string(std::get<std::int64_t>(value));
}

// One [[upstream]] table into an UpstreamConfig; `index` counts from 1 for messages.
UpstreamConfig read_upstream(const std::string& source, const toml::table& table, std::size_t index) {
    UpstreamConfig upstream;
    std::vector<const KeySpec<UpstreamConfig>*> present;
    for (const auto& [key_name, node] : table) {
        const auto* spec = find_key(kUpstreamKeys, "upstream", key_name.str());
        if (spec == nullptr) {
            throw ConfigError(fmt::format("{}: unknown key '{}' in [[upstream]] number {}; known keys: {}",
                                          position(source, node), key_name.str(), index,
                                          known_keys(kUpstreamKeys, "upstream")));
        }
        spec->set(upstream, read_node(source, node, *spec, fmt::format("upstream[{}].{}", index, spec->key)));
        present.push_back(spec);
    }
    const std::string where = fmt::format("{}:{}:{}", source, table.source().begin.line, table.source().begin.column);
    if (upstream.name.empty()) {
        throw ConfigError(fmt::format("{}: [[upstream]] number {} needs a 'name'", where, index));
    }
    if (upstream.kind.empty()) {
        throw ConfigError(fmt::format("{}: upstream '{}' needs a 'kind' ({})", where, upstream.name,
                                      expected_choice(kUpstreamKeys[1])));
    }
    for (const auto* spec : present) {
        if (!spec->only_for.empty() && spec->only_for != upstream.kind) {
            throw ConfigError(fmt::format("{}: 'upstream.{}' belongs to kind \"{}\", but upstream '{}' is kind \"{}\"",
                                          where, spec->key, spec->only_for, upstream.name, upstream.kind));
        }
    }
    const auto required = upstream.kind == "mqtt" ? std::string_view("uri") : std::string_view("conninfo");
    if ((upstream.kind == "mqtt" ? upstream.uri : upstream.conninfo).empty()) {
        throw ConfigError(
            fmt::format("{}: upstream '{}' (kind \"{}\") needs '{}'", where, upstream.name, upstream.kind, required));
    }
    return upstream;
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

template <typename T>
std::string option_help(const KeySpec<T>& spec) {
    if (spec.kind == Kind::Integer) return fmt::format("{} ({}..{})", spec.help, spec.range.min, spec.range.max);
    return std::string(spec.help);
}

// Parses the command-line text of a key into *out; empty when fine, else what is expected.
std::string parse_option(const KeySpec<Config>& spec, const std::string& text, Value* out) {
    if (spec.kind == Kind::Integer) {
        std::int64_t v = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (text.empty() || error != std::errc() || end != text.data() + text.size()) return expected_integer(spec);
        *out = v;
    } else if (spec.kind == Kind::Boolean) {
        if (text != "true" && text != "false") return "true or false";
        *out = text == "true";
    } else {
        *out = text;
    }
    return problem_with(spec, *out);
}

}  // namespace

std::string_view to_string(Synchronous synchronous) noexcept {
    return synchronous == Synchronous::Full ? "full" : "normal";
}

std::vector<std::string> config_key_names() {
    std::vector<std::string> names;
    for (const auto& spec : kKeys) names.push_back(spec.name());
    for (const auto& spec : kUpstreamKeys) names.push_back(spec.name());
    return names;
}

std::string effective_gateway_id(const std::string& configured) {
    if (!configured.empty()) return configured;
    char host[256] = {};
    std::string id;
    if (gethostname(host, sizeof host - 1) == 0) {
        for (const char* c = host; *c != '\0' && id.size() < 64; ++c) {
            if (std::isalnum(static_cast<unsigned char>(*c)) || *c == '_' || *c == '-') id += *c;
        }
    }
    return id.empty() ? "gateway" : id;
}

void apply_toml(std::string_view text, const std::string& source, Config& config) {
    toml::table root;
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        const auto& begin = e.source().begin;
        throw ConfigError(
            fmt::format("{}:{}:{}: not valid TOML: {}", source, begin.line, begin.column, e.description()));
    }
    Config result = config;  // all or nothing
    for (const auto& [section_name, section_node] : root) {
        const std::string_view section = section_name.str();
        if (section == "upstream") {
            const auto* array = section_node.as_array();
            if (array == nullptr || !array->is_array_of_tables()) {
                throw ConfigError(fmt::format("{}: 'upstream' must be an array of tables ([[upstream]]), got {}",
                                              position(source, section_node), describe(section_node.type())));
            }
            result.upstreams.clear();  // a file's upstreams replace earlier ones as a whole
            for (std::size_t i = 0; i < array->size(); ++i) {
                UpstreamConfig upstream = read_upstream(source, *array->get(i)->as_table(), i + 1);
                for (const UpstreamConfig& other : result.upstreams) {
                    if (other.name == upstream.name) {
                        throw ConfigError(fmt::format("{}: two upstreams are named '{}'; names must be unique",
                                                      position(source, *array->get(i)), upstream.name));
                    }
                }
                result.upstreams.push_back(std::move(upstream));
            }
            continue;
        }
        const auto* table = section_node.as_table();
        if (known_keys(kKeys, section).empty()) {
            if (table == nullptr) {
                throw ConfigError(
                    fmt::format("{}: unknown key '{}' at the top level; every key belongs in one of the "
                                "sections {}",
                                position(source, section_node), section, known_sections()));
            }
            throw ConfigError(fmt::format("{}: unknown section [{}]; known sections: {}",
                                          position(source, section_node), section, known_sections()));
        }
        if (table == nullptr) {
            throw ConfigError(fmt::format("{}: '{}' must be a table ([{}]), got {}", position(source, section_node),
                                          section, section, describe(section_node.type())));
        }
        for (const auto& [key_name, node] : *table) {
            const auto* spec = find_key(kKeys, section, key_name.str());
            if (spec == nullptr) {
                throw ConfigError(fmt::format("{}: unknown key '{}.{}'; known keys in [{}]: {}", position(source, node),
                                              section, key_name.str(), section, known_keys(kKeys, section)));
            }
            spec->set(result, read_node(source, node, *spec, spec->name()));
        }
    }
    config = std::move(result);
}

void apply_toml_file(const std::string& path, Config& config) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw ConfigError(fmt::format("{}: cannot open config file: {}", path, std::strerror(errno)));
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) throw ConfigError(fmt::format("{}: cannot read config file", path));
    apply_toml(text.str(), path, config);
}

std::string to_toml(const Config& config) {
    std::string out;
    std::string_view section;
    for (const auto& spec : kKeys) {
        if (spec.section != section) {
            out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", spec.section);
            section = spec.section;
        }
        out += fmt::format("# {}\n{} = {}\n", option_help(spec), spec.key, toml_value(spec.get(config)));
    }
    for (const UpstreamConfig& upstream : config.upstreams) {
        out += "\n[[upstream]]\n";
        for (const auto& spec : kUpstreamKeys) {
            if (!spec.only_for.empty() && spec.only_for != upstream.kind) continue;
            out += fmt::format("# {}\n{} = {}\n", option_help(spec), spec.key, toml_value(spec.get(upstream)));
        }
    }
    return out;
}

MqttSettings mqtt_settings(const Config& config) {
    MqttSettings settings;
    settings.broker_uri = config.broker;
    settings.client_id = config.client_id;
    settings.keep_alive = std::chrono::seconds(config.keep_alive_s);
    settings.username = config.mqtt_username;
    settings.password = config.mqtt_password;
    settings.ca_file = config.mqtt_ca_file;
    settings.cert_file = config.mqtt_cert_file;
    settings.key_file = config.mqtt_key_file;
    settings.verify_host = config.mqtt_verify_host;
    return settings;
}

StoreOptions store_options(const Config& config) {
    StoreOptions options;
    options.path = config.db_path;
    options.synchronous = config.synchronous;
    options.busy_timeout_ms = static_cast<int>(config.busy_timeout_ms);
    options.cache_kib = config.cache_kib;
    return options;
}

SaverSettings saver_settings(const Config& config) {
    SaverSettings settings;
    settings.batch_max_rows = static_cast<std::size_t>(config.batch_rows);
    settings.commit_interval_min = std::chrono::milliseconds(config.batch_delay_ms);
    settings.queue_capacity = static_cast<std::size_t>(config.queue);
    settings.max_incarnations = static_cast<std::size_t>(config.max_incarnations);
    settings.max_ranges_per_incarnation = static_cast<std::size_t>(config.max_ranges_per_incarnation);
    return settings;
}

CommandLine parse_command_line(int argc, const char* const* argv) {
    CommandLine result;
    const Config defaults;
    try {
        CLI::App app(
            "fieldlink-gateway: the gateway saver. Subscribes to fieldlink devices on the local MQTT broker, stores\n"
            "every reading in SQLite exactly once, and acks each commit back to its device.",
            "fieldlink-gateway");
        app.footer(
            "Settings: built-in defaults, then the --config file (TOML; config/gateway.toml lists every key\n"
            "with its default and meaning), then the options above.\n"
            "The broker keeps messages for the fixed --client-id while the gateway is down (persistent session).\n"
            "--synchronous normal is faster but a power loss can lose readings whose commit was already acked.\n"
            "When --queue is full the gateway stops reading from the broker, which holds the rest (backpressure).\n"
            "SIGINT/SIGTERM: commit what is queued, send its acks, disconnect, exit 0.\n"
            "Exit codes: 0 ok, 1 runtime error (e.g. database), 2 bad configuration or usage.");
        app.get_formatter()->column_width(40);

        std::string config_file;
        app.add_option("-c,--config", config_file, "TOML config file; options given here override it")
            ->type_name("FILE")
            ->check(CLI::ExistingFile.description(""));

        // One option per key; the texts are checked after parsing, like the file's values.
        std::map<const KeySpec<Config>*, std::string> texts;
        std::map<const KeySpec<Config>*, CLI::Option*> options;
        for (const auto& spec : kKeys) {
            std::string& text = texts[&spec];
            CLI::Option* option = app.add_option(std::string(spec.option), text, option_help(spec))
                                      ->type_name(std::string(spec.type_name))
                                      ->default_str(toml_value(spec.get(defaults)));
            options[&spec] = option;
        }
        app.add_flag("--print-config", result.print_config, "print the effective configuration as TOML and exit");
        app.set_version_flag("--version", FIELDLINK_HAVE_LIBSYSTEMD
                                              ? "fieldlink-gateway " FIELDLINK_VERSION " (systemd notifications: yes)"
                                              : "fieldlink-gateway " FIELDLINK_VERSION " (systemd notifications: no)");

        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            std::ostringstream out;
            std::ostringstream err;
            const int code = app.exit(e, out, err);
            result.exit_code = code == 0 ? 0 : kExitUsage;
            result.message = code == 0 ? out.str() : err.str();
            return result;
        }

        Config config = defaults;
        if (!config_file.empty()) apply_toml_file(config_file, config);
        for (const auto& spec : kKeys) {
            if (options[&spec]->count() == 0) continue;
            Value value;
            if (const std::string problem = parse_option(spec, texts[&spec], &value); !problem.empty()) {
                throw ConfigError(
                    fmt::format("{} ({}): must be {}, got \"{}\"", spec.option, spec.name(), problem, texts[&spec]));
            }
            spec.set(config, value);
        }
        result.config = std::move(config);
    } catch (const std::exception& e) {
        result.exit_code = kExitUsage;
        result.message = fmt::format("fieldlink-gateway: error: {}\n", e.what());
    }
    return result;
}

}  // namespace fieldlink::gateway
