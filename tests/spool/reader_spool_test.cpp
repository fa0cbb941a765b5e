// The reader core on the flash spool (over the RAM flash fake): only commit
// acks trim, a reboot keeps what was not acked and sends it first, resends
// come from flash, and a backlog drains with the whole window in flight.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "fakes.hpp"
#include "fieldlink/reader/reader.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "ram_flash.hpp"

namespace fieldlink::spool {
namespace {

using reader::Reader;
using reader::ReaderConfig;
using reader::ReaderStatus;
using reader::StoredReading;
using reader::StoreStatus;

constexpr char kDevice[] = "dev1";

struct Readings final : reader::ReaderEvents {
    void on_reading(const StoredReading& r) override { by_seq[r.seq] = r; }
    void on_resend(std::uint64_t from, reader::ResendReason) override { resend_from.push_back(from); }
    void on_store_error(StoreStatus s) override { store_errors.push_back(s); }

    std::map<std::uint64_t, StoredReading> by_seq;  // every reading produced, across boots
    std::vector<std::uint64_t> resend_from;
    std::vector<StoreStatus> store_errors;
};

class ReaderOnSpoolTest : public ::testing::Test {
protected:
    ReaderOnSpoolTest() : flash(hal::FlashGeometry{512, 64, 8}), sensors(3), broker(clock) { random.value = 0x5eed; }

    static ReaderConfig config() {
        ReaderConfig c = test::reader_test_config(kDevice);
        c.ack_timeout_ms = 60'000;
        c.window = 4;
        c.telemetry_interval_ms = 0;
        return c;
    }

