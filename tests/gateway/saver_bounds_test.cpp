// The saver's per-device state stays within max_incarnations however many
// device incarnations it meets, and what it forgets it reloads from SQLite (or
// relearns) without a wrong ack: the real Saver, the real SqliteStore.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fieldlink/gateway/ingest/saver.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "test_support.hpp"

// Distinct incarnations in the big test. 100,000 unless the build says otherwise
// (tests/gateway/CMakeLists.txt lowers it under the sanitizers, which are slower).
#ifndef FIELDLINK_BOUNDS_TEST_INCARNATIONS
#define FIELDLINK_BOUNDS_TEST_INCARNATIONS 100000
#endif

namespace fieldlink::gateway {
namespace {

using test::BatchSpec;

constexpr std::int64_t kNow = 1'795'312'677'000;
constexpr std::int64_t kOffset = 1'700'000'000'000;

class SaverBoundsTest : public ::testing::Test {
protected:
    SaverBoundsTest() {
        StoreOptions options;
        options.path = dir_.file("fieldlink.db");
        store_ = std::make_unique<SqliteStore>(options);
    }

    std::unique_ptr<Saver> make_saver(SaverSettings settings, Logger& log = test::quiet_logger()) {
        settings.retry_min = std::chrono::milliseconds(1);
        settings.retry_max = std::chrono::milliseconds(2);
        auto saver = std::make_unique<Saver>(settings, *store_, publisher_, clock_, log, stats_);
        saver->start();
        return saver;
    }

    static void submit(Saver& saver, const std::string& device, const BatchSpec& spec) {
        ASSERT_TRUE(saver.submit("fieldlink/v1/" + device + "/up", test::encode(spec)));
    }

    static void submit_telemetry(Saver& saver, const std::string& device, std::uint64_t incarnation,
                                 std::uint64_t dropped) {
        protocol::Telemetry t;
        t.incarnation = incarnation;
        t.boot = 1;
        t.dropped = dropped;
        t.next_seq = 3;
        std::vector<std::uint8_t> payload(protocol::kTelemetrySize);
        std::size_t written = 0;
        ASSERT_EQ(protocol::encode_telemetry(t, payload.data(), payload.size(), &written), protocol::CodecResult::Ok);
        payload.resize(written);
        ASSERT_TRUE(saver.submit("fieldlink/v1/" + device + "/telemetry", payload));
    }

    // The last ack of each (ack topic, incarnation), in publish order.
    std::map<std::pair<std::string, std::uint64_t>, std::uint64_t> last_acks() const {
        std::map<std::pair<std::string, std::uint64_t>, std::uint64_t> last;
        for (const test::Published& p : publisher_.published()) {
            protocol::Ack ack;
            EXPECT_EQ(protocol::decode_ack(p.payload.data(), p.payload.size(), &ack), protocol::CodecResult::Ok);
            last[{p.topic, ack.incarnation}] = ack.watermark;
        }
        return last;
    }

    std::vector<std::optional<std::int64_t>> unix_times(const std::string& device) {
        sqlite::Statement select =
            store_->database().prepare("SELECT unix_ms FROM readings WHERE device = ?1 ORDER BY seq");
        select.bind_text(1, device);
        std::vector<std::optional<std::int64_t>> result;
        while (select.step()) {
            result.push_back(select.column_is_null(0) ? std::nullopt : std::optional(select.column_int64(0)));
        }
        return result;
    }

