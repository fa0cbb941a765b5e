#include "fieldlink/gateway/ingest/broker_uri.hpp"

#include <charconv>

namespace fieldlink::gateway {
namespace {

struct Scheme {
    std::string_view name;
    int default_port;
    bool tls;
    bool websocket;
};

constexpr Scheme kSchemes[] = {
    {"tcp", 1883, false, false},  {"mqtt", 1883, false, false}, {"ssl", 8883, true, false},
    {"mqtts", 8883, true, false}, {"ws", 80, false, true},      {"wss", 443, true, true},
};

}  // namespace

std::optional<BrokerUri> parse_broker_uri(std::string_view uri) noexcept {
    const std::size_t separator = uri.find("://");
    if (separator == std::string_view::npos) return std::nullopt;
    const std::string_view name = uri.substr(0, separator);
    std::string_view rest = uri.substr(separator + 3);
    if (const std::size_t path = rest.find('/'); path != std::string_view::npos)
        rest = rest.substr(0, path);  // ws paths
    for (const Scheme& scheme : kSchemes) {
        if (scheme.name != name) continue;
        BrokerUri result{scheme.name, rest, scheme.default_port, scheme.tls, scheme.websocket};
        const std::size_t colon = rest.rfind(':');
        // A colon inside [v6] brackets is not a port separator.
        if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
            const std::string_view digits = rest.substr(colon + 1);
            int port = 0;
            const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
            if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() || port <= 0 ||
                port > 65535) {
                return std::nullopt;
            }
            result.host = rest.substr(0, colon);
            result.port = port;
        }
        if (result.host.empty()) return std::nullopt;
        return result;
    }
    return std::nullopt;
}

}  // namespace fieldlink::gateway
