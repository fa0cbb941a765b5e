#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"

#include "fieldlink/gateway/ingest/broker_uri.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>

namespace fieldlink::gateway {
namespace {

int peer_port_of(int fd) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return -1;
    if (peer.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(peer).sin_port);
    if (peer.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(peer).sin6_port);
    return -1;
}

}  // namespace

std::optional<int> plain_tcp_port(std::string_view uri) {
    const std::optional<BrokerUri> parsed = parse_broker_uri(uri);
    if (!parsed || parsed->tls || parsed->websocket) return std::nullopt;
    return parsed->port;
}

int set_nodelay_to_peer_port(int peer_port) {
    DIR* fds = ::opendir("/proc/self/fd");
    if (fds == nullptr) return 0;
    int changed = 0;
    while (const dirent* entry = ::readdir(fds)) {
        char* end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == ::dirfd(fds)) continue;
        int type = 0;
        socklen_t length = sizeof type;
        if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) {
            continue;
        }
        if (peer_port_of(static_cast<int>(fd)) != peer_port) continue;
        const int on = 1;
        if (::setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0) ++changed;
    }
    ::closedir(fds);
    return changed;
}

}  // namespace fieldlink::gateway
