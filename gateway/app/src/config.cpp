#include "fieldlink/gateway/app/config.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <vector>

namespace fieldlink::gateway {
namespace {

struct IntRange {
    std::int64_t min;
    std::int64_t max;
};

// Limits shared by the TOML reader and the command line.
constexpr IntRange kKeepAliveRange{0, 65535};
constexpr IntRange kBusyTimeoutRange{0, 600000};
constexpr IntRange kBatchRowsRange{1, 100000};
constexpr IntRange kBatchDelayRange{0, 10000};
constexpr IntRange kQueueRange{1, 1000000};
constexpr IntRange kStatsIntervalRange{0, 86400};

constexpr std::string_view kBrokerSchemes[] = {"tcp://", "mqtt://", "ssl://", "mqtts://", "ws://", "wss://"};

// Empty when fine, else what is wrong.
std::string check_broker_uri(const std::string& uri) {
    for (const std::string_view scheme : kBrokerSchemes) {
        if (uri.size() > scheme.size() && uri.compare(0, scheme.size(), scheme) == 0) return {};
    }
    return "a URI such as tcp://127.0.0.1:1883 (schemes: tcp, mqtt, ssl, mqtts, ws, wss)";
}

std::optional<Synchronous> parse_synchronous(std::string_view text) {
    if (text == "full") return Synchronous::Full;
    if (text == "normal") return Synchronous::Normal;
    return std::nullopt;
}

std::string_view describe(toml::node_type type) {
    switch (type) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time:
            return "a date/time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

// One key of the file: where it is and how to read it.
class KeyReader {
public:
    KeyReader(const std::string& source, std::string_view section, std::string_view key, const toml::node& node)
        : source_(source), name_(fmt::format("{}.{}", section, key)), node_(node) {}

    std::string string(bool allow_empty = false) const {
        const auto* value = node_.as_string();
        if (value == nullptr) fail("a string", got());
        if (!allow_empty && value->get().empty()) fail("a non-empty string", "an empty string");
        return value->get();
    }

    std::int64_t integer(IntRange range) const {
        const auto* value = node_.as_integer();
        const std::string expected = fmt::format("an integer from {} to {}", range.min, range.max);
        if (value == nullptr) fail(expected, got());
        const std::int64_t v = value->get();
        if (v < range.min || v > range.max) fail(expected, fmt::to_string(v));
        return v;
    }

    std::string choice(std::initializer_list<std::string_view> choices) const {
        std::string expected = "one of ";
        for (const std::string_view c : choices) {
            expected += fmt::format("{}\"{}\"", expected.size() > 7 ? ", " : "", c);
        }
        const auto* value = node_.as_string();
        if (value == nullptr) fail(expected, got());
        for (const std::string_view c : choices) {
            if (value->get() == c) return value->get();
        }
        fail(expected, fmt::format("\"{}\"", value->get()));
    }

    [[noreturn]] void fail(std::string_view expected, std::string_view got) const {
        throw ConfigError(fmt::format("{}: '{}' must be {}, got {}", where(), name_, expected, got));
    }
    std::string where() const {
        const auto& begin = node_.source().begin;
        return fmt::format("{}:{}:{}", source_, begin.line, begin.column);
    }
    std::string got() const { return std::string(describe(node_.type())); }

private:
    const std::string& source_;
    std::string name_;
    const toml::node& node_;
};

struct KeySpec {
    std::string_view section;
    std::string_view key;
    std::function<void(const KeyReader&, Config&)> apply;
};

const std::vector<KeySpec>& key_specs() {
    static const std::vector<KeySpec> specs = {
        {"mqtt", "broker",
         [](const KeyReader& r, Config& c) {
             std::string uri = r.string();
             if (const std::string problem = check_broker_uri(uri); !problem.empty()) {
                 r.fail(problem, fmt::format("\"{}\"", uri));
             }
             c.broker = std::move(uri);
         }},
        {"mqtt", "client_id", [](const KeyReader& r, Config& c) { c.client_id = r.string(); }},
        {"mqtt", "keep_alive_s", [](const KeyReader& r, Config& c) { c.keep_alive_s = r.integer(kKeepAliveRange); }},
        {"database", "path", [](const KeyReader& r, Config& c) { c.db_path = r.string(); }},
        {"database", "synchronous",
         [](const KeyReader& r, Config& c) { c.synchronous = *parse_synchronous(r.choice({"full", "normal"})); }},
        {"database", "busy_timeout_ms",
         [](const KeyReader& r, Config& c) { c.busy_timeout_ms = r.integer(kBusyTimeoutRange); }},
        {"pipeline", "batch_rows", [](const KeyReader& r, Config& c) { c.batch_rows = r.integer(kBatchRowsRange); }},
        {"pipeline", "batch_delay_ms",
         [](const KeyReader& r, Config& c) { c.batch_delay_ms = r.integer(kBatchDelayRange); }},
        {"pipeline", "queue", [](const KeyReader& r, Config& c) { c.queue = r.integer(kQueueRange); }},
        {"log", "level",
         [](const KeyReader& r, Config& c) {
             c.log_level = *parse_log_level(r.choice({"error", "warn", "info", "debug"}));
         }},
        {"log", "stats_interval_s",
         [](const KeyReader& r, Config& c) { c.stats_interval_s = r.integer(kStatsIntervalRange); }},
    };
    return specs;
}

std::string known_keys(std::string_view section) {
    std::string list;
    for (const KeySpec& spec : key_specs()) {
        if (spec.section == section) list += fmt::format("{}{}", list.empty() ? "" : ", ", spec.key);
    }
    return list;
}

std::string known_sections() {
    std::string list;
    for (const KeySpec& spec : key_specs()) {
        const std::string name = fmt::format("[{}]", spec.section);
        if (list.find(name) == std::string::npos) list += fmt::format("{}{}", list.empty() ? "" : ", ", name);
    }
    return list;
}

std::string position(const std::string& source, const toml::node& node) {
    const auto& begin = node.source().begin;
    return fmt::format("{}:{}:{}", source, begin.line, begin.column);
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

}  // namespace

std::string_view to_string(Synchronous synchronous) noexcept {
    return synchronous == Synchronous::Full ? "full" : "normal";
}

void apply_toml(std::string_view text, const std::string& source, Config& config) {
    toml::table root;
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        const auto& begin = e.source().begin;
        throw ConfigError(fmt::format("{}:{}:{}: not valid TOML: {}", source, begin.line, begin.column,
                                      e.description()));
    }
    Config result = config;  // all or nothing
    for (const auto& [section_name, section_node] : root) {
        const std::string_view section = section_name.str();
        const auto* table = section_node.as_table();
        if (known_keys(section).empty()) {
            if (table == nullptr) {
                throw ConfigError(fmt::format("{}: unknown key '{}' at the top level; every key belongs in one of the "
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
            const std::string_view key = key_name.str();
            const KeySpec* spec = nullptr;
            for (const KeySpec& candidate : key_specs()) {
                if (candidate.section == section && candidate.key == key) spec = &candidate;
            }
            if (spec == nullptr) {
                throw ConfigError(fmt::format("{}: unknown key '{}.{}'; known keys in [{}]: {}", position(source, node),
                                              section, key, section, known_keys(section)));
            }
            spec->apply(KeyReader(source, section, key, node), result);
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

std::string to_toml(const Config& c) {
    return fmt::format(
        "[mqtt]\n"
        "broker = {}\n"
        "client_id = {}\n"
        "keep_alive_s = {}\n"
        "\n"
        "[database]\n"
        "path = {}\n"
        "synchronous = {}\n"
        "busy_timeout_ms = {}\n"
        "\n"
        "[pipeline]\n"
        "batch_rows = {}\n"
        "batch_delay_ms = {}\n"
        "queue = {}\n"
        "\n"
        "[log]\n"
        "level = {}\n"
        "stats_interval_s = {}\n",
        toml_string(c.broker), toml_string(c.client_id), c.keep_alive_s, toml_string(c.db_path),
        toml_string(std::string(to_string(c.synchronous))), c.busy_timeout_ms, c.batch_rows, c.batch_delay_ms, c.queue,
        toml_string(std::string(to_string(c.log_level))),
        c.stats_interval_s);
}

MqttSettings mqtt_settings(const Config& config) {
    MqttSettings settings;
    settings.broker_uri = config.broker;
    settings.client_id = config.client_id;
    settings.keep_alive = std::chrono::seconds(config.keep_alive_s);
    return settings;
}

StoreOptions store_options(const Config& config) {
    StoreOptions options;
    options.path = config.db_path;
    options.synchronous = config.synchronous;
    options.busy_timeout_ms = static_cast<int>(config.busy_timeout_ms);
    return options;
}

SaverSettings saver_settings(const Config& config) {
    SaverSettings settings;
    settings.batch_max_rows = static_cast<std::size_t>(config.batch_rows);
    settings.batch_max_delay = std::chrono::milliseconds(config.batch_delay_ms);
    settings.queue_capacity = static_cast<std::size_t>(config.queue);
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
        std::string broker = defaults.broker;
        std::string client_id = defaults.client_id;
        std::int64_t keep_alive_s = defaults.keep_alive_s;
        std::string db_path = defaults.db_path;
        std::string synchronous(to_string(defaults.synchronous));
        std::int64_t busy_timeout_ms = defaults.busy_timeout_ms;
        std::int64_t batch_rows = defaults.batch_rows;
        std::int64_t batch_delay_ms = defaults.batch_delay_ms;
        std::int64_t queue = defaults.queue;
        std::string log_level(to_string(defaults.log_level));
        std::int64_t stats_interval_s = defaults.stats_interval_s;

        const CLI::Validator broker_uri(
            [](std::string& uri) {
                const std::string problem = check_broker_uri(uri);
                return problem.empty() ? problem : "expected " + problem;
            },
            "");
        const CLI::Validator not_empty([](std::string& text) { return text.empty() ? "must not be empty" : ""; }, "");
        // Validators print nothing themselves: the type name and help text say what is accepted.
        const auto range = [](IntRange r) { return CLI::Range(r.min, r.max).description(""); };
        const auto ranged = [](std::string_view text, IntRange r) {
            return fmt::format("{} ({}..{})", text, r.min, r.max);
        };

        app.add_option("-c,--config", config_file, "TOML config file; options given here override it")
            ->type_name("FILE")
            ->check(CLI::ExistingFile.description(""));
        auto* broker_opt = app.add_option("--broker", broker, "MQTT broker (tcp://, mqtt://, ssl://, ws://...)")
                               ->type_name("URI")
                               ->check(broker_uri)
                               ->capture_default_str();
        auto* client_id_opt =
            app.add_option("--client-id", client_id, "MQTT client id; keep it fixed (persistent session)")
                ->type_name("ID")
                ->check(not_empty)
                ->capture_default_str();
        auto* keep_alive_opt =
            app.add_option("--keep-alive", keep_alive_s, ranged("MQTT keep-alive s, 0 = off", kKeepAliveRange))
                ->type_name("S")
                ->check(range(kKeepAliveRange))
                ->capture_default_str();
        auto* db_opt = app.add_option("--db", db_path, "SQLite database file, created if missing")
                           ->type_name("PATH")
                           ->check(not_empty)
                           ->capture_default_str();
        auto* synchronous_opt =
            app.add_option("--synchronous", synchronous, "full: on disk before the ack; normal: faster, unsafe")
                ->type_name("full|normal")
                ->check(CLI::IsMember({"full", "normal"}).description(""))
                ->capture_default_str();
        auto* busy_opt = app.add_option("--busy-timeout-ms", busy_timeout_ms,
                                        ranged("wait for a locked database", kBusyTimeoutRange))
                             ->type_name("N")
                             ->check(range(kBusyTimeoutRange))
                             ->capture_default_str();
        auto* rows_opt =
            app.add_option("--batch-rows", batch_rows, ranged("commit after this many readings", kBatchRowsRange))
                ->type_name("N")
                ->check(range(kBatchRowsRange))
                ->capture_default_str();
        auto* delay_opt = app.add_option("--batch-delay-ms", batch_delay_ms,
                                         ranged("...or this long after the first", kBatchDelayRange))
                              ->type_name("N")
                              ->check(range(kBatchDelayRange))
                              ->capture_default_str();
        auto* queue_opt = app.add_option("--queue", queue, ranged("messages waiting for the database", kQueueRange))
                              ->type_name("N")
                              ->check(range(kQueueRange))
                              ->capture_default_str();
        auto* level_opt = app.add_option("--log-level", log_level, "stderr log level")
                              ->type_name("error|warn|info|debug")
                              ->check(CLI::IsMember({"error", "warn", "info", "debug"}).description(""))
                              ->capture_default_str();
        auto* stats_opt = app.add_option("--stats-interval", stats_interval_s,
                                         ranged("s between stats lines, 0 = off", kStatsIntervalRange))
                              ->type_name("S")
                              ->check(range(kStatsIntervalRange))
                              ->capture_default_str();
        app.add_flag("--print-config", result.print_config, "print the effective configuration as TOML and exit");
        app.set_version_flag("--version", "fieldlink-gateway " FIELDLINK_VERSION);

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
        if (broker_opt->count() > 0) config.broker = broker;
        if (client_id_opt->count() > 0) config.client_id = client_id;
        if (keep_alive_opt->count() > 0) config.keep_alive_s = keep_alive_s;
        if (db_opt->count() > 0) config.db_path = db_path;
        if (synchronous_opt->count() > 0) config.synchronous = *parse_synchronous(synchronous);
        if (busy_opt->count() > 0) config.busy_timeout_ms = busy_timeout_ms;
        if (rows_opt->count() > 0) config.batch_rows = batch_rows;
        if (delay_opt->count() > 0) config.batch_delay_ms = batch_delay_ms;
        if (queue_opt->count() > 0) config.queue = queue;
        if (level_opt->count() > 0) config.log_level = *parse_log_level(log_level);
        if (stats_opt->count() > 0) config.stats_interval_s = stats_interval_s;
        result.config = std::move(config);
    } catch (const ConfigError& e) {
        result.exit_code = kExitUsage;
        result.message = fmt::format("fieldlink-gateway: error: {}\n", e.what());
    } catch (const std::exception& e) {
        result.exit_code = kExitUsage;
        result.message = fmt::format("fieldlink-gateway: error: {}\n", e.what());
    }
    return result;
}

}  // namespace fieldlink::gateway
