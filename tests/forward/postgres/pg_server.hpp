// A private PostgreSQL server for tests: Debian's postgresql-15 binaries, a fresh
// cluster (initdb) in a temporary directory, listening on a free 127.0.0.1 port
// with its unix socket inside that directory. Stopped and removed by the
// destructor, whatever happened. The Python twin is tests/integration/pg_harness.py.
//
// As root (CI), initdb and postgres refuse to run, so they run as the `postgres`
// system user that Debian's package creates: spawned through setpriv (which execs,
// so the pid we hold is the postmaster's), with the directory chowned to it.
//
// Authentication: the superuser `fieldlink` and every other role log in without a
// password (trust), except kPasswordUser, which needs kPassword (scram-sha-256) over TCP.
#pragma once

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace fieldlink::test {

// Where the server binaries are: FIELDLINK_PG_BIN, or Debian's postgresql-15 folder.
inline std::string pg_bin() {
    const char* bin = std::getenv("FIELDLINK_PG_BIN");
    return bin != nullptr && *bin != '\0' ? bin : "/usr/lib/postgresql/15/bin";
}
inline constexpr const char* kPgSuperuser = "fieldlink";
inline constexpr const char* kPgDatabase = "fieldlink";
inline constexpr const char* kPasswordUser = "fieldlink_secret";
inline constexpr const char* kPassword = "correct-horse-battery";

// The first binary the harness needs that is not installed, or empty.
inline std::string pg_missing_binary() {
    for (const char* name : {"initdb", "postgres"}) {
        const std::string path = pg_bin() + "/" + name;
        if (::access(path.c_str(), X_OK) != 0) return path;
    }
    return {};
}

inline int pg_free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    int port = -1;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
        port = ntohs(address.sin_port);
    }
    if (fd >= 0) ::close(fd);
    return port;
}

// A libpq connection for test queries (blocking). Throws std::runtime_error on failure.
class PgClient {
public:
    explicit PgClient(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
        if (PQstatus(conn_) != CONNECTION_OK) {
            const std::string message = PQerrorMessage(conn_);
            PQfinish(conn_);
            throw std::runtime_error("test connection failed: " + message);
        }
        PQsetNoticeProcessor(
            conn_, [](void*, const char*) {}, nullptr);
    }
    ~PgClient() { PQfinish(conn_); }
    PgClient(const PgClient&) = delete;
    PgClient& operator=(const PgClient&) = delete;

    using Row = std::vector<std::optional<std::string>>;

    // Runs `sql` (text results); the rows of its last statement.
    std::vector<Row> query(const std::string& sql) {
        std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn_, sql.c_str()), &PQclear);
        const ExecStatusType status = PQresultStatus(result.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            throw std::runtime_error("test query failed: " + sql + ": " + PQresultErrorMessage(result.get()));
        }
        std::vector<Row> rows;
        for (int r = 0; r < PQntuples(result.get()); ++r) {
            Row row;
            for (int c = 0; c < PQnfields(result.get()); ++c) {
                if (PQgetisnull(result.get(), r, c)) {
                    row.emplace_back();
                } else {
                    row.emplace_back(PQgetvalue(result.get(), r, c));
                }
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }

    // The single value of a one-row, one-column query ("" for NULL).
    std::string value(const std::string& sql) {
        const auto rows = query(sql);
        if (rows.size() != 1 || rows[0].size() != 1) throw std::runtime_error("expected one value from: " + sql);
        return rows[0][0].value_or("");
    }

    PGconn* raw() noexcept { return conn_; }

private:
    PGconn* conn_;
};

