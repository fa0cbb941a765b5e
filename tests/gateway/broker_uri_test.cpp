#include "fieldlink/gateway/ingest/broker_uri.hpp"

#include <gtest/gtest.h>

namespace fieldlink::gateway {
namespace {

TEST(BrokerUri, SchemesPortsAndHosts) {
    const auto tcp = parse_broker_uri("tcp://127.0.0.1:1884");
    ASSERT_TRUE(tcp);
    EXPECT_EQ(tcp->scheme, "tcp");
    EXPECT_EQ(tcp->host, "127.0.0.1");
    EXPECT_EQ(tcp->port, 1884);
    EXPECT_FALSE(tcp->tls);

    const auto tls = parse_broker_uri("mqtts://broker.example");
    ASSERT_TRUE(tls);
    EXPECT_EQ(tls->port, 8883) << "the scheme's default";
    EXPECT_TRUE(tls->tls);

    const auto v6 = parse_broker_uri("ssl://[::1]:8884");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "[::1]");
    EXPECT_EQ(v6->port, 8884);

    const auto ws = parse_broker_uri("wss://host/mqtt");
    ASSERT_TRUE(ws);
    EXPECT_EQ(ws->host, "host");
    EXPECT_EQ(ws->port, 443);
    EXPECT_TRUE(ws->websocket);
}

TEST(BrokerUri, RefusesWhatPahoWouldNotConnectTo) {
    for (const char* bad : {"127.0.0.1:1883", "http://host", "tcp://", "tcp://:1883", "tcp://host:0",
                            "tcp://host:65536", "tcp://host:", "tcp://host:12ab", "TCP://host", ""}) {
        EXPECT_FALSE(parse_broker_uri(bad)) << bad;
    }
}

}  // namespace
}  // namespace fieldlink::gateway
