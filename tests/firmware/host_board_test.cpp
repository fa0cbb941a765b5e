// The host board's simulated sensors and command-line parsers.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "fieldlink/boards/host/options.hpp"
#include "fieldlink/boards/host/simulated_sensors.hpp"

namespace fieldlink::boards::host {
namespace {

std::vector<double> take(SimulatedSensors& sensors, std::uint8_t channel, int n) {
    std::vector<double> values;
    for (int i = 0; i < n; ++i) {
        double v = 0;
        EXPECT_EQ(sensors.read(channel, &v), hal::SensorStatus::Ok);
        values.push_back(v);
    }
    return values;
}

TEST(SimulatedSensors, SameDeviceSameValues) {
    SimulatedSensors a(sensor_seed("dev1", 0), {1000, 1000, 1000, 1000});
    SimulatedSensors b(sensor_seed("dev1", 0), {1000, 1000, 1000, 1000});
    for (std::uint8_t ch = 0; ch < 4; ++ch) EXPECT_EQ(take(a, ch, 50), take(b, ch, 50));
}

TEST(SimulatedSensors, DeviceIdAndSeedChangeTheValues) {
    SimulatedSensors a(sensor_seed("dev1", 0), {1000});
    SimulatedSensors b(sensor_seed("dev2", 0), {1000});
    SimulatedSensors c(sensor_seed("dev1", 7), {1000});
    const auto va = take(a, 0, 10);
    EXPECT_NE(va, take(b, 0, 10));
    EXPECT_NE(va, take(c, 0, 10));
}

TEST(SimulatedSensors, ValuesArePlausibleAndSmooth) {
    SimulatedSensors s(sensor_seed("plant-7", 0), {1000, 1000, 1000, 1000, 1000});
    const auto temperature = take(s, 0, 3600);
    const auto humidity = take(s, 1, 3600);
    const auto pressure = take(s, 2, 3600);
    const auto battery = take(s, 3, 3600);
    const auto analog = take(s, 4, 3600);
    for (std::size_t i = 0; i < 3600; ++i) {
        EXPECT_GT(temperature[i], 5.0);
        EXPECT_LT(temperature[i], 35.0);
        EXPECT_GE(humidity[i], 0.0);
        EXPECT_LE(humidity[i], 100.0);
        EXPECT_GT(pressure[i], 990.0);
        EXPECT_LT(pressure[i], 1040.0);
        EXPECT_GT(battery[i], 3.2);
        EXPECT_LT(battery[i], 4.3);
        EXPECT_GE(analog[i], 0.0);
        EXPECT_LE(analog[i], 1.0);
        if (i > 0) {
            EXPECT_LT(std::fabs(temperature[i] - temperature[i - 1]), 1.0) << i;  // no jumps at 1 Hz
        }
    }
}

TEST(SimulatedSensors, ValueAtMatchesRead) {
    SimulatedSensors s(sensor_seed("x", 1), {250, 5000});
    const auto read = take(s, 1, 5);
    for (std::size_t i = 0; i < read.size(); ++i) EXPECT_EQ(read[i], s.value_at(1, i));
    double v = 0;
    EXPECT_EQ(s.read(2, &v), hal::SensorStatus::NoSuchChannel);
}

TEST(HostOptions, ParsesBrokerAddresses) {
    std::string host;
    std::uint16_t port = 0;
    ASSERT_TRUE(parse_broker("127.0.0.1:1883", &host, &port));
    EXPECT_EQ(host, "127.0.0.1");
    EXPECT_EQ(port, 1883);
    ASSERT_TRUE(parse_broker("localhost:65535", &host, &port));
    EXPECT_EQ(port, 65535);
    ASSERT_TRUE(parse_broker("[::1]:1884", &host, &port));
    EXPECT_EQ(host, "::1");
    EXPECT_FALSE(parse_broker("127.0.0.1", &host, &port));
    EXPECT_FALSE(parse_broker("127.0.0.1:0", &host, &port));
    EXPECT_FALSE(parse_broker("127.0.0.1:65536", &host, &port));
    EXPECT_FALSE(parse_broker(":1883", &host, &port));
    EXPECT_FALSE(parse_broker("::1:1883", &host, &port));
    EXPECT_FALSE(parse_broker("h:12x", &host, &port));
}

TEST(HostOptions, ParsesChannelPeriodsHexAndLevels) {
    unsigned ch = 0;
    std::uint32_t ms = 0;
    ASSERT_TRUE(parse_channel_period("2=250", &ch, &ms));
    EXPECT_EQ(ch, 2u);
    EXPECT_EQ(ms, 250u);
    EXPECT_FALSE(parse_channel_period("2=0", &ch, &ms));
    EXPECT_FALSE(parse_channel_period("2:250", &ch, &ms));
    EXPECT_FALSE(parse_channel_period("x=250", &ch, &ms));

    std::uint64_t value = 0;
    ASSERT_TRUE(parse_hex_u64("00000000000000a1", &value));
    EXPECT_EQ(value, 0xA1u);
    ASSERT_TRUE(parse_hex_u64("0xFFFFFFFFFFFFFFFF", &value));
    EXPECT_EQ(value, ~0ull);
    EXPECT_FALSE(parse_hex_u64("", &value));
    EXPECT_FALSE(parse_hex_u64("12345678901234567", &value));
    EXPECT_FALSE(parse_hex_u64("12g", &value));

    LogLevel level = LogLevel::Info;
    ASSERT_TRUE(parse_log_level("debug", &level));
    EXPECT_EQ(level, LogLevel::Debug);
    EXPECT_FALSE(parse_log_level("verbose", &level));
}

TEST(HostOptions, CommandLineDefaultsAndOverrides) {
    std::vector<std::string> args = {
        "fieldlink-reader", "--device", "dev-1",         "--channels", "4",        "--period",      "500",
        "--channel-period", "3=2000",   "--incarnation", "a1",         "--broker", "127.0.0.1:1999"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    int exit_code = -1;
    const auto options = parse_options(static_cast<int>(argv.size()), argv.data(), &exit_code);
    ASSERT_TRUE(options.has_value());
    EXPECT_EQ(options->device, "dev-1");
    EXPECT_EQ(options->channel_periods_ms, (std::vector<std::uint32_t>{500, 500, 500, 2000}));
    EXPECT_EQ(options->incarnation, 0xA1u);
    EXPECT_EQ(options->broker_port, 1999);
    EXPECT_EQ(options->batch_size, 32);
    EXPECT_EQ(options->window, 4);
    EXPECT_EQ(options->buffer, 200'000u);
    EXPECT_EQ(options->drain_timeout_s, 30u);
}

TEST(HostOptions, RejectsBadDeviceIds) {
    std::vector<std::string> args = {"fieldlink-reader", "--device", "bad/id"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    int exit_code = -1;
    testing::internal::CaptureStderr();
    testing::internal::CaptureStdout();
    EXPECT_FALSE(parse_options(static_cast<int>(argv.size()), argv.data(), &exit_code).has_value());
    const std::string printed = testing::internal::GetCapturedStderr() + testing::internal::GetCapturedStdout();
    EXPECT_EQ(exit_code, 2);
    EXPECT_NE(printed.find("device id must be 1 to 32 characters"), std::string::npos) << printed;
}

}  // namespace
}  // namespace fieldlink::boards::host
