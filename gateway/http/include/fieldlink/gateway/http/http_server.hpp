// The gateway's HTTP server (cpp-httplib): /metrics, /healthz, /api/status and
// the status page with its assets, compiled into the binary.
//
// Threads, all owned here and joined by stop(): one accepts connections
// (cpp-httplib's listen loop), `workers` serve them from a queue of at most
// `queue` connections; when that is full, accepting waits (the kernel's backlog
// holds the rest), so a flood of clients costs neither memory nor threads.
// Requests only read: counters, status calls, and the database through the
// observer's own read-only connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fieldlink/gateway/http/health.hpp"
#include "fieldlink/gateway/http/observer.hpp"
#include "fieldlink/gateway/ingest/log.hpp"

namespace fieldlink::gateway::http {

// Where to listen: an IPv4 or IPv6 address (no brackets) or a host name;
// port 0 takes any free port (see HttpServer::port()).
struct ListenAddress {
    std::string host;
    int port = 0;
};

struct HttpSettings {
    ListenAddress listen{"127.0.0.1", 9770};
    std::size_t workers = 2;
    std::size_t queue = 16;  // connections accepted, waiting for a worker
    int read_timeout_s = 5;  // a client that sends nothing for this long is dropped
    int write_timeout_s = 5;
    // One request per connection: an idle kept-alive connection (a browser
    // keeps several) would hold a worker that a scrape needs.
    HealthSettings health;
    std::string version;  // for fieldlink_build_info and the page
};

class HttpServer {
public:
    HttpServer(const HttpSettings& settings, GatewayObserver& observer, Logger& log);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds and starts serving; returns once the server accepts connections.
    // Throws std::runtime_error naming the address when it cannot bind.
    void start();
    // Stops accepting, finishes the requests in progress, joins every thread. Idempotent.
    void stop();
    // The bound port (useful with port 0); 0 before start().
    int port() const noexcept;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace fieldlink::gateway::http
