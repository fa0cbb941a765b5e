// fieldlink-bench-forward: the forwarder's throughput and its ceilings
// (docs/benchmarks.md, "Forwarding"). Every mode prints one JSON line for
// bench/run_forward.py.
//
//   make-db        a gateway database with N readings, written through the
//                  gateway's own SqliteStore (the real schema), D devices
//                  interleaved in batches like readers sending to the saver.
//   forward        the real Forwarder with the real MqttUpstream or
//                  PostgresUpstream, from a fresh cursor until the cursor
//                  passes the last reading.
//   paho-ceiling   a plain Paho async publisher: the same chunks, split and
//                  encoded by the upstream codec exactly as MqttUpstream does,
//                  all encoded before the clock starts, published at QoS 1
//                  with the same window of chunks and the same max_inflight.
//   read-encode    no network: the forwarder thread's own share for MQTT, reading
//                  the chunks from SQLite and encoding them, each timed apart.
//   copy-ceiling   a plain libpq binary COPY of the same rows (read and
//                  encoded before the clock starts) into a fresh table of the
//                  PostgreSQL upstream's layout, in one transaction (or one
//                  per --rows-per-transaction rows).
//
// Bytes: `payload_bytes` is what the upstream reports as sent (the cursor's
// bytes_sent: MQTT payloads after zstd, COPY data for PostgreSQL); `wire_bytes`
// is what the peer acknowledged on this process's TCP connection(s) to the
// server port (TCP_INFO tcpi_bytes_acked: protocol framing, topics and SQL
// included, TCP/IP headers not).
//
// For benchmarks only.
#include <arpa/inet.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mqtt/async_client.h>

#include "fieldlink/gateway/forward/forwarder.hpp"
#include "fieldlink/gateway/forward/mqtt/mqtt_upstream.hpp"
#include "fieldlink/gateway/forward/postgres_copy.hpp"
#include "fieldlink/gateway/forward/postgres_upstream.hpp"
#include "fieldlink/gateway/forward/upstream_codec.hpp"
#include "fieldlink/gateway/ingest/clock.hpp"
#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/gateway/ingest/tcp_nodelay.hpp"
#include "fieldlink/gateway/store/forward_store.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace {

using namespace fieldlink::gateway;
using Steady = std::chrono::steady_clock;

constexpr std::string_view kTopic = "fieldlink/v1/{gateway}/{device}/forward";

struct Options {
    std::string db = "bench-forward.db";
    // make-db
    std::int64_t rows = 1'000'000;
    int devices = 4;
    int device_batch = 256;
    // forward / ceilings
    std::string upstream = "mqtt";
    std::string uri = "tcp://127.0.0.1:1883";
    std::string conninfo;
    std::string table = "fieldlink_readings";
    std::string gateway_id = "gw-bench";
    std::size_t batch_rows = ForwarderSettings{}.batch_rows;
    std::size_t window = MqttUpstreamSettings{}.window;
    int max_inflight = MqttUpstreamSettings{}.max_inflight;
    std::size_t pg_window = PostgresUpstreamSettings{}.window;
    std::size_t read_ahead = ForwarderSettings{}.read_ahead_chunks;
    int zstd_level = 0;
    std::int64_t rows_per_transaction = 0;
    double timeout_s = 600;
    std::string log_level = "warn";
};

double seconds_since(Steady::time_point start) { return std::chrono::duration<double>(Steady::now() - start).count(); }

// Bytes the peer acknowledged on every TCP socket of this process whose peer port is `port`.
std::uint64_t wire_bytes_to_port(int port) {
    std::uint64_t total = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    while (const dirent* entry = ::readdir(dir)) {
        const int fd = std::atoi(entry->d_name);
        if (fd <= 2) continue;
        sockaddr_storage peer{};
        socklen_t length = sizeof(peer);
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) continue;
        int peer_port = -1;
        if (peer.ss_family == AF_INET) peer_port = ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port);
        if (peer.ss_family == AF_INET6) peer_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port);
        if (peer_port != port) continue;
        tcp_info info{};
        socklen_t info_length = sizeof(info);
        if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_length) == 0) total += info.tcpi_bytes_acked;
    }
    ::closedir(dir);
    return total;
}

