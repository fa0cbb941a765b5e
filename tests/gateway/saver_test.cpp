// The pipeline with a real SQLite file, a recording ack publisher and a fixed clock.
#include "fieldlink/gateway/ingest/saver.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fieldlink/gateway/store/sqlite_store.hpp"
#include "test_support.hpp"

namespace fieldlink::gateway {
namespace {

using test::BatchSpec;

constexpr std::int64_t kNow = 1'795'312'677'000;

std::int64_t count(sqlite::Database& db, const std::string& sql) {
    sqlite::Statement select = db.prepare(sql);
    select.step();
    return select.column_int64(0);
}

std::vector<std::optional<std::int64_t>> unix_times(sqlite::Database& db, const std::string& device) {
    sqlite::Statement select = db.prepare("SELECT unix_ms FROM readings WHERE device = ?1 ORDER BY seq");
    select.bind_text(1, device);
    std::vector<std::optional<std::int64_t>> result;
    while (select.step())
        result.push_back(select.column_is_null(0) ? std::nullopt : std::optional(select.column_int64(0)));
    return result;
}

// A transaction of the real store that runs `before_commit` first (which may
// throw, as a failing commit does).
class WrappedTransaction final : public StoreTransaction {
public:
    WrappedTransaction(std::unique_ptr<StoreTransaction> inner, std::function<void()> before_commit)
        : inner_(std::move(inner)), before_commit_(std::move(before_commit)) {}
    std::uint64_t insert_readings(const ReadingBatch& b, std::span<const SeqRange> s, std::optional<std::int64_t> o,
                                  std::int64_t r) override {
        return inner_->insert_readings(b, s, o, r);
    }
    std::uint64_t fill_unix_time(const DeviceKey& k, std::uint32_t b, std::int64_t o) override {
        return inner_->fill_unix_time(k, b, o);
    }
    void save_watermark(const DeviceKey& k, std::uint64_t w, std::span<const SeqRange> r, std::int64_t n) override {
        inner_->save_watermark(k, w, r, n);
    }
    void add_dead_letter(const Rejected& r, std::int64_t t) override { inner_->add_dead_letter(r, t); }
    void upsert_device(const DeviceStatus& s, std::int64_t t) override { inner_->upsert_device(s, t); }
    void add_telemetry(const DeviceTelemetry& h, std::int64_t t) override { inner_->add_telemetry(h, t); }
    void commit() override {
        before_commit_();
        inner_->commit();
    }

private:
    std::unique_ptr<StoreTransaction> inner_;
    std::function<void()> before_commit_;
};

// Wraps the real store and can make commits fail, like a full disk.
class FlakyStore final : public Store {
public:
    explicit FlakyStore(Store& inner) : inner_(inner) {}

    std::atomic<int> failures_left{0};
    std::atomic<int> attempts{0};

    std::unique_ptr<StoreTransaction> begin() override {
        return std::make_unique<WrappedTransaction>(inner_.begin(), [this] {
            ++attempts;
            if (failures_left.load() > 0) {
                --failures_left;
                throw std::runtime_error("simulated: database or disk is full");
            }
        });
    }
    StoredWatermark load_watermark(const DeviceKey& key) override { return inner_.load_watermark(key); }

private:
    Store& inner_;
};

// Wraps the real store; while `hold` is set, a commit waits until it is cleared.
class HoldingStore final : public Store {
public:
    explicit HoldingStore(Store& inner) : inner_(inner) {}

    void hold(bool on) {
        {
            std::lock_guard lock(mutex_);
            held_ = on;
        }
        cv_.notify_all();
    }
    // Waits until a commit is waiting in hold.
    void wait_until_holding() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return holding_; });
    }

    std::unique_ptr<StoreTransaction> begin() override {
        return std::make_unique<WrappedTransaction>(inner_.begin(), [this] {
            std::unique_lock lock(mutex_);
            holding_ = held_;
            cv_.notify_all();
            cv_.wait(lock, [this] { return !held_; });
            holding_ = false;
        });
    }
    StoredWatermark load_watermark(const DeviceKey& key) override { return inner_.load_watermark(key); }

