// The forwarder's cursor logic against a real SQLite file and a fake upstream
// whose chunks the test confirms or fails by hand.
#include "fieldlink/gateway/forward/forwarder.hpp"
#include "fieldlink/gateway/forward/read_ahead.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../gateway/test_support.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace fieldlink::gateway {
namespace {

using namespace std::chrono_literals;
constexpr auto kLimit = 20s;  // bounds a failing test only
constexpr std::int64_t kNow = 1'795'312'677'000;

template <typename Condition>
bool eventually(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + kLimit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// Holds every chunk until the test ends it; can refuse to connect.
class FakeUpstream final : public Upstream {
public:
    explicit FakeUpstream(std::size_t window) : window_(window) {}

    const std::string& name() const override { return name_; }
    void connect() override {
        std::lock_guard lock(mutex_);
        ++connects_;
        if (refuse_connects_ > 0) {
            --refuse_connects_;
            throw UpstreamError("fake: connection refused");
        }
        connected_ = true;
    }
    bool connected() const override {
        std::lock_guard lock(mutex_);
        return connected_;
    }
    void send(Chunk chunk, Done done) override {
        std::lock_guard lock(mutex_);
        EXPECT_TRUE(connected_) << "send while disconnected";
        EXPECT_LT(pending_.size(), window_) << "window overrun";
        for (const ForwardRow& row : chunk.rows) ids_seen_.push_back(row.id);
        order_.push_back(chunk.sequence);
        const bool confirm_now = auto_confirm_;
        pending_.emplace(chunk.sequence, Pending{std::move(chunk), std::move(done)});
        if (confirm_now) end_locked(order_.back(), true);
    }
    std::size_t window() const override { return window_; }
    void close() noexcept override {
        std::lock_guard lock(mutex_);
        connected_ = false;
        while (!pending_.empty()) end_locked(pending_.begin()->first, false);
    }

    // Test side.
    std::size_t pending() const {
        std::lock_guard lock(mutex_);
        return pending_.size();
    }
    // The pending chunks' sequences, in the order they were sent.
    std::vector<std::uint64_t> pending_in_order() const {
        std::lock_guard lock(mutex_);
        std::vector<std::uint64_t> list;
        for (const std::uint64_t s : order_) {
            if (pending_.count(s) != 0) list.push_back(s);
        }
        return list;
    }
    std::pair<std::int64_t, std::int64_t> id_range(std::uint64_t sequence) const {
        std::lock_guard lock(mutex_);
        const auto& rows = pending_.at(sequence).chunk.rows;
        return {rows.front().id, rows.back().id};
    }
    void end(std::uint64_t sequence, bool confirmed) {
        std::lock_guard lock(mutex_);
        end_locked(sequence, confirmed);
    }
    void set_auto_confirm(bool on) {
        std::lock_guard lock(mutex_);
        auto_confirm_ = on;
        while (on && !pending_.empty()) end_locked(pending_.begin()->first, true);
    }
    void refuse_connects(int count) {
        std::lock_guard lock(mutex_);
        refuse_connects_ = count;
    }
    int connects() const {
        std::lock_guard lock(mutex_);
        return connects_;
    }
    // Every row id confirmed at least once, and how many were confirmed in all.
    std::set<std::int64_t> confirmed_ids() const {
        std::lock_guard lock(mutex_);
        return confirmed_;
    }
    std::vector<std::int64_t> ids_seen() const {
        std::lock_guard lock(mutex_);
        return ids_seen_;
    }

private:
    struct Pending {
        Chunk chunk;
        Done done;
    };
    void end_locked(std::uint64_t sequence, bool confirmed) {
        auto found = pending_.find(sequence);
        if (found == pending_.end()) return;
        Pending p = std::move(found->second);
        pending_.erase(found);
        if (confirmed) {
            for (const ForwardRow& row : p.chunk.rows) confirmed_.insert(row.id);
        }
        ChunkResult result{confirmed, 100 * p.chunk.rows.size(), 1, confirmed ? "" : "fake: failed"};
        p.done(std::move(result));  // the forwarder only queues it: safe under our lock
    }

    std::string name_ = "fake";
    std::size_t window_;
    mutable std::mutex mutex_;
    bool connected_ = false;
    bool auto_confirm_ = false;
    int refuse_connects_ = 0;
    int connects_ = 0;
    std::map<std::uint64_t, Pending> pending_;
    std::vector<std::uint64_t> order_;
    std::set<std::int64_t> confirmed_;
    std::vector<std::int64_t> ids_seen_;
};

class ForwarderTest : public ::testing::Test {
protected:
    ForwarderTest() {
        options_.path = dir_.file("fieldlink.db");
        store_ = std::make_unique<SqliteStore>(options_);
    }

    // Stores `count` readings of device `device`, seqs from `first_seq`.
    void store_readings(std::size_t count, std::uint64_t first_seq = 1, const std::string& device = "dev-1") {
        while (count > 0) {
            const std::size_t n = std::min<std::size_t>(count, 500);
            test::BatchSpec spec;
            spec.first_seq = first_seq;
            spec.count = n;
            auto transaction = store_->begin();
            const ReadingBatch batch{device, BatchBody{test::header_for(spec), test::records_for(spec)}};
            const SeqRange all = seqs_of(batch);
            transaction->insert_readings(batch, {&all, 1}, std::nullopt, clock_.unix_ms() - 60'000);
            transaction->commit();
            first_seq += n;
            count -= n;
        }
    }

    ForwarderSettings settings(std::size_t batch_rows = 1000) {
        ForwarderSettings s;
        s.db_path = options_.path;
        s.batch_rows = batch_rows;
        s.batch_delay = 10ms;
        s.retry_min = 1ms;
        s.retry_max = 5ms;
        return s;
    }

    ForwardCursor saved_cursor() {
        ForwardStore reader(options_.path, 1000);
        return reader.load_cursor("fake");
    }

    test::TempDir dir_;
    StoreOptions options_;
    std::unique_ptr<SqliteStore> store_;
    test::FixedClock clock_{kNow};
};

TEST_F(ForwarderTest, CursorMovesOnlyOverAConfirmedPrefix) {
    store_readings(2500);
    auto upstream = std::make_unique<FakeUpstream>(2);
    FakeUpstream& fake = *upstream;
    Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    ASSERT_TRUE(eventually([&] { return fake.pending() == 2; }));
    const auto first_two = fake.pending_in_order();
    EXPECT_EQ(fake.id_range(first_two[0]), std::make_pair(std::int64_t{1}, std::int64_t{1000}));
    EXPECT_EQ(fake.id_range(first_two[1]), std::make_pair(std::int64_t{1001}, std::int64_t{2000}));

    fake.end(first_two[1], true);  // out of order: the second chunk first
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(saved_cursor().next_id, 1) << "a later chunk alone moves nothing";
    fake.end(first_two[0], true);
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 2001; }));

