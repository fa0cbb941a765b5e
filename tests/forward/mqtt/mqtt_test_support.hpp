// Helpers for the MQTT upstream tests: temp dirs, free loopback ports, a
// private Mosquitto started with posix_spawn (the pattern of
// tests/gateway/gateway_mqtt_test.cpp), a broker that never answers, a
// recording subscriber, and running the openssl / mosquitto_passwd tools.
#pragma once

#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace fieldlink::gateway::mqtt_test {

using namespace std::chrono_literals;

// Generous limits for a loaded CI machine; they only bound a failing test.
inline constexpr auto kStartupLimit = 20s;
inline constexpr auto kMessageLimit = 60s;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "fieldlink-up-mqtt-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

inline std::string read_file(const std::string& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

inline int free_loopback_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(address.sin_port);
}

inline bool port_accepts(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

// Polls `condition` until it holds or `limit` passes.
template <typename Condition>
bool eventually(Condition condition, std::chrono::steady_clock::duration limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// Runs a program to its end with stdout and stderr appended to `log_path`; its exit status, -1 if it could not run.
inline int run_program(const std::vector<std::string>& args, const std::string& log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, args.front().c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The first lines of a Mosquitto config: a plain listener on `port`, no
// persistence, nothing dropped from queues, and (when run as root) no switch
// to the mosquitto user, which could not read the test's files.
inline std::string mosquitto_base_config(int port) {
    std::ostringstream config;
    config << "per_listener_settings false\n"
           << "persistence false\n"
           << "max_queued_messages 0\n"
           << "log_type all\n";
    if (geteuid() == 0) config << "user root\n";
    config << "listener " << port << " 127.0.0.1\n";
    return config.str();
}

// A private Mosquitto with the given config text; `port` is the one whose
// accepting means ready. Stopped (SIGTERM, then reaped) by the destructor.
class Mosquitto {
public:
    Mosquitto(const TempDir& dir, int port, const std::string& config, const std::string& name = "mosquitto")
        : port_(port), config_path_(dir.file(name + ".conf")), log_path_(dir.file(name + ".log")) {
        std::ofstream(config_path_) << config;
        start();
    }
    ~Mosquitto() { stop(); }
    Mosquitto(const Mosquitto&) = delete;
    Mosquitto& operator=(const Mosquitto&) = delete;

    // Starts it (again) with the same config and port.
    void start() {
        if (pid_ > 0) return;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                         0644);
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        const std::string program = FIELDLINK_MOSQUITTO;
        char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>("-c"),
                        const_cast<char*>(config_path_.c_str()), nullptr};
        if (posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv, environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
    }
    bool wait_ready() {
        return pid_ > 0 && eventually([&] { return port_accepts(port_) || exited(); }, kStartupLimit) && !exited();
    }
    void stop() { end(SIGTERM); }
    void kill_hard() { end(SIGKILL); }
    // SIGSTOP: connections stay open, nothing is read or answered.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }
    std::string log() const { return read_file(log_path_); }

private:
    void end(int signal) {
        if (pid_ <= 0) return;
        ::kill(pid_, signal);
        ::kill(pid_, SIGCONT);  // a paused broker must run to handle SIGTERM
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    bool exited() {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
        }
        return pid_ <= 0;
    }

    int port_;
    std::string config_path_;
    std::string log_path_;
    pid_t pid_ = -1;
};

// Accepts TCP connections and never answers: a broker that hangs before CONNACK.
class SilentBroker {
public:
    explicit SilentBroker(int port) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        const int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(static_cast<std::uint16_t>(port));
        listening_ =
            fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 && listen(fd_, 16) == 0;
        if (listening_) acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~SilentBroker() {
        done_ = true;
        if (acceptor_.joinable()) acceptor_.join();
        for (const int fd : accepted_fds_) close(fd);
        if (fd_ >= 0) close(fd_);
    }
    bool listening() const { return listening_; }
    int accepted() const { return accepted_.load(); }

private:
    void accept_loop() {
        while (!done_) {
            pollfd waiting{fd_, POLLIN, 0};
            if (poll(&waiting, 1, 50) <= 0) continue;
            const int fd = accept(fd_, nullptr, nullptr);
            if (fd < 0) continue;
            accepted_fds_.push_back(fd);  // kept open, never read: no CONNACK ever
            ++accepted_;
        }
    }

    int fd_ = -1;
    bool listening_ = false;
    std::atomic<bool> done_{false};
    std::atomic<int> accepted_{0};
    std::vector<int> accepted_fds_;  // owned by the acceptor thread until it is joined
    std::thread acceptor_;
};

struct Received {
    std::string topic;
    std::vector<std::uint8_t> payload;
};

// A Paho client subscribed at QoS 1 to `filter`; records what arrives, in order.
class Subscriber {
public:
    Subscriber(int port, const std::string& filter)
        : client_("tcp://127.0.0.1:" + std::to_string(port), "fieldlink-test-subscriber",
                  static_cast<mqtt::iclient_persistence*>(nullptr)) {
        client_.set_message_callback([this](mqtt::const_message_ptr message) {
            if (!message) return;
            const std::string& payload = message->get_payload();
            std::lock_guard lock(mutex_);
            received_.push_back({message->get_topic(), {payload.begin(), payload.end()}});
        });
        auto options = mqtt::connect_options_builder().clean_session(true).finalize();
        client_.connect(options)->wait_for(kStartupLimit);
        client_.subscribe(filter, 1)->wait_for(kStartupLimit);
    }
    ~Subscriber() {
        try {
            client_.disconnect()->wait_for(5s);
        } catch (const mqtt::exception&) {
        }
        try {
            client_.disable_callbacks();
        } catch (const mqtt::exception&) {
        }
    }
    std::vector<Received> received() const {
        std::lock_guard lock(mutex_);
        return received_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return received_.size();
    }
    bool wait_for_count(std::size_t n) {
        return eventually([&] { return count() >= n; }, kMessageLimit);
    }

private:
    mutable std::mutex mutex_;
    std::vector<Received> received_;
    mqtt::async_client client_;  // last: destroyed first
};

}  // namespace fieldlink::gateway::mqtt_test