private:
    Store& inner_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool held_ = false;
    bool holding_ = false;
};

// Counts heartbeats; waits for a count.
class BeatCounter {
public:
    void beat() {
        {
            std::lock_guard lock(mutex_);
            ++beats_;
        }
        cv_.notify_all();
    }
    int beats() {
        std::lock_guard lock(mutex_);
        return beats_;
    }
    // False if `count` beats did not come within a minute (a hung writer).
    bool wait_for(int count) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, std::chrono::minutes(1), [&] { return beats_ >= count; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int beats_ = 0;
};

class SaverTest : public ::testing::Test {
protected:
    SaverTest() {
        StoreOptions options;
        options.path = dir_.file("fieldlink.db");
        store_ = std::make_unique<SqliteStore>(options);
    }

    // batch_rows = 1: every message is its own transaction, so acks are deterministic.
    std::unique_ptr<Saver> make_saver(Store& store, std::size_t batch_rows = 1, BeatCounter* beats = nullptr) {
        SaverSettings settings;
        settings.batch_max_rows = batch_rows;
        settings.commit_interval_min = std::chrono::milliseconds(20);
        settings.queue_capacity = 16;
        settings.retry_min = std::chrono::milliseconds(1);
        settings.retry_max = std::chrono::milliseconds(2);
        auto saver = std::make_unique<Saver>(settings, store, publisher_, clock_, test::quiet_logger(), stats_);
        if (beats != nullptr) saver->set_heartbeat(std::chrono::milliseconds(2), [beats] { beats->beat(); });
        saver->start();
        return saver;
    }
    std::unique_ptr<Saver> make_saver(std::size_t batch_rows = 1) { return make_saver(*store_, batch_rows); }

    static bool submit(Saver& saver, const BatchSpec& spec, const std::string& device = "dev-1") {
        const auto payload = test::encode(spec);
        return saver.submit("fieldlink/v1/" + device + "/up", payload);
    }

    sqlite::Database& db() { return store_->database(); }

    test::TempDir dir_;
    std::unique_ptr<SqliteStore> store_;
    test::RecordingPublisher publisher_;
    test::FixedClock clock_{kNow};
    Stats stats_;
};

TEST_F(SaverTest, BatchIsStoredThenAcked) {
    auto saver = make_saver();
    BatchSpec spec;
    spec.count = 3;
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();

    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 3);
    const auto acks = publisher_.acks_for("dev-1");
    ASSERT_EQ(acks.size(), 1u);
    EXPECT_EQ(acks[0].incarnation, 0xa1u);
    EXPECT_EQ(acks[0].watermark, 3u);
    EXPECT_EQ(acks[0].gateway_unix_ms, kNow);
    EXPECT_EQ(count(db(), "SELECT watermark FROM watermarks WHERE device = 'dev-1'"), 3);
    EXPECT_EQ(count(db(), "SELECT received_unix_ms FROM readings LIMIT 1"), kNow);
    const StatsSnapshot s = stats_.snapshot();
    EXPECT_EQ(s.received, 1u);
    EXPECT_EQ(s.stored, 3u);
    EXPECT_EQ(s.duplicates, 0u);
    EXPECT_EQ(s.acks_sent, 1u);
}

// The group commit closes when nothing more is waiting: a lone message commits
// at once, however long commit_interval_min is. Messages after it wait for the
// interval (here until stop), so commits stay that far apart: one fsync for both.
TEST_F(SaverTest, GroupClosesWhenNothingWaitsAndCommitsKeepTheirInterval) {
    SaverSettings settings;
    settings.commit_interval_min = std::chrono::hours(1);
    Saver saver(settings, *store_, publisher_, clock_, test::quiet_logger(), stats_);
    saver.start();
    BatchSpec first;
    first.count = 2;
    ASSERT_TRUE(submit(saver, first));
    saver.flush();  // would wait the whole interval if the group waited after its first message
    EXPECT_EQ(stats_.commits.load(), 1u);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 2);

    BatchSpec second;
    second.first_seq = 3;
    second.count = 1;
    BatchSpec third;
    third.first_seq = 4;
    third.count = 1;
    ASSERT_TRUE(submit(saver, second));
    ASSERT_TRUE(submit(saver, third));
    saver.stop();  // ends the wait; the open group commits
    EXPECT_EQ(stats_.commits.load(), 2u);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 4);
    const auto acks = publisher_.acks_for("dev-1");
    ASSERT_EQ(acks.size(), 2u);
    EXPECT_EQ(acks[1].watermark, 4u);
}

