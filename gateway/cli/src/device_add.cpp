// `fieldlink device add NAME`: provisions a device for the production Mosquitto
// configuration (config/mosquitto/fieldlink-production.conf): a password file
// entry made by Mosquitto's own mosquitto_passwd, a check that the ACL's
// pattern entries cover the device (they need no per-device line), an
// optional reload of Mosquitto, and the reader's settings to copy onto the
// device, also as one fieldlink:// line (for a QR code). docs/operations.md,
// "Securing a gateway".
#include "device_add.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pwd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fieldlink/protocol/topics.hpp"

extern char** environ;

namespace fieldlink::cli {
namespace {

// The ACL lines that make every user name a device that can only be itself.
constexpr const char* kDevicePatterns[] = {
    "pattern write fieldlink/v1/%u/up",
    "pattern write fieldlink/v1/%u/status",
    "pattern write fieldlink/v1/%u/telemetry",
    "pattern read fieldlink/v1/%u/ack",
};

// Letters and digits only: nothing a URL, a shell or a TOML string must escape.
constexpr char kPasswordAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::size_t kPasswordLength = 24;  // 62^24: about 143 bits

struct DeviceAddOptions {
    std::string name;
    std::string password;  // empty: generated
    std::string password_file = "/etc/mosquitto/fieldlink.passwd";
    std::string acl_file = "/etc/mosquitto/fieldlink.acl";
    std::string gateway_user = "fieldlink-gateway";
    std::string host;  // empty: this host's name
    unsigned port = 8883;
    std::string ca_file = "/etc/mosquitto/certs/ca.crt";
    std::string mosquitto_passwd = "mosquitto_passwd";
    bool reload = false;
    std::string pid_file;  // empty: systemctl reload mosquitto
};

[[noreturn]] void fail(const std::string& message) {
    std::cerr << "fieldlink device add: " << message << "\n";
    throw CLI::RuntimeError(1);
}

std::string generate_password() {
    std::string password;
    constexpr std::size_t alphabet = sizeof kPasswordAlphabet - 1;
    // Rejection sampling: bytes at or above the largest multiple of 62 would bias the first letters.
    constexpr unsigned limit = 256 - 256 % alphabet;
    while (password.size() < kPasswordLength) {
        unsigned char bytes[64];
        const ssize_t got = ::getrandom(bytes, sizeof bytes, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            fail(std::string("cannot get random bytes: ") + std::strerror(errno));
        }
        for (ssize_t i = 0; i < got && password.size() < kPasswordLength; ++i) {
            if (bytes[i] < limit) password += kPasswordAlphabet[bytes[i] % alphabet];
        }
    }
    return password;
}

// Runs a program (no shell) and returns its exit status; -1 when it could not be started.
int run_program(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::vector<std::string> lines_of(const std::string& path, bool* exists) {
    std::ifstream file(path);
    *exists = static_cast<bool>(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(file, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
        lines.push_back(line);
    }
    return lines;
}

bool has_user(const std::string& path, const std::string& name) {
    bool exists = false;
    for (const std::string& line : lines_of(path, &exists)) {
        if (line.rfind(name + ":", 0) == 0) return true;
    }
    return false;
}

// Writes the password file entry with mosquitto_passwd; true when the user was new.
bool write_password(const DeviceAddOptions& o, const std::string& password) {
    struct stat info {};
    const bool file_exists = ::stat(o.password_file.c_str(), &info) == 0;
    const bool existed = file_exists && has_user(o.password_file, o.name);
    std::vector<std::string> argv = {o.mosquitto_passwd, "-b", o.password_file, o.name, password};
    if (!file_exists) argv.insert(argv.begin() + 1, "-c");
    const int status = run_program(argv);
    if (status == -1) fail("cannot run " + o.mosquitto_passwd + " (Debian package mosquitto): " + std::strerror(errno));
    if (status != 0) fail(o.mosquitto_passwd + " failed with status " + std::to_string(status));
    if (!has_user(o.password_file, o.name)) fail(o.password_file + " has no entry for " + o.name + " afterwards");
    if (!file_exists) {
        // A new file holds password hashes: readable by Mosquitto only.
        ::chmod(o.password_file.c_str(), 0600);
        if (const passwd* user = ::getpwnam("mosquitto"); user != nullptr && ::geteuid() == 0) {
            if (::chown(o.password_file.c_str(), user->pw_uid, user->pw_gid) != 0) {
                std::cerr << "warning: cannot give " << o.password_file
                          << " to user mosquitto: " << std::strerror(errno) << "\n";
            }
        }
    }
    return !existed;
}

// The ACL: the pattern entries cover every device, so nothing is added per device;
// entries missing from the file are appended once (then it is the shipped ACL).
std::string ensure_acl(const DeviceAddOptions& o) {
    bool exists = false;
    const std::vector<std::string> lines = lines_of(o.acl_file, &exists);
    if (!exists) fail("ACL file " + o.acl_file + " does not exist (install config/mosquitto/fieldlink.acl there)");
    std::vector<std::string> missing;
    for (const char* pattern : kDevicePatterns) {
        bool found = false;
        for (const std::string& line : lines) found = found || line == pattern;
        if (!found) missing.emplace_back(pattern);
    }
    if (missing.empty()) {
        return "ACL " + o.acl_file + ": its pattern entries (%u = user name = device id) cover " + o.name +
               "; no entry of its own is needed";
    }
    std::ofstream out(o.acl_file, std::ios::app);
    out << "\n# Added by fieldlink device add: every device (user name = device id) may only be itself.\n";
    for (const std::string& line : missing) out << line << "\n";
    out.close();
    if (!out) fail("cannot append to " + o.acl_file + ": " + std::strerror(errno));
    return "ACL " + o.acl_file + ": added " + std::to_string(missing.size()) +
           " pattern entries that cover every device, " + o.name + " included";
}

std::string reload(const DeviceAddOptions& o) {
    if (!o.pid_file.empty()) {
        std::ifstream file(o.pid_file);
        long pid = 0;
        if (!(file >> pid) || pid <= 1) fail("no process id in " + o.pid_file);
        if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
            fail("cannot send SIGHUP to Mosquitto (pid " + std::to_string(pid) + "): " + std::strerror(errno));
        }
        return "Mosquitto reloaded (SIGHUP to pid " + std::to_string(pid) + ")";
    }
    const int status = run_program({"systemctl", "reload", "mosquitto"});
    if (status != 0) fail("systemctl reload mosquitto failed (status " + std::to_string(status) + ")");
    return "Mosquitto reloaded (systemctl reload mosquitto)";
}

std::string this_host() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
    return name;
}

std::string host_port(const std::string& host, unsigned port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Percent-encodes what a URL query value may not hold as it is.
std::string url_encode(const std::string& text) {
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (std::isalnum(byte) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
            out += c;
        } else {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", byte);
            out += hex;
        }
    }
    return out;
}

void run_device_add(const DeviceAddOptions& options) {
    DeviceAddOptions o = options;
    if (!protocol::is_valid_device_id(o.name.data(), o.name.size())) {
        fail("'" + o.name + "' is not a device id: 1 to 32 characters from A-Z a-z 0-9 _ -");
    }
    if (o.name == o.gateway_user) fail("'" + o.name + "' is the gateway's own user, not a device");
    for (const char c : o.password) {
        if (c == ':' || c == '\n' || c == '\r') fail("a password cannot hold ':' or a line break (password file)");
    }
    const bool generated = o.password.empty();
    const std::string password = generated ? generate_password() : o.password;
    if (o.host.empty()) o.host = this_host();

    const bool added = write_password(o, password);
    std::cout << "device " << o.name << ": " << (added ? "added to " : "password replaced in ") << o.password_file
              << "\n";
    std::cout << ensure_acl(o) << "\n";
    if (o.reload) {
        std::cout << reload(o) << "\n";
    } else {
        std::cout << "Mosquitto rereads the password file on reload: systemctl reload mosquitto (or --reload)\n";
    }
    const std::string broker = host_port(o.host, o.port);
    std::cout << "\nreader settings (copy " << o.ca_file << " to the device, and the password into a file there):\n"
              << "  device    " << o.name << "\n"
              << "  broker    " << broker << " (TLS)\n"
              << "  CA file   " << o.ca_file << "\n"
              << "  username  " << o.name << "\n"
              << "  password  " << password << (generated ? " (generated)" : "") << "\n"
              << "  fieldlink-reader --device " << o.name << " --broker " << broker << " --tls --ca-file " << o.ca_file
              << " --username " << o.name << " --password-file " << o.name << ".password\n"
              << "\none line (for a QR code):\n"
              << "fieldlink://" << o.name << ":" << password << "@" << broker << "?ca=" << url_encode(o.ca_file)
              << "\n";
}

}  // namespace

void add_device_add_command(CLI::App& app) {
    // `app` is the fieldlink command, or its `device` subcommand when that exists already.
    CLI::App* device = &app;
    if (app.get_name() != "device") {
        device = nullptr;
        for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "device"; })) device = sub;
        if (device == nullptr) {
            device = app.add_subcommand("device", "manage devices' broker credentials");
            device->require_subcommand(1);
        }
    }
    auto options = std::make_shared<DeviceAddOptions>();
    CLI::App* add = device->add_subcommand(
        "add",
        "provision a device: a broker password (Mosquitto's password file, by mosquitto_passwd), the ACL check, "
        "and the reader's settings (docs/operations.md, \"Securing a gateway\")");
    add->add_option("NAME", options->name, "device id: 1 to 32 characters from A-Z a-z 0-9 _ -; also its user name")
        ->required();
    add->add_option("--password", options->password, "use this password (default: 24 random letters and digits)");
    add->add_option("--password-file", options->password_file, "Mosquitto's password_file")->capture_default_str();
    add->add_option("--acl-file", options->acl_file, "Mosquitto's acl_file")->capture_default_str();
    add->add_option("--gateway-user", options->gateway_user, "the gateway's user name, never a device's")
        ->capture_default_str();
    add->add_option("--host", options->host, "host name or address the device reaches the broker by")
        ->default_str("this host's name");
    add->add_option("--port", options->port, "the broker's TLS port")
        ->check(CLI::Range(1u, 65535u))
        ->capture_default_str();
    add->add_option("--ca-file", options->ca_file, "CA certificate the device verifies the broker with")
        ->capture_default_str();
    add->add_option("--mosquitto-passwd", options->mosquitto_passwd, "the mosquitto_passwd program")
        ->capture_default_str();
    add->add_flag("--reload", options->reload,
                  "make Mosquitto reread its files (systemctl reload mosquitto, or SIGHUP)");
    add->add_option("--pid-file", options->pid_file, "with --reload: send SIGHUP to the pid in this file instead")
        ->check(CLI::ExistingFile);
    add->callback([options] { run_device_add(*options); });
}

}  // namespace fieldlink::cli
