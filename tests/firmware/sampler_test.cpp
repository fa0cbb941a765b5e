// The sampler on its own: each channel on its period grid, missed slots
// skipped after a stall, NaN and failed reads never stored, a full store
// reported once per episode, other store errors every time.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "fakes.hpp"
#include "fieldlink/reader/sampler.hpp"
#include "scripted_store.hpp"

namespace fieldlink::reader {
namespace {

struct SamplerEvents final : ReaderEvents {
    void on_reading(const StoredReading& r) override { readings.push_back(r); }
    void on_sample_failed(std::uint8_t channel, hal::SensorStatus status) override {
        failures.emplace_back(channel, status);
    }
    void on_store_error(StoreStatus s) override { store_errors.push_back(s); }

    std::vector<StoredReading> readings;
    std::vector<std::pair<std::uint8_t, hal::SensorStatus>> failures;
    std::vector<StoreStatus> store_errors;
};

class SamplerTest : public ::testing::Test {
protected:
    SamplerTest() : sensors(3), store(/*boot=*/4), sampler(store, sensors, &events) {}

    std::uint64_t next_due() const {
        std::uint64_t at = 0;
        EXPECT_TRUE(sampler.next_due_ms(&at));
        return at;
    }

    test::FakeSensors sensors;
    test::ScriptedStore store;
    SamplerEvents events;
    Sampler sampler;
};

TEST_F(SamplerTest, EachChannelKeepsItsOwnGrid) {
    const std::array<std::uint32_t, 2> periods{1'000, 250};
    sampler.start(periods, 100);
    EXPECT_EQ(next_due(), 100u);
    for (std::uint64_t t = 100; t < 2'100; t += 50) sampler.sample_due(t);
    std::size_t per_channel[2] = {};
    for (const StoredReading& r : events.readings) {
        ++per_channel[r.record.channel];
        EXPECT_EQ((r.record.mono_ms - 100) % (r.record.channel == 0 ? 1'000 : 250), 0u) << r.record.mono_ms;
        EXPECT_EQ(r.boot, 4u) << "the store's running boot";
    }
    EXPECT_EQ(per_channel[0], 2u);  // 100, 1100
    EXPECT_EQ(per_channel[1], 8u);  // 100, 350, ..., 1850
    EXPECT_EQ(sensors.reads[2], 0u) << "only the configured channels";
    EXPECT_EQ(next_due(), 2'100u);
    EXPECT_EQ(sampler.counters().produced, 10u);
    // Seqs are the store's, reported in the order stored.
    for (std::size_t i = 0; i < events.readings.size(); ++i) EXPECT_EQ(events.readings[i].seq, i + 1);
}

TEST_F(SamplerTest, ALateTurnStaysOnTheGridAndAStallSkipsMissedSlots) {
    const std::array<std::uint32_t, 1> periods{1'000};
    sampler.start(periods, 0);
    sampler.sample_due(0);
    sampler.sample_due(1'200);  // late, but the next slot is still ahead
    EXPECT_EQ(next_due(), 2'000u);
    sampler.sample_due(5'500);  // slots 2000..5000 missed: one sample, no burst
    EXPECT_EQ(next_due(), 6'500u);
    sampler.sample_due(5'999);
    ASSERT_EQ(events.readings.size(), 3u);
    EXPECT_EQ(events.readings[0].record.mono_ms, 0u);
    EXPECT_EQ(events.readings[1].record.mono_ms, 1'200u);
    EXPECT_EQ(events.readings[2].record.mono_ms, 5'500u);
}

TEST_F(SamplerTest, NanIsNoValueAndIsNeverStored) {
    sensors.nan_channel = 1;
    const std::array<std::uint32_t, 2> periods{1'000, 1'000};
    sampler.start(periods, 0);
    sampler.sample_due(0);
    sampler.sample_due(1'000);
    EXPECT_EQ(store.appends, 2) << "only channel 0 reached the store";
    EXPECT_EQ(sampler.counters().sensor_errors, 2u);
    EXPECT_EQ(sampler.counters().produced, 2u);
    ASSERT_EQ(events.failures.size(), 2u);
    EXPECT_EQ(events.failures[0], std::make_pair(std::uint8_t{1}, hal::SensorStatus::NoValue));
    EXPECT_EQ(next_due(), 2'000u) << "a failed sample still moves its channel on";
}

TEST_F(SamplerTest, AFailingSensorIsCountedWithItsStatus) {
    sensors.failing_channel = 0;
    const std::array<std::uint32_t, 1> periods{500};
    sampler.start(periods, 0);
    sampler.sample_due(0);
    EXPECT_EQ(store.appends, 0);
    EXPECT_EQ(sampler.counters().sensor_errors, 1u);
    ASSERT_EQ(events.failures.size(), 1u);
    EXPECT_EQ(events.failures[0].second, hal::SensorStatus::Error);
    EXPECT_TRUE(events.store_errors.empty());
}

TEST_F(SamplerTest, AFullStoreIsReportedOncePerEpisode) {
    const std::array<std::uint32_t, 1> periods{100};
    sampler.start(periods, 0);
    store.append_status = StoreStatus::Full;
    for (std::uint64_t t = 0; t < 500; t += 100) sampler.sample_due(t);
    EXPECT_EQ(sampler.counters().refused, 5u);
    EXPECT_EQ(sampler.counters().store_errors, 0u) << "Full is not a medium error";
    EXPECT_EQ(events.store_errors, (std::vector<StoreStatus>{StoreStatus::Full}));

    store.append_status = StoreStatus::Ok;  // room again
    sampler.sample_due(500);
    EXPECT_EQ(sampler.counters().produced, 1u);
    store.append_status = StoreStatus::Full;  // a new episode is reported again
    sampler.sample_due(600);
    EXPECT_EQ(events.store_errors, (std::vector<StoreStatus>{StoreStatus::Full, StoreStatus::Full}));
    EXPECT_EQ(sampler.counters().refused, 6u);
}

TEST_F(SamplerTest, MediumErrorsAreReportedEveryTime) {
    const std::array<std::uint32_t, 1> periods{100};
    sampler.start(periods, 0);
    store.append_status = StoreStatus::IoError;
    sampler.sample_due(0);
    sampler.sample_due(100);
    EXPECT_EQ(sampler.counters().store_errors, 2u);
    EXPECT_EQ(sampler.counters().produced, 0u);
    EXPECT_EQ(events.store_errors, (std::vector<StoreStatus>{StoreStatus::IoError, StoreStatus::IoError}));
    EXPECT_TRUE(events.readings.empty());
}

TEST_F(SamplerTest, StoppedItSamplesNothingAndHasNoDeadline) {
    const std::array<std::uint32_t, 1> periods{100};
    sampler.start(periods, 0);
    sampler.stop();
    EXPECT_FALSE(sampler.sampling());
    std::uint64_t at = 0;
    EXPECT_FALSE(sampler.next_due_ms(&at));
    sampler.sample_due(1'000);
    EXPECT_EQ(store.appends, 0);
    sampler.start(periods, 2'000);  // resumes with a fresh schedule
    EXPECT_EQ(next_due(), 2'000u);
    sampler.sample_due(2'000);
    EXPECT_EQ(store.appends, 1);
}

TEST_F(SamplerTest, NeverSchedulesMoreThanItsTableHolds) {
    test::FakeSensors many(kMaxChannels + 4);
    Sampler wide(store, many, &events);
    std::vector<std::uint32_t> periods(kMaxChannels + 4, 1'000);
    wide.start(periods, 0);
    wide.sample_due(0);
    EXPECT_EQ(store.appends, static_cast<int>(kMaxChannels));
    EXPECT_EQ(many.reads[kMaxChannels], 0u);
    EXPECT_EQ(wide.channels_available(), kMaxChannels + 4);
}

}  // namespace
}  // namespace fieldlink::reader