    ASSERT_TRUE(eventually([&] { return fake.pending() == 1; }));
    fake.end(fake.pending_in_order()[0], true);
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 2501; }));
    forwarder.stop();
    const ForwardCursor cursor = saved_cursor();
    EXPECT_EQ(cursor.forwarded_rows, 2500u);
    EXPECT_EQ(cursor.forwarded_batches, 3u);
    EXPECT_EQ(fake.confirmed_ids().size(), 2500u);
}

TEST_F(ForwarderTest, AFailedChunkIsSentAgainFromTheCursorAndNothingIsSkipped) {
    store_readings(3000);
    auto upstream = std::make_unique<FakeUpstream>(3);
    FakeUpstream& fake = *upstream;
    Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    ASSERT_TRUE(eventually([&] { return fake.pending() == 3; }));
    const auto chunks = fake.pending_in_order();
    fake.end(chunks[0], true);
    fake.end(chunks[2], true);   // confirmed, but behind a gap
    fake.end(chunks[1], false);  // the gap: everything from 1001 goes again
    ASSERT_TRUE(eventually([&] { return fake.connects() >= 2 && fake.pending() > 0; }));
    fake.set_auto_confirm(true);
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 3001; }));
    forwarder.stop();
    const auto seen = fake.ids_seen();
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 1) << "the confirmed prefix is not sent again";
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1001), 2) << "the failed chunk went again";
    EXPECT_EQ(fake.confirmed_ids().size(), 3000u);
    EXPECT_GE(forwarder.status().chunks_failed, 1u);
}

TEST_F(ForwarderTest, ARestartResumesAtTheSavedCursor) {
    store_readings(2000);
    {
        auto upstream = std::make_unique<FakeUpstream>(1);
        FakeUpstream& fake = *upstream;
        Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
        forwarder.start();
        ASSERT_TRUE(eventually([&] { return fake.pending() == 1; }));
        fake.end(fake.pending_in_order()[0], true);
        ASSERT_TRUE(eventually([&] { return fake.pending() == 1; }));  // the second chunk, never confirmed
        forwarder.stop();
    }
    EXPECT_EQ(saved_cursor().next_id, 1001);
    auto upstream = std::make_unique<FakeUpstream>(1);
    FakeUpstream& fake = *upstream;
    Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    ASSERT_TRUE(eventually([&] { return fake.pending() == 1; }));
    EXPECT_EQ(fake.id_range(fake.pending_in_order()[0]).first, 1001) << "confirmed rows are not sent again";
    fake.set_auto_confirm(true);
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 2001; }));
}