class PgServer {
public:
    // Creates the cluster (initdb) and starts the server; throws std::runtime_error with the logs.
    PgServer() {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/fieldlink-pg-XXXXXX";
        std::vector<char> buffer(pattern.begin(), pattern.end());
        buffer.push_back('\0');
        if (::mkdtemp(buffer.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = buffer.data();
        as_root_ = ::geteuid() == 0;
        try {
            initialise();
            port_ = pg_free_loopback_port();
            start();
            PgClient admin(conninfo("postgres"));
            admin.query(std::string("CREATE DATABASE ") + kPgDatabase);
            admin.query(std::string("CREATE ROLE ") + kPasswordUser + " LOGIN PASSWORD '" + kPassword + "'");
        } catch (...) {
            cleanup();
            throw;
        }
    }
    ~PgServer() { cleanup(); }
    PgServer(const PgServer&) = delete;
    PgServer& operator=(const PgServer&) = delete;

    int port() const noexcept { return port_; }
    const std::string& dir() const noexcept { return dir_; }
    bool running() const noexcept { return pid_ > 0; }

    // A conninfo for `database` as `user` (a password only if given), over TCP.
    std::string conninfo(const std::string& database = kPgDatabase, const std::string& user = kPgSuperuser,
                         const std::string& password = "") const {
        std::string text = "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + database + " user=" + user +
                           " connect_timeout=10";
        if (!password.empty()) text += " password=" + password;
        return text;
    }

    // Starts the postmaster on the same data directory and port, and waits until it accepts
    // connections (after a kill, once crash recovery is done).
    void start() {
        if (pid_ > 0) return;
        pid_ = spawn({pg_bin() + "/postgres", "-D", dir_ + "/data", "-p", std::to_string(port_), "-k", dir_ + "/sock",
                      "-c", "listen_addresses=127.0.0.1", "-c", "recovery_init_sync_method=syncfs"},
                     dir_ + "/postgres.log", true);
        const std::string probe = conninfo("postgres") + " connect_timeout=2";
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (;;) {
            if (PQping(probe.c_str()) == PQPING_OK) return;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("postgres exited while starting; log:\n" + log());
            }
            if (std::chrono::steady_clock::now() > deadline) {
                stop();
                throw std::runtime_error("postgres did not accept connections within 60 s; log:\n" + log());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    // Fast shutdown (SIGINT: active transactions roll back), then reaps the postmaster.
    void stop() noexcept {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGINT);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    // A crash: SIGKILL of the postmaster. Its backends notice and exit on their own; this
    // waits until they are gone (SIGKILLing any that linger), so that start() can follow.
    void kill() noexcept {
        if (pid_ <= 0) return;
        const std::vector<Child> children = children_of(pid_);
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            bool any = false;
            for (const Child& child : children) any = any || alive(child);
            if (!any) break;
            if (std::chrono::steady_clock::now() > deadline) {
                for (const Child& child : children) {
                    if (alive(child)) ::kill(child.pid, SIGKILL);
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    std::string log() const {
        std::ifstream file(dir_ + "/postgres.log");
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

private:
    void initialise() {
        const std::string data = dir_ + "/data";
        std::filesystem::create_directory(dir_ + "/sock");
        if (as_root_) {
            const passwd* user = ::getpwnam("postgres");
            if (user == nullptr) throw std::runtime_error("running as root and there is no 'postgres' user");
            uid_ = user->pw_uid;
            gid_ = user->pw_gid;
            for (const std::string& path : {dir_, dir_ + "/sock"}) {
                if (::chown(path.c_str(), uid_, gid_) != 0) throw std::runtime_error("chown " + path + " failed");
            }
        }
        const pid_t pid = spawn({pg_bin() + "/initdb", "-D", data, "-U", kPgSuperuser, "--auth=trust", "-E", "UTF8",
                                 "--locale=C", "--no-sync", "--no-instructions"},
                                dir_ + "/initdb.log", false);
        int status = 0;
        ::waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::ifstream file(dir_ + "/initdb.log");
            std::stringstream text;
            text << file.rdbuf();
            throw std::runtime_error("initdb failed:\n" + text.str());
        }
        // First match wins: the password user over TCP needs its password; everything else is trusted.
        std::ofstream(data + "/pg_hba.conf", std::ios::trunc)
            << "local all all trust\n"
            << "host all " << kPasswordUser << " 127.0.0.1/32 scram-sha-256\n"
            << "host all all 127.0.0.1/32 trust\n";
    }

    // posix_spawn of argv with stdout and stderr appended to `log_path`, as `postgres` when root.
    pid_t spawn(std::vector<std::string> argv, const std::string& log_path, bool append) {
        if (as_root_) {
            argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_),
                                       "--regid=" + std::to_string(gid_), "--init-groups", "--"});
        }
        std::vector<char*> args;
        for (std::string& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                         O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        pid_t pid = -1;
        const int error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (error != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
        return pid;
    }

    struct ProcStat {
        char state = '?';
        pid_t ppid = 0;
        unsigned long long start_time = 0;  // clock ticks since boot: tells a reused pid apart
    };

    static std::optional<ProcStat> proc_stat(pid_t pid) {
        std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
        const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        const std::size_t close_paren = text.rfind(')');
        if (close_paren == std::string::npos) return std::nullopt;
        std::istringstream fields(text.substr(close_paren + 1));
        ProcStat stat;
        fields >> stat.state >> stat.ppid;
        std::string skip;
        for (int field = 5; field < 22; ++field) fields >> skip;  // pgrp .. priority, nice, ...
        fields >> stat.start_time;
        if (!fields) return std::nullopt;
        return stat;
    }

    struct Child {
        pid_t pid;
        unsigned long long start_time;
    };

    static std::vector<Child> children_of(pid_t parent) {
        std::vector<Child> children;
        std::error_code ignored;
        for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
            const std::string name = entry.path().filename().string();
            if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
            const auto pid = static_cast<pid_t>(std::stol(name));
            if (const auto stat = proc_stat(pid); stat && stat->ppid == parent) {
                children.push_back({pid, stat->start_time});
            }
        }
        return children;
    }

    // Still running: the same process (not a reused pid) and not a zombie waiting to be reaped.
    static bool alive(const Child& child) {
        const auto stat = proc_stat(child.pid);
        return stat && stat->start_time == child.start_time && stat->state != 'Z' && stat->state != 'X';
    }

    void cleanup() noexcept {
        stop();
        if (!dir_.empty() && std::getenv("FIELDLINK_KEEP_TEST_DIR") == nullptr) {
            std::error_code ignored;
            std::filesystem::remove_all(dir_, ignored);
        }
    }

    std::string dir_;
    bool as_root_ = false;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    int port_ = -1;
    pid_t pid_ = -1;
};

}  // namespace fieldlink::test