int port_of_conninfo(const std::string& conninfo) {
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
    int port = 5432;
    for (PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o) {
        if (std::string_view(o->keyword) == "port" && o->val != nullptr) port = std::atoi(o->val);
    }
    PQconninfoFree(options);
    return port;
}

// --- make-db ---------------------------------------------------------------------------

// A temperature-like signal: slow sine per channel plus noise, quantised to 0.01
// (what an ADC-backed sensor reports), so zstd sees realistic rather than constant values.
double sample_value(std::uint64_t seq, std::uint8_t channel, std::uint64_t& noise) {
    noise = noise * 6364136223846793005ULL + 1442695040888963407ULL;
    const double jitter = static_cast<double>((noise >> 40) % 1000) / 1000.0 - 0.5;
    const double t = static_cast<double>(seq) / 16.0;
    const double v = 20.0 + 5.0 * std::sin(t / 60000.0 * 6.283185307 + channel) + 0.2 * jitter;
    return std::round(v * 100.0) / 100.0;
}

int make_db(const Options& o) {
    StoreOptions options;
    options.path = o.db;
    options.synchronous = Synchronous::Normal;  // building the fixture, not measured
    SqliteStore store(options);
    SystemClock clock;
    const auto start = Steady::now();
    const std::int64_t wall_offset = clock.unix_ms() - 3'600'000;
    std::vector<std::uint64_t> next_seq(static_cast<std::size_t>(o.devices), 1);
    std::uint64_t noise = 42;
    std::int64_t written = 0;
    int batches_in_transaction = 0;
    std::unique_ptr<StoreTransaction> transaction = store.begin();
    for (int turn = 0; written < o.rows; ++turn) {
        const auto d = static_cast<std::size_t>(turn % o.devices);
        ReadingBatch batch;
        batch.device = fmt::format("bench-dev-{}", d);
        const std::int64_t count = std::min<std::int64_t>(o.device_batch, o.rows - written);
        fieldlink::protocol::BatchHeader& header = batch.body.header;
        header.incarnation = 0x5eed'0000'0000'0000ULL + d;
        header.first_seq = next_seq[d];
        header.floor_seq = next_seq[d];
        header.boot = 1;
        header.wall_offset_ms = wall_offset;
        header.offset_known = true;
        header.count = static_cast<std::uint16_t>(count);
        for (std::int64_t i = 0; i < count; ++i) {
            const std::uint64_t seq = next_seq[d] + static_cast<std::uint64_t>(i);
            const auto channel = static_cast<std::uint8_t>((seq - 1) % 16);
            batch.body.records.push_back({channel, (seq - 1) / 16, sample_value(seq, channel, noise)});
        }
        next_seq[d] += static_cast<std::uint64_t>(count);
        const SeqRange all = seqs_of(batch);
        written +=
            static_cast<std::int64_t>(transaction->insert_readings(batch, {&all, 1}, wall_offset, clock.unix_ms()));
        if (++batches_in_transaction == 16) {
            transaction->commit();
            transaction = store.begin();
            batches_in_transaction = 0;
        }
    }
    transaction->commit();
    transaction.reset();
    fmt::print("{{\"mode\": \"make-db\", \"rows\": {}, \"devices\": {}, \"device_batch\": {}, \"seconds\": {:.3f}}}\n",
               written, o.devices, o.device_batch, seconds_since(start));
    return 0;
}

// --- reading the backlog ------------------------------------------------------------------

std::vector<std::vector<ForwardRow>> read_chunks(const Options& o) {
    ForwardStore store(o.db, 5000);
    std::vector<std::vector<ForwardRow>> chunks;
    std::int64_t next = 1;
    for (;;) {
        std::vector<ForwardRow> rows = store.read_rows(next, 0, o.batch_rows);
        if (rows.empty()) break;
        next = rows.back().id + 1;
        chunks.push_back(std::move(rows));
    }
    return chunks;
}

