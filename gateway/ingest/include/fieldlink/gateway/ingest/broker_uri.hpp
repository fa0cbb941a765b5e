// Broker addresses as Paho takes them (scheme://host[:port]); the one list of
// schemes the gateway accepts, used by the configuration and the broker link.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::gateway {

struct BrokerUri {
    std::string_view scheme;  // "tcp", "mqtt", "ssl", "mqtts", "ws" or "wss"
    std::string_view host;    // as written; IPv6 addresses keep their brackets
    int port = 0;             // explicit, or the scheme's default
    bool tls = false;         // ssl, mqtts, wss
    bool websocket = false;   // ws, wss
};

// nullopt for an unknown scheme, an empty host or a bad port. The views point into `uri`.
std::optional<BrokerUri> parse_broker_uri(std::string_view uri) noexcept;

// What a broker URI must look like, for error messages.
inline constexpr std::string_view kBrokerUriExpected =
    "a URI such as tcp://127.0.0.1:1883 (schemes: tcp, mqtt, ssl, mqtts, ws, wss; port 1..65535)";

}  // namespace fieldlink::gateway
