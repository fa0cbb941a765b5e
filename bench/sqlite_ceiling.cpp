// fieldlink-bench-sqlite-ceiling: how fast SQLite alone stores the saver's rows on this disk.
//
// The database is made by the gateway's store library (SqliteStore: the same schema, WAL,
// auto_vacuum and synchronous pragmas), and the rows go in as the saver commits them: messages of
// --batch readings of --devices devices in turn, a transaction closed once it holds --batch-rows
// readings (so ceil(batch_rows / batch) messages), in it one insert_readings() per message and
// one save_watermark() per device touched, then commit. No MQTT, no decoding, no threads: the
// physical limit of the store, which the saver's rate is divided by (bench/run.py --loadgen).
// Mode "raw" is the same INSERT through a bare prepared statement in BEGIN/COMMIT, without the
// watermarks: what the store library itself costs. Each configuration runs --rounds times, interleaved; the median is
// reported with every round. Prints one JSON line.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "fieldlink/gateway/store/sqlite.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace {

using fieldlink::gateway::DeviceKey;
using fieldlink::gateway::ReadingBatch;
using fieldlink::gateway::SeqRange;
using fieldlink::gateway::seqs_of;
using fieldlink::gateway::SqliteStore;
using fieldlink::gateway::StoreOptions;
using fieldlink::gateway::Synchronous;

struct Options {
    std::string db = "sqlite-ceiling.db";
    std::uint64_t rows = 200'000;
    unsigned batch = 256;
    unsigned batch_rows = 1000;
    unsigned devices = 16;
    unsigned run_length = 1;  // consecutive messages of one device before the next device's
    std::vector<std::string> synchronous{"full", "normal"};
    std::vector<std::string> modes{"store", "raw"};
    unsigned rounds = 3;  // each configuration this often, interleaved; the median counts
};

struct Result {
    std::string synchronous;
    std::string mode;
    std::uint64_t rows = 0;
    std::uint64_t transactions = 0;
    double seconds = 0;
};

// The same readings the load generator sends: device i, seq 1.., 16 channels; run_length
// messages of one device, then the next device's.
std::vector<ReadingBatch> make_messages(const Options& options) {
    std::vector<ReadingBatch> messages;
    const std::uint64_t count = (options.rows + options.batch - 1) / options.batch;
    std::vector<std::uint64_t> next_seq(options.devices, 1);
    for (std::uint64_t m = 0; m < count; ++m) {
        const unsigned device = static_cast<unsigned>((m / options.run_length) % options.devices);
        ReadingBatch batch;
        batch.device = fmt::format("lg-{:05}", device);
        batch.body.header.incarnation = 0x6c67'0000'0000'0000ULL + device;
        batch.body.header.first_seq = next_seq[device];
        batch.body.header.floor_seq = next_seq[device];
        batch.body.header.count = static_cast<std::uint16_t>(options.batch);
        for (unsigned i = 0; i < options.batch; ++i) {
            const std::uint64_t seq = next_seq[device] + i;
            batch.body.records.push_back(fieldlink::protocol::Record{
                static_cast<std::uint8_t>((seq - 1) % 16), (seq - 1) / 16, device + static_cast<double>(seq) * 0.25});
        }
        next_seq[device] += options.batch;
        messages.push_back(std::move(batch));
    }
    return messages;
}