// --- forward ---------------------------------------------------------------------------

int forward(const Options& o) {
    Logger log(*parse_log_level(o.log_level));
    SystemClock clock;
    std::int64_t last_id = 0;
    std::int64_t rows = 0;
    {
        ForwardStore store(o.db, 5000);
        last_id = store.last_row_id();
        rows = store.count_rows(1, last_id + 1);
        if (store.load_cursor(o.upstream).next_id != 1) throw std::runtime_error("the database has a cursor already");
    }
    std::unique_ptr<Upstream> upstream;
    int port = 0;
    if (o.upstream == "mqtt") {
        MqttUpstreamSettings s;
        s.name = "mqtt";
        s.uri = o.uri;
        s.client_id = "fieldlink-forward-" + o.gateway_id + "-mqtt";
        s.gateway_id = o.gateway_id;
        s.zstd_level = o.zstd_level;
        s.window = o.window;
        s.max_inflight = o.max_inflight;
        port = plain_tcp_port(o.uri).value_or(1883);
        upstream = std::make_unique<MqttUpstream>(s);
    } else {
        PostgresUpstreamSettings s;
        s.name = "postgres";
        s.conninfo = o.conninfo;
        s.gateway_id = o.gateway_id;
        s.table = o.table;
        s.window = o.pg_window;
        port = port_of_conninfo(o.conninfo);
        upstream = std::make_unique<PostgresUpstream>(s);
    }
    ForwarderSettings settings;
    settings.db_path = o.db;
    settings.batch_rows = o.batch_rows;
    settings.read_ahead_chunks = o.read_ahead;
    Forwarder forwarder(settings, std::move(upstream), clock, log);
    const auto start = Steady::now();
    forwarder.start();
    ForwarderStatus status;
    double connected_s = -1;
    for (;;) {
        status = forwarder.status();
        if (connected_s < 0 && status.connected) connected_s = seconds_since(start);
        if (status.cursor.next_id > last_id && !status.cursor.live_from_id) break;
        if (seconds_since(start) > o.timeout_s) throw std::runtime_error("timed out: " + status.last_error);
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    const double seconds = seconds_since(start);
    const std::uint64_t wire = wire_bytes_to_port(port);
    forwarder.stop();
    fmt::print(
        "{{\"mode\": \"forward\", \"upstream\": \"{}\", \"rows\": {}, \"forwarded_rows\": {}, \"seconds\": {:.4f}, "
        "\"connected_after_s\": {:.4f}, \"readings_per_s\": {:.0f}, \"batch_rows\": {}, \"window\": {}, "
        "\"max_inflight\": {}, \"zstd_level\": {}, \"chunks_failed\": {}, \"batches\": {}, \"payload_bytes\": {}, "
        "\"wire_bytes\": {}, \"read_ahead\": {}, \"chunks_read_ahead\": {}}}\n",
        o.upstream, rows, status.cursor.forwarded_rows, seconds, connected_s, static_cast<double>(rows) / seconds,
        o.batch_rows, o.upstream == "mqtt" ? o.window : o.pg_window, o.max_inflight, o.zstd_level, status.chunks_failed,
        status.cursor.forwarded_batches, status.cursor.bytes_sent, wire, o.read_ahead, status.chunks_read_ahead);
    return status.cursor.forwarded_rows == static_cast<std::uint64_t>(rows) && status.chunks_failed == 0 ? 0 : 1;
}

// --- paho-ceiling ----------------------------------------------------------------------------

struct EncodedChunk {
    std::vector<std::pair<std::string, std::string>> messages;  // topic, payload
};

std::string topic_for(const Options& o, const std::string& device) {
    std::string topic(kTopic);
    topic.replace(topic.find("{gateway}"), 9, o.gateway_id);
    topic.replace(topic.find("{device}"), 8, device);
    return topic;
}

// MqttUpstream's split: per device in order of first appearance, at most
// max_batch_rows per message, halved until under max_message_bytes.
void encode_within_limit(const Options& o, const std::string& topic, const std::string& device,
                         std::span<const ForwardRow> rows, EncodedChunk& out) {
    const MqttUpstreamSettings defaults;
    std::vector<std::uint8_t> payload = encode_forward_batch(ForwardEncoding::Binary, o.gateway_id, device, rows);
    if (o.zstd_level > 0) payload = zstd_compress(payload, o.zstd_level);
    if (payload.size() > defaults.max_message_bytes && rows.size() > 1) {
        encode_within_limit(o, topic, device, rows.first(rows.size() / 2), out);
        encode_within_limit(o, topic, device, rows.subspan(rows.size() / 2), out);
        return;
    }
    out.messages.emplace_back(topic, std::string(payload.begin(), payload.end()));
}

EncodedChunk encode_chunk(const Options& o, const std::vector<ForwardRow>& rows) {
    std::vector<std::pair<std::string, std::vector<ForwardRow>>> devices;
    std::unordered_map<std::string, std::size_t> index;
    for (const ForwardRow& row : rows) {
        const auto [it, added] = index.try_emplace(row.device, devices.size());
        if (added) devices.emplace_back(row.device, std::vector<ForwardRow>{});
        devices[it->second].second.push_back(row);
    }
    EncodedChunk chunk;
    const std::size_t max_rows = MqttUpstreamSettings{}.max_batch_rows;
    for (const auto& [device, device_rows] : devices) {
        const std::string topic = topic_for(o, device);
        const std::span<const ForwardRow> all(device_rows);
        for (std::size_t first = 0; first < all.size(); first += max_rows) {
            encode_within_limit(o, topic, device, all.subspan(first, std::min(max_rows, all.size() - first)), chunk);
        }
    }
    return chunk;
}

// At most `window` chunks unacknowledged; a chunk ends with the PUBACK of its last message.
class ChunkWindow final : public mqtt::iaction_listener {
public:
    ChunkWindow(std::size_t window, std::size_t chunks) : window_(window), unacked_(chunks) {}

    void begin(std::size_t chunk, std::size_t messages) {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return outstanding_ < window_ || failed_; });
        if (failed_) throw std::runtime_error("a publish failed");
        ++outstanding_;
        unacked_[chunk] = messages;
    }
    void wait_all() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return outstanding_ == 0 || failed_; });
        if (failed_) throw std::runtime_error("a publish failed");
    }

    void on_success(const mqtt::token& token) override {
        const auto chunk = reinterpret_cast<std::uintptr_t>(token.get_user_context());
        std::lock_guard lock(mutex_);
        if (--unacked_[chunk] == 0) {
            --outstanding_;
            cv_.notify_all();
        }
    }
    void on_failure(const mqtt::token&) override {
        std::lock_guard lock(mutex_);
        failed_ = true;
        cv_.notify_all();
    }