TEST_F(SaverTest, DuplicateBatchIsStoredOnceAndAckedAgain) {
    auto saver = make_saver();
    BatchSpec spec;
    ASSERT_TRUE(submit(*saver, spec));
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();

    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 2);
    const auto acks = publisher_.acks_for("dev-1");
    ASSERT_EQ(acks.size(), 2u) << "an all-duplicate batch is acked too";
    EXPECT_EQ(acks[1].watermark, 2u);
    EXPECT_EQ(stats_.snapshot().duplicates, 2u);
}

TEST_F(SaverTest, GapHoldsTheAckedWatermarkUntilFilled) {
    auto saver = make_saver();
    BatchSpec spec;
    spec.count = 10;
    ASSERT_TRUE(submit(*saver, spec));  // 1..10
    spec.first_seq = 21;
    ASSERT_TRUE(submit(*saver, spec));  // 21..30
    saver->flush();
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 10u);
    spec.first_seq = 11;
    ASSERT_TRUE(submit(*saver, spec));  // the gap
    saver->flush();
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 30u);
}

TEST_F(SaverTest, FloorAdvancesPastReadingsTheDeviceDropped) {
    auto saver = make_saver();
    BatchSpec spec;
    spec.count = 5;
    ASSERT_TRUE(submit(*saver, spec));  // 1..5
    spec.first_seq = 51;
    spec.floor_seq = 51;  // 6..50 were dropped by the device's spool policy
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 55u);
}

TEST_F(SaverTest, WatermarkSurvivesARestart) {
    BatchSpec spec;
    spec.count = 10;
    {
        auto saver = make_saver();
        ASSERT_TRUE(submit(*saver, spec));  // 1..10
        spec.first_seq = 21;
        ASSERT_TRUE(submit(*saver, spec));  // 21..30, gap 11..20
        saver->stop();
    }
    // A new process: new Saver, new store object, same file.
    store_.reset();
    StoreOptions options;
    options.path = dir_.file("fieldlink.db");
    store_ = std::make_unique<SqliteStore>(options);
    auto saver = make_saver();
    spec.first_seq = 11;
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 30u) << "the range 21..30 was rebuilt from the readings";
}

TEST_F(SaverTest, MalformedMessagesAreDeadLetteredAndBlockNobody) {
    auto saver = make_saver();
    ASSERT_TRUE(saver->submit("fieldlink/v1/bad/up", test::bytes(std::string(48, 'x'))));
    ASSERT_TRUE(saver->submit("fieldlink/v1/bad-json/up", test::bytes(R"({"v": 2})")));
    ASSERT_TRUE(saver->submit("not/a/fieldlink/topic", test::bytes("x")));
    ASSERT_TRUE(submit(*saver, BatchSpec{}, "good"));
    saver->flush();

    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE device = 'good'"), 2);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM dead_letters"), 3);
    sqlite::Statement select = db().prepare("SELECT topic, error, payload FROM dead_letters ORDER BY id");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_text(0), "fieldlink/v1/bad/up");
    EXPECT_EQ(select.column_text(1), "bad_magic");
    EXPECT_EQ(select.column_text(2), std::string(48, 'x'));
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_text(1), "bad_json");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_text(1), "bad_topic");

    EXPECT_TRUE(publisher_.acks_for("bad").empty()) << "no ack for a rejected batch";
    EXPECT_EQ(publisher_.acks_for("good").size(), 1u);
    const StatsSnapshot s = stats_.snapshot();
    EXPECT_EQ(s.malformed.at("bad_magic"), 1u);
    EXPECT_EQ(s.malformed.at("bad_json"), 1u);
    EXPECT_EQ(s.malformed.at("bad_topic"), 1u);
    EXPECT_EQ(s.dead_letters, 3u);
}