void remove_database(const std::string& path) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Result run_one(const Options& options, const std::vector<ReadingBatch>& messages, const std::string& synchronous,
               const std::string& mode) {
    remove_database(options.db);
    StoreOptions store_options;
    store_options.path = options.db;
    store_options.synchronous = synchronous == "full" ? Synchronous::Full : Synchronous::Normal;
    SqliteStore store(store_options);
    fieldlink::gateway::sqlite::Statement raw_insert;
    if (mode == "raw") {
        raw_insert = store.database().prepare(
            "INSERT INTO readings"
            " (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    }
    Result result{synchronous, mode, 0, 0, 0};
    const auto start = std::chrono::steady_clock::now();
    std::size_t next = 0;
    while (next < messages.size()) {
        // A group as the saver closes it: messages until it holds batch_rows readings.
        std::size_t end = next;
        std::uint64_t rows = 0;
        while (end < messages.size() && rows < options.batch_rows) rows += messages[end++].body.records.size();
        const std::int64_t now = unix_ms();
        if (mode == "store") {
            auto transaction = store.begin();
            std::map<DeviceKey, std::uint64_t> watermarks;
            for (std::size_t m = next; m < end; ++m) {
                const ReadingBatch& batch = messages[m];
                const SeqRange all = seqs_of(batch);
                transaction->insert_readings(batch, {&all, 1}, std::nullopt, now);
                watermarks[DeviceKey{batch.device, batch.body.header.incarnation}] =
                    batch.body.header.first_seq + batch.body.records.size() - 1;
            }
            for (const auto& [key, watermark] : watermarks) transaction->save_watermark(key, watermark, {}, now);
            transaction->commit();
        } else {
            fieldlink::gateway::sqlite::Transaction transaction(store.database());
            for (std::size_t m = next; m < end; ++m) {
                const ReadingBatch& batch = messages[m];
                for (std::size_t i = 0; i < batch.body.records.size(); ++i) {
                    const auto& record = batch.body.records[i];
                    raw_insert.reset();
                    raw_insert.bind_text(1, batch.device)
                        .bind_int64(2, static_cast<std::int64_t>(batch.body.header.incarnation))
                        .bind_int64(3, static_cast<std::int64_t>(batch.body.header.first_seq + i))
                        .bind_int64(4, 0)
                        .bind_int64(5, record.channel)
                        .bind_int64(6, static_cast<std::int64_t>(record.mono_ms))
                        .bind_null(7)
                        .bind_double(8, record.value)
                        .bind_int64(9, now);
                    raw_insert.step();
                }
            }
            transaction.commit();
        }
        result.rows += rows;
        ++result.transactions;
        next = end;
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"fieldlink-bench-sqlite-ceiling: SQLite's insert rate for the saver's rows, no MQTT"};
    app.add_option("--db", options.db, "database file to create (replaced; put it on the gateway's disk)");
    app.add_option("--rows", options.rows, "readings per measurement");
    app.add_option("--batch", options.batch, "readings per message (1 to 512)");
    app.add_option("--batch-rows", options.batch_rows, "a transaction closes at this many readings (the saver's)");
    app.add_option("--devices", options.devices, "devices the messages take turns from");
    app.add_option("--run-length", options.run_length,
                   "messages of one device in a row (a device's window arrives together)");
    app.add_option("--rounds", options.rounds, "rounds of every configuration (the median is reported)");
    app.add_option("--synchronous", options.synchronous, "full and/or normal")
        ->check(CLI::IsMember({"full", "normal"}));
    app.add_option("--mode", options.modes, "store (the gateway's store library) and/or raw")
        ->check(CLI::IsMember({"store", "raw"}));
    CLI11_PARSE(app, argc, argv);
    try {
        if (options.batch == 0 || options.batch > 512 || options.devices == 0 || options.rows == 0 ||
            options.batch_rows == 0 || options.rounds == 0 || options.run_length == 0) {
            throw std::invalid_argument(
                "--batch must be 1 to 512; --rows, --devices, --batch-rows, --rounds at least 1");
        }
        const std::vector<ReadingBatch> messages = make_messages(options);
        // Rounds interleave the configurations, so that a burst of load elsewhere hits all of them alike.
        std::vector<std::pair<std::string, std::string>> configurations;
        for (const std::string& synchronous : options.synchronous) {
            for (const std::string& mode : options.modes) configurations.emplace_back(synchronous, mode);
        }
        std::vector<std::vector<Result>> results(configurations.size());
        for (unsigned round = 0; round < options.rounds; ++round) {
            for (std::size_t c = 0; c < configurations.size(); ++c) {
                results[c].push_back(run_one(options, messages, configurations[c].first, configurations[c].second));
            }
        }
        std::string runs;
        for (std::vector<Result>& rounds : results) {
            const auto rate = [](const Result& r) { return static_cast<double>(r.rows) / r.seconds; };
            std::string each;
            for (const Result& r : rounds) each += fmt::format("{}{:.0f}", each.empty() ? "" : ", ", rate(r));
            std::sort(rounds.begin(), rounds.end(),
                      [&](const Result& a, const Result& b) { return rate(a) < rate(b); });
            const Result& r = rounds[rounds.size() / 2];
            runs += fmt::format(
                "{}{{\"synchronous\": \"{}\", \"mode\": \"{}\", \"rows\": {}, \"transactions\": {}, "
                "\"rows_per_transaction\": {:.1f}, \"seconds\": {:.4f}, \"rows_per_s\": {:.0f}, "
                "\"ms_per_transaction\": {:.3f}, \"rounds_rows_per_s\": [{}]}}",
                runs.empty() ? "" : ", ", r.synchronous, r.mode, r.rows, r.transactions,
                static_cast<double>(r.rows) / static_cast<double>(r.transactions), r.seconds, rate(r),
                r.seconds * 1000 / static_cast<double>(r.transactions), each);
        }
        remove_database(options.db);
        fmt::print("{{\"batch\": {}, \"batch_rows\": {}, \"devices\": {}, \"run_length\": {}, \"runs\": [{}]}}\n",
                   options.batch, options.batch_rows, options.devices, options.run_length, runs);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fieldlink-bench-sqlite-ceiling: %s\n", e.what());
        return 1;
    }
}