private:
    const std::size_t window_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::size_t outstanding_ = 0;
    std::vector<std::size_t> unacked_;
    bool failed_ = false;
};

int paho_ceiling(const Options& o) {
    const std::vector<std::vector<ForwardRow>> rows = read_chunks(o);
    std::vector<EncodedChunk> chunks;
    std::uint64_t payload_bytes = 0;
    std::size_t message_count = 0;
    std::int64_t readings = 0;
    for (const auto& chunk_rows : rows) {
        chunks.push_back(encode_chunk(o, chunk_rows));
        readings += static_cast<std::int64_t>(chunk_rows.size());
        for (const auto& m : chunks.back().messages) payload_bytes += m.second.size();
        message_count += chunks.back().messages.size();
    }
    // The MqttUpstream's client and connection options.
    mqtt::async_client client(o.uri, "fieldlink-bench-paho-ceiling",
                              mqtt::create_options_builder()
                                  .mqtt_version(MQTTVERSION_3_1_1)
                                  .send_while_disconnected(false)
                                  .max_buffered_messages(std::numeric_limits<int>::max())
                                  .finalize(),
                              static_cast<mqtt::iclient_persistence*>(nullptr));
    mqtt::connect_options connect;
    connect.set_mqtt_version(MQTTVERSION_3_1_1);
    connect.set_clean_session(false);
    connect.set_keep_alive_interval(MqttUpstreamSettings{}.keep_alive_s);
    connect.set_automatic_reconnect(false);
    connect.set_max_inflight(o.max_inflight);
    client.connect(connect)->wait();
    set_nodelay_to_peer_port(plain_tcp_port(o.uri).value_or(1883));

    ChunkWindow window(o.window, chunks.size());
    const auto start = Steady::now();
    for (std::size_t c = 0; c < chunks.size(); ++c) {
        window.begin(c, chunks[c].messages.size());
        for (auto& [topic, payload] : chunks[c].messages) {
            client.publish(mqtt::message::create(topic, std::move(payload), 1, false), reinterpret_cast<void*>(c),
                           window);
        }
    }
    window.wait_all();
    const double seconds = seconds_since(start);
    const std::uint64_t wire = wire_bytes_to_port(plain_tcp_port(o.uri).value_or(1883));
    client.disconnect()->wait();
    fmt::print(
        "{{\"mode\": \"paho-ceiling\", \"rows\": {}, \"seconds\": {:.4f}, \"readings_per_s\": {:.0f}, \"chunks\": {}, "
        "\"messages\": {}, \"batch_rows\": {}, \"window\": {}, \"max_inflight\": {}, \"zstd_level\": {}, "
        "\"payload_bytes\": {}, \"wire_bytes\": {}}}\n",
        readings, seconds, static_cast<double>(readings) / seconds, chunks.size(), message_count, o.batch_rows,
        o.window, o.max_inflight, o.zstd_level, payload_bytes, wire);
    return 0;
}

