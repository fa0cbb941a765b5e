// The pieces of the bridge tests: a private Mosquitto, the bridge program as
// a child process, a TCP "line" the test listens on (as QEMU does), a device
// that runs a link session on it, and just enough MQTT 3.1.1 to talk.
#pragma once

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../gateway/test_support.hpp"
#include "fieldlink/gateway/bridge/fd.hpp"
#include "fieldlink/link/session.hpp"

extern char** environ;

namespace fieldlink::gateway::bridge::test {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

// Generous: they only bound a failing test.
constexpr auto kLimit = 10s;

inline std::uint32_t now_ms() {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

using ::fieldlink::gateway::test::TempDir;  // tests/gateway/test_support.hpp

inline std::string read_file(const std::string& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

inline std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

template <typename Condition>
bool eventually(Condition condition, std::chrono::steady_clock::duration limit = kLimit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

inline sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    return address;
}

inline UniqueFd connect_loopback(int port) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in address = loopback(port);
    if (!fd || connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) return {};
    return fd;
}

// A listening socket on 127.0.0.1 (port 0: any free one).
class Listener {
public:
    explicit Listener(int port = 0) {
        fd_ = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const int one = 1;
        setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in address = loopback(port);
        socklen_t length = sizeof(address);
        if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd_.get(), 4) != 0 ||
            getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            throw std::runtime_error("cannot listen on 127.0.0.1");
        }
        port_ = ntohs(address.sin_port);
    }
    int port() const { return port_; }
    UniqueFd accept(std::chrono::milliseconds limit = std::chrono::duration_cast<std::chrono::milliseconds>(kLimit)) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(limit.count())) != 1) return {};
        return UniqueFd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    }

private:
    UniqueFd fd_;
    int port_ = 0;
};

inline int free_port() { return Listener().port(); }

// A child process with stdout and stderr in a log file; SIGTERM and reaped on destruction.
class Child {
public:
    Child(std::vector<std::string> argv, const std::string& log_path) : log_path_(log_path) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        std::vector<char*> args;
        for (std::string& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
    }
    ~Child() { stop(); }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    // The exit status, or -1 if it was still running (then it is stopped now).
    int stop() {
        if (pid_ <= 0) return exit_status_;
        kill(pid_, SIGTERM);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_status_;
    }
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return false;
        }
        return true;
    }
    std::string log() const { return read_file(log_path_); }

private:
    std::string log_path_;
    pid_t pid_ = -1;
    int exit_status_ = -1;
};

// A private Mosquitto on a free port, logging connects and disconnects.
class Mosquitto {
public:
    explicit Mosquitto(const TempDir& dir)
        : port_(free_port()),
          config_(write_config(dir, port_)),
          child_({FIELDLINK_MOSQUITTO, "-c", config_}, dir.file("mosquitto.log")) {}
    bool wait_ready() {
        return eventually([&] { return static_cast<bool>(connect_loopback(port_)) || !child_.running(); }, kLimit) &&
               child_.running();
    }
    int port() const { return port_; }
    std::string log() const { return child_.log(); }

private:
    static std::string write_config(const TempDir& dir, int port) {
        const std::string path = dir.file("mosquitto.conf");
        std::ofstream(path) << "listener " << port << " 127.0.0.1\nallow_anonymous true\npersistence false\n"
                            << "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
                            << "log_type information\n";
        return path;
    }
    int port_;
    std::string config_;
    Child child_;
};

// --- MQTT 3.1.1, the few packets the tests need ---------------------------

