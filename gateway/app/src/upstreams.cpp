#include "fieldlink/gateway/app/upstreams.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "fieldlink/gateway/forward/mqtt/mqtt_upstream.hpp"
#include "fieldlink/gateway/forward/postgres_upstream.hpp"

namespace fieldlink::gateway {
namespace {

std::optional<std::string> opt(const std::string& text) {
    if (text.empty()) return std::nullopt;
    return text;
}

MqttUpstreamSettings mqtt_settings_of(const UpstreamConfig& u, const std::string& gateway_id) {
    MqttUpstreamSettings s;
    s.name = u.name;
    s.uri = u.uri;
    s.client_id = u.client_id.empty() ? fmt::format("fieldlink-forward-{}-{}", gateway_id, u.name) : u.client_id;
    s.gateway_id = gateway_id;
    s.topic = u.topic;
    s.mqtt_version = u.mqtt_version == "5" ? 5 : 3;
    s.keep_alive_s = static_cast<int>(u.keep_alive_s);
    s.username = opt(u.username);
    s.password = opt(u.password);
    s.ca_file = opt(u.ca_file);
    s.cert_file = opt(u.cert_file);
    s.key_file = opt(u.key_file);
    s.verify_host = u.verify_host;
    s.encoding = u.encoding == "json" ? ForwardEncoding::Json : ForwardEncoding::Binary;
    s.zstd_level = static_cast<int>(u.zstd_level);
    if (u.window != 0) s.window = static_cast<std::size_t>(u.window);
    s.max_message_bytes = static_cast<std::size_t>(u.max_message_bytes);
    return s;
}

PostgresUpstreamSettings postgres_settings_of(const UpstreamConfig& u, const std::string& gateway_id) {
    PostgresUpstreamSettings s;
    s.name = u.name;
    s.conninfo = u.conninfo;
    s.gateway_id = gateway_id;
    s.table = u.table;
    if (u.window != 0) s.window = static_cast<std::size_t>(u.window);
    return s;
}

}  // namespace

ForwarderSettings forwarder_settings(const Config& config, const UpstreamConfig& upstream) {
    ForwarderSettings s;
    s.db_path = config.db_path;
    s.busy_timeout_ms = static_cast<int>(config.busy_timeout_ms);
    s.batch_rows = static_cast<std::size_t>(upstream.batch_rows);
    s.batch_delay = std::chrono::milliseconds(upstream.batch_delay_ms);
    s.fresh_first = upstream.fresh_first;
    s.fresh_first_rows = upstream.fresh_first_rows;
    s.max_bytes_per_s = static_cast<std::uint64_t>(upstream.max_bytes_per_s);
    s.retry_min = std::chrono::milliseconds(upstream.retry_min_ms);
    s.retry_max = std::chrono::milliseconds(upstream.retry_max_ms);
    return s;
}

std::optional<std::string> check_upstream(const UpstreamConfig& upstream, const std::string& gateway_id) {
    std::optional<std::string> problem;
    if (upstream.retry_min_ms > upstream.retry_max_ms) {
        problem = fmt::format("retry_min_ms {} is above retry_max_ms {}", upstream.retry_min_ms, upstream.retry_max_ms);
    } else if (upstream.kind == "mqtt") {
        problem = MqttUpstream::validate(mqtt_settings_of(upstream, gateway_id));
    } else if (upstream.kind == "postgres") {
        problem = PostgresUpstream::validate(postgres_settings_of(upstream, gateway_id));
    } else {
        problem = fmt::format("unknown kind \"{}\" (known: mqtt, postgres)", upstream.kind);
    }
    if (!problem) return std::nullopt;
    return fmt::format("upstream '{}': {}", upstream.name, *problem);
}

std::unique_ptr<Upstream> make_upstream(const UpstreamConfig& upstream, const std::string& gateway_id) {
    if (const auto problem = check_upstream(upstream, gateway_id)) throw std::invalid_argument(*problem);
    if (upstream.kind == "mqtt") return std::make_unique<MqttUpstream>(mqtt_settings_of(upstream, gateway_id));
    return std::make_unique<PostgresUpstream>(postgres_settings_of(upstream, gateway_id));
}

}  // namespace fieldlink::gateway
