// parse_line: what --line accepts and how it says no.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "fieldlink/gateway/bridge/line.hpp"

namespace fieldlink::gateway::bridge {
namespace {

TEST(LineSpec, ParsesATty) {
    const LineSpec spec = parse_line("tty:/dev/ttyACM0@115200");
    EXPECT_EQ(spec.kind, LineSpec::Kind::Tty);
    EXPECT_EQ(spec.path, "/dev/ttyACM0");
    EXPECT_EQ(spec.baud, 115200u);
    EXPECT_EQ(spec.name, "tty:/dev/ttyACM0@115200");
}

TEST(LineSpec, ParsesATcpSocket) {
    const LineSpec spec = parse_line("tcp:127.0.0.1:5555");
    EXPECT_EQ(spec.kind, LineSpec::Kind::Tcp);
    EXPECT_EQ(spec.host, "127.0.0.1");
    EXPECT_EQ(spec.port, 5555);
}

std::string error_of(const std::string& text) {
    try {
        parse_line(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

TEST(LineSpec, RejectsBadInputSayingWhy) {
    EXPECT_NE(error_of("serial:/dev/ttyS0").find("unknown kind"), std::string::npos);
    EXPECT_NE(error_of("tty:/dev/ttyACM0").find("no baud rate"), std::string::npos);
    EXPECT_NE(error_of("tty:/dev/ttyACM0@12345").find("unsupported baud rate '12345'"), std::string::npos);
    EXPECT_NE(error_of("tty:@115200").find("empty tty path"), std::string::npos);
    EXPECT_NE(error_of("tcp:127.0.0.1").find("expected tcp:HOST:PORT"), std::string::npos);
    EXPECT_NE(error_of("tcp:127.0.0.1:0").find("bad port"), std::string::npos);
    EXPECT_NE(error_of("tcp:127.0.0.1:70000").find("bad port"), std::string::npos);
}

TEST(LineSpec, OpenFailuresNameTheLineAndTheCause) {
    const LineSpec spec = parse_line("tty:/nonexistent/ttyX@9600");
    try {
        open_line(spec, 100);
        FAIL() << "opened a tty that does not exist";
    } catch (const LineError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("line tty:/nonexistent/ttyX@9600"), std::string::npos) << what;
        EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
    }
}

// A pseudo-terminal stands in for /dev/ttyACM0: the bridge's side opens raw.
TEST(LineSpec, OpensAPtyRawAndPassesBytesUnchanged) {
    UniqueFd master(posix_openpt(O_RDWR | O_NOCTTY));
    ASSERT_TRUE(master.valid());
    ASSERT_EQ(grantpt(master.get()), 0);
    ASSERT_EQ(unlockpt(master.get()), 0);
    const std::string path = ptsname(master.get());
    UniqueFd line = open_line(parse_line("tty:" + path + "@115200"), 100);
    termios tio{};
    ASSERT_EQ(tcgetattr(line.get(), &tio), 0);
    EXPECT_EQ(tio.c_lflag & (ICANON | ECHO | ISIG), 0u);
    EXPECT_EQ(tio.c_oflag & OPOST, 0u);
    EXPECT_EQ(cfgetospeed(&tio), B115200);
    // Zero bytes, CR and LF, and 0xff all cross as they are (the link's COBS needs that).
    const unsigned char bytes[] = {0x00, 0x0d, 0x0a, 0xff, 0x03, 0x11, 0x13};
    ASSERT_EQ(write(master.get(), bytes, sizeof(bytes)), ssize_t(sizeof(bytes)));
    pollfd p{line.get(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 2000), 1);
    unsigned char got[16] = {};
    ASSERT_EQ(read(line.get(), got, sizeof(got)), ssize_t(sizeof(bytes)));
    EXPECT_EQ(std::memcmp(got, bytes, sizeof(bytes)), 0);
}

TEST(LineSpec, RefusesAFileThatIsNotATty) {
    try {
        open_line(parse_line("tty:/dev/null@9600"), 100);
        FAIL() << "opened /dev/null as a tty";
    } catch (const LineError& e) {
        EXPECT_NE(std::string(e.what()).find("/dev/null is not a tty"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace fieldlink::gateway::bridge
