#include "fieldlink/gateway/app/config.hpp"

#include "fieldlink/gateway/ingest/broker_uri.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

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

using Value = std::variant<std::string, std::int64_t>;

enum class Kind {
    Text,     // a string; `check_text` may refuse some
    Integer,  // within `range`
    Choice,   // one of `choices`
};

// Empty when the text is fine, else what is expected instead.
using TextCheck = std::string (*)(const std::string& text);

struct KeySpec {
    std::string_view section;    // TOML table
    std::string_view key;        // TOML key
    std::string_view option;     // command-line option
    std::string_view type_name;  // placeholder in --help
    std::string_view help;
    Kind kind;
    IntRange range{0, 0};                      // Integer
    std::span<const std::string_view> choices;  // Choice
    TextCheck check_text = nullptr;            // Text
    Value (*get)(const Config&);
    void (*set)(Config&, const Value&);

    std::string name() const { return fmt::format("{}.{}", section, key); }
};

template <std::string Config::*Member>
Value get_text(const Config& c) {
    return c.*Member;
}
template <std::string Config::*Member>
void set_text(Config& c, const Value& v) {
    c.*Member = std::get<std::string>(v);
}
template <std::int64_t Config::*Member>
Value get_integer(const Config& c) {
    return c.*Member;
}
template <std::int64_t Config::*Member>
void set_integer(Config& c, const Value& v) {
    c.*Member = std::get<std::int64_t>(v);
}

std::string check_broker_uri(const std::string& uri) {
    return parse_broker_uri(uri) ? std::string() : std::string(kBrokerUriExpected);
}

constexpr std::string_view kSynchronousChoices[] = {"full", "normal"};
Value get_synchronous(const Config& c) { return std::string(to_string(c.synchronous)); }
void set_synchronous(Config& c, const Value& v) {
    c.synchronous = std::get<std::string>(v) == "normal" ? Synchronous::Normal : Synchronous::Full;
}

constexpr std::string_view kLogLevelChoices[] = {"error", "warn", "info", "debug"};
Value get_log_level(const Config& c) { return std::string(to_string(c.log_level)); }
void set_log_level(Config& c, const Value& v) { c.log_level = *parse_log_level(std::get<std::string>(v)); }

// In this order in --help, --print-config and config/gateway.toml.
constexpr KeySpec kKeys[] = {
    {"mqtt", "broker", "--broker", "URI", "MQTT broker (tcp://, mqtt://, ssl://, ws://...)", Kind::Text, {}, {},
     check_broker_uri, get_text<&Config::broker>, set_text<&Config::broker>},
    {"mqtt", "client_id", "--client-id", "ID", "MQTT client id; keep it fixed (persistent session)", Kind::Text, {},
     {}, nullptr, get_text<&Config::client_id>, set_text<&Config::client_id>},
    {"mqtt", "keep_alive_s", "--keep-alive", "S", "MQTT keep-alive s, 0 = off", Kind::Integer, {0, 65535}, {},
     nullptr, get_integer<&Config::keep_alive_s>, set_integer<&Config::keep_alive_s>},
    {"database", "path", "--db", "PATH", "SQLite database file, created if missing", Kind::Text, {}, {}, nullptr,
     get_text<&Config::db_path>, set_text<&Config::db_path>},
    {"database", "synchronous", "--synchronous", "full|normal", "full: on disk before the ack; normal: faster, unsafe",
     Kind::Choice, {}, kSynchronousChoices, nullptr, get_synchronous, set_synchronous},
    {"database", "busy_timeout_ms", "--busy-timeout-ms", "N", "wait for a locked database", Kind::Integer,
     {0, 600000}, {}, nullptr, get_integer<&Config::busy_timeout_ms>, set_integer<&Config::busy_timeout_ms>},
    {"pipeline", "batch_rows", "--batch-rows", "N", "commit after this many readings", Kind::Integer, {1, 100000},
     {}, nullptr, get_integer<&Config::batch_rows>, set_integer<&Config::batch_rows>},
    {"pipeline", "batch_delay_ms", "--batch-delay-ms", "N", "...or this long after the first", Kind::Integer,
     {0, 10000}, {}, nullptr, get_integer<&Config::batch_delay_ms>, set_integer<&Config::batch_delay_ms>},
    {"pipeline", "queue", "--queue", "N", "messages waiting for the database", Kind::Integer, {1, 1000000}, {},
     nullptr, get_integer<&Config::queue>, set_integer<&Config::queue>},
    {"log", "level", "--log-level", "error|warn|info|debug", "stderr log level", Kind::Choice, {}, kLogLevelChoices,
     nullptr, get_log_level, set_log_level},
    {"log", "stats_interval_s", "--stats-interval", "S", "s between stats lines, 0 = off", Kind::Integer,
     {0, 86400}, {}, nullptr, get_integer<&Config::stats_interval_s>, set_integer<&Config::stats_interval_s>},
};

// ---------------------------------------------------------------------------
// Checking a value (the same for the file and the command line)
// ---------------------------------------------------------------------------

std::string expected_choice(const KeySpec& spec) {
    std::string expected = "one of ";
    for (std::size_t i = 0; i < spec.choices.size(); ++i) {
        expected += fmt::format("{}\"{}\"", i == 0 ? "" : ", ", spec.choices[i]);
    }
    return expected;
}