    // Power on: mount the flash (a new boot), the monotonic clock starts at 0,
    // a new reader on the spool. Whatever ran before is simply gone.
    void boot(const ReaderConfig& c) {
        broker.drop_connection();
        reader.reset();
        spool.emplace(flash, random);
        ASSERT_EQ(spool->mount(), StoreStatus::Ok);
        clock.now = 0;
        reader.emplace(c, *spool, broker, clock, random, sensors, memory.buffers(), &events);
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
    void settle() {
        for (int i = 0; i < 5; ++i) reader->poll(0);
    }

    void ack(std::uint64_t watermark, std::int64_t gateway_unix_ms = 1'700'000'000'000) {
        broker.deliver_ack(kDevice, spool->incarnation(), watermark, gateway_unix_ms);
        settle();
    }
    void ack_all_published() {
        std::uint64_t highest = 0;
        for (const auto& batch : broker.batches()) highest = std::max(highest, batch.last_seq());
        if (highest > acked) {
            acked = highest;
            broker.deliver_ack(kDevice, spool->incarnation(), highest,
                               1'700'000'000'000 + static_cast<std::int64_t>(clock.now));
        }
    }

    // Every batch the broker got carries exactly what was appended under its seqs;
    // returns the seqs seen.
    std::set<std::uint64_t> check_batches_match_readings() {
        std::set<std::uint64_t> seen;
        for (const auto& batch : broker.batches()) {
            for (std::size_t i = 0; i < batch.records.size(); ++i) {
                const std::uint64_t seq = batch.header.first_seq + i;
                seen.insert(seq);
                const auto found = events.by_seq.find(seq);
                if (found == events.by_seq.end()) {
                    ADD_FAILURE() << "seq " << seq << " was sent but never produced";
                    continue;
                }
                EXPECT_EQ(batch.header.boot, found->second.boot) << "seq " << seq;
                EXPECT_EQ(batch.records[i].channel, found->second.record.channel) << "seq " << seq;
                EXPECT_EQ(batch.records[i].mono_ms, found->second.record.mono_ms) << "seq " << seq;
                EXPECT_EQ(batch.records[i].value, found->second.record.value) << "seq " << seq;
            }
        }
        return seen;
    }

    testing::RamFlash flash;
    test::FakeClock clock;
    test::FakeRandom random;
    test::FakeSensors sensors;
    test::FakeBroker broker;
    reader::ReaderMemory<16> memory;
    Readings events;
    std::optional<FlashSpool> spool;
    std::optional<Reader> reader;  // after the spool: destroyed before it
    bool auto_ack = false;
    std::uint64_t acked = 0;
};

TEST_F(ReaderOnSpoolTest, OnlyCommitAcksTrimTheSpool) {
    boot(config());
    run_until(10'500);
    const std::uint64_t produced = reader->counters().produced;
    ASSERT_GT(produced, 30u);
    EXPECT_FALSE(broker.batches().empty()) << "published, and PUBACKed by the broker";
    EXPECT_EQ(spool->held(), produced) << "a PUBACK is not a commit";
    EXPECT_EQ(spool->floor_seq(), 0u);

    ack(12);
    EXPECT_EQ(spool->held(), reader->counters().produced - 12);
    EXPECT_EQ(spool->oldest_seq(), 13u);
    EXPECT_EQ(spool->stats().durable_floor, 12u) << "the trim is on flash";

    ack(10);  // stale: changes nothing
    EXPECT_EQ(spool->oldest_seq(), 13u);
    EXPECT_EQ(reader->counters().acks_stale, 1u);
    EXPECT_TRUE(events.store_errors.empty());
}

TEST_F(ReaderOnSpoolTest, RebootKeepsWhatWasNotAckedAndSendsItFirst) {
    boot(config());
    run_until(10'500);
    const std::int64_t first_gateway_ms = 1'700'000'000'000;
    const auto first_ack_at = static_cast<std::int64_t>(clock.now);
    ack(12, first_gateway_ms);
    const std::int64_t first_offset = first_gateway_ms - first_ack_at;
    const std::uint32_t first_boot = spool->boot();
    const std::uint64_t next_seq = spool->next_seq();
    const std::uint64_t incarnation = spool->incarnation();

    boot(config());  // power cut and reboot
    EXPECT_EQ(spool->incarnation(), incarnation);
    EXPECT_EQ(spool->boot(), first_boot + 1);
    EXPECT_EQ(spool->next_seq(), next_seq) << "sequence numbers continue";
    EXPECT_EQ(spool->oldest_seq(), 13u);
    EXPECT_EQ(spool->held(), next_seq - 13);
    EXPECT_EQ(reader->acked_through(), 12u);
    std::int64_t noted = 0;
    ASSERT_TRUE(spool->wall_offset(first_boot, &noted));
    EXPECT_EQ(noted, first_offset);

    // Before any ack in this boot the age of the first boot's reading is at least the uptime.
    run_until(100);
    EXPECT_EQ(reader->telemetry().oldest_unacked_age_ms, clock.now);
    EXPECT_EQ(reader->telemetry().held, spool->held());

    const int connection = broker.opens;
    std::vector<test::FakeBroker::Batch> after;
    for (const auto& batch : broker.batches()) {
        if (batch.connection == connection) after.push_back(batch);
    }
    ASSERT_FALSE(after.empty());
    EXPECT_EQ(after[0].header.first_seq, 13u);
    EXPECT_EQ(after[0].header.floor_seq, 13u);
    EXPECT_EQ(after[0].header.boot, first_boot);
    EXPECT_TRUE(after[0].header.offset_known) << "the first boot's offset came back from flash";
    EXPECT_EQ(after[0].header.wall_offset_ms, first_offset);

    // An ack in this boot: both offsets known, so the age is wall clock minus wall clock.
    const std::int64_t second_gateway_ms = first_gateway_ms + 3'600'000;
    ack(14, second_gateway_ms);
    const StoredReading& oldest = events.by_seq.at(15);
    EXPECT_EQ(reader->telemetry().oldest_unacked_age_ms,
              static_cast<std::uint64_t>(second_gateway_ms -
                                         (static_cast<std::int64_t>(oldest.record.mono_ms) + first_offset)));

    // The gateway commits everything: the spool empties and nothing was lost or altered.
    auto_ack = true;
    acked = 14;
    run_for(5'000);
    reader->stop_sampling();
    run_for(3'000);
    EXPECT_TRUE(reader->drained());
    EXPECT_EQ(spool->held(), 0u);
    const std::set<std::uint64_t> seen = check_batches_match_readings();
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(*seen.begin(), 1u);
    EXPECT_EQ(*seen.rbegin(), spool->next_seq() - 1);
    EXPECT_EQ(seen.size(), spool->next_seq() - 1) << "no gap: every seq was sent";
    for (const auto& [seq, reading] : events.by_seq) {
        EXPECT_EQ(reading.boot, seq < next_seq ? first_boot : first_boot + 1) << "seq " << seq;
    }

    const std::uint64_t final_next = spool->next_seq();
    boot(config());
    EXPECT_EQ(spool->held(), 0u);
    EXPECT_EQ(spool->next_seq(), final_next);
    EXPECT_EQ(reader->acked_through(), final_next - 1);
}

TEST_F(ReaderOnSpoolTest, ResendsFromFlashAfterAnAckTimeout) {
    ReaderConfig c = config();
    c.ack_timeout_ms = 5'000;
    boot(c);
    run_until(3'000);
    ASSERT_FALSE(broker.batches().empty());
    run_until(9'000);
    ASSERT_FALSE(events.resend_from.empty());
    EXPECT_EQ(events.resend_from[0], 1u);
    int sent_from_one = 0;
    for (const auto& batch : broker.batches()) sent_from_one += batch.header.first_seq == 1 ? 1 : 0;
    EXPECT_EQ(sent_from_one, 2) << "sent again from the oldest unacked reading";
    check_batches_match_readings();
    EXPECT_EQ(spool->held(), reader->counters().produced);
}

TEST_F(ReaderOnSpoolTest, BacklogDrainsWithTheWholeWindowInFlight) {
    ReaderConfig c = config();
    c.batch_size = 8;
    c.window = 4;
    broker.refuse_open = true;
    boot(c);
    run_until(60'000);  // an outage: everything stays on flash
    ASSERT_TRUE(broker.batches().empty());
    const std::uint64_t backlog = spool->held();
    ASSERT_EQ(backlog, reader->counters().produced);
    ASSERT_GT(backlog, 150u);
    reader->stop_sampling();
    broker.refuse_open = false;

    for (int turns = 0; broker.batches().size() < 4 && turns < 100; ++turns) reader->poll(1'000);
    settle();
    // Four batches out before the first commit ack: not one per round trip.
    EXPECT_EQ(broker.batches().size(), 4u);
    EXPECT_EQ(reader->in_flight(), 4u);

    // Each ack of the oldest batch in flight lets exactly one more batch go.
    std::size_t acked_batches = 0;
    for (int round = 0; !reader->drained() && round < 100; ++round) {
        const auto batches = broker.batches();
        ASSERT_LT(acked_batches, batches.size());
        ack(batches[acked_batches].last_seq());
        ++acked_batches;
        const std::uint64_t left = backlog - batches[acked_batches - 1].last_seq();
        const std::uint64_t batches_left = (left + 7) / 8;
        EXPECT_EQ(reader->in_flight(), std::min<std::uint64_t>(4, batches_left));
        EXPECT_EQ(spool->held(), left);
    }
    EXPECT_TRUE(reader->drained());
    EXPECT_EQ(broker.batches().size(), (backlog + 7) / 8) << "no resends";
    EXPECT_EQ(reader->counters().resends, 0u);
    const std::set<std::uint64_t> seen = check_batches_match_readings();
    EXPECT_EQ(seen.size(), backlog);
    EXPECT_EQ(*seen.rbegin(), backlog);
}

}  // namespace
}  // namespace fieldlink::spool
