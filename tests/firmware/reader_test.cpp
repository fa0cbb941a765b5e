// The reader core end to end against a fake broker, clock, sensors and store:
// sampling, the in-flight window, commit acks, resends, reconnects and time.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fakes.hpp"
#include "fieldlink/reader/ram_store.hpp"
#include "fieldlink/reader/reader.hpp"

namespace fieldlink::reader {
namespace {

using test::Bytes;
using test::FakeBroker;

constexpr std::uint64_t kIncarnation = 0x1122334455667788ull;
constexpr char kDevice[] = "dev1";

struct RecordingEvents final : ReaderEvents {
    void on_reading(const StoredReading& r) override { readings.push_back(r); }
    void on_sample_failed(std::uint8_t channel, hal::SensorStatus status) override {
        sample_failures.emplace_back(channel, status);
    }
    void on_store_error(StoreStatus s) override { store_errors.push_back(s); }
    void on_link_down(mqtt::Status reason, hal::TransportStatus, bool, std::uint32_t retry_in_ms) override {
        link_downs.push_back(reason);
        retry_delays.push_back(retry_in_ms);
    }
    void on_ack(const protocol::Ack&, AckOutcome outcome) override { ack_outcomes.push_back(outcome); }
    void on_resend(std::uint64_t from, ResendReason reason) override {
        resend_from.push_back(from);
        resend_reasons.push_back(reason);
    }
    void on_ready() override { ++readies; }

    std::vector<StoredReading> readings;
    std::vector<std::pair<std::uint8_t, hal::SensorStatus>> sample_failures;
    std::vector<StoreStatus> store_errors;
    std::vector<mqtt::Status> link_downs;
    std::vector<std::uint32_t> retry_delays;
    std::vector<AckOutcome> ack_outcomes;
    std::vector<std::uint64_t> resend_from;
    std::vector<ResendReason> resend_reasons;
    int readies = 0;
};

// A store shaped like a flash spool after a reboot: a backlog from an
// earlier boot, a gap below `oldest` that was trimmed before the reboot.
// Keeps the wall-clock offset noted in each boot, as the spool does.
class BacklogStore final : public ReadingStore {
public:
    explicit BacklogStore(std::uint32_t current_boot) : boot_(current_boot) {}

    // What a power cycle does to a spool: a new boot, which knows no offset yet.
    void reboot() { ++boot_; }
    void set_offset(std::uint32_t boot, std::int64_t offset_ms) { offsets_[boot] = offset_ms; }

    void add(std::uint32_t boot, std::uint8_t channel, std::uint64_t mono_ms, double value) {
        StoredReading r;
        r.seq = next_++;
        r.boot = boot;
        r.record.channel = channel;
        r.record.mono_ms = mono_ms;
        r.record.value = value;
        held_.push_back(r);
    }
    void forget_through(std::uint64_t seq) { trim(seq); }

    StoreStatus append(const protocol::Record& record, std::uint64_t* seq) override {
        add(boot_, record.channel, record.mono_ms, record.value);
        *seq = next_ - 1;
        return StoreStatus::Ok;
    }
    std::size_t read(std::uint64_t from_seq, StoredReading* out, std::size_t max) override {
        std::size_t n = 0;
        for (const StoredReading& r : held_) {
            if (r.seq < from_seq) continue;
            if (n == max || (n > 0 && r.boot != out[0].boot)) break;
            out[n++] = r;
        }
        return n;
    }
    StoreStatus trim(std::uint64_t through_seq) override {
        while (!held_.empty() && held_.front().seq <= through_seq) held_.erase(held_.begin());
        if (through_seq >= oldest_) oldest_ = through_seq + 1;
        return StoreStatus::Ok;
    }
    std::uint64_t incarnation() const override { return kIncarnation; }
    std::uint32_t boot() const override { return boot_; }
    std::uint64_t oldest_seq() const override { return held_.empty() ? next_ : held_.front().seq; }
    std::uint64_t next_seq() const override { return next_; }
    std::uint64_t held() const override { return held_.size(); }
    std::uint64_t dropped() const override { return 0; }
    StoreStatus note_wall_offset(std::int64_t offset_ms) override {
        ++notes;
        if (note_status == StoreStatus::Ok || note_status == StoreStatus::Full) offsets_[boot_] = offset_ms;
        return note_status;
    }
    bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) override {
        ++offset_queries[boot];
        const auto found = offsets_.find(boot);
        if (found == offsets_.end()) return false;
        *offset_ms = found->second;
        return true;
    }
    std::optional<std::int64_t> noted(std::uint32_t boot) const {
        const auto found = offsets_.find(boot);
        return found == offsets_.end() ? std::nullopt : std::optional(found->second);
    }

    int notes = 0;
    StoreStatus note_status = StoreStatus::Ok;
    std::map<std::uint32_t, int> offset_queries;

private:
    std::map<std::uint32_t, std::int64_t> offsets_;
    std::uint32_t boot_;
    std::uint64_t next_ = 1;
    std::uint64_t oldest_ = 1;
    std::vector<StoredReading> held_;
};

class ReaderTest : public ::testing::Test {
protected:
    ReaderTest() : sensors(3), store(kIncarnation), broker(clock) {}