TEST_F(SaverTest, StatusIsStoredAndEmptyStatusIgnored) {
    auto saver = make_saver();
    protocol::StatusMessage status;
    status.state = protocol::DeviceState::Online;
    status.incarnation = 0xa1;
    status.boot = 2;
    std::strcpy(status.firmware_version, "0.1.0");
    std::uint8_t payload[protocol::kMaxStatusSize];
    std::size_t written = 0;
    ASSERT_EQ(protocol::encode_status(status, payload, sizeof(payload), &written), protocol::CodecResult::Ok);
    ASSERT_TRUE(saver->submit("fieldlink/v1/dev-1/status", std::span(payload, written)));
    ASSERT_TRUE(saver->submit("fieldlink/v1/dev-2/status", {}));
    saver->flush();
    EXPECT_EQ(count(db(), "SELECT count(*) FROM devices"), 1);
    EXPECT_EQ(count(db(), "SELECT online FROM devices WHERE device = 'dev-1'"), 1);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM dead_letters"), 0);
    EXPECT_TRUE(publisher_.published().empty()) << "statuses are not acked";
}

TEST_F(SaverTest, TimeRuleFillsEarlierRowsOfTheBootOnceTheOffsetIsKnown) {
    auto saver = make_saver();
    BatchSpec spec;
    spec.boot = 1;
    spec.count = 2;
    spec.mono_start_ms = 1000;
    ASSERT_TRUE(submit(*saver, spec));  // 1..2 without offset
    BatchSpec other_boot = spec;
    other_boot.boot = 2;
    other_boot.first_seq = 3;
    ASSERT_TRUE(submit(*saver, other_boot));  // 3..4 in boot 2, no offset
    saver->flush();
    EXPECT_EQ(unix_times(db(), "dev-1"),
              (std::vector<std::optional<std::int64_t>>{std::nullopt, std::nullopt, std::nullopt, std::nullopt}));

    BatchSpec synced = spec;
    synced.first_seq = 5;
    synced.offset_known = true;
    synced.wall_offset_ms = 1'000'000;
    synced.mono_start_ms = 5000;
    ASSERT_TRUE(submit(*saver, synced));  // 5..6, boot 1, offset known
    saver->flush();
    EXPECT_EQ(unix_times(db(), "dev-1"), (std::vector<std::optional<std::int64_t>>{
                                             1'001'000, 1'001'100, std::nullopt, std::nullopt, 1'005'000, 1'005'100}));
    EXPECT_EQ(stats_.snapshot().unix_ms_filled, 2u);

    // A late batch of boot 1 that was sent before the device knew the offset.
    BatchSpec late = spec;
    late.first_seq = 7;
    late.mono_start_ms = 2000;
    ASSERT_TRUE(submit(*saver, late));
    saver->flush();
    const auto times = unix_times(db(), "dev-1");
    EXPECT_EQ(times[6], 1'002'000) << "the boot's offset learnt earlier in this run applies";
}

