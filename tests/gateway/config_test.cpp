#include "fieldlink/gateway/app/config.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fieldlink/gateway/app/upstreams.hpp"
#include "test_support.hpp"

namespace fieldlink::gateway {
namespace {

std::string config_error(const std::string& toml, const std::string& source = "gateway.toml") {
    Config config;
    try {
        apply_toml(toml, source, config);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

CommandLine parse(std::vector<std::string> args) {
    args.insert(args.begin(), "fieldlink-gateway");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

TEST(Config, Defaults) {
    const Config c;
    EXPECT_EQ(c.broker, "tcp://127.0.0.1:1883");
    EXPECT_EQ(c.client_id, "fieldlink-gateway");
    EXPECT_EQ(c.db_path, "fieldlink.db");
    EXPECT_EQ(c.synchronous, Synchronous::Full);
    EXPECT_EQ(c.batch_rows, 1000);
    EXPECT_EQ(c.batch_delay_ms, 0);
    EXPECT_EQ(c.queue, 10000);
    EXPECT_EQ(c.log_level, LogLevel::Info);
    EXPECT_EQ(c.stats_interval_s, 10);

    const CommandLine cl = parse({});
    EXPECT_FALSE(cl.exit_code);
    EXPECT_EQ(cl.config, Config{});
}

TEST(Config, ShippedFileHoldsExactlyTheDefaults) {
    Config config;
    config.batch_rows = 1;  // so that the file must set it back
    apply_toml_file(FIELDLINK_SOURCE_DIR "/config/gateway.toml", config);
    EXPECT_EQ(config, Config{});
}

TEST(Config, TomlOverridesDefaults) {
    Config config;
    apply_toml(R"(
[mqtt]
broker = "tcp://10.0.0.1:1884"
client_id = "gw-2"
keep_alive_s = 5
[database]
path = "/var/lib/fieldlink/x.db"
synchronous = "normal"
busy_timeout_ms = 0
[pipeline]
batch_rows = 50
batch_delay_ms = 0
queue = 7
[log]
level = "debug"
stats_interval_s = 0
)",
               "t.toml", config);
    EXPECT_EQ(config.broker, "tcp://10.0.0.1:1884");
    EXPECT_EQ(config.client_id, "gw-2");
    EXPECT_EQ(config.keep_alive_s, 5);
    EXPECT_EQ(config.db_path, "/var/lib/fieldlink/x.db");
    EXPECT_EQ(config.synchronous, Synchronous::Normal);
    EXPECT_EQ(config.busy_timeout_ms, 0);
    EXPECT_EQ(config.batch_rows, 50);
    EXPECT_EQ(config.batch_delay_ms, 0);
    EXPECT_EQ(config.queue, 7);
    EXPECT_EQ(config.log_level, LogLevel::Debug);
    EXPECT_EQ(config.stats_interval_s, 0);
}

TEST(Config, PartialFileKeepsOtherDefaults) {
    Config config;
    apply_toml("[pipeline]\nqueue = 5\n", "t.toml", config);
    Config expected;
    expected.queue = 5;
    EXPECT_EQ(config, expected);
}

TEST(Config, UnknownKeyNamesFileLineAndKey) {
    const std::string error = config_error("[pipeline]\n\nbach_rows = 5\n", "conf/gw.toml");
    EXPECT_NE(error.find("conf/gw.toml:3"), std::string::npos) << error;
    EXPECT_NE(error.find("unknown key 'pipeline.bach_rows'"), std::string::npos) << error;
    EXPECT_NE(error.find("batch_rows"), std::string::npos) << "lists the known keys: " << error;
}

TEST(Config, UnknownSectionAndTopLevelKey) {
    EXPECT_NE(config_error("[mqt]\nbroker = \"tcp://x:1\"\n").find("unknown section [mqt]"), std::string::npos);
    const std::string error = config_error("broker = \"tcp://x:1\"\n");
    EXPECT_NE(error.find("unknown key 'broker' at the top level"), std::string::npos) << error;
    EXPECT_NE(error.find("[mqtt]"), std::string::npos) << error;
}

TEST(Config, WrongTypeSaysWhatIsExpected) {
    const std::string error = config_error("[pipeline]\nbatch_rows = \"5\"\n");
    EXPECT_NE(error.find("gateway.toml:2"), std::string::npos) << error;
    EXPECT_NE(error.find("'pipeline.batch_rows' must be an integer from 1 to 100000, got a string"), std::string::npos)
        << error;
    EXPECT_NE(config_error("[pipeline]\nbatch_rows = 5.0\n").find("got a floating-point number"), std::string::npos);
    EXPECT_NE(config_error("[mqtt]\nbroker = 5\n").find("'mqtt.broker' must be a string"), std::string::npos);
    EXPECT_NE(config_error("pipeline = 5\n").find("'pipeline' must be a table ([pipeline]), got an integer"),
              std::string::npos);
}

TEST(Config, OutOfRangeAndBadChoices) {
    EXPECT_NE(config_error("[pipeline]\nbatch_rows = 0\n").find("got 0"), std::string::npos);
    EXPECT_NE(config_error("[pipeline]\nqueue = -1\n").find("'pipeline.queue' must be an integer from 1"),
              std::string::npos);
    const std::string sync = config_error("[database]\nsynchronous = \"off\"\n");
    EXPECT_NE(sync.find("'database.synchronous' must be one of \"full\", \"normal\", got \"off\""), std::string::npos)
        << sync;
    EXPECT_NE(config_error("[log]\nlevel = \"trace\"\n").find("'log.level' must be one of"), std::string::npos);
    EXPECT_NE(config_error("[mqtt]\nbroker = \"127.0.0.1:1883\"\n").find("tcp://"), std::string::npos);
    EXPECT_NE(config_error("[mqtt]\nclient_id = \"\"\n").find("non-empty string"), std::string::npos);
}

TEST(Config, InvalidTomlNamesThePosition) {
    const std::string error = config_error("[mqtt\n");
    EXPECT_NE(error.find("gateway.toml:1"), std::string::npos) << error;
    EXPECT_NE(error.find("not valid TOML"), std::string::npos) << error;
}

TEST(Config, ErrorLeavesTheConfigUntouched) {
    Config config;
    EXPECT_THROW(apply_toml("[pipeline]\nqueue = 5\nbatch_rows = 0\n", "t", config), ConfigError);
    EXPECT_EQ(config, Config{});
}

TEST(Config, PrintedTomlReadsBackTheSame) {
    Config config;
    config.client_id = "quote\" back\\slash";
    config.db_path = "dir with spaces/db";
    config.synchronous = Synchronous::Normal;
    config.log_level = LogLevel::Warn;
    config.queue = 3;
    Config read;
    apply_toml(to_toml(config), "printed", read);
    EXPECT_EQ(read, config);
}

TEST(CommandLine, OverridesTheFile) {
    test::TempDir dir;
    const std::string path = dir.file("gw.toml");
    std::ofstream(path) << "[pipeline]\nbatch_rows = 50\nqueue = 9\n[mqtt]\nclient_id = \"from-file\"\n";
    const CommandLine cl = parse({"--config", path, "--batch-rows", "70", "--broker", "tcp://127.0.0.1:1999",
                                  "--synchronous", "normal", "--log-level", "warn", "--stats-interval", "0"});
    ASSERT_FALSE(cl.exit_code) << cl.message;
    EXPECT_EQ(cl.config.batch_rows, 70) << "command line wins";
    EXPECT_EQ(cl.config.queue, 9) << "file wins over default";
    EXPECT_EQ(cl.config.client_id, "from-file");
    EXPECT_EQ(cl.config.broker, "tcp://127.0.0.1:1999");
    EXPECT_EQ(cl.config.synchronous, Synchronous::Normal);
    EXPECT_EQ(cl.config.log_level, LogLevel::Warn);
    EXPECT_EQ(cl.config.stats_interval_s, 0);
}

TEST(CommandLine, EveryOverride) {
    const CommandLine cl = parse({"--client-id", "x", "--db", "a.db", "--batch-delay-ms", "5", "--queue", "3",
                                  "--keep-alive", "7", "--busy-timeout-ms", "9"});
    ASSERT_FALSE(cl.exit_code) << cl.message;
    EXPECT_EQ(cl.config.client_id, "x");
    EXPECT_EQ(cl.config.db_path, "a.db");
    EXPECT_EQ(cl.config.batch_delay_ms, 5);
    EXPECT_EQ(cl.config.queue, 3);
    EXPECT_EQ(cl.config.keep_alive_s, 7);
    EXPECT_EQ(cl.config.busy_timeout_ms, 9);
}

TEST(CommandLine, BadFileExitsWithUsageCode) {
    test::TempDir dir;
    const std::string path = dir.file("gw.toml");
    std::ofstream(path) << "[pipeline]\nbach_rows = 50\n";
    const CommandLine cl = parse({"--config", path});
    ASSERT_TRUE(cl.exit_code);
    EXPECT_EQ(*cl.exit_code, kExitUsage);
    EXPECT_NE(cl.message.find(path + ":2"), std::string::npos) << cl.message;
    EXPECT_NE(cl.message.find("pipeline.bach_rows"), std::string::npos) << cl.message;
}

TEST(CommandLine, BadValuesExitWithUsageCode) {
    for (const auto& args : std::vector<std::vector<std::string>>{{"--batch-rows", "0"},
                                                                  {"--batch-rows", "many"},
                                                                  {"--synchronous", "off"},
                                                                  {"--log-level", "loud"},
                                                                  {"--broker", "localhost"},
                                                                  {"--config", "/nonexistent/gw.toml"},
                                                                  {"--no-such-option"}}) {
        const CommandLine cl = parse(args);
        ASSERT_TRUE(cl.exit_code) << args[0];
        EXPECT_EQ(*cl.exit_code, kExitUsage) << args[0];
        EXPECT_FALSE(cl.message.empty()) << args[0];
    }
}

TEST(CommandLine, HelpExitsZeroAndMentionsEveryOption) {
    const CommandLine cl = parse({"--help"});
    ASSERT_TRUE(cl.exit_code);
    EXPECT_EQ(*cl.exit_code, 0);
    for (const char* option : {"--config", "--broker", "--client-id", "--db", "--batch-rows", "--batch-delay-ms",
                               "--queue", "--synchronous", "--log-level", "--stats-interval", "--print-config"}) {
        EXPECT_NE(cl.message.find(option), std::string::npos) << option;
    }
}

// One table drives the file, the command line and --print-config: every key
// is documented in the shipped file and printed.
TEST(Config, EveryKeyIsShippedPrintedAndOnTheCommandLine) {
    std::ifstream shipped(FIELDLINK_SOURCE_DIR "/config/gateway.toml");
    std::stringstream text;
    text << shipped.rdbuf();
    const std::string printed = to_toml(Config{});
    ASSERT_FALSE(config_key_names().empty());
    for (const std::string& name : config_key_names()) {
        const std::string key = name.substr(name.find('.') + 1);
        if (name.rfind("upstream.", 0) == 0) {
            // None is shipped: each key is documented in the commented [[upstream]] part.
            EXPECT_NE(text.str().find("\n#   " + key + " = "), std::string::npos) << name << " undocumented";
            continue;
        }
        EXPECT_NE(text.str().find("\n" + key + " = "), std::string::npos) << name << " missing in config/gateway.toml";
        EXPECT_NE(printed.find("\n" + key + " = "), std::string::npos) << name << " missing in --print-config";
    }
}

TEST(CommandLine, BadValueNamesTheOptionAndTheKey) {
    const CommandLine cl = parse({"--queue", "0"});
    ASSERT_TRUE(cl.exit_code);
    EXPECT_NE(cl.message.find("--queue (pipeline.queue): must be an integer from 1 to 1000000, got \"0\""),
              std::string::npos)
        << cl.message;
    const CommandLine choice = parse({"--synchronous", "off"});
    EXPECT_NE(choice.message.find("must be one of \"full\", \"normal\""), std::string::npos) << choice.message;
    const CommandLine empty = parse({"--db", ""});
    EXPECT_NE(empty.message.find("a non-empty string"), std::string::npos) << empty.message;
}

TEST(Config, UpstreamsAreReadInFileOrderAndPrintedBack) {
    Config config;
    apply_toml(R"(
[gateway]
id = "site-7"
[[upstream]]
name = "cluster"
kind = "mqtt"
uri = "ssl://broker.example:8883"
ca_file = "/etc/fieldlink/ca.pem"
zstd_level = 3
fresh_first = false
[[upstream]]
name = "central-db"
kind = "postgres"
conninfo = "host=db dbname=fieldlink"
max_bytes_per_s = 10000
)",
               "t.toml", config);
    EXPECT_EQ(config.gateway_id, "site-7");
    ASSERT_EQ(config.upstreams.size(), 2u);
    EXPECT_EQ(config.upstreams[0].name, "cluster");
    EXPECT_EQ(config.upstreams[0].uri, "ssl://broker.example:8883");
    EXPECT_EQ(config.upstreams[0].zstd_level, 3);
    EXPECT_FALSE(config.upstreams[0].fresh_first);
    EXPECT_EQ(config.upstreams[0].topic, "fieldlink/v1/{gateway}/{device}/forward") << "default";
    EXPECT_EQ(config.upstreams[1].kind, "postgres");
    EXPECT_EQ(config.upstreams[1].max_bytes_per_s, 10000);
    Config read;
    apply_toml(to_toml(config), "printed", read);
    EXPECT_EQ(read, config);
}

TEST(Config, UpstreamBackoffIsConfigurableAndChecked) {
    Config config;
    apply_toml(
        "[[upstream]]\nname = \"a\"\nkind = \"mqtt\"\nuri = \"tcp://127.0.0.1:1\"\n"
        "retry_min_ms = 100\nretry_max_ms = 2000\n",
        "gateway.toml", config);
    ASSERT_EQ(config.upstreams.size(), 1u);
    const ForwarderSettings s = forwarder_settings(config, config.upstreams[0]);
    EXPECT_EQ(s.retry_min, std::chrono::milliseconds(100));
    EXPECT_EQ(s.retry_max, std::chrono::milliseconds(2000));
    EXPECT_EQ(check_upstream(config.upstreams[0], "gw"), std::nullopt);

    config.upstreams[0].retry_min_ms = 5000;
    EXPECT_EQ(check_upstream(config.upstreams[0], "gw").value_or(""),
              "upstream 'a': retry_min_ms 5000 is above retry_max_ms 2000");
    EXPECT_NE(config_error("[[upstream]]\nname = \"a\"\nkind = \"mqtt\"\nuri = \"tcp://h:1\"\nretry_min_ms = 0\n")
                  .find("retry_min_ms"),
              std::string::npos);
}

TEST(Config, WindowIsSetPerUpstreamAndDefaultsByKind) {
    Config config;
    apply_toml(R"(
[[upstream]]
name = "broker"
kind = "mqtt"
uri = "tcp://127.0.0.1:1"
[[upstream]]
name = "db"
kind = "postgres"
conninfo = "host=127.0.0.1"
[[upstream]]
name = "db-narrow"
kind = "postgres"
conninfo = "host=127.0.0.1"
window = 3
[[upstream]]
name = "broker-wide"
kind = "mqtt"
uri = "tcp://127.0.0.1:1"
window = 64
)",
               "t.toml", config);
    ASSERT_EQ(config.upstreams.size(), 4u);
    EXPECT_EQ(make_upstream(config.upstreams[0], "gw")->window(), 4u);
    EXPECT_EQ(make_upstream(config.upstreams[1], "gw")->window(), 8u);
    EXPECT_EQ(make_upstream(config.upstreams[2], "gw")->window(), 3u);
    EXPECT_EQ(make_upstream(config.upstreams[3], "gw")->window(), 64u);

    config.upstreams[2].window = 17;
    EXPECT_EQ(check_upstream(config.upstreams[2], "gw").value_or(""),
              "upstream 'db-narrow': window 17 is not within 1..16");
    EXPECT_NE(config_error("[[upstream]]\nname = \"a\"\nkind = \"mqtt\"\nuri = \"tcp://h:1\"\nwindow = 65\n")
                  .find("'upstream[1].window' must be an integer from 0 to 64"),
              std::string::npos);
}

TEST(Config, BadUpstreamsNameTheKeyAndTheUpstream) {
    const auto error = [](const std::string& table) { return config_error("[[upstream]]\n" + table); };
    EXPECT_NE(error("kind = \"mqtt\"\nuri = \"tcp://h:1\"\n").find("needs a 'name'"), std::string::npos);
    EXPECT_NE(
        error("name = \"a\"\nkind = \"kafka\"\n").find("'upstream[1].kind' must be one of \"mqtt\", \"postgres\""),
        std::string::npos);
    EXPECT_NE(error("name = \"a\"\nkind = \"mqtt\"\n").find("upstream 'a' (kind \"mqtt\") needs 'uri'"),
              std::string::npos);
    EXPECT_NE(
        error("name = \"a\"\nkind = \"mqtt\"\nuri = \"localhost:1883\"\n").find("'upstream[1].uri' must be a URI"),
        std::string::npos);
    EXPECT_NE(error("name = \"a\"\nkind = \"postgres\"\nconninfo = \"x\"\ntopic = \"t\"\n")
                  .find("'upstream.topic' belongs to kind \"mqtt\", but upstream 'a' is kind \"postgres\""),
              std::string::npos);
    EXPECT_NE(error("name = \"a\"\nkind = \"mqtt\"\nuri = \"tcp://h:1\"\nwindoww = 3\n").find("unknown key 'windoww'"),
              std::string::npos);
    EXPECT_NE(config_error("[[upstream]]\nname = \"a\"\nkind = \"postgres\"\nconninfo = \"x\"\n"
                           "[[upstream]]\nname = \"a\"\nkind = \"postgres\"\nconninfo = \"y\"\n")
                  .find("two upstreams are named 'a'"),
              std::string::npos);
    EXPECT_NE(config_error("upstream = 5\n").find("must be an array of tables"), std::string::npos);
}

TEST(Config, GatewayIdFromTheHostNameWhenNotSet) {
    EXPECT_EQ(effective_gateway_id("site-7"), "site-7");
    const std::string derived = effective_gateway_id("");
    ASSERT_FALSE(derived.empty());
    EXPECT_LE(derived.size(), 64u);
    for (const char c : derived) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
    EXPECT_NE(config_error("[gateway]\nid = \"a b\"\n").find("'gateway.id' must be made of"), std::string::npos);
}

TEST(CommandLine, PrintConfigFlag) {
    const CommandLine cl = parse({"--print-config"});
    EXPECT_FALSE(cl.exit_code);
    EXPECT_TRUE(cl.print_config);
}

}  // namespace
}  // namespace fieldlink::gateway