    test::TempDir dir_;
    std::unique_ptr<SqliteStore> store_;
    test::RecordingPublisher publisher_;
    test::FixedClock clock_{kNow};
    Stats stats_;
};

std::string ack_topic(const std::string& device) { return "fieldlink/v1/" + device + "/ack"; }

TEST_F(SaverBoundsTest, RefusesZeroLimits) {
    SaverSettings settings;
    settings.max_incarnations = 0;
    EXPECT_THROW(make_saver(settings), std::invalid_argument);
    settings.max_incarnations = 1;
    settings.max_ranges_per_incarnation = 0;
    EXPECT_THROW(make_saver(settings), std::invalid_argument);
}

// The required test. Incarnation i belongs to device "d<i / 10>" (re-flashed
// devices: ten incarnations each) and sends seq 1..2 with a known offset, plus
// telemetry once per device. Two kinds come back after many others:
//   - every 100th: seq 3..4 later, acked 4 from the watermark reloaded from SQLite;
//   - every 100th + 50: seq 1..2 and 5..6 first (ack 2, a gap), seq 3..4 later,
//     acked 6 because the range 5..6 is rebuilt from the readings.
TEST_F(SaverBoundsTest, ManyIncarnationsStayWithinTheBoundAndEveryWatermarkIsRight) {
    constexpr std::uint64_t kIncarnations = FIELDLINK_BOUNDS_TEST_INCARNATIONS;
    constexpr std::size_t kMaxIncarnations = 1000;
    // Come back only after at least 10 x kMaxIncarnations others, so surely evicted.
    constexpr std::uint64_t kReturnBefore = kIncarnations - 10 * kMaxIncarnations;
    static_assert(kIncarnations > 10 * kMaxIncarnations, "the test needs incarnations that are surely evicted");

    auto device_of = [](std::uint64_t i) { return "d" + std::to_string(i / 10); };
    auto incarnation_of = [](std::uint64_t i) { return 0x5eed'0000'0000ull + i; };
    auto returns = [&](std::uint64_t i) { return i < kReturnBefore && i % 100 == 0; };
    auto gapped = [&](std::uint64_t i) { return i < kReturnBefore && i % 100 == 50; };
    auto batch = [&](std::uint64_t i, std::uint64_t first_seq) {
        BatchSpec spec;
        spec.incarnation = incarnation_of(i);
        spec.first_seq = first_seq;
        spec.count = 2;
        spec.boot = 1;
        spec.offset_known = true;
        spec.wall_offset_ms = kOffset;
        return spec;
    };

    SaverSettings settings;
    settings.max_incarnations = kMaxIncarnations;
    settings.batch_max_rows = 4000;  // a few dozen fsyncs for the whole run
    settings.commit_interval_min = std::chrono::milliseconds(50);
    settings.queue_capacity = 8192;
    auto saver = make_saver(settings);

    std::uint64_t comebacks = 0;
    for (std::uint64_t i = 0; i < kIncarnations; ++i) {
        submit(*saver, device_of(i), batch(i, 1));
        if (gapped(i)) submit(*saver, device_of(i), batch(i, 5));
        if (i % 10 == 0) submit_telemetry(*saver, device_of(i), incarnation_of(i), 1);
        if (returns(i) || gapped(i)) ++comebacks;
    }
    saver->flush();
    {
        const TrackedState tracked = saver->tracked_state();
        EXPECT_LE(tracked.watermarks, kMaxIncarnations);
        EXPECT_LE(tracked.boot_clocks, kMaxIncarnations);
        EXPECT_LE(tracked.drop_counts, kMaxIncarnations);
        EXPECT_EQ(tracked.watermark_loads, kIncarnations) << "one load per incarnation on its first batch";
    }
    const auto first_acks = last_acks();
    for (std::uint64_t i = 0; i < kIncarnations; i += 50) {
        ASSERT_EQ(first_acks.at({ack_topic(device_of(i)), incarnation_of(i)}), 2u) << "incarnation " << i;
    }

    for (std::uint64_t i = 0; i < kIncarnations; ++i) {
        if (returns(i) || gapped(i)) submit(*saver, device_of(i), batch(i, 3));
    }
    saver->flush();
    saver->stop();

    const TrackedState tracked = saver->tracked_state();
    EXPECT_LE(tracked.watermarks, kMaxIncarnations);
    EXPECT_LE(tracked.boot_clocks, kMaxIncarnations);
    EXPECT_LE(tracked.drop_counts, kMaxIncarnations);
    EXPECT_EQ(tracked.watermark_loads, kIncarnations + comebacks) << "each comeback was reloaded from SQLite";

    auto expected_watermark = [&](std::uint64_t i) -> std::uint64_t {
        if (returns(i)) return 4;
        if (gapped(i)) return 6;
        return 2;
    };
    const auto acks = last_acks();
    ASSERT_EQ(acks.size(), kIncarnations);
    for (std::uint64_t i = 0; i < kIncarnations; ++i) {
        const auto found = acks.find({ack_topic(device_of(i)), incarnation_of(i)});
        ASSERT_NE(found, acks.end()) << "incarnation " << i << " was never acked";
        ASSERT_EQ(found->second, expected_watermark(i)) << "incarnation " << i;
    }

    std::map<std::pair<std::string, std::uint64_t>, std::uint64_t> table;
    sqlite::Statement select = store_->database().prepare("SELECT device, incarnation, watermark FROM watermarks");
    while (select.step()) {
        table[{select.column_text(0), static_cast<std::uint64_t>(select.column_int64(1))}] =
            static_cast<std::uint64_t>(select.column_int64(2));
    }
    ASSERT_EQ(table.size(), kIncarnations);
    for (std::uint64_t i = 0; i < kIncarnations; ++i) {
        ASSERT_EQ(table.at({device_of(i), incarnation_of(i)}), expected_watermark(i)) << "incarnation " << i;
    }
    sqlite::Statement unsynced = store_->database().prepare("SELECT count(*) FROM readings WHERE unix_ms IS NULL");
    ASSERT_TRUE(unsynced.step());
    EXPECT_EQ(unsynced.column_int64(0), 0) << "every batch carried its offset";
}

// A device sending every other seq, then the gaps, then (as the reader does)
// everything not acked, oldest first; room for two ranges above the watermark.
// After every commit the ack is exactly the contiguous watermark of what is
// stored, a batch that would open a third range is neither stored nor acked,
// and the resends store the rest, each seq once.
TEST_F(SaverBoundsTest, RangeCapRefusesWhatWouldOpenARangeAndResendsCatchUp) {
    constexpr std::size_t kCap = 2;
    SaverSettings settings;
    settings.batch_max_rows = 1;  // one commit, and one ack, per batch
    settings.max_ranges_per_incarnation = kCap;
    auto saver = make_saver(settings);

    std::vector<std::uint64_t> order{1};
    for (std::uint64_t seq = 3; seq <= 21; seq += 2) order.push_back(seq);  // 3, 5, ..., 21: ten ranges
    for (std::uint64_t seq = 2; seq <= 20; seq += 2) order.push_back(seq);  // then the gaps, in order
    for (std::uint64_t seq = 1; seq <= 21; ++seq) order.push_back(seq);     // then every seq again
    // The rule, modelled on its own: a seq not stored goes in when it touches W or a
    // stored seq, or when fewer than kCap runs of stored seqs lie above W.
    std::vector<bool> stored(23, false);
    std::vector<std::uint64_t> expected;
    std::uint64_t refused = 0;
    for (std::uint64_t seq : order) {
        std::uint64_t w = 0;
        while (stored[w + 1]) ++w;
        std::size_t runs = 0;
        for (std::uint64_t s = w + 2; s <= 21; ++s) runs += stored[s] && !stored[s - 1] ? 1 : 0;
        const bool touches = seq <= w + 1 || stored[seq - 1] || stored[seq + 1];
        if (!stored[seq]) {
            if (touches || runs < kCap) {
                stored[seq] = true;
            } else {
                ++refused;
            }
        }
        w = 0;
        while (stored[w + 1]) ++w;
        expected.push_back(w);

        BatchSpec spec;
        spec.first_seq = seq;
        spec.count = 1;
        submit(*saver, "dev-1", spec);
    }
    saver->flush();
    std::vector<std::uint64_t> acked;
    for (const protocol::Ack& ack : publisher_.acks_for("dev-1")) acked.push_back(ack.watermark);
    EXPECT_EQ(acked, expected);
    EXPECT_EQ(acked.back(), 21u);
    EXPECT_GT(refused, 0u) << "the order must reach the cap";
    EXPECT_EQ(stats_.refused_out_of_order.load(), refused);

    sqlite::Statement seqs = store_->database().prepare("SELECT seq, count(*) FROM readings GROUP BY seq ORDER BY seq");
    std::vector<std::int64_t> once;
    while (seqs.step()) {
        EXPECT_EQ(seqs.column_int64(1), 1) << "seq " << seqs.column_int64(0);
        once.push_back(seqs.column_int64(0));
    }
    EXPECT_EQ(once.size(), 21u);
}

// An incarnation pushed out of the boot clocks forgets its offsets: its next
// batch without one is stored unsynchronised, and the next batch with one fills it.
TEST_F(SaverBoundsTest, EvictedBootOffsetIsRelearntFromTheNextBatchThatCarriesIt) {
    SaverSettings settings;
    settings.batch_max_rows = 1;
    settings.max_incarnations = 1;
    auto saver = make_saver(settings);

    BatchSpec synced;
    synced.boot = 1;
    synced.offset_known = true;
    synced.wall_offset_ms = 1'000'000;
    synced.mono_start_ms = 1000;
    submit(*saver, "dev-1", synced);  // seq 1..2
    BatchSpec other = synced;
    other.incarnation = 0xb2;
    submit(*saver, "dev-2", other);  // pushes dev-1 out
    BatchSpec late = synced;
    late.first_seq = 3;
    late.offset_known = false;
    late.mono_start_ms = 2000;
    submit(*saver, "dev-1", late);  // seq 3..4 without offset
    saver->flush();
    EXPECT_EQ(unix_times("dev-1"),
              (std::vector<std::optional<std::int64_t>>{1'001'000, 1'001'100, std::nullopt, std::nullopt}));

    BatchSpec again = synced;
    again.first_seq = 5;
    again.mono_start_ms = 3000;
    submit(*saver, "dev-1", again);  // seq 5..6 with the offset: fills 3..4
    saver->flush();
    EXPECT_EQ(unix_times("dev-1"), (std::vector<std::optional<std::int64_t>>{1'001'000, 1'001'100, 1'002'000, 1'002'100,
                                                                             1'003'000, 1'003'100}));
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 6u);
    EXPECT_LE(saver->tracked_state().boot_clocks, 1u);
}

TEST_F(SaverBoundsTest, EvictedDeviceWarnsAgainAboutTheSameDrops) {
    std::FILE* sink = std::tmpfile();
    ASSERT_NE(sink, nullptr);
    Logger log(LogLevel::Warn, sink);
    SaverSettings settings;
    settings.max_incarnations = 2;
    auto saver = make_saver(settings, log);
    submit_telemetry(*saver, "dev-1", 0xa1, 5);
    submit_telemetry(*saver, "dev-1", 0xa1, 5);  // unchanged: no second warning
    submit_telemetry(*saver, "dev-2", 0xb1, 0);
    submit_telemetry(*saver, "dev-3", 0xc1, 0);  // dev-1 is the least recently reported: out
    submit_telemetry(*saver, "dev-1", 0xa1, 5);  // unchanged, but forgotten: warned again
    saver->flush();
    saver->stop();
    EXPECT_EQ(saver->tracked_state().drop_counts, 2u);

    std::fflush(sink);
    std::rewind(sink);
    std::string logged;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, sink)) > 0;) logged.append(buffer, n);
    std::fclose(sink);
    const std::string warning = "device dev-1 (incarnation 00000000000000a1) has dropped 5 readings";
    std::size_t warnings = 0;
    for (auto at = logged.find(warning); at != std::string::npos; at = logged.find(warning, at + 1)) ++warnings;
    EXPECT_EQ(warnings, 2u) << logged;
}

}  // namespace
}  // namespace fieldlink::gateway
