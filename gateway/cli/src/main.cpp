// fieldlink: the operator's command for a gateway. Subcommands read the
// gateway's database read-only (safe while it runs), validate its config, and
// replay dead letters; see docs/operations.md, "The fieldlink command".
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

#include "cli.hpp"
#include "database.hpp"
#include "device_add.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "generate.hpp"

namespace {

using namespace fieldlink::cli;

int run(int argc, char** argv) {
    CLI::App app("the fieldlink gateway's operator command: devices, readings, health, dead letters, config",
                 "fieldlink");
    app.footer(
        "Every command that reads the database opens it read-only (SQLite WAL: the gateway goes on writing and\n"
        "never waits for it). The database is --db, else [database] path of --config, else the gateway's default.\n"
        "Exit codes: 0 ok (status: healthy), 1 runtime error (status: unhealthy), 2 usage or configuration error.\n"
        "`fieldlink SUBCOMMAND --help` describes each subcommand.");
    app.fallthrough();  // global options also after the subcommand
    app.require_subcommand(0, 1);
    app.set_version_flag("--version", "fieldlink " FIELDLINK_VERSION " (database schema up to v" +
                                          std::to_string(fieldlink::gateway::kSchemaVersion) + ")");

    Globals globals;
    app.add_option("--db", globals.db, "the gateway's SQLite database")->type_name("PATH");
    app.add_option_function<std::string>(
           "--config",
           [&globals](const std::string& path) {
               globals.config = path;
               globals.config_given = true;
           },
           std::string("the gateway's config file (default ") + kDefaultConfigPath +
               ", used when it exists): gives the database path, broker, upstreams, retention")
        ->type_name("FILE");
    app.add_option("--busy-timeout", globals.busy_timeout_ms, "ms to wait for a locked database")
        ->type_name("MS")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    std::string generate;
    std::string generate_output;
    app.add_option("--generate", generate, "man or bash-completion")
        ->check(CLI::IsMember({"man", "bash-completion"}))
        ->group("");  // hidden: the build uses it
    app.add_option("--generate-output", generate_output, "file for --generate")->group("");

    add_devices_command(app, globals);
    add_query_commands(app, globals);
    add_status_command(app, globals);
    add_dead_letters_command(app, globals);
    add_check_config_command(app);
    add_device_add_command(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        if (dynamic_cast<const CLI::RuntimeError*>(&e) != nullptr) return code;
        return code == 0 ? kExitOk : kExitUsage;
    }
    if (!generate.empty()) {
        const std::string text = generate == "man" ? man_page(app, FIELDLINK_VERSION) : bash_completion(app);
        if (generate_output.empty()) {
            std::fputs(text.c_str(), stdout);
        } else {
            std::ofstream(generate_output, std::ios::binary) << text;
        }
        return kExitOk;
    }
    if (app.get_subcommands().empty()) {
        std::fputs(app.help().c_str(), stderr);
        return kExitUsage;
    }
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const CliError& e) {
        std::fprintf(stderr, "fieldlink: error: %s\n", e.what());
        return e.exit_code();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fieldlink: error: %s\n", e.what());
        return kExitFailure;
    }
}
