// The bodies the HTTP server sends, from one Observation.
#pragma once

#include <string>
#include <string_view>

#include "fieldlink/gateway/http/health.hpp"
#include "fieldlink/gateway/http/observer.hpp"

namespace fieldlink::gateway::http {

// /metrics in the Prometheus text format 0.0.4 (docs/operations.md lists every
// metric). Per-device series only for o.devices (bounded by max_device_series);
// fieldlink_device_series_omitted counts the devices left out.
std::string render_metrics(const Observation& o, const HealthReport& health, std::string_view version);

// /api/status: the JSON the status page draws.
std::string render_status_json(const Observation& o, const HealthReport& health, std::string_view version);

}  // namespace fieldlink::gateway::http
