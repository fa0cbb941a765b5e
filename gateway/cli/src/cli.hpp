// What every fieldlink subcommand shares: the global options, exit codes, and
// the error that carries one.
#pragma once

#include <stdexcept>
#include <string>

namespace CLI {
class App;
}

namespace fieldlink::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // runtime error (no database, broker unreachable) or, for status, unhealthy
inline constexpr int kExitUsage = 2;    // bad command line or configuration

inline constexpr const char* kDefaultConfigPath = "/etc/fieldlink/gateway.toml";

// The options before (or after) any subcommand.
struct Globals {
    std::string db;                           // empty: from the config file
    std::string config = kDefaultConfigPath;  // the gateway's config file
    bool config_given = false;                // --config was on the command line: it must exist
    int busy_timeout_ms = 5000;
};

// A failure to report as "fieldlink: error: <what>" with this exit code.
class CliError : public std::runtime_error {
public:
    CliError(int exit_code, const std::string& what) : std::runtime_error(what), exit_code_(exit_code) {}
    int exit_code() const noexcept { return exit_code_; }

private:
    int exit_code_;
};

// Each adds its subcommand to `app`; its callback runs the command and throws
// CLI::RuntimeError(code) for a non-zero exit, CliError for a failure with a message.
void add_devices_command(CLI::App& app, const Globals& globals);
void add_query_commands(CLI::App& app, const Globals& globals);  // query and export
void add_status_command(CLI::App& app, const Globals& globals);
void add_dead_letters_command(CLI::App& app, const Globals& globals);
void add_check_config_command(CLI::App& app);

}  // namespace fieldlink::cli