// --- read-encode -------------------------------------------------------------------------

// The forwarder thread's own work for MQTT without any network: read every chunk from SQLite
// (ForwardStore, as the forwarder does) and encode it as MqttUpstream does, timed apart.
int read_encode(const Options& o) {
    ForwardStore store(o.db, 5000);
    double read_s = 0;
    double encode_s = 0;
    std::int64_t readings = 0;
    std::uint64_t bytes = 0;
    std::int64_t next = 1;
    for (;;) {
        auto start = Steady::now();
        std::vector<ForwardRow> rows = store.read_rows(next, 0, o.batch_rows);
        read_s += seconds_since(start);
        if (rows.empty()) break;
        next = rows.back().id + 1;
        readings += static_cast<std::int64_t>(rows.size());
        start = Steady::now();
        const EncodedChunk chunk = encode_chunk(o, rows);
        encode_s += seconds_since(start);
        for (const auto& m : chunk.messages) bytes += m.second.size();
    }
    fmt::print(
        "{{\"mode\": \"read-encode\", \"rows\": {}, \"read_s\": {:.4f}, \"encode_s\": {:.4f}, "
        "\"read_per_s\": {:.0f}, \"encode_per_s\": {:.0f}, \"readings_per_s\": {:.0f}, \"zstd_level\": {}, "
        "\"payload_bytes\": {}}}\n",
        readings, read_s, encode_s, static_cast<double>(readings) / read_s, static_cast<double>(readings) / encode_s,
        static_cast<double>(readings) / (read_s + encode_s), o.zstd_level, bytes);
    return 0;
}

// --- copy-ceiling -----------------------------------------------------------------------------

struct PgConn {
    explicit PgConn(const std::string& conninfo) : conn(PQconnectdb(conninfo.c_str())) {
        if (PQstatus(conn) != CONNECTION_OK) throw std::runtime_error(std::string("connect: ") + PQerrorMessage(conn));
        PQsetNoticeProcessor(
            conn, [](void*, const char*) {}, nullptr);
    }
    ~PgConn() { PQfinish(conn); }
    PgConn(const PgConn&) = delete;
    PgConn& operator=(const PgConn&) = delete;