std::string expected_integer(const KeySpec& spec) {
    return fmt::format("an integer from {} to {}", spec.range.min, spec.range.max);
}

// What `spec` expects, or empty when `value` is fine. `value` holds the right alternative.
std::string problem_with(const KeySpec& spec, const Value& value) {
    switch (spec.kind) {
        case Kind::Text: {
            const auto& text = std::get<std::string>(value);
            if (text.empty()) return "a non-empty string";
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
    }
    return "a valid value";
}

std::string show(const Value& value) {
    if (const auto* text = std::get_if<std::string>(&value)) return fmt::format("\"{}\"", *text);
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

[[noreturn]] void fail(const std::string& source, const toml::node& node, const KeySpec& spec,
                       std::string_view expected, std::string_view got) {
    throw ConfigError(fmt::format("{}: '{}' must be {}, got {}", position(source, node), spec.name(), expected, got));
}

// Reads one key's node: the right TOML type first, then the same checks as the command line.
Value read_node(const std::string& source, const toml::node& node, const KeySpec& spec) {
    Value value;
    if (spec.kind == Kind::Integer) {
        const auto* integer = node.as_integer();
        if (integer == nullptr) fail(source, node, spec, expected_integer(spec), describe(node.type()));
        value = integer->get();
    } else {
        const auto* text = node.as_string();
        const std::string expected = spec.kind == Kind::Choice ? expected_choice(spec) : "a string";
        if (text == nullptr) fail(source, node, spec, expected, describe(node.type()));
        value = text->get();
        if (spec.kind == Kind::Text && text->get().empty()) fail(source, node, spec, "a non-empty string", "an empty string");
    }
    if (const std::string problem = problem_with(spec, value); !problem.empty()) {
        fail(source, node, spec, problem, show(value));
    }
    return value;
}

std::string joined(const std::vector<std::string>& items) {
    std::string list;
    for (const std::string& item : items) list += fmt::format("{}{}", list.empty() ? "" : ", ", item);
    return list;
}

std::string known_keys(std::string_view section) {
    std::vector<std::string> keys;
    for (const KeySpec& spec : kKeys) {
        if (spec.section == section) keys.emplace_back(spec.key);
    }
    return joined(keys);
}

std::vector<std::string_view> sections() {
    std::vector<std::string_view> list;
    for (const KeySpec& spec : kKeys) {
        if (list.empty() || list.back() != spec.section) list.push_back(spec.section);
    }
    return list;
}

std::string known_sections() {
    std::vector<std::string> names;
    for (const std::string_view section : sections()) names.push_back(fmt::format("[{}]", section));
    return joined(names);
}

const KeySpec* find_key(std::string_view section, std::string_view key) {
    for (const KeySpec& spec : kKeys) {
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
    return fmt::to_string(std::get<std::int64_t>(value));
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

std::string option_help(const KeySpec& spec) {
    if (spec.kind == Kind::Integer) return fmt::format("{} ({}..{})", spec.help, spec.range.min, spec.range.max);
    return std::string(spec.help);
}

// Parses the command-line text of a key into *out; empty when fine, else what is expected.
std::string parse_option(const KeySpec& spec, const std::string& text, Value* out) {
    if (spec.kind == Kind::Integer) {
        std::int64_t v = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (text.empty() || error != std::errc() || end != text.data() + text.size()) return expected_integer(spec);
        *out = v;
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
    for (const KeySpec& spec : kKeys) names.push_back(spec.name());
    return names;
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
            const KeySpec* spec = find_key(section, key_name.str());
            if (spec == nullptr) {
                throw ConfigError(fmt::format("{}: unknown key '{}.{}'; known keys in [{}]: {}", position(source, node),
                                              section, key_name.str(), section, known_keys(section)));
            }
            spec->set(result, read_node(source, node, *spec));
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
    for (const KeySpec& spec : kKeys) {
        if (spec.section != section) {
            out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", spec.section);
            section = spec.section;
        }
        out += fmt::format("# {}\n{} = {}\n", option_help(spec), spec.key, toml_value(spec.get(config)));
    }
    return out;
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
        app.add_option("-c,--config", config_file, "TOML config file; options given here override it")
            ->type_name("FILE")
            ->check(CLI::ExistingFile.description(""));

        // One option per key; the texts are checked after parsing, like the file's values.
        std::map<const KeySpec*, std::string> texts;
        std::map<const KeySpec*, CLI::Option*> options;
        for (const KeySpec& spec : kKeys) {
            std::string& text = texts[&spec];
            CLI::Option* option = app.add_option(std::string(spec.option), text, option_help(spec))
                                      ->type_name(std::string(spec.type_name))
                                      ->default_str(toml_value(spec.get(defaults)));
            options[&spec] = option;
        }
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
        for (const KeySpec& spec : kKeys) {
            if (options[&spec]->count() == 0) continue;
            Value value;
            if (const std::string problem = parse_option(spec, texts[&spec], &value); !problem.empty()) {
                throw ConfigError(fmt::format("{} ({}): must be {}, got \"{}\"", spec.option, spec.name(), problem,
                                              texts[&spec]));
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
