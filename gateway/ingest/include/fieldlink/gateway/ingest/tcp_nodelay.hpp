// Turning off Nagle's algorithm on Paho's broker socket. Paho C 1.3 neither sets
// TCP_NODELAY nor exposes its socket, and with Nagle on every commit ack waits
// for the previous segment's delayed ACK (~40 ms), which bounds the drain of a
// device's backlog to one window per ~44 ms (measured in bench/).
#pragma once

#include <optional>
#include <string_view>

namespace fieldlink::gateway {

// Port of a tcp:// or mqtt:// broker URI (1883 when absent); nullopt for other schemes.
std::optional<int> plain_tcp_port(std::string_view broker_uri);

// Sets TCP_NODELAY on every TCP socket of this process whose peer port is
// `peer_port` (Linux: walks /proc/self/fd). Returns how many sockets were set.
int set_nodelay_to_peer_port(int peer_port);

}  // namespace fieldlink::gateway