inline void put_string(Bytes& out, const std::string& text) {
    out.push_back(static_cast<std::uint8_t>(text.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(text.size()));
    out.insert(out.end(), text.begin(), text.end());
}

inline Bytes packet(std::uint8_t header, const Bytes& body) {
    Bytes out{header};
    std::size_t length = body.size();
    do {
        std::uint8_t digit = length % 128;
        length /= 128;
        if (length > 0) digit |= 0x80;
        out.push_back(digit);
    } while (length > 0);
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

inline Bytes mqtt_connect(const std::string& client_id) {
    Bytes body;
    put_string(body, "MQTT");
    body.insert(body.end(), {0x04, 0x02, 0x00, 0x3c});  // level 4, clean session, keep-alive 60 s
    put_string(body, client_id);
    return packet(0x10, body);
}

inline Bytes mqtt_subscribe(std::uint16_t id, const std::string& filter) {
    Bytes body{static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id)};
    put_string(body, filter);
    body.push_back(0x00);  // QoS 0
    return packet(0x82, body);
}

inline Bytes mqtt_publish(const std::string& topic, const std::string& payload) {
    Bytes body;
    put_string(body, topic);
    body.insert(body.end(), payload.begin(), payload.end());
    return packet(0x30, body);
}

inline const Bytes kConnack = {0x20, 0x02, 0x00, 0x00};

// The payload of a QoS 0 PUBLISH packet.
inline std::string publish_payload(const Bytes& p) {
    std::size_t at = 1;
    while (at < p.size() && (p[at] & 0x80) != 0) ++at;
    ++at;
    const std::size_t topic_length = (static_cast<std::size_t>(p[at]) << 8) | p[at + 1];
    return std::string(p.begin() + static_cast<std::ptrdiff_t>(at + 2 + topic_length), p.end());
}

// Cuts whole MQTT packets off the front of a byte stream.
inline std::optional<Bytes> take_packet(Bytes& stream) {
    std::size_t length = 0;
    std::size_t at = 1;
    for (int shift = 0;; shift += 7, ++at) {
        if (at >= stream.size()) return std::nullopt;
        length |= static_cast<std::size_t>(stream[at] & 0x7f) << shift;
        if ((stream[at] & 0x80) == 0) break;
    }
    const std::size_t total = at + 1 + length;
    if (stream.size() < total) return std::nullopt;
    Bytes p(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(total));
    stream.erase(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(total));
    return p;
}

// An MQTT client straight on the broker's TCP port: the test's own subscriber.
class Observer {
public:
    bool start(int port, const std::string& filter) {
        fd_ = connect_loopback(port);
        if (!fd_) return false;
        send(mqtt_connect("observer"));
        if (next(kLimit) != kConnack) return false;
        send(mqtt_subscribe(1, filter));
        const auto suback = next(kLimit);
        return suback && (*suback)[0] == 0x90;
    }
    void send(const Bytes& bytes) { ASSERT_EQ(::write(fd_.get(), bytes.data(), bytes.size()), ssize_t(bytes.size())); }
    std::optional<Bytes> next(std::chrono::steady_clock::duration limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            if (auto p = take_packet(rx_)) return p;
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{fd_.get(), POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            std::uint8_t buffer[4096];
            const ssize_t n = ::read(fd_.get(), buffer, sizeof(buffer));
            if (n <= 0) return std::nullopt;
            rx_.insert(rx_.end(), buffer, buffer + n);
        }
    }
    // Payloads of the PUBLISH packets that arrive within `limit`.
    std::vector<std::string> payloads(std::chrono::steady_clock::duration limit) {
        std::vector<std::string> out;
        while (auto p = next(limit)) {
            if (((*p)[0] & 0xf0) == 0x30) out.push_back(publish_payload(*p));
        }
        return out;
    }

private:
    UniqueFd fd_;
    Bytes rx_;
};

// --- The device: a link session on the accepted line -----------------------

// Line damage the test applies to the device's next frame(s) on the wire.
enum class Noise { None, FlipByte, DropByte, DropFrame };

class Device final : public link::LinkOutput {
public:
    explicit Device(UniqueFd line) : line_(std::move(line)), session_(*this, config()) { session_.open(now_ms()); }

    bool write(const std::uint8_t* data, std::size_t length) override {
        Bytes frame(data, data + length);
        const Noise noise = noise_;
        noise_ = Noise::None;
        if (noise == Noise::DropFrame) return true;
        if (noise == Noise::FlipByte) frame[length / 2] ^= 0x10;
        if (noise == Noise::DropByte) frame.erase(frame.begin() + static_cast<std::ptrdiff_t>(length / 2));
        return ::write(line_.get(), frame.data(), frame.size()) == ssize_t(frame.size());
    }

    void damage_next_frame(Noise noise) { noise_ = noise; }

    // Runs the session until `condition` holds or the limit passes.
    template <typename Condition>
    bool pump_until(Condition condition, std::chrono::steady_clock::duration limit = kLimit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!condition()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            pollfd p{line_.get(), POLLIN, 0};
            const int ready = poll(&p, 1, 50);
            session_.poll(now_ms());
            if (ready <= 0) continue;
            std::uint8_t buffer[4096];
            const ssize_t n = ::read(line_.get(), buffer, sizeof(buffer));
            if (n <= 0) return false;
            std::size_t offset = 0;
            while (offset < static_cast<std::size_t>(n)) {
                std::size_t consumed = 0;
                const link::SessionEvent event =
                    session_.receive(buffer + offset, static_cast<std::size_t>(n) - offset, &consumed, now_ms());
                offset += consumed;
                if (event.kind == link::SessionEvent::Kind::Opened) {
                    ++opened_;
                    rx_.clear();  // a new stream
                } else if (event.kind == link::SessionEvent::Kind::Broken) {
                    ++broken_;
                    rx_.clear();
                } else if (event.kind == link::SessionEvent::Kind::Data) {
                    rx_.insert(rx_.end(), event.data, event.data + event.length);
                }
            }
        }
        return true;
    }

    // Waits for the next Opened (the first one, or the one after a reset).
    bool wait_opened() {
        const int seen = opened_;
        return pump_until([&] { return opened_ > seen && session_.state() == link::SessionState::Open; });
    }
    bool wait_open() {
        return pump_until([&] { return opened_ > 0 && session_.state() == link::SessionState::Open; });
    }

    void send(const Bytes& bytes) { EXPECT_EQ(session_.send(bytes.data(), bytes.size()), link::LinkStatus::Ok); }

    // The next MQTT packet from the broker through the bridge.
    std::optional<Bytes> next_packet() {
        std::optional<Bytes> p;
        pump_until([&] { return (p = take_packet(rx_)).has_value(); });
        return p;
    }

    // MQTT CONNECT until CONNACK; true when it came. A reset meanwhile (both
    // ends' first Resets can cross) loses the CONNECT: send it again.
    bool mqtt_connect_ok(const std::string& client_id) {
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (!wait_open()) return false;
            const int resets = opened_;
            send(mqtt_connect(client_id));
            std::optional<Bytes> p;
            pump_until([&] { return opened_ != resets || (p = take_packet(rx_)).has_value(); });
            if (opened_ == resets) return p == kConnack;
        }
        return false;
    }

    int opened() const { return opened_; }
    int broken() const { return broken_; }
    link::Session& session() { return session_; }
    void close_line() { line_.reset(); }

private:
    static link::SessionConfig config() {
        link::SessionConfig c;
        c.nonce = 0x4000;
        return c;
    }
    UniqueFd line_;
    link::Session session_;
    Noise noise_ = Noise::None;
    Bytes rx_;
    int opened_ = 0;
    int broken_ = 0;
};

// The bridge program with a TCP line per port.
inline std::vector<std::string> bridge_argv(int broker_port, const std::vector<int>& line_ports) {
    std::vector<std::string> argv = {
        FIELDLINK_SERIAL_BRIDGE, "--broker", "tcp://127.0.0.1:" + std::to_string(broker_port), "--log-level", "debug",
        "--backoff-max-ms",      "400"};
    for (const int port : line_ports) {
        argv.push_back("--line");
        argv.push_back("tcp:127.0.0.1:" + std::to_string(port));
    }
    return argv;
}

}  // namespace fieldlink::gateway::bridge::test
