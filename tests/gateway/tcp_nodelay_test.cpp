#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"

namespace fg = fieldlink::gateway;

namespace {

// A file descriptor closed on scope exit.
struct Fd {
    int fd = -1;
    explicit Fd(int value) : fd(value) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

int nodelay_of(int fd) {
    int value = -1;
    socklen_t length = sizeof value;
    EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length), 0);
    return value;
}

}  // namespace

TEST(TcpNodelay, PortOfPlainTcpUris) {
    EXPECT_EQ(fg::plain_tcp_port("tcp://127.0.0.1:18830"), 18830);
    EXPECT_EQ(fg::plain_tcp_port("mqtt://gateway.local"), 1883);
    EXPECT_EQ(fg::plain_tcp_port("tcp://[::1]"), 1883);
    EXPECT_EQ(fg::plain_tcp_port("tcp://[::1]:2000"), 2000);
    EXPECT_EQ(fg::plain_tcp_port("ssl://host:8883"), std::nullopt);
    EXPECT_EQ(fg::plain_tcp_port("tcp://host:99999"), std::nullopt);
    EXPECT_EQ(fg::plain_tcp_port("tcp://host:12ab"), std::nullopt);
}

// A real loopback connection: only the socket whose peer is the given port changes.
TEST(TcpNodelay, SetsOnlySocketsToThePeerPort) {
    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    ASSERT_GE(listener.fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(listener.fd, 4), 0);
    socklen_t length = sizeof address;
    ASSERT_EQ(::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
    const int port = ntohs(address.sin_port);

    Fd client(::socket(AF_INET, SOCK_STREAM, 0));
    ASSERT_EQ(::connect(client.fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    Fd accepted(::accept(listener.fd, nullptr, nullptr));
    ASSERT_GE(accepted.fd, 0);
    ASSERT_EQ(nodelay_of(client.fd), 0);

    EXPECT_EQ(fg::set_nodelay_to_peer_port(port), 1);
    EXPECT_NE(nodelay_of(client.fd), 0);
    EXPECT_EQ(nodelay_of(accepted.fd), 0) << "the accepted side's peer is the client's port";
}