// mono_ms + offset beyond 2^63-1 has no wall time: NULL, never a REAL that
// SQLite would make of the overflowing sum, on both paths of the time rule.
TEST_F(SaverTest, WallTimeThatOverflowsStaysNullOnEveryPath) {
    constexpr std::uint64_t kMaxMono = 9'223'372'036'854'775'807ull;
    auto saver = make_saver();
    BatchSpec early;  // seq 1..2, boot 1, no offset yet: stored NULL, filled later
    early.boot = 1;
    early.count = 2;
    early.mono_start_ms = kMaxMono - 150;  // records at MAX-150 and MAX-50
    ASSERT_TRUE(submit(*saver, early));
    BatchSpec small = early;  // seq 3, boot 1, early in the boot: fillable
    small.first_seq = 3;
    small.count = 1;
    small.mono_start_ms = 10;
    ASSERT_TRUE(submit(*saver, small));
    saver->flush();

    BatchSpec synced = early;  // seq 4..5 in one batch with the offset: the in-batch path
    synced.first_seq = 4;
    synced.offset_known = true;
    synced.wall_offset_ms = 100;
    synced.mono_start_ms = kMaxMono - 150;  // MAX-50 fits, MAX+50 does not
    ASSERT_TRUE(submit(*saver, synced));
    saver->flush();

    // Fill path: seq 1 (MAX-150+100) fits, seq 2 (MAX-50+100) does not; seq 3 is 110.
    EXPECT_EQ(unix_times(db(), "dev-1"),
              (std::vector<std::optional<std::int64_t>>{static_cast<std::int64_t>(kMaxMono - 50), std::nullopt, 110,
                                                        static_cast<std::int64_t>(kMaxMono - 50), std::nullopt}));
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE typeof(unix_ms) = 'real'"), 0);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE unix_ms IS NULL"), 2);
    EXPECT_EQ(stats_.snapshot().unix_ms_filled, 2u) << "seq 1 and 3 filled, seq 2 left unsynchronised";
}

// A re-flashed device whose old backlog still arrives: both incarnations
// committed together, and each gets its own ack (not one per device).
TEST_F(SaverTest, OneCommitWithTwoIncarnationsOfADeviceAcksEach) {
    SaverSettings settings;
    settings.batch_max_rows = 1000;
    settings.queue_capacity = 100;
    Saver saver(settings, *store_, publisher_, clock_, test::quiet_logger(), stats_);
    BatchSpec old_flash;
    old_flash.incarnation = 0x1111;
    old_flash.count = 3;
    BatchSpec new_flash;
    new_flash.incarnation = 0x2222;
    new_flash.count = 2;
    ASSERT_TRUE(submit(saver, old_flash));
    ASSERT_TRUE(submit(saver, new_flash));
    saver.start();  // both were queued first, so they share one transaction
    saver.flush();
    EXPECT_EQ(stats_.snapshot().commits, 1u);
    const auto acks = publisher_.acks_for("dev-1");
    ASSERT_EQ(acks.size(), 2u);
    std::map<std::uint64_t, std::uint64_t> watermarks;
    for (const auto& ack : acks) watermarks[ack.incarnation] = ack.watermark;
    EXPECT_EQ(watermarks, (std::map<std::uint64_t, std::uint64_t>{{0x1111, 3}, {0x2222, 2}}));
}

TEST_F(SaverTest, FailedCommitIsNotAckedAndIsRetried) {
    FlakyStore flaky(*store_);
    flaky.failures_left = 3;
    auto saver = make_saver(flaky);
    BatchSpec spec;
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();
    EXPECT_EQ(flaky.attempts.load(), 4);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 2);
    const auto acks = publisher_.acks_for("dev-1");
    ASSERT_EQ(acks.size(), 1u) << "one ack, after the commit that worked";
    EXPECT_EQ(acks[0].watermark, 2u);
    EXPECT_EQ(stats_.snapshot().commit_failures, 3u);
}

TEST_F(SaverTest, FailedCommitLeavesNoTraceInTheWatermark) {
    FlakyStore flaky(*store_);
    auto saver = make_saver(flaky);
    BatchSpec spec;
    spec.count = 5;
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();
    ASSERT_EQ(publisher_.acks_for("dev-1").back().watermark, 5u);
    // Now the database fails for a while, then works again: the ack must be computed
    // from what was committed, not from the failed attempts.
    flaky.failures_left = 2;
    spec.first_seq = 6;
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 10u);
    EXPECT_EQ(count(db(), "SELECT watermark FROM watermarks"), 10);
}

