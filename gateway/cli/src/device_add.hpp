// fieldlink device add NAME: provisions a device (broker credentials, ACL entry,
// the reader's settings). Registered by main like every subcommand.
#pragma once

namespace CLI {
class App;
}

namespace fieldlink::cli {
// Adds `device add` (and its parent `device`) to the fieldlink command.
void add_device_add_command(CLI::App& app);
}  // namespace fieldlink::cli