TEST_F(ForwarderTest, ConnectFailuresAreRetriedWithBackoff) {
    store_readings(10);
    auto upstream = std::make_unique<FakeUpstream>(1);
    FakeUpstream& fake = *upstream;
    fake.refuse_connects(3);
    fake.set_auto_confirm(true);
    Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 11; }));
    EXPECT_EQ(fake.connects(), 4);
    EXPECT_EQ(forwarder.status().connect_failures, 3u);
}

TEST_F(ForwarderTest, LagCountsStoredReadingsNotIdsWhileTheUpstreamIsAway) {
    store_readings(100);
    store_readings(100, 101);
    store_->database().exec("DELETE FROM readings WHERE id BETWEEN 101 AND 200");  // as retention would
    store_readings(50, 201);
    auto upstream = std::make_unique<FakeUpstream>(1);
    upstream->refuse_connects(1'000'000);
    Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    ASSERT_TRUE(eventually([&] { return forwarder.status().last_row_id == 250; }));
    EXPECT_EQ(forwarder.status().lag_rows, 150) << "ids 101..200 are gone";
    store_readings(25, 251);
    EXPECT_TRUE(eventually([&] { return forwarder.status().lag_rows == 175; }))
        << "the lag follows new readings while disconnected: " << forwarder.status().lag_rows;
}

TEST_F(ForwarderTest, AfterALongOutageFreshReadingsGoFirstAndTheBacklogFollows) {
    store_readings(5000);  // the backlog: ids 1..5000
    auto upstream = std::make_unique<FakeUpstream>(2);
    FakeUpstream& fake = *upstream;
    ForwarderSettings s = settings(500);
    s.fresh_first_rows = 1000;
    Forwarder forwarder(s, std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    // Backlog chunks go out at once (both window slots); hold them.
    ASSERT_TRUE(eventually([&] { return fake.pending() == 2; }));
    EXPECT_EQ(saved_cursor().live_from_id, std::optional<std::int64_t>(5001)) << "the split is durable";
    store_readings(300, 10'001, "dev-2");  // fresh: ids 5001..5300
    // Confirm one backlog chunk: the free slot goes to the live lane, not to the backlog.
    fake.end(fake.pending_in_order()[0], true);
    ASSERT_TRUE(eventually([&] { return fake.pending() == 2; }));
    const auto pending = fake.pending_in_order();
    EXPECT_EQ(fake.id_range(pending.back()).first, 5001) << "fresh readings before the rest of the backlog";
    fake.end(pending.back(), true);
    ASSERT_TRUE(eventually([&] { return saved_cursor().live_next_id == 5301; }));
    EXPECT_EQ(saved_cursor().next_id, 501) << "the backlog has its own position";
    EXPECT_TRUE(eventually([&] { return forwarder.status().lag_rows == 5300 - 500 - 300; }))
        << "lag counts both lanes' rest: " << forwarder.status().lag_rows;

    fake.set_auto_confirm(true);
    ASSERT_TRUE(eventually([&] {
        const ForwardCursor c = saved_cursor();
        return c.next_id == 5301 && !c.live_from_id;
    })) << "the lanes merge once the backlog is through";
    forwarder.stop();
    EXPECT_EQ(fake.confirmed_ids().size(), 5300u) << "nothing fell between the lanes";
}

// ReadAhead hands out exactly what reading at that moment would return.
class ReadAheadTest : public ForwarderTest {
protected:
    // Takes the chunk at `from`, following there first; empty if the read-ahead does not have it.
    std::optional<std::vector<ForwardRow>> take_at(ReadAhead& ahead, std::int64_t from, std::int64_t end) {
        ahead.follow(from, end);
        return ahead.take(from, end, reader_);
    }

    ForwardStore reader_{options_.path, 1000};
};

TEST_F(ReadAheadTest, ChunksAreTheRowsAReadNowReturnsAndAPartialOpenTailIsLeftToTheCaller) {
    store_readings(3500);
    ReadAhead ahead(options_.path, 1000, 1000, 2);
    std::int64_t from = 1;
    for (int chunk = 0; chunk < 3; ++chunk) {
        const auto rows = take_at(ahead, from, 0);
        ASSERT_TRUE(rows.has_value()) << "chunk " << chunk;
        EXPECT_EQ(*rows, reader_.read_rows(from, 0, 1000)) << "chunk " << chunk;
        from = rows->back().id + 1;
    }
    EXPECT_EQ(from, 3001);
    EXPECT_FALSE(take_at(ahead, from, 0).has_value()) << "500 rows of an open range may still grow";
    store_readings(500, 3501);
    const auto grown = take_at(ahead, from, 0);
    ASSERT_TRUE(grown.has_value()) << "a full chunk once the rows are there";
    EXPECT_EQ(grown->size(), 1000u);
    EXPECT_EQ(grown->front().id, 3001);
    EXPECT_EQ(ahead.hits(), 4u);
    EXPECT_EQ(ahead.last_error(), "");
}

TEST_F(ReadAheadTest, AClosedRangeEndsWithItsPartialChunkAndARewindStartsOver) {
    store_readings(3000);
    ReadAhead ahead(options_.path, 1000, 1000, 2);
    const auto first = take_at(ahead, 1, 1501);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->size(), 1000u);
    // Without follow(): the chunk after the last one taken is read ahead on its own.
    const auto rest = ahead.take(1001, 1501, reader_);
    ASSERT_TRUE(rest.has_value());
    EXPECT_EQ(*rest, reader_.read_rows(1001, 1501, 1000));
    EXPECT_EQ(rest->back().id, 1500) << "the range's end bounds the partial chunk";
    EXPECT_FALSE(ahead.take(1501, 1501, reader_).has_value()) << "nothing past the end";
    const auto again = take_at(ahead, 1, 1501);  // a rewind, as after a failed chunk
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *first);
    EXPECT_FALSE(ahead.take(1001, 0, reader_).has_value()) << "another range is not what was read";
}