    void exec(const std::string& sql, ExecStatusType want = PGRES_COMMAND_OK) const {
        PGresult* r = PQexec(conn, sql.c_str());
        const bool ok = PQresultStatus(r) == want;
        const std::string error = ok ? std::string() : PQresultErrorMessage(r);
        PQclear(r);
        if (!ok) throw std::runtime_error(sql.substr(0, 40) + ": " + error);
    }
    PGconn* conn;
};

int copy_ceiling(const Options& o) {
    const std::vector<std::vector<ForwardRow>> chunks = read_chunks(o);
    const std::size_t per_transaction = o.rows_per_transaction > 0 ? static_cast<std::size_t>(o.rows_per_transaction)
                                                                   : std::numeric_limits<std::size_t>::max();
    // The COPY data of each transaction, encoded before the clock starts: all ten columns
    // the upstream fills (stored_at keeps its default).
    std::vector<std::string> transactions;
    std::uint64_t copy_bytes = 0;
    std::int64_t readings = 0;
    CopyBinaryWriter writer;
    for (const auto& chunk : chunks) {
        for (const ForwardRow& row : chunk) {
            writer.begin_row(10);
            writer.add_text(o.gateway_id);
            writer.add_text(row.device);
            writer.add_int64(static_cast<std::int64_t>(row.incarnation));
            writer.add_int64(static_cast<std::int64_t>(row.seq));
            writer.add_int64(static_cast<std::int64_t>(row.boot));
            writer.add_int16(static_cast<std::int16_t>(row.channel));
            writer.add_int64(static_cast<std::int64_t>(row.mono_ms));
            if (row.unix_ms) {
                writer.add_int64(*row.unix_ms);
            } else {
                writer.add_null();
            }
            writer.add_float8(row.value);
            writer.add_int64(row.received_unix_ms);
            ++readings;
            if (writer.rows() == per_transaction) {
                transactions.push_back(writer.finish());
                copy_bytes += transactions.back().size();
            }
        }
    }
    if (writer.rows() > 0) {
        transactions.push_back(writer.finish());
        copy_bytes += transactions.back().size();
    }

    PgConn pg(o.conninfo);
    // The layout of the PostgreSQL upstream's schema version 1 (postgres_upstream.hpp).
    pg.exec("DROP TABLE IF EXISTS " + o.table);
    pg.exec("CREATE TABLE " + o.table +
            " (gateway text NOT NULL, device text NOT NULL, incarnation bigint NOT NULL,"
            " seq bigint NOT NULL, boot bigint NOT NULL, channel smallint NOT NULL,"
            " mono_ms bigint NOT NULL, unix_ms bigint, value double precision NOT NULL,"
            " received_unix_ms bigint NOT NULL, stored_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (gateway, device, incarnation, seq))");
    pg.exec("CHECKPOINT");
    const std::string copy_sql = "COPY " + o.table +
                                 " (gateway, device, incarnation, seq, boot, channel, mono_ms, unix_ms, value,"
                                 " received_unix_ms) FROM STDIN (FORMAT binary)";
    const auto start = Steady::now();
    for (const std::string& data : transactions) {
        pg.exec("BEGIN");
        pg.exec(copy_sql, PGRES_COPY_IN);
        constexpr std::size_t kPiece = 1 << 20;
        for (std::size_t at = 0; at < data.size(); at += kPiece) {
            const std::size_t n = std::min(kPiece, data.size() - at);
            if (PQputCopyData(pg.conn, data.data() + at, static_cast<int>(n)) != 1) {
                throw std::runtime_error(std::string("COPY data: ") + PQerrorMessage(pg.conn));
            }
        }
        if (PQputCopyEnd(pg.conn, nullptr) != 1) throw std::runtime_error(PQerrorMessage(pg.conn));
        PGresult* r = PQgetResult(pg.conn);
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        const std::string error = PQresultErrorMessage(r);
        PQclear(r);
        while ((r = PQgetResult(pg.conn)) != nullptr) PQclear(r);
        if (!ok) throw std::runtime_error("COPY: " + error);
        pg.exec("COMMIT");
    }
    const double seconds = seconds_since(start);
    const std::uint64_t wire = wire_bytes_to_port(port_of_conninfo(o.conninfo));
    fmt::print(
        "{{\"mode\": \"copy-ceiling\", \"rows\": {}, \"seconds\": {:.4f}, \"readings_per_s\": {:.0f}, "
        "\"transactions\": {}, \"copy_bytes\": {}, \"wire_bytes\": {}}}\n",
        readings, seconds, static_cast<double>(readings) / seconds, transactions.size(), copy_bytes, wire);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "fieldlink-bench-forward: the forwarder's throughput to MQTT and PostgreSQL, and the ceilings it is\n"
        "compared with. Prints one JSON line. For benchmarks only (bench/run_forward.py)."};
    app.option_defaults()->always_capture_default();
    app.require_subcommand(1);
    auto* make = app.add_subcommand("make-db", "Write a gateway database of --rows readings (SqliteStore)");
    auto* fwd = app.add_subcommand("forward", "Run the Forwarder until the cursor passes the last reading");
    auto* paho = app.add_subcommand("paho-ceiling", "Publish the same chunks with a plain Paho client");
    auto* copy = app.add_subcommand("copy-ceiling", "COPY the same rows into a fresh table of the same layout");
    auto* encode = app.add_subcommand("read-encode", "Read and encode the chunks as for MQTT, no network");
    for (CLI::App* sub : {make, fwd, paho, copy, encode}) {
        sub->add_option("--db", o.db, "The gateway database");
    }
    make->add_option("--rows", o.rows, "Readings")->check(CLI::Range(1LL, 1'000'000'000LL));
    make->add_option("--devices", o.devices, "Devices, interleaved")->check(CLI::Range(1, 10000));
    make->add_option("--device-batch", o.device_batch, "Readings per device batch")->check(CLI::Range(1, 4096));
    for (CLI::App* sub : {fwd, paho, copy, encode}) {
        sub->add_option("--batch-rows", o.batch_rows, "Readings per chunk (the forwarder's batch_rows)")
            ->check(CLI::Range(1, 100000));
        sub->add_option("--gateway-id", o.gateway_id, "Gateway id in every payload or row");
        sub->add_option("--timeout", o.timeout_s, "Give up after this many seconds");
    }
    fwd->add_option("--upstream", o.upstream, "mqtt or postgres")->check(CLI::IsMember({"mqtt", "postgres"}));
    fwd->add_option("--log-level", o.log_level, "error, warn, info or debug");
    fwd->add_option("--pg-window", o.pg_window, "PostgreSQL upstream window")->check(CLI::Range(1, 16));
    fwd->add_option("--read-ahead", o.read_ahead, "Chunks the forwarder reads ahead, 0 = off")
        ->check(CLI::Range(0, 64));
    encode->add_option("--zstd", o.zstd_level, "zstd level, 0 = off")->check(CLI::Range(0, 19));
    for (CLI::App* sub : {fwd, paho}) {
        sub->add_option("--uri", o.uri, "MQTT broker URI");
        sub->add_option("--window", o.window, "Chunks outstanding at once")->check(CLI::Range(1, 64));
        sub->add_option("--max-inflight", o.max_inflight, "Paho max_inflight")->check(CLI::Range(1, 65535));
        sub->add_option("--zstd", o.zstd_level, "zstd level, 0 = off")->check(CLI::Range(0, 19));
    }
    for (CLI::App* sub : {fwd, copy}) {
        sub->add_option("--conninfo", o.conninfo, "libpq conninfo");
        sub->add_option("--table", o.table, "Target table");
    }
    copy->add_option("--rows-per-transaction", o.rows_per_transaction, "0: one transaction for all rows");
    CLI11_PARSE(app, argc, argv);
    try {
        if (make->parsed()) return make_db(o);
        if (fwd->parsed()) return forward(o);
        if (paho->parsed()) return paho_ceiling(o);
        if (encode->parsed()) return read_encode(o);
        return copy_ceiling(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fieldlink-bench-forward: %s\n", e.what());
        return 1;
    }
}
