// From [[upstream]] tables to running forwarders: the one place that knows
// every upstream kind. Adding a kind is a folder under gateway/forward/ and a
// branch here; the forwarder itself never changes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "fieldlink/gateway/app/config.hpp"
#include "fieldlink/gateway/forward/forwarder.hpp"
#include "fieldlink/gateway/forward/upstream.hpp"

namespace fieldlink::gateway {

// The forwarder's settings for one upstream (database path and timeouts from the config).
ForwarderSettings forwarder_settings(const Config& config, const UpstreamConfig& upstream);

// nullopt when the upstream's settings are usable; else what is wrong, naming
// the upstream and the key (files that cannot be read, a bad topic, ...).
// Does not connect: an unreachable upstream is retried at run time, never fatal.
std::optional<std::string> check_upstream(const UpstreamConfig& upstream, const std::string& gateway_id);

// Throws std::invalid_argument with check_upstream()'s text.
std::unique_ptr<Upstream> make_upstream(const UpstreamConfig& upstream, const std::string& gateway_id);

}  // namespace fieldlink::gateway
