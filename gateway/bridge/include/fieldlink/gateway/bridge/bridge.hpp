// One serial line bridged to the broker: the line carries a link session
// (docs/protocol.md "Serial link") whose data is one MQTT client connection.
// The broker connection lives exactly as long as one link session: a reset
// from either side (damage, gap, peer reset) closes it, and a broker that
// closes it resets the link. A line that goes away is reopened with backoff.
#pragma once

#include <cstdint>
#include <string>

#include "fieldlink/gateway/bridge/line.hpp"
#include "fieldlink/gateway/ingest/log.hpp"

namespace fieldlink::gateway::bridge {

struct BridgeConfig {
    std::string broker_host = "127.0.0.1";
    std::uint16_t broker_port = 1883;
    std::uint32_t link_retry_ms = 250;    // the session's Reset repeat
    std::uint32_t backoff_min_ms = 200;   // first wait before reopening a line or the broker
    std::uint32_t backoff_max_ms = 5000;  // the wait doubles up to this
    int connect_timeout_ms = 3000;
};

// Bridges one line until `stop_fd` becomes readable (an eventfd or a pipe the
// caller writes to). Never throws: every failure is logged and retried.
void run_line(const LineSpec& line, const BridgeConfig& config, int stop_fd, Logger& log) noexcept;

}  // namespace fieldlink::gateway::bridge
