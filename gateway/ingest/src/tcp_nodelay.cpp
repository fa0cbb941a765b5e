#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>
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
    std::string_view rest;
    for (std::string_view scheme : {"tcp://", "mqtt://"}) {
        if (uri.substr(0, scheme.size()) == scheme) rest = uri.substr(scheme.size());
    }
    if (rest.empty()) return std::nullopt;
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.find(']', colon) != std::string_view::npos) return 1883;
    int port = 0;
    const std::string_view digits = rest.substr(colon + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (error != std::errc{} || end != digits.data() + digits.size() || port <= 0 || port > 65535) {
        return std::nullopt;
    }
    return port;
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