    static ReaderConfig config() {
        ReaderConfig c = test::reader_test_config(kDevice);
        c.ack_timeout_ms = 5'000;
        c.window = 2;
        return c;
    }

    void start(const ReaderConfig& c) { start(c, store); }
    void start(const ReaderConfig& c, ReadingStore& s) {
        reader.emplace(c, s, broker, clock, random, sensors, memory.buffers(), &events);
        ASSERT_EQ(reader->start(), ReaderStatus::Ok);
    }

    void run_until(std::uint64_t t) {
        for (int turns = 0; clock.now < t; ++turns) {
            ASSERT_LT(turns, 1'000'000) << "the reader stopped making progress";
            reader->poll(1'000);
            if (auto_ack) ack_all_published();
        }
    }
    void run_for(std::uint64_t ms) { run_until(clock.now + ms); }

    // A power cycle: the old reader is gone without a goodbye, the store
    // starts its next boot, and the monotonic clock starts again at 0.
    void reboot_into(const ReaderConfig& c, BacklogStore& s) {
        broker.drop_connection();
        s.reboot();
        clock.now = 0;
        start(c, s);
    }

    std::vector<protocol::Telemetry> telemetry_messages() const {
        std::vector<protocol::Telemetry> out;
        for (const auto& p : broker.on_topic("fieldlink/v1/dev1/telemetry")) {
            EXPECT_EQ(p.qos, 0u);
            EXPECT_FALSE(p.retain);
            protocol::Telemetry t;
            EXPECT_EQ(protocol::decode_telemetry(p.payload.data(), p.payload.size(), &t), protocol::CodecResult::Ok);
            out.push_back(t);
        }
        return out;
    }

    std::uint64_t mono_of(std::uint64_t seq) const {
        for (const StoredReading& r : events.readings) {
            if (r.seq == seq) return r.record.mono_ms;
        }
        ADD_FAILURE() << "no reading " << seq;
        return 0;
    }
    // Lets the reader handle what is queued without moving the clock much.
    void settle() {
        for (int i = 0; i < 5; ++i) reader->poll(0);
    }

    // The gateway's part: commit everything published so far and ack it.
    void ack_all_published() {
        std::uint64_t highest = 0;
        for (const auto& batch : broker.batches()) highest = std::max(highest, batch.last_seq());
        if (highest > acked_by_test) {
            acked_by_test = highest;
            broker.deliver_ack(kDevice, kIncarnation, highest,
                               1'700'000'000'000 + static_cast<std::int64_t>(clock.now));
        }
    }

    test::FakeClock clock;
    test::FakeRandom random;
    test::FakeSensors sensors;
    RamStore<4096> store;
    FakeBroker broker;
    ReaderMemory<16> memory;
    RecordingEvents events;
    std::optional<Reader> reader;
    bool auto_ack = false;
    std::uint64_t acked_by_test = 0;
};

TEST_F(ReaderTest, RejectsBadConfiguration) {
    ReaderConfig c = config();
    c.device_id = "bad/id";
    reader.emplace(c, store, broker, clock, random, sensors, memory.buffers(), &events);
    EXPECT_EQ(reader->start(), ReaderStatus::InvalidConfig);

    c = config();
    c.window = 0;
    reader.emplace(c, store, broker, clock, random, sensors, memory.buffers(), &events);
    EXPECT_EQ(reader->start(), ReaderStatus::InvalidConfig);

    c = config();
    c.channel_count = 4;  // the sensors have three
    reader.emplace(c, store, broker, clock, random, sensors, memory.buffers(), &events);
    EXPECT_EQ(reader->start(), ReaderStatus::InvalidConfig);

    c = config();
    c.batch_size = 17;  // ReaderMemory<16>
    reader.emplace(c, store, broker, clock, random, sensors, memory.buffers(), &events);
    EXPECT_EQ(reader->start(), ReaderStatus::BufferTooSmall);

    c = config();
    c.firmware_version = "";
    reader.emplace(c, store, broker, clock, random, sensors, memory.buffers(), &events);
    EXPECT_EQ(reader->start(), ReaderStatus::InvalidConfig);
}

TEST_F(ReaderTest, ConnectsWithWillSubscribesAndAnnouncesBirth) {
    start(config());
    run_for(10);
    EXPECT_EQ(reader->link_state(), LinkState::Ready);

    ASSERT_EQ(broker.connect_bodies.size(), 1u);
    const Bytes& body = broker.connect_bodies[0];
    // Variable header: protocol name (6), level, flags, keep alive.
    EXPECT_EQ(body[7], 0x2E);  // will retain, will QoS 1, will, clean session
    std::size_t pos = 10;
    auto field = [&](std::size_t& p) {
        const std::size_t n = static_cast<std::size_t>((body[p] << 8) | body[p + 1]);
        Bytes out(body.begin() + static_cast<std::ptrdiff_t>(p + 2),
                  body.begin() + static_cast<std::ptrdiff_t>(p + 2 + n));
        p += 2 + n;
        return out;
    };
    EXPECT_EQ(field(pos), test::bytes_of("reader-dev1"));
    EXPECT_EQ(field(pos), test::bytes_of("fieldlink/v1/dev1/status"));
    const Bytes will = field(pos);
    protocol::StatusMessage status;
    ASSERT_EQ(protocol::decode_status(will.data(), will.size(), &status), protocol::CodecResult::Ok);
    EXPECT_EQ(status.state, protocol::DeviceState::Offline);
    EXPECT_EQ(status.incarnation, kIncarnation);
    EXPECT_STREQ(status.firmware_version, "test-1.0");

    EXPECT_EQ(broker.subscriptions, (std::vector<std::string>{"fieldlink/v1/dev1/ack"}));
    const auto births = broker.on_topic("fieldlink/v1/dev1/status");
    ASSERT_EQ(births.size(), 1u);
    EXPECT_TRUE(births[0].retain);
    EXPECT_EQ(births[0].qos, 1);
    ASSERT_EQ(protocol::decode_status(births[0].payload.data(), births[0].payload.size(), &status),
              protocol::CodecResult::Ok);
    EXPECT_EQ(status.state, protocol::DeviceState::Online);

    // The first batch went out after the subscription, at QoS 1.
    const auto ups = broker.on_topic("fieldlink/v1/dev1/up");
    ASSERT_EQ(ups.size(), 1u);
    EXPECT_EQ(ups[0].qos, 1);
    EXPECT_FALSE(ups[0].retain);
}

TEST_F(ReaderTest, SamplesEachChannelAtItsOwnPeriod) {
    ReaderConfig c = config();
    c.channel_period_ms[0] = 1'000;
    c.channel_period_ms[1] = 250;
    c.channel_period_ms[2] = 5'000;
    start(c);
    run_until(10'000);  // samples at t = 0 .. 9999
    std::size_t per_channel[3] = {};
    for (const StoredReading& r : events.readings) ++per_channel[r.record.channel];
    EXPECT_EQ(per_channel[0], 10u);
    EXPECT_EQ(per_channel[1], 40u);
    EXPECT_EQ(per_channel[2], 2u);
    // Sequence numbers are dense and readings carry the time they were taken.
    for (std::size_t i = 0; i < events.readings.size(); ++i) {
        EXPECT_EQ(events.readings[i].seq, i + 1);
        if (events.readings[i].record.channel == 1) {
            EXPECT_EQ(events.readings[i].record.mono_ms % 250, 0u);
        }
    }
    EXPECT_EQ(reader->counters().produced, events.readings.size());
}

TEST_F(ReaderTest, WindowLimitsBatchesInFlight) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    start(c);
    run_until(10'500);
    auto batches = broker.batches();
    ASSERT_EQ(batches.size(), 2u);  // window 2, nothing acked
    EXPECT_EQ(reader->in_flight(), 2u);
    EXPECT_EQ(batches[0].header.first_seq, 1u);
    EXPECT_EQ(batches[0].header.count, 3u);  // all that existed at t = 0
    EXPECT_EQ(batches[1].header.first_seq, 4u);

    // A PUBACK does not open the window; a commit ack does.
    broker.deliver_ack(kDevice, kIncarnation, 3);
    settle();
    batches = broker.batches();
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_EQ(batches[2].header.first_seq, 7u);
    EXPECT_EQ(batches[2].header.count, 4u);  // cut at batch_size
    EXPECT_EQ(batches[2].header.floor_seq, 4u);
    EXPECT_EQ(reader->in_flight(), 2u);
}

TEST_F(ReaderTest, ResendsFromWatermarkAfterAckTimeout) {
    start(config());
    run_until(4'000);
    ASSERT_EQ(broker.batches().size(), 2u);
    broker.deliver_ack(kDevice, kIncarnation, 2);  // progress at t = 4000 restarts the timer
    settle();
    run_until(8'500);
    EXPECT_EQ(reader->counters().resends, 0u);
    run_until(9'500);
    EXPECT_EQ(reader->counters().resends, 1u);
    ASSERT_EQ(events.resend_from.size(), 1u);
    EXPECT_EQ(events.resend_from[0], 3u);
    EXPECT_EQ(events.resend_reasons[0], ResendReason::AckTimeout);
    const auto batches = broker.batches();
    ASSERT_GE(batches.size(), 4u);
    EXPECT_EQ(batches[batches.size() - 2].header.first_seq, 3u);
    EXPECT_EQ(batches[batches.size() - 2].header.floor_seq, 3u);
    EXPECT_EQ(batches[batches.size() - 1].header.first_seq, 7u);
}

TEST_F(ReaderTest, AckWatermarkIgnoresStaleForeignAndBogusAcks) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    start(c);
    run_until(3'500);  // readings 1..12; batches [1..3] and [4..6] in flight
    ASSERT_EQ(store.next_seq(), 13u);

    broker.deliver_ack(kDevice, kIncarnation, 5);
    settle();
    EXPECT_EQ(reader->acked_through(), 5u);
    EXPECT_EQ(store.oldest_seq(), 6u);   // trimmed through the watermark
    EXPECT_EQ(reader->in_flight(), 2u);  // [4..6] still partly open, [7..10] sent

    broker.deliver_ack(kDevice, kIncarnation, 3);      // out of order
    broker.deliver_ack(kDevice, kIncarnation, 5);      // duplicate
    broker.deliver_ack(kDevice, kIncarnation ^ 1, 9);  // another incarnation
    broker.deliver_ack(kDevice, kIncarnation, 1'000);  // never produced
    broker.deliver("fieldlink/v1/dev1/ack", test::bytes_of("not an ack"));
    settle();
    EXPECT_EQ(reader->acked_through(), 5u);
    EXPECT_EQ(store.oldest_seq(), 6u);
    const ReaderCounters counters = reader->counters();
    EXPECT_EQ(counters.acks_accepted, 1u);
    EXPECT_EQ(counters.acks_stale, 2u);
    EXPECT_EQ(counters.acks_foreign, 1u);
    EXPECT_EQ(counters.acks_invalid, 2u);
    EXPECT_EQ(events.ack_outcomes, (std::vector<AckOutcome>{AckOutcome::Accepted, AckOutcome::Stale, AckOutcome::Stale,
                                                            AckOutcome::OtherIncarnation, AckOutcome::AheadOfProduced,
                                                            AckOutcome::Undecodable}));

    broker.deliver_ack(kDevice, kIncarnation, 10);
    settle();
    EXPECT_EQ(reader->acked_through(), 10u);
    EXPECT_EQ(store.oldest_seq(), 11u);
    EXPECT_EQ(reader->link_state(), LinkState::Ready);  // bad acks never cost the connection
}

TEST_F(ReaderTest, AckAheadOfSendingMovesTheSendPointer) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    start(c);
    run_until(3'500);
    // The gateway already had more (e.g. from before a resend): skip what it has.
    broker.deliver_ack(kDevice, kIncarnation, 11);
    settle();
    EXPECT_EQ(reader->in_flight(), 1u);
    const auto batches = broker.batches();
    EXPECT_EQ(batches.back().header.first_seq, 12u);
}

TEST_F(ReaderTest, LearnsWallClockOffsetFromAcks) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    start(c);
    run_until(1'500);
    for (const auto& batch : broker.batches()) EXPECT_FALSE(batch.header.offset_known);
    EXPECT_FALSE(reader->offset_known());

    const std::int64_t gateway_ms = 1'700'000'123'456;
    const std::uint64_t mono_at_ack = clock.now;
    broker.deliver_ack(kDevice, kIncarnation, 3, gateway_ms);
    settle();
    ASSERT_TRUE(reader->offset_known());
    EXPECT_EQ(reader->wall_offset_ms(), gateway_ms - static_cast<std::int64_t>(mono_at_ack));

    run_for(3'000);
    const auto batches = broker.batches();
    ASSERT_GE(batches.size(), 3u);
    EXPECT_TRUE(batches.back().header.offset_known);
    EXPECT_EQ(batches.back().header.wall_offset_ms, gateway_ms - static_cast<std::int64_t>(mono_at_ack));
}

TEST_F(ReaderTest, ReconnectsAfterConnectionLossAndResends) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    start(c);
    run_until(2'500);
    broker.deliver_ack(kDevice, kIncarnation, 3);
    settle();
    ASSERT_EQ(broker.batches().size(), 3u);  // [1..3], [4..6], [7..10]

    broker.drop_connection();
    run_for(100);
    ASSERT_EQ(events.link_downs.size(), 1u);
    EXPECT_EQ(events.link_downs[0], mqtt::Status::ConnectionClosed);
    EXPECT_EQ(reader->link_state(), LinkState::Offline);
    EXPECT_EQ(reader->counters().resends, 1u);
    EXPECT_EQ(events.resend_from, (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(events.resend_reasons[0], ResendReason::Reconnect);

    run_for(2'000);  // backoff with zero jitter: 500 ms
    EXPECT_EQ(reader->link_state(), LinkState::Ready);
    EXPECT_EQ(broker.opens, 2);
    EXPECT_EQ(reader->counters().reconnects, 1u);
    EXPECT_EQ(broker.on_topic("fieldlink/v1/dev1/status").size(), 2u);  // birth on every connection
    std::vector<FakeBroker::Batch> second;
    for (const auto& batch : broker.batches()) {
        if (batch.connection == 2) second.push_back(batch);
    }
    ASSERT_FALSE(second.empty());
    EXPECT_EQ(second[0].header.first_seq, 4u);  // from the watermark + 1
    EXPECT_EQ(second[0].header.count, 4u);
}

TEST_F(ReaderTest, DetectsDeadConnectionWithoutPingresp) {
    ReaderConfig c = config();
    c.keep_alive_s = 2;
    c.ack_timeout_ms = 60'000;
    start(c);
    broker.answer_ping = false;
    broker.auto_puback = false;  // the broker went silent
    run_until(8'000);
    ASSERT_FALSE(events.link_downs.empty());
    EXPECT_EQ(events.link_downs[0], mqtt::Status::PingTimeout);
    EXPECT_GE(broker.pings, 1);
}

TEST_F(ReaderTest, BacksOffExponentiallyWhileTheBrokerIsAway) {
    broker.refuse_open = true;
    start(config());
    run_until(12'000);
    // Zero jitter: delays are half of 1, 2, 4, 8, 8 s.
    EXPECT_EQ(broker.open_times, (std::vector<std::uint64_t>{0, 500, 1'500, 3'500, 7'500, 11'500}));
    EXPECT_EQ(reader->counters().produced, 36u);  // sampling never stopped
    EXPECT_EQ(reader->counters().connect_failures, 6u);

    broker.refuse_open = false;
    run_until(16'000);
    EXPECT_EQ(reader->link_state(), LinkState::Ready);
    EXPECT_EQ(reader->counters().reconnects, 0u);  // the first connection is not a reconnect
    // Backlog goes out in full batches, a window at a time.
    const auto batches = broker.batches();
    ASSERT_EQ(batches.size(), 2u);
    EXPECT_EQ(batches[0].header.first_seq, 1u);
    EXPECT_EQ(batches[0].header.count, 4u);
    EXPECT_EQ(batches[1].header.first_seq, 5u);
}

TEST_F(ReaderTest, RefusedSubscriptionDropsTheConnection) {
    broker.suback_code = mqtt::kSubackFailure;
    start(config());
    run_for(100);
    ASSERT_FALSE(events.link_downs.empty());
    EXPECT_EQ(events.link_downs[0], mqtt::Status::SubscribeRefused);
    EXPECT_TRUE(broker.batches().empty());
}

TEST_F(ReaderTest, DrainsEverythingWithAGateway) {
    ReaderConfig c = config();
    c.batch_size = 16;
    c.window = 4;
    start(c);
    auto_ack = true;
    run_until(30'000);
    reader->stop_sampling();
    const std::uint64_t produced = reader->counters().produced;
    EXPECT_EQ(produced, 90u);
    run_for(2'000);
    EXPECT_TRUE(reader->drained());
    EXPECT_EQ(reader->counters().produced, produced);
    EXPECT_EQ(reader->acked_through(), produced);
    EXPECT_EQ(store.held(), 0u);
    EXPECT_EQ(reader->counters().resends, 0u);

    // Every produced reading arrived, in order, with its value.
    std::vector<double> values(produced + 1, -1.0);
    for (const auto& batch : broker.batches()) {
        for (std::size_t i = 0; i < batch.records.size(); ++i)
            values[batch.header.first_seq + i] = batch.records[i].value;
    }
    for (const StoredReading& r : events.readings) EXPECT_EQ(values[r.seq], r.record.value) << r.seq;
}

TEST_F(ReaderTest, NotDrainedUntilAcked) {
    start(config());
    run_until(1'500);
    reader->stop_sampling();
    run_for(10'000);
    EXPECT_FALSE(reader->drained());
    EXPECT_GE(reader->counters().resends, 1u);  // kept trying
}

TEST_F(ReaderTest, DropOldestAdvancesTheFloor) {
    RamStore<6> small(kIncarnation, FullPolicy::DropOldest);
    broker.refuse_open = true;
    start(config(), small);
    run_until(4'500);  // 15 readings into 6 slots
    EXPECT_EQ(reader->counters().dropped, 9u);
    EXPECT_EQ(reader->counters().produced, 15u);
    broker.refuse_open = false;
    run_until(8'000);
    const auto batches = broker.batches();
    ASSERT_FALSE(batches.empty());
    EXPECT_GE(batches[0].header.first_seq, 10u);
    EXPECT_EQ(batches[0].header.floor_seq, batches[0].header.first_seq);
}

TEST_F(ReaderTest, RefuseNewStopsStoringAndReportsOnce) {
    RamStore<6> small(kIncarnation, FullPolicy::RefuseNew);
    broker.refuse_open = true;
    start(config(), small);
    run_until(4'500);
    EXPECT_EQ(reader->counters().produced, 6u);
    EXPECT_EQ(reader->counters().refused, 9u);
    EXPECT_EQ(reader->counters().dropped, 0u);
    EXPECT_EQ(events.store_errors, (std::vector<StoreStatus>{StoreStatus::Full}));
}

TEST_F(ReaderTest, SensorFailuresAreCountedNotStored) {
    sensors.failing_channel = 1;
    start(config());
    run_until(2'500);
    EXPECT_EQ(reader->counters().sensor_errors, 3u);
    for (const StoredReading& r : events.readings) EXPECT_NE(r.record.channel, 1);
}

TEST_F(ReaderTest, SpoolBacklogStartsAtWatermarkAndCutsAtBootChange) {
    BacklogStore spool(/*current_boot=*/2);
    for (int i = 0; i < 3; ++i) spool.add(0, 0, 100u * static_cast<unsigned>(i), i);  // seq 1..3, boot 0
    for (int i = 0; i < 5; ++i) spool.add(1, 0, 100u * static_cast<unsigned>(i), i);  // seq 4..8, boot 1
    spool.forget_through(2);                                                          // committed before the reboot
    ReaderConfig c = config();
    c.batch_size = 16;
    c.window = 4;
    c.ack_timeout_ms = 60'000;
    start(c, spool);
    EXPECT_EQ(reader->acked_through(), 2u);
    run_for(10);

    const auto batches = broker.batches();
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_EQ(batches[0].header.first_seq, 3u);
    EXPECT_EQ(batches[0].header.count, 1u);
    EXPECT_EQ(batches[0].header.boot, 0u);
    EXPECT_EQ(batches[0].header.floor_seq, 3u);
    EXPECT_EQ(batches[1].header.first_seq, 4u);
    EXPECT_EQ(batches[1].header.count, 5u);
    EXPECT_EQ(batches[1].header.boot, 1u);
    EXPECT_EQ(batches[2].header.first_seq, 9u);  // this boot's first samples
    EXPECT_EQ(batches[2].header.boot, 2u);

    // The offset learned now belongs to boot 2 only; after the ack timeout
    // the boot-1 backlog is resent, still without an offset.
    broker.deliver_ack(kDevice, kIncarnation, 3);
    settle();
    ASSERT_TRUE(reader->offset_known());
    run_until(62'000);
    int boot1_batches = 0;
    bool boot2_with_offset = false;
    for (const auto& batch : broker.batches()) {
        if (batch.header.boot == 1) ++boot1_batches;
        if (batch.header.boot == 2 && batch.header.offset_known) boot2_with_offset = true;
        if (batch.header.boot != 2) {
            EXPECT_FALSE(batch.header.offset_known);
        }
    }
    EXPECT_EQ(boot1_batches, 2);
    EXPECT_TRUE(boot2_with_offset);
    EXPECT_EQ(reader->counters().resends, 1u);
}

TEST_F(ReaderTest, ShutdownSaysOfflineAndDisconnects) {
    start(config());
    run_for(100);
    ASSERT_EQ(reader->link_state(), LinkState::Ready);
    reader->shutdown();
    EXPECT_EQ(broker.disconnects, 1);
    const auto statuses = broker.on_topic("fieldlink/v1/dev1/status");
    ASSERT_EQ(statuses.size(), 2u);
    protocol::StatusMessage status;
    ASSERT_EQ(protocol::decode_status(statuses[1].payload.data(), statuses[1].payload.size(), &status),
              protocol::CodecResult::Ok);
    EXPECT_EQ(status.state, protocol::DeviceState::Offline);
    EXPECT_TRUE(statuses[1].retain);
    EXPECT_EQ(reader->link_state(), LinkState::Offline);
}

TEST_F(ReaderTest, NotesTheOffsetOncePerBootAndAgainOnlyBeyondTheTolerance) {
    BacklogStore spool(/*current_boot=*/0);
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    c.offset_tolerance_ms = 250;
    start(c, spool);
    run_until(2'500);
    const std::int64_t base = 1'700'000'000'000;
    const auto ack = [&](std::uint64_t watermark, std::int64_t drift) {
        broker.deliver_ack(kDevice, kIncarnation, watermark, base + static_cast<std::int64_t>(clock.now) + drift);
        settle();
    };
    ack(1, 0);
    EXPECT_EQ(spool.notes, 1);
    EXPECT_EQ(spool.noted(0), base);
    ack(2, 200);  // jitter within the tolerance: not noted, but the latest ack still wins in RAM
    EXPECT_EQ(spool.notes, 1);
    EXPECT_EQ(reader->wall_offset_ms(), base + 200);
    ack(3, 251);  // measured from what was noted
    EXPECT_EQ(spool.notes, 2);
    EXPECT_EQ(spool.noted(0), base + 251);
    ack(4, 10);  // 241 from the noted value
    EXPECT_EQ(spool.notes, 2);
    ack(5, -300);
    EXPECT_EQ(spool.notes, 3);
    EXPECT_EQ(spool.noted(0), base - 300);
    EXPECT_EQ(reader->counters().offsets_noted, 3u);
}

TEST_F(ReaderTest, AFailedOffsetNoteIsTriedAgainWithTheNextAck) {
    BacklogStore spool(/*current_boot=*/0);
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    start(c, spool);
    run_until(2'500);
    spool.note_status = StoreStatus::IoError;
    broker.deliver_ack(kDevice, kIncarnation, 1, 1'700'000'000'000);
    settle();
    EXPECT_EQ(spool.notes, 1);
    EXPECT_EQ(reader->counters().offsets_noted, 0u);
    EXPECT_EQ(reader->counters().store_errors, 1u);
    EXPECT_EQ(events.store_errors, (std::vector<StoreStatus>{StoreStatus::IoError}));
    EXPECT_TRUE(reader->offset_known()) << "batches of this boot may carry it meanwhile";

    spool.note_status = StoreStatus::Ok;
    broker.deliver_ack(kDevice, kIncarnation, 2, 1'700'000'000'000);  // same offset: noted now
    settle();
    EXPECT_EQ(spool.notes, 2);
    EXPECT_EQ(reader->counters().offsets_noted, 1u);
    EXPECT_EQ(spool.noted(0), 1'700'000'000'000 - static_cast<std::int64_t>(clock.now));

    // Full: the store keeps it in RAM and writes it later; that counts as noted.
    spool.note_status = StoreStatus::Full;
    broker.deliver_ack(kDevice, kIncarnation, 3, 1'700'000'010'000);
    settle();
    EXPECT_EQ(spool.notes, 3);
    EXPECT_EQ(reader->counters().offsets_noted, 2u);
    EXPECT_EQ(reader->counters().store_errors, 1u);
}

TEST_F(ReaderTest, EarlierBootBatchesCarryTheOffsetNotedInThatBoot) {
    BacklogStore spool(/*current_boot=*/0);
    ReaderConfig c = config();
    c.ack_timeout_ms = 5'000;
    c.telemetry_interval_ms = 0;
    start(c, spool);
    run_until(2'500);  // seq 1..9, boot 0
    const std::int64_t boot0_gateway = 1'700'000'000'000;
    broker.deliver_ack(kDevice, kIncarnation, 3, boot0_gateway);
    settle();
    const std::int64_t boot0_offset = boot0_gateway - static_cast<std::int64_t>(clock.now);
    ASSERT_EQ(spool.noted(0), boot0_offset);

    reboot_into(c, spool);  // boot 1
    spool.offset_queries.clear();
    EXPECT_FALSE(reader->offset_known());
    EXPECT_EQ(reader->acked_through(), 3u);
    run_until(12'000);  // the boot-0 backlog goes out, and again after each ack timeout
    const int connection = broker.opens;
    int boot0_batches = 0;
    for (const auto& batch : broker.batches()) {
        if (batch.connection != connection) continue;
        if (batch.header.boot == 0) {
            ++boot0_batches;
            EXPECT_TRUE(batch.header.offset_known);
            EXPECT_EQ(batch.header.wall_offset_ms, boot0_offset);
        } else {
            EXPECT_EQ(batch.header.boot, 1u);
            EXPECT_FALSE(batch.header.offset_known) << "boot 1 has had no ack yet";
        }
    }
    EXPECT_GE(boot0_batches, 4);
    EXPECT_EQ(spool.offset_queries[0], 1) << "an earlier boot's offset is asked for once";

    // An ack in boot 1 gives boot 1 its own offset; boot 0 keeps its own.
    const std::int64_t boot1_gateway = 1'700'000'100'000;
    const auto ack_at = static_cast<std::int64_t>(clock.now);
    broker.deliver_ack(kDevice, kIncarnation, 9, boot1_gateway);
    settle();
    const std::int64_t boot1_offset = boot1_gateway - ack_at;
    EXPECT_EQ(spool.noted(1), boot1_offset);
    EXPECT_EQ(spool.noted(0), boot0_offset);
    const std::size_t before = broker.batches().size();
    run_for(12'000);
    const auto batches = broker.batches();
    bool boot0_after = false;
    bool boot1_after = false;
    for (std::size_t i = before; i < batches.size(); ++i) {
        const protocol::BatchHeader& h = batches[i].header;
        ASSERT_TRUE(h.offset_known) << "batch " << h.first_seq;
        EXPECT_EQ(h.wall_offset_ms, h.boot == 0 ? boot0_offset : boot1_offset) << "batch " << h.first_seq;
        (h.boot == 0 ? boot0_after : boot1_after) = true;
    }
    EXPECT_TRUE(boot0_after);
    EXPECT_TRUE(boot1_after);
    EXPECT_EQ(spool.offset_queries[0], 1);
}

TEST_F(ReaderTest, ABootThatNeverLearnedItsOffsetSendsItsBacklogWithoutOne) {
    BacklogStore spool(/*current_boot=*/0);
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    c.telemetry_interval_ms = 0;
    broker.refuse_open = true;
    start(c, spool);
    run_until(2'500);  // boot 0 entirely offline: seq 1..9
    ASSERT_TRUE(broker.batches().empty());
    broker.refuse_open = false;
    reboot_into(c, spool);
    run_until(100);
    const auto batches = broker.batches();
    ASSERT_FALSE(batches.empty());
    EXPECT_EQ(batches[0].header.first_seq, 1u);
    for (const auto& batch : batches) {
        if (batch.header.boot == 0) {
            EXPECT_FALSE(batch.header.offset_known);
        }
    }
    EXPECT_FALSE(spool.noted(0).has_value());
}

TEST_F(ReaderTest, PublishesTelemetryAtQos0EveryInterval) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    c.telemetry_interval_ms = 10'000;
    start(c);
    run_until(25'000);
    auto messages = telemetry_messages();
    ASSERT_EQ(messages.size(), 3u);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const protocol::Telemetry& t = messages[i];
        EXPECT_EQ(t.incarnation, kIncarnation);
        EXPECT_EQ(t.boot, 0u);
        EXPECT_GE(t.uptime_ms, i * 10'000);
        EXPECT_LT(t.uptime_ms, i * 10'000 + 1'000);
        EXPECT_EQ(t.reconnects, 0u);
        EXPECT_EQ(t.dropped, 0u);
        EXPECT_EQ(t.acked_through, 0u);
        EXPECT_EQ(t.held, t.next_seq - 1) << "nothing acked yet";
        if (t.held > 0) {
            EXPECT_EQ(t.oldest_unacked_age_ms, t.uptime_ms - mono_of(1));
        }
    }
    EXPECT_GT(messages.back().held, 0u);

    broker.deliver_ack(kDevice, kIncarnation, 6);
    settle();
    run_until(31'000);
    messages = telemetry_messages();
    ASSERT_EQ(messages.size(), 4u);
    const protocol::Telemetry& t = messages.back();
    EXPECT_EQ(t.acked_through, 6u);
    EXPECT_EQ(t.held, t.next_seq - 7);
    EXPECT_EQ(t.oldest_unacked_age_ms, t.uptime_ms - mono_of(7));
    EXPECT_EQ(reader->counters().telemetry_sent, 4u);
}

TEST_F(ReaderTest, TelemetryCountsReconnectsAndWaitsForTheLink) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 60'000;
    c.telemetry_interval_ms = 10'000;
    start(c);
    run_until(5'000);
    ASSERT_EQ(telemetry_messages().size(), 1u);
    broker.drop_connection();
    broker.refuse_open = true;
    run_until(25'000);  // due at 10 s and 20 s, but offline
    EXPECT_EQ(telemetry_messages().size(), 1u);
    broker.refuse_open = false;
    run_until(40'000);
    const auto messages = telemetry_messages();
    ASSERT_GE(messages.size(), 2u);
    EXPECT_EQ(messages[1].reconnects, 1u);
    EXPECT_LT(messages[1].uptime_ms, 40'000u);
}

TEST_F(ReaderTest, NoTelemetryWhenTheIntervalIsZero) {
    ReaderConfig c = config();
    c.telemetry_interval_ms = 0;
    auto_ack = true;
    start(c);
    run_until(30'000);
    EXPECT_TRUE(telemetry_messages().empty());
    EXPECT_EQ(reader->counters().telemetry_sent, 0u);
}

TEST_F(ReaderTest, OldestAgeAcrossBootsUsesBothOffsetsOrFallsBackToUptime) {
    BacklogStore spool(/*current_boot=*/2);
    spool.add(0, 0, 50, 1.0);   // seq 1, boot 0: no offset was ever noted
    spool.add(0, 0, 60, 2.0);   // seq 2
    spool.add(1, 0, 100, 3.0);  // seq 3, boot 1
    spool.add(1, 0, 200, 4.0);  // seq 4
    const std::int64_t boot1_offset = 1'700'000'000'000;
    spool.set_offset(1, boot1_offset);
    ReaderConfig c = config();
    c.telemetry_interval_ms = 0;
    c.ack_timeout_ms = 60'000;
    start(c, spool);
    run_until(4'000);
    EXPECT_EQ(reader->telemetry().oldest_unacked_age_ms, clock.now) << "no offset: at least this boot's uptime";

    broker.deliver_ack(kDevice, kIncarnation, 1, boot1_offset + 3'600'000);
    settle();
    ASSERT_TRUE(reader->offset_known());
    EXPECT_EQ(reader->telemetry().oldest_unacked_age_ms, clock.now) << "boot 0's offset is unknown";

    // Seq 4 (boot 1, mono 200) is the oldest now; wall-clock now is the ack's time.
    const std::int64_t gateway_now = boot1_offset + 3'600'000;
    broker.deliver_ack(kDevice, kIncarnation, 3, gateway_now);
    settle();
    const protocol::Telemetry t = reader->telemetry();
    EXPECT_EQ(t.held, spool.held());
    EXPECT_EQ(t.oldest_unacked_age_ms, 3'600'000u - 200u);
    EXPECT_EQ(t.boot, 2u);
    EXPECT_EQ(t.acked_through, 3u);
}

TEST_F(ReaderTest, NanSamplesAreCountedAndNeverStored) {
    sensors.nan_channel = 2;
    auto_ack = true;
    start(config());
    run_until(2'500);
    EXPECT_EQ(reader->counters().sensor_errors, 3u);
    EXPECT_EQ(reader->counters().produced, 6u);
    for (const StoredReading& r : events.readings) EXPECT_FALSE(std::isnan(r.record.value));
    ASSERT_EQ(events.sample_failures.size(), 3u);
    for (const auto& [channel, status] : events.sample_failures) {
        EXPECT_EQ(channel, 2);
        EXPECT_EQ(status, hal::SensorStatus::NoValue);
    }
    // Every batch made it through the codec (which refuses NaN).
    std::size_t up = 0;
    for (const auto& p : broker.published) up += p.topic == "fieldlink/v1/dev1/up" ? 1 : 0;
    EXPECT_EQ(broker.batches().size(), up);
    EXPECT_TRUE(reader->drained());
}

}  // namespace
}  // namespace fieldlink::reader
