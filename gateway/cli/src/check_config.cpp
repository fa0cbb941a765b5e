// fieldlink check-config FILE: the gateway's own command-line and config
// loader, then its own upstream checks (what fieldlink-gateway does before it
// opens anything), so the messages and the exit code are the gateway's.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "cli.hpp"
#include "fieldlink/gateway/app/config.hpp"
#include "fieldlink/gateway/app/upstreams.hpp"

namespace fieldlink::cli {

void add_check_config_command(CLI::App& app) {
    auto file = std::make_shared<std::string>();
    CLI::App* command = app.add_subcommand(
        "check-config", "validate a gateway config file with the gateway's own loader, without starting it");
    command->add_option("FILE", *file, "the TOML file (as given to fieldlink-gateway --config)")->required();
    command->footer(
        "Prints \"ok\" and exits 0, or prints exactly what `fieldlink-gateway --config FILE` would print\n"
        "and exits 2. Does not connect to the broker or any upstream, and does not open the database.");
    command->callback([file] {
        const char* argv[] = {"fieldlink-gateway", "--config", file->c_str()};
        const gateway::CommandLine parsed = gateway::parse_command_line(3, argv);
        if (parsed.exit_code) {
            std::fputs(parsed.message.c_str(), stderr);
            throw CLI::RuntimeError(*parsed.exit_code == 0 ? kExitUsage : *parsed.exit_code);
        }
        const std::string gateway_id = gateway::effective_gateway_id(parsed.config.gateway_id);
        for (const gateway::UpstreamConfig& upstream : parsed.config.upstreams) {
            if (const auto problem = gateway::check_upstream(upstream, gateway_id)) {
                std::fprintf(stderr, "fieldlink-gateway: error: %s\n", problem->c_str());
                throw CLI::RuntimeError(gateway::kExitUsage);
            }
        }
        std::puts("ok");
    });
}

}  // namespace fieldlink::cli