TEST_F(SaverTest, AckFailureIsCountedAndTheNextCommitAcksAgain) {
    auto saver = make_saver();
    publisher_.set_connected(false);
    BatchSpec spec;
    ASSERT_TRUE(submit(*saver, spec));
    saver->flush();
    EXPECT_EQ(stats_.snapshot().ack_failures, 1u);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 2) << "stored anyway";
    publisher_.set_connected(true);
    ASSERT_TRUE(submit(*saver, spec));  // the device resends
    saver->flush();
    ASSERT_EQ(publisher_.acks_for("dev-1").size(), 1u);
    EXPECT_EQ(publisher_.acks_for("dev-1")[0].watermark, 2u);
}

TEST_F(SaverTest, StopCommitsWhatIsQueuedAndRefusesMore) {
    auto saver = make_saver(/*batch_rows=*/1000);
    BatchSpec spec;
    spec.count = 1;
    for (std::uint64_t i = 1; i <= 10; ++i) {
        spec.first_seq = i;
        ASSERT_TRUE(submit(*saver, spec));
    }
    saver->stop();
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 10);
    EXPECT_EQ(publisher_.acks_for("dev-1").back().watermark, 10u);
    spec.first_seq = 11;
    EXPECT_FALSE(submit(*saver, spec));
    EXPECT_EQ(stats_.snapshot().dropped_at_stop, 1u);
}

TEST_F(SaverTest, GroupCommitAcksEachDeviceOncePerCommit) {
    // Submitted before the writer starts, so they all land in one group.
    SaverSettings settings;
    settings.batch_max_rows = 1000;
    settings.queue_capacity = 100;
    Saver saver(settings, *store_, publisher_, clock_, test::quiet_logger(), stats_);
    BatchSpec spec;
    spec.count = 1;
    for (std::uint64_t i = 1; i <= 5; ++i) {
        spec.first_seq = i;
        ASSERT_TRUE(submit(saver, spec, "dev-a"));
        BatchSpec own = spec;
        own.incarnation = 0xb2;  // every device has its own incarnation (else device_mismatch)
        ASSERT_TRUE(submit(saver, own, "dev-b"));
    }
    saver.start();
    saver.flush();
    EXPECT_EQ(stats_.snapshot().commits, 1u);
    ASSERT_EQ(publisher_.acks_for("dev-a").size(), 1u);
    EXPECT_EQ(publisher_.acks_for("dev-a")[0].watermark, 5u);
    ASSERT_EQ(publisher_.acks_for("dev-b").size(), 1u);
}

TEST_F(SaverTest, AMessageTheDatabaseRefusesEveryTimeIsDeadLetteredAndThePipelineMovesOn) {
    // A constraint the rows cannot pass, every time: seq 7 of dev-a (value 7.5).
    db().exec(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON readings WHEN NEW.device = 'dev-a' AND NEW.value = 7.5"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    SaverSettings settings;
    settings.batch_max_rows = 1000;
    settings.queue_capacity = 100;
    settings.retry_min = std::chrono::milliseconds(1);
    settings.retry_max = std::chrono::milliseconds(2);
    Saver saver(settings, *store_, publisher_, clock_, test::quiet_logger(), stats_);
    BatchSpec spec;
    spec.count = 1;
    for (std::uint64_t i = 1; i <= 10; ++i) {  // one group of 20 messages
        spec.first_seq = i;
        ASSERT_TRUE(submit(saver, spec, "dev-a"));
        BatchSpec own = spec;
        own.incarnation = 0xb2;  // every device has its own incarnation (else device_mismatch)
        ASSERT_TRUE(submit(saver, own, "dev-b"));
    }
    saver.start();
    saver.flush();

    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE device = 'dev-b'"), 10);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE device = 'dev-a'"), 9);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE device = 'dev-a' AND seq = 7"), 0);
    ASSERT_EQ(count(db(), "SELECT count(*) FROM dead_letters"), 1);
    EXPECT_EQ(count(db(),
                    "SELECT count(*) FROM dead_letters WHERE error = 'store_rejected'"
                    " AND topic = 'fieldlink/v1/dev-a/up'"),
              1);
    // The dead letter holds the batch itself, re-encoded: it decodes to seq 7's reading.
    sqlite::Statement payload = db().prepare("SELECT hex(payload) FROM dead_letters");
    ASSERT_TRUE(payload.step());
    const std::string hex = payload.column_text(0);
    payload.reset();
    std::vector<std::uint8_t> bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    protocol::BatchView view;
    ASSERT_EQ(protocol::decode_batch(bytes.data(), bytes.size(), &view), protocol::CodecResult::Ok);
    EXPECT_EQ(view.header.first_seq, 7u);
    EXPECT_EQ(view.header.count, 1u);
    EXPECT_EQ(view.record(0).value, 7.5);

    ASSERT_FALSE(publisher_.acks_for("dev-a").empty());
    EXPECT_EQ(publisher_.acks_for("dev-a").back().watermark, 10u) << "the refused batch does not hold the window";
    EXPECT_EQ(publisher_.acks_for("dev-b").back().watermark, 10u);
    EXPECT_EQ(stats_.snapshot().dead_letters, 1u);
    EXPECT_GE(stats_.snapshot().commit_failures, 1u);

    spec.first_seq = 11;  // and the next batch goes as usual
    ASSERT_TRUE(submit(saver, spec, "dev-a"));
    saver.flush();
    EXPECT_EQ(publisher_.acks_for("dev-a").back().watermark, 11u);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings WHERE device = 'dev-a'"), 10);
}

