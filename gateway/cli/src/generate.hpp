// The man page and the bash completion, both walked from the CLI11 definitions
// of the command itself, so they cannot drift from --help.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace fieldlink::cli {

std::string man_page(const CLI::App& app, const std::string& version);
std::string bash_completion(const CLI::App& app);

}  // namespace fieldlink::cli
