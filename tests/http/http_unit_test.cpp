// The pure parts of gateway/http: the exposition writer's rules, the health
// checks and their JSON, and the metrics rendered from a hand-made Observation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <limits>
#include <stdexcept>
#include <string>

#include "fieldlink/gateway/http/exposition.hpp"
#include "fieldlink/gateway/http/health.hpp"
#include "fieldlink/gateway/http/render.hpp"

namespace fieldlink::gateway::http {
namespace {

TEST(Exposition, WritesHelpTypeAndEscapedSamples) {
    Exposition e;
    e.family("fieldlink_x_total", "counter", "Help with \\ and\nbreak.");
    e.sample("fieldlink_x_total", {{"device", "a\"b\\c\nd"}}, std::uint64_t{7});
    EXPECT_EQ(e.text(),
              "# HELP fieldlink_x_total Help with \\\\ and\\nbreak.\n"
              "# TYPE fieldlink_x_total counter\n"
              "fieldlink_x_total{device=\"a\\\"b\\\\c\\nd\"} 7\n");
}

TEST(Exposition, RefusesWhatTheFormatForbids) {
    Exposition e;
    EXPECT_THROW(e.family("fieldlink_x", "counter", "no _total"), std::invalid_argument);
    EXPECT_THROW(e.family("1bad", "gauge", "not a name"), std::invalid_argument);
    EXPECT_THROW(e.family("fieldlink_y", "summaryish", "unknown type"), std::invalid_argument);
    e.family("fieldlink_y", "gauge", "once");
    EXPECT_THROW(e.family("fieldlink_y", "gauge", "twice"), std::invalid_argument);
    EXPECT_THROW(e.sample("fieldlink_y", {{"__reserved", "v"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(e.sample("fieldlink_y", {{"bad-label", "v"}}, 1.0), std::invalid_argument);
}

TEST(Exposition, SpellsSpecialValues) {
    EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(format_value(0.25), "0.25");
}

TEST(Exposition, HistogramBucketsAreCumulativeAndCountIsTheInfBucket) {
    const double bounds[] = {0.1, 1.0};
    const std::uint64_t buckets[] = {2, 3, 1};
    Exposition e;
    e.family("fieldlink_h_seconds", "histogram", "h");
    e.histogram_samples("fieldlink_h_seconds", {}, HistogramData{bounds, buckets, 6, 2.5});
    const std::string& t = e.text();
    EXPECT_NE(t.find("fieldlink_h_seconds_bucket{le=\"0.1\"} 2\n"), std::string::npos) << t;
    EXPECT_NE(t.find("fieldlink_h_seconds_bucket{le=\"1\"} 5\n"), std::string::npos) << t;
    EXPECT_NE(t.find("fieldlink_h_seconds_bucket{le=\"+Inf\"} 6\n"), std::string::npos) << t;
    EXPECT_NE(t.find("fieldlink_h_seconds_sum 2.5\n"), std::string::npos) << t;
    EXPECT_NE(t.find("fieldlink_h_seconds_count 6\n"), std::string::npos) << t;
    const std::uint64_t short_buckets[] = {1, 2};
    EXPECT_THROW(e.histogram_samples("fieldlink_h_seconds", {}, HistogramData{bounds, short_buckets, 3, 0}),
                 std::invalid_argument);
}

HealthInputs healthy_inputs() {
    HealthInputs in;
    in.broker_connected = true;
    in.free_disk_bytes = 1ULL << 30;
    return in;
}

TEST(Health, HealthyWhenEveryCheckPasses) {
    const HealthReport r = evaluate_health(healthy_inputs(), HealthSettings{});
    EXPECT_TRUE(r.healthy);
    const auto body = nlohmann::json::parse(to_json(r));
    EXPECT_EQ(body["status"], "ok");
    EXPECT_TRUE(body["failing"].empty());
}

TEST(Health, EachFailureIsNamed) {
    struct Case {
        const char* check;
        void (*breaks)(HealthInputs&);
    };
    const Case cases[] = {
        {"broker", [](HealthInputs& in) { in.broker_connected = false; }},
        {"database", [](HealthInputs& in) { in.commit_failing = true; }},
        {"database", [](HealthInputs& in) { in.database_error = "disk I/O error"; }},
        {"writer", [](HealthInputs& in) { in.writer_busy_seconds = 31; }},
        {"disk", [](HealthInputs& in) { in.free_disk_bytes = 1; }},
        {"disk", [](HealthInputs& in) { in.free_disk_bytes.reset(); }},
        {"upstream:central",
         [](HealthInputs& in) {
             in.upstreams.push_back({"central", true, 5, 3601});
         }},
    };
    for (const Case& c : cases) {
        HealthInputs in = healthy_inputs();
        c.breaks(in);
        const HealthReport r = evaluate_health(in, HealthSettings{});
        EXPECT_FALSE(r.healthy) << c.check;
        const auto body = nlohmann::json::parse(to_json(r));
        EXPECT_EQ(body["status"], "unhealthy") << c.check;
        EXPECT_EQ(body["failing"], nlohmann::json::array({c.check})) << body.dump();
    }
}

TEST(Health, ZeroTurnsAThresholdOff) {
    HealthInputs in = healthy_inputs();
    in.writer_busy_seconds = 1e6;
    in.free_disk_bytes = 0;
    in.upstreams.push_back({"central", false, 1, 1e9});
    EXPECT_TRUE(evaluate_health(in, HealthSettings{0, 0, 0}).healthy);
}

TEST(Render, DeviceSeriesAreBoundedAndOmittedOnesCounted) {
    Observation o;
    o.now_unix_ms = 10'000;
    o.devices_total = 3;
    DeviceView a;
    a.device = "a";
    a.watermark_unix_ms = 4'000;
    a.readings = 12;
    o.devices.push_back(a);
    const std::string text = render_metrics(o, evaluate_health(o.health, HealthSettings{}), "1.2.3");
    EXPECT_NE(text.find("fieldlink_build_info{version=\"1.2.3\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("fieldlink_device_readings{device=\"a\"} 12\n"), std::string::npos) << text;
    EXPECT_NE(text.find("fieldlink_device_watermark_age_seconds{device=\"a\"} 6\n"), std::string::npos) << text;
    EXPECT_NE(text.find("fieldlink_device_series_omitted 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("fieldlink_health_check_ok{check=\"broker\"} 0\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace fieldlink::gateway::http