TEST_F(SaverTest, FullQueueBlocksTheProducerUntilTheWriterDrainsIt) {
    // Writer not started yet: the queue (capacity 2) fills and the third submit blocks.
    SaverSettings settings;
    settings.queue_capacity = 2;
    Saver saver(settings, *store_, publisher_, clock_, test::quiet_logger(), stats_);
    BatchSpec spec;
    spec.count = 1;
    ASSERT_TRUE(submit(saver, spec));
    spec.first_seq = 2;
    ASSERT_TRUE(submit(saver, spec));
    std::atomic<bool> third_done{false};
    std::thread producer([&] {
        BatchSpec third = spec;
        third.first_seq = 3;
        submit(saver, third);
        third_done = true;
    });
    // The producer cannot finish while the queue is full; starting the writer frees it.
    EXPECT_EQ(saver.queue_depth(), 2u);
    saver.start();
    producer.join();
    EXPECT_TRUE(third_done.load());
    saver.flush();
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 3);
}

std::vector<std::uint8_t> telemetry_payload(std::uint64_t incarnation, std::uint64_t dropped) {
    protocol::Telemetry t;
    t.incarnation = incarnation;
    t.boot = 1;
    t.uptime_ms = 60'000;
    t.held = 12;
    t.dropped = dropped;
    t.next_seq = 100;
    t.acked_through = 87;
    std::vector<std::uint8_t> out(protocol::kTelemetrySize);
    std::size_t written = 0;
    EXPECT_EQ(protocol::encode_telemetry(t, out.data(), out.size(), &written), protocol::CodecResult::Ok);
    out.resize(written);
    return out;
}

std::string read_all(std::FILE* file) {
    std::fflush(file);
    std::rewind(file);
    std::string text;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, file)) > 0;) text.append(buffer, n);
    return text;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