TEST_F(ReadAheadTest, AChunkWhoseFirstRowWasDeletedIsNotHandedOut) {
    store_readings(3000);
    ReadAhead ahead(options_.path, 1000, 1000, 2);
    ASSERT_TRUE(take_at(ahead, 1, 0).has_value());
    ASSERT_TRUE(eventually([&] { return ahead.ready() == 2; })) << "1001.. and 2001.. read ahead";
    sqlite::Database db(options_.path);
    db.exec("DELETE FROM readings WHERE id < 1011");  // retention: the oldest go first
    EXPECT_FALSE(ahead.take(1001, 0, reader_).has_value()) << "rows retention deleted must not be sent";
    const auto now = take_at(ahead, 1001, 0);  // read again from there
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ(*now, reader_.read_rows(1001, 0, 1000));
    EXPECT_EQ(now->front().id, 1011);
}

TEST_F(ForwarderTest, TheBacklogIsReadAheadAndEveryRowGoesOnce) {
    store_readings(20'000);
    auto upstream = std::make_unique<FakeUpstream>(2);
    FakeUpstream& fake = *upstream;
    Forwarder forwarder(settings(), std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    // One chunk at a time, so the read-ahead has the next ones ready while the upstream "sends".
    for (int round = 0; round < 20; ++round) {
        ASSERT_TRUE(eventually([&] { return fake.pending() > 0; })) << "round " << round;
        std::this_thread::sleep_for(5ms);
        fake.end(fake.pending_in_order()[0], true);
    }
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 20'001; }));
    forwarder.stop();
    const auto seen = fake.ids_seen();
    EXPECT_EQ(seen.size(), 20'000u) << "no row twice, none skipped";
    EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), 20'000u);
    EXPECT_GT(forwarder.status().chunks_read_ahead, 0u) << "the read-ahead served the backlog";
}

TEST_F(ForwarderTest, WithoutReadAheadTheSameRowsGo) {
    store_readings(5000);
    auto upstream = std::make_unique<FakeUpstream>(2);
    FakeUpstream& fake = *upstream;
    fake.set_auto_confirm(true);
    ForwarderSettings s = settings();
    s.read_ahead_chunks = 0;
    Forwarder forwarder(s, std::move(upstream), clock_, test::quiet_logger());
    forwarder.start();
    ASSERT_TRUE(eventually([&] { return saved_cursor().next_id == 5001; }));
    forwarder.stop();
    EXPECT_EQ(fake.ids_seen().size(), 5000u);
    EXPECT_EQ(forwarder.status().chunks_read_ahead, 0u);
}

}  // namespace
}  // namespace fieldlink::gateway