TEST_F(SaverTest, TelemetryIsStoredInTheGroupCommitAndDropsAreWarnedOncePerChange) {
    std::FILE* sink = std::tmpfile();
    ASSERT_NE(sink, nullptr);
    Logger log(LogLevel::Warn, sink);
    SaverSettings settings;
    settings.batch_max_rows = 1000;
    settings.queue_capacity = 16;
    Saver saver(settings, *store_, publisher_, clock_, log, stats_);
    const std::string topic = "fieldlink/v1/dev-1/telemetry";
    // Queued before the writer starts, so they share one transaction with the batch.
    ASSERT_TRUE(saver.submit(topic, telemetry_payload(0xa1, 0)));
    ASSERT_TRUE(submit(saver, BatchSpec{}));
    ASSERT_TRUE(saver.submit(topic, telemetry_payload(0xa1, 5)));
    ASSERT_TRUE(saver.submit(topic, telemetry_payload(0xa1, 5)));
    ASSERT_TRUE(saver.submit(topic, telemetry_payload(0xa1, 7)));
    ASSERT_TRUE(saver.submit(topic, telemetry_payload(0xb2, 7)));  // a new incarnation
    auto broken = telemetry_payload(0xa1, 9);
    broken.back() ^= 0xff;
    ASSERT_TRUE(saver.submit(topic, broken));
    saver.start();
    saver.flush();
    saver.stop();

    EXPECT_EQ(count(db(), "SELECT count(*) FROM device_health"), 5);
    EXPECT_EQ(count(db(),
                    "SELECT count(*) FROM device_health WHERE device = 'dev-1' AND held = 12 AND "
                    "acked_through = 87 AND next_seq = 100 AND uptime_ms = 60000 AND boot = 1"),
              5);
    EXPECT_EQ(count(db(), "SELECT received_unix_ms FROM device_health LIMIT 1"), kNow);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), 2);
    EXPECT_EQ(count(db(), "SELECT count(*) FROM dead_letters WHERE error = 'bad_checksum' AND topic = '" + topic + "'"),
              1);
    const StatsSnapshot s = stats_.snapshot();
    EXPECT_EQ(s.telemetry, 5u);
    EXPECT_EQ(s.commits, 1u) << "one group commit for everything queued";
    EXPECT_NE(format_stats(s).find(" telemetry=5"), std::string::npos) << format_stats(s);
    EXPECT_EQ(publisher_.acks_for("dev-1").size(), 1u) << "telemetry is not acked";

    const std::string logged = read_all(sink);
    std::fclose(sink);
    EXPECT_EQ(occurrences(logged, "has dropped"), 3u) << logged;
    EXPECT_NE(logged.find("device dev-1 (incarnation 00000000000000a1) has dropped 5 readings"), std::string::npos)
        << logged;
    EXPECT_NE(logged.find("has dropped 7 readings because its store was full (2 more since the last report)"),
              std::string::npos)
        << logged;
    EXPECT_NE(logged.find("(incarnation 00000000000000b2) has dropped 7 readings"), std::string::npos) << logged;
}

TEST_F(SaverTest, HeartbeatComesWhileIdleAndStopsWhileACommitHangs) {
    HoldingStore holding(*store_);
    BeatCounter beats;
    auto saver = make_saver(holding, 1, &beats);
    ASSERT_TRUE(beats.wait_for(5)) << "an idle writer beats";

    holding.hold(true);
    BatchSpec spec;
    ASSERT_TRUE(submit(*saver, spec));
    holding.wait_until_holding();
    const int before = beats.beats();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // 25 intervals
    EXPECT_EQ(beats.beats(), before) << "no beat while the commit hangs: a watchdog must see it";

    holding.hold(false);
    saver->flush();
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), static_cast<std::int64_t>(spec.count));
    ASSERT_TRUE(beats.wait_for(before + 3)) << "beats again once the commit returns";
}

TEST_F(SaverTest, HeartbeatContinuesWhileCommitsAreRetried) {
    FlakyStore flaky(*store_);
    flaky.failures_left = 1000000;  // a disk that stays full
    BeatCounter beats;
    auto saver = make_saver(flaky, 1, &beats);
    BatchSpec spec;
    ASSERT_TRUE(submit(*saver, spec));
    const int before = beats.beats();
    ASSERT_TRUE(beats.wait_for(before + 5)) << "a writer retrying a failing disk is alive";
    EXPECT_GT(flaky.attempts.load(), 0);
    flaky.failures_left = 0;
    saver->flush();
    EXPECT_EQ(count(db(), "SELECT count(*) FROM readings"), static_cast<std::int64_t>(spec.count));
}

}  // namespace
}  // namespace fieldlink::gateway
