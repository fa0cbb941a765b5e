// fieldlink-loadgen: N simulated devices from one process, for benchmarks and the load test.
//
// Each device has its own id, incarnation, sequence numbers, MQTT connection and ack
// subscription, and behaves like the reader (firmware/core delivery_window.cpp, docs/protocol.md
// §8): at most --window batches in flight (published, not yet covered by a commit ack), floor_seq
// = watermark + 1, an ack accepted only for its incarnation, above its watermark and below what
// was sent; when the watermark has not moved for --ack-timeout-ms it empties the window and
// resends from the watermark. Batches are encoded with the project's codec before the clock
// starts; readings are produced at --rate per device or as fast as the acks allow (--rate 0).
// Prints one JSON line: counts, resends and the commit-ack latency of every batch (first send to
// the ack that covered it).
//
// Why not Paho: its async C client serves every client of a process from one send and one
// receive thread under one global lock and allocates a message, a command and a token per
// publish; at 10,000 clients that machinery, not the gateway, would be measured. Here every
// connection is a non-blocking socket on one epoll instance per thread, MQTT 3.1.1 framed by the
// reader's own packet codec (fieldlink::reader_core, fieldlink/mqtt/packet.hpp): a device costs
// one file descriptor, its pre-encoded batches and a few hundred bytes, a publish one write().
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <memory>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "fieldlink/mqtt/packet.hpp"
#include "fieldlink/protocol/codec.hpp"
#include "fieldlink/protocol/topics.hpp"

namespace {

namespace protocol = fieldlink::protocol;
namespace mqtt = fieldlink::mqtt;

using Nanos = std::int64_t;

Nanos now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

constexpr Nanos kMs = 1'000'000;
constexpr Nanos kSecond = 1'000'000'000;

struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 1883;
    unsigned devices = 1;
    std::string prefix = "lg";
    unsigned window = 4;
    unsigned batch = 32;
    std::uint64_t batches = 100;  // per device: the pre-encoded budget
    double rate = 0;              // readings/s per device; 0 = as fast as acks allow
    double duration_s = 0;        // stop producing after this long (0: when the budget is sent)
    unsigned ack_timeout_ms = 5000;
    unsigned channels = 16;
    unsigned connect_parallel = 200;  // connections being set up at once
    unsigned threads = 1;
    unsigned keepalive_s = 60;
    double connect_timeout_s = 120;
    double drain_timeout_s = 60;  // after producing stops: wait this long for the last acks
    double timeout_s = 600;       // from the start of publishing: give up (acks that never come)
    std::uint64_t seed = 1;
    std::uint64_t start_seq = 1;  // first seq of every device (a later run of the same incarnations)
    bool no_birth = false;
    bool floor_one = false;  // floor_seq 1 on every batch: the gateway must know what it stored before
    std::string dump_acked;
    std::string dump_unacked;
};

// A device's MQTT connection and delivery state. Owned by one shard (thread).
struct Device {
    enum class State { Idle, Connecting, WaitConnack, WaitSuback, Running, Backoff };

    unsigned index = 0;
    std::string id;
    std::string up_topic;
    std::string ack_topic;
    std::uint64_t incarnation = 0;

    // Pre-encoded batches: batch k holds seqs start_seq + k*B .. start_seq + (k+1)*B - 1.
    std::vector<std::uint8_t> encoded;  // all batches; each batch_size bytes (first/floor patched at send)
    std::size_t batch_size = 0;
    std::vector<Nanos> first_sent;  // per batch, 0 = never sent

    State state = State::Idle;
    int fd = -1;
    std::vector<std::uint8_t> rx;
    std::vector<std::uint8_t> tx;
    std::size_t tx_head = 0;
    bool want_write = false;
    std::uint16_t next_packet_id = 1;
    Nanos state_since = 0;
    Nanos last_tx = 0;
    Nanos retry_at = 0;

    // Delivery window, as the reader's: watermark W, batches [acked_batches, next_batch) in flight.
    std::uint64_t watermark = 0;     // highest accepted ack watermark (start_seq - 1 at first)
    std::uint64_t next_batch = 0;    // next batch index to send
    std::uint64_t highest_sent = 0;  // highest batch index + 1 ever sent
    Nanos last_progress = 0;         // when the watermark last moved (or the window was started)
    std::uint64_t produced = 0;      // batches that exist (rate mode: grows with time)
    Nanos phase = 0;                 // rate mode: offset of this device's production schedule
    std::uint64_t wake_generation = 0;
};

struct Counters {
    std::uint64_t batches_sent = 0;  // first sends
    std::uint64_t batches_resent = 0;
    std::uint64_t batches_acked = 0;
    std::uint64_t readings_acked = 0;
    std::uint64_t acks_received = 0;
    std::uint64_t acks_ignored = 0;  // other incarnation, not above the watermark, or ahead of what was sent
    std::uint64_t rewinds = 0;       // ack timeouts that emptied a window
    std::uint64_t disconnects = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t behind_max = 0;           // rate mode: most batches produced but not yet sent by one device
    std::vector<std::uint32_t> latency_us;  // one per acked batch
    Nanos first_ack = 0;
    Nanos last_ack = 0;
};

void add_into(Counters& total, const Counters& c) {
    total.batches_sent += c.batches_sent;
    total.batches_resent += c.batches_resent;
    total.batches_acked += c.batches_acked;
    total.readings_acked += c.readings_acked;
    total.acks_received += c.acks_received;
    total.acks_ignored += c.acks_ignored;
    total.rewinds += c.rewinds;
    total.disconnects += c.disconnects;
    total.connect_failures += c.connect_failures;
    total.bytes_sent += c.bytes_sent;
    total.behind_max = std::max(total.behind_max, c.behind_max);
    total.latency_us.insert(total.latency_us.end(), c.latency_us.begin(), c.latency_us.end());
    if (c.first_ack != 0 && (total.first_ack == 0 || c.first_ack < total.first_ack)) total.first_ack = c.first_ack;
    total.last_ack = std::max(total.last_ack, c.last_ack);
}

void set_u64(std::uint8_t* at, std::uint64_t value) {
    for (int i = 0; i < 8; ++i) at[i] = static_cast<std::uint8_t>(value >> (8 * i));
}

void set_u32(std::uint8_t* at, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) at[i] = static_cast<std::uint8_t>(value >> (8 * i));
}

// Offsets in the batch layout (docs/protocol.md §3) patched at send time: floor_seq and the CRC.
constexpr std::size_t kFloorSeqOffset = 20;

// Start barrier shared by the shards: publishing begins when every device is subscribed.
struct Barrier {
    std::atomic<unsigned> ready{0};
    std::atomic<Nanos> start{0};
    std::atomic<bool> failed{false};
};

class Shard {
public:
    Shard(const Options& options, std::vector<unsigned> indices, Barrier& barrier, unsigned total_devices)
        : options_(options), barrier_(barrier), total_devices_(total_devices) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
        devices_.reserve(indices.size());
        for (unsigned index : indices) devices_.push_back(make_device(index));
    }
    ~Shard() {
        for (Device& d : devices_) close_fd(d);
        if (epoll_ >= 0) close(epoll_);
    }
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;

    void run();
    const Counters& counters() const { return counters_; }
    const std::vector<Device>& devices() const { return devices_; }
    const std::string& error() const { return error_; }

private:
    Device make_device(unsigned index);
    void start_connect(Device& d, Nanos now);
    void close_fd(Device& d);
    void drop_connection(Device& d, Nanos now, const char* why);
    void on_readable(Device& d, Nanos now);
    void on_packet(Device& d, const mqtt::Packet& packet, Nanos now);
    void on_ack(Device& d, const std::uint8_t* payload, std::size_t length, Nanos now);
    bool queue_bytes(Device& d, const std::uint8_t* data, std::size_t length);
    void flush(Device& d, Nanos now);
    void update_interest(Device& d);
    // Sends what the window allows, handles the ack timeout; returns when it next needs a look.
    Nanos service(Device& d, Nanos now);
    void schedule(Device& d, Nanos at);
    std::uint16_t take_packet_id(Device& d);
    bool producing_done(Nanos now) const;
    bool all_done(Nanos now) const;
    bool all_sent() const;
    void check_setup_timeouts(Nanos now);

    const Options& options_;
    Barrier& barrier_;
    const unsigned total_devices_;
    int epoll_ = -1;
    std::vector<Device> devices_;
    Counters counters_;
    std::string error_;
    unsigned setting_up_ = 0;  // devices between connect() and SUBACK
    std::deque<unsigned> connect_queue_;
    bool counted_ready_ = false;
    unsigned subscribed_ = 0;
    Nanos start_ = 0;
    std::vector<std::uint8_t> scratch_ = std::vector<std::uint8_t>(64 * 1024);

    struct Wake {
        Nanos at;
        unsigned slot;
        std::uint64_t generation;
        bool operator>(const Wake& other) const { return at > other.at; }
    };
    std::priority_queue<Wake, std::vector<Wake>, std::greater<>> wakes_;
};

Device Shard::make_device(unsigned index) {
    Device d;
    d.index = index;
    d.id = fmt::format("{}-{:05}", options_.prefix, index);
    if (!protocol::is_valid_device_id(d.id.data(), d.id.size())) {
        throw std::invalid_argument(fmt::format("device id '{}' is not valid (docs/protocol.md §1)", d.id));
    }
    d.up_topic = fmt::format("fieldlink/v1/{}/up", d.id);
    d.ack_topic = fmt::format("fieldlink/v1/{}/ack", d.id);
    std::mt19937_64 random(options_.seed * 0x9e37'79b9'7f4a'7c15ULL + index);
    do d.incarnation = random();
    while (d.incarnation == 0);

    // Every batch encoded now, so that no encoding happens while the clock runs.
    d.batch_size = protocol::kBatchHeaderSize + options_.batch * protocol::kRecordSize + protocol::kCrcSize;
    d.encoded.resize(d.batch_size * options_.batches);
    std::vector<protocol::Record> records(options_.batch);
    for (std::uint64_t k = 0; k < options_.batches; ++k) {
        const std::uint64_t first = options_.start_seq + k * options_.batch;
        for (unsigned i = 0; i < options_.batch; ++i) {
            const std::uint64_t seq = first + i;
            records[i].channel = static_cast<std::uint8_t>((seq - 1) % options_.channels);
            records[i].mono_ms = (seq - 1) / options_.channels;
            records[i].value = static_cast<double>(index) + static_cast<double>(seq) * 0.25;
        }
        protocol::BatchHeader header;
        header.incarnation = d.incarnation;
        header.first_seq = first;
        header.floor_seq = first;  // patched at send time to watermark + 1
        header.count = static_cast<std::uint16_t>(options_.batch);
        std::size_t written = 0;
        if (protocol::encode_batch(header, records.data(), d.encoded.data() + k * d.batch_size, d.batch_size,
                                   &written) != protocol::CodecResult::Ok ||
            written != d.batch_size) {
            throw std::runtime_error("cannot encode a batch");
        }
    }
    d.first_sent.assign(options_.batches, 0);
    d.watermark = options_.start_seq - 1;
    return d;
}

void Shard::close_fd(Device& d) {
    if (d.fd >= 0) {
        epoll_ctl(epoll_, EPOLL_CTL_DEL, d.fd, nullptr);
        close(d.fd);
        d.fd = -1;
    }
    d.rx.clear();
    d.tx.clear();
    d.tx_head = 0;
    d.want_write = false;
}

void Shard::start_connect(Device& d, Nanos now) {
    d.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d.fd < 0) throw std::system_error(errno, std::generic_category(), "socket (raise ulimit -n?)");
    const int one = 1;
    setsockopt(d.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as the reader: small packets go at once
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(options_.port);
    if (inet_pton(AF_INET, options_.host.c_str(), &address.sin_addr) != 1) {
        throw std::invalid_argument("--host must be an IPv4 address");
    }
    ++setting_up_;
    d.state = Device::State::Connecting;
    d.state_since = now;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT;
    event.data.u32 = static_cast<std::uint32_t>(&d - devices_.data());
    d.want_write = true;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, d.fd, &event) != 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
    if (connect(d.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS) {
        drop_connection(d, now, "connect");
    }
}

void Shard::drop_connection(Device& d, Nanos now, const char* why) {
    const bool was_setting_up = d.state == Device::State::Connecting || d.state == Device::State::WaitConnack ||
                                d.state == Device::State::WaitSuback;
    if (was_setting_up) {
        --setting_up_;
        ++counters_.connect_failures;
    } else {
        ++counters_.disconnects;
    }
    if (counters_.disconnects + counters_.connect_failures <= 5) {
        std::fprintf(stderr, "loadgen: %s: connection dropped (%s: %s)\n", d.id.c_str(), why, std::strerror(errno));
    }
    close_fd(d);
    // As the reader after a reconnect: the window starts again at the watermark.
    d.next_batch = (d.watermark - (options_.start_seq - 1)) / options_.batch;
    d.state = Device::State::Backoff;
    d.retry_at = now + 200 * kMs;
    schedule(d, d.retry_at);
}

std::uint16_t Shard::take_packet_id(Device& d) {
    const std::uint16_t id = d.next_packet_id;
    d.next_packet_id = static_cast<std::uint16_t>(id == 65535 ? 1 : id + 1);
    return id;
}

bool Shard::queue_bytes(Device& d, const std::uint8_t* data, std::size_t length) {
    if (d.tx_head == d.tx.size()) {
        d.tx.clear();
        d.tx_head = 0;
    }
    d.tx.insert(d.tx.end(), data, data + length);
    counters_.bytes_sent += length;
    return true;
}

void Shard::update_interest(Device& d) {
    const bool want = d.tx_head < d.tx.size() || d.state == Device::State::Connecting;
    if (want == d.want_write || d.fd < 0) return;
    epoll_event event{};
    event.events = EPOLLIN | (want ? EPOLLOUT : 0U);
    event.data.u32 = static_cast<std::uint32_t>(&d - devices_.data());
    epoll_ctl(epoll_, EPOLL_CTL_MOD, d.fd, &event);
    d.want_write = want;
}

void Shard::flush(Device& d, Nanos now) {
    while (d.fd >= 0 && d.tx_head < d.tx.size()) {
        const ssize_t n = send(d.fd, d.tx.data() + d.tx_head, d.tx.size() - d.tx_head, MSG_NOSIGNAL);
        if (n > 0) {
            d.tx_head += static_cast<std::size_t>(n);
            d.last_tx = now;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            drop_connection(d, now, "send");
            return;
        }
    }
    update_interest(d);
}

void Shard::schedule(Device& d, Nanos at) {
    ++d.wake_generation;  // any earlier wake-up of this device is stale now
    if (at == INT64_MAX) return;
    wakes_.push(Wake{at, static_cast<unsigned>(&d - devices_.data()), d.wake_generation});
}

bool Shard::producing_done(Nanos now) const {
    return options_.duration_s > 0 && start_ != 0 &&
           now - start_ >= static_cast<Nanos>(options_.duration_s * static_cast<double>(kSecond));
}

Nanos Shard::service(Device& d, Nanos now) {
    constexpr Nanos kNever = INT64_MAX;
    if (d.state != Device::State::Running || start_ == 0) return kNever;
    const std::uint64_t base = options_.start_seq - 1;
    // Production: rate mode makes batches exist on a schedule, otherwise the whole budget exists.
    Nanos next_produce = kNever;
    if (options_.rate > 0) {
        const double interval_s = options_.batch / options_.rate;
        const auto interval = std::max<Nanos>(1, static_cast<Nanos>(interval_s * static_cast<double>(kSecond)));
        if (!producing_done(now)) {
            const Nanos since = now - start_ - d.phase;
            const std::uint64_t due = since < 0 ? 0 : static_cast<std::uint64_t>(since / interval) + 1;
            d.produced = std::min<std::uint64_t>(options_.batches, std::max(d.produced, due));
            if (d.produced < options_.batches)
                next_produce = start_ + d.phase + static_cast<Nanos>(d.produced) * interval;
        }
    } else if (!producing_done(now)) {
        d.produced = options_.batches;
    } else {
        d.produced = std::min(d.produced, d.highest_sent);  // stops at what was sent
    }
    if (options_.rate > 0 && d.produced > d.next_batch)
        counters_.behind_max = std::max(counters_.behind_max, d.produced - d.next_batch);

    const std::uint64_t acked_batches = (d.watermark - base) / options_.batch;
    // Ack timeout: the watermark has not moved for the timeout while batches are in flight.
    if (d.next_batch > acked_batches && now - d.last_progress >= static_cast<Nanos>(options_.ack_timeout_ms) * kMs) {
        ++counters_.rewinds;
        d.next_batch = acked_batches;
        d.last_progress = now;
    }
    // Send while the window has room.
    std::uint8_t packet[protocol::kMaxBatchSize + 128];
    while (d.next_batch < d.produced && d.next_batch - acked_batches < options_.window) {
        const std::uint64_t k = d.next_batch;
        std::uint8_t* batch = d.encoded.data() + k * d.batch_size;
        const std::uint64_t first = options_.start_seq + k * options_.batch;
        // floor_seq = watermark + 1, never above first_seq (docs/protocol.md §8); every reading is held.
        const std::uint64_t floor = options_.floor_one ? 1 : std::min(first, d.watermark + 1);
        set_u64(batch + kFloorSeqOffset, floor);
        set_u32(batch + d.batch_size - protocol::kCrcSize,
                protocol::crc32_fast(batch, d.batch_size - protocol::kCrcSize));
        std::size_t written = 0;
        if (mqtt::encode_publish(d.up_topic.c_str(), batch, d.batch_size, mqtt::QoS::AtLeastOnce, false, false,
                                 take_packet_id(d), packet, sizeof packet, &written) != mqtt::Status::Ok) {
            throw std::runtime_error("cannot encode a PUBLISH");
        }
        if (d.next_batch == acked_batches) d.last_progress = now;  // window was empty: its timer starts
        queue_bytes(d, packet, written);
        if (d.first_sent[k] == 0) {
            d.first_sent[k] = now;
            ++counters_.batches_sent;
        } else {
            ++counters_.batches_resent;
        }
        ++d.next_batch;
        d.highest_sent = std::max(d.highest_sent, d.next_batch);
    }
    // Keep-alive: a PINGREQ when nothing went out for half the period.
    if (options_.keepalive_s > 0 && now - d.last_tx >= static_cast<Nanos>(options_.keepalive_s) * kSecond / 2) {
        std::size_t written = 0;
        if (mqtt::encode_pingreq(packet, sizeof packet, &written) == mqtt::Status::Ok) queue_bytes(d, packet, written);
    }
    flush(d, now);
    if (d.state != Device::State::Running) return kNever;
    Nanos next = next_produce;
    if (d.next_batch > acked_batches) {
        next = std::min(next, d.last_progress + static_cast<Nanos>(options_.ack_timeout_ms) * kMs);
    }
    if (options_.keepalive_s > 0)
        next = std::min(next, d.last_tx + static_cast<Nanos>(options_.keepalive_s) * kSecond / 2);
    return next;
}

void Shard::on_ack(Device& d, const std::uint8_t* payload, std::size_t length, Nanos now) {
    ++counters_.acks_received;
    protocol::Ack ack;
    if (protocol::decode_ack(payload, length, &ack) != protocol::CodecResult::Ok) {
        ++counters_.acks_ignored;
        return;
    }
    const std::uint64_t base = options_.start_seq - 1;
    const std::uint64_t sent_through = base + d.highest_sent * options_.batch;
    // The reader's rule: its incarnation, above its watermark, below the next seq it would assign.
    if (ack.incarnation != d.incarnation || ack.watermark <= d.watermark || ack.watermark > sent_through) {
        ++counters_.acks_ignored;
        return;
    }
    const std::uint64_t before = (d.watermark - base) / options_.batch;
    d.watermark = ack.watermark;
    d.last_progress = now;
    const std::uint64_t after = (d.watermark - base) / options_.batch;
    for (std::uint64_t k = before; k < after; ++k) {
        const Nanos latency = now - d.first_sent[k];
        counters_.latency_us.push_back(static_cast<std::uint32_t>(std::min<Nanos>(latency / 1000, UINT32_MAX)));
        ++counters_.batches_acked;
    }
    counters_.readings_acked += (after - before) * options_.batch;
    if (counters_.first_ack == 0) counters_.first_ack = now;
    counters_.last_ack = now;
    if (d.next_batch < after) d.next_batch = after;
}

void Shard::on_packet(Device& d, const mqtt::Packet& packet, Nanos now) {
    std::uint8_t out[256];
    std::size_t written = 0;
    switch (packet.type) {
        case mqtt::PacketType::Connack: {
            if (d.state != Device::State::WaitConnack || packet.connack_code != 0) {
                drop_connection(d, now, "connack");
                return;
            }
            // Subscribe first, then the birth; batches only after the SUBACK (docs/protocol.md §8).
            if (mqtt::encode_subscribe(take_packet_id(d), d.ack_topic.c_str(), mqtt::QoS::AtMostOnce, out, sizeof out,
                                       &written) != mqtt::Status::Ok) {
                throw std::runtime_error("cannot encode SUBSCRIBE");
            }
            queue_bytes(d, out, written);
            if (!options_.no_birth) {
                protocol::StatusMessage status;
                status.state = protocol::DeviceState::Online;
                status.incarnation = d.incarnation;
                std::snprintf(status.firmware_version, sizeof status.firmware_version, "loadgen");
                std::uint8_t payload[protocol::kMaxStatusSize];
                std::size_t length = 0;
                const std::string topic = fmt::format("fieldlink/v1/{}/status", d.id);
                if (protocol::encode_status(status, payload, sizeof payload, &length) != protocol::CodecResult::Ok ||
                    mqtt::encode_publish(topic.c_str(), payload, length, mqtt::QoS::AtLeastOnce, true, false,
                                         take_packet_id(d), out, sizeof out, &written) != mqtt::Status::Ok) {
                    throw std::runtime_error("cannot encode the birth");
                }
                queue_bytes(d, out, written);
            }
            d.state = Device::State::WaitSuback;
            flush(d, now);
            return;
        }
        case mqtt::PacketType::Suback: {
            if (d.state != Device::State::WaitSuback) return;
            if (packet.suback_count != 1 || packet.suback_codes[0] == mqtt::kSubackFailure) {
                drop_connection(d, now, "suback");
                return;
            }
            d.state = Device::State::Running;
            --setting_up_;
            ++subscribed_;
            d.last_progress = now;
            d.last_tx = now;
            schedule(d, service(d, now));
            return;
        }
        case mqtt::PacketType::Publish:
            if (packet.publish.topic_length == d.ack_topic.size() &&
                std::memcmp(packet.publish.topic, d.ack_topic.data(), d.ack_topic.size()) == 0) {
                on_ack(d, packet.publish.payload, packet.publish.payload_length, now);
            }
            if (packet.publish.qos == 1) {
                if (mqtt::encode_puback(packet.packet_id, out, sizeof out, &written) == mqtt::Status::Ok) {
                    queue_bytes(d, out, written);
                }
            }
            schedule(d, service(d, now));
            return;
        case mqtt::PacketType::Puback:  // the broker has a batch; the device keeps it until the commit ack
        case mqtt::PacketType::Pingresp: return;
        default: drop_connection(d, now, "unexpected packet"); return;
    }
}

void Shard::on_readable(Device& d, Nanos now) {
    for (;;) {
        const ssize_t n = recv(d.fd, scratch_.data(), scratch_.size(), 0);
        if (n > 0) {
            d.rx.insert(d.rx.end(), scratch_.data(), scratch_.data() + n);
            if (static_cast<std::size_t>(n) < scratch_.size()) break;
        } else if (n == 0) {
            errno = 0;
            drop_connection(d, now, "closed by the broker");
            return;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno == EINTR) {
            continue;
        } else {
            drop_connection(d, now, "recv");
            return;
        }
    }
    std::size_t offset = 0;
    while (d.fd >= 0 && offset < d.rx.size()) {
        mqtt::Packet packet;
        std::size_t consumed = 0;
        const mqtt::Status status = mqtt::decode_packet(d.rx.data() + offset, d.rx.size() - offset, &packet, &consumed);
        if (status == mqtt::Status::Incomplete) break;
        if (status != mqtt::Status::Ok) {
            drop_connection(d, now, "malformed packet");
            return;
        }
        on_packet(d, packet, now);
        offset += consumed;
    }
    if (d.fd >= 0) d.rx.erase(d.rx.begin(), d.rx.begin() + static_cast<std::ptrdiff_t>(offset));
}

bool Shard::all_done(Nanos now) const {
    const bool producing = !producing_done(now);
    for (const Device& d : devices_) {
        if (d.state != Device::State::Running) return false;
        const std::uint64_t acked = (d.watermark - (options_.start_seq - 1)) / options_.batch;
        if (acked < d.produced || (producing && d.produced < options_.batches)) return false;
    }
    return true;
}

bool Shard::all_sent() const {
    for (const Device& d : devices_) {
        if (d.highest_sent < options_.batches) return false;
    }
    return true;
}

// A connection that is not subscribed after 10 s starts again (a SYN lost to a full accept queue).
void Shard::check_setup_timeouts(Nanos now) {
    if (setting_up_ == 0) return;
    for (Device& d : devices_) {
        if ((d.state == Device::State::Connecting || d.state == Device::State::WaitConnack ||
             d.state == Device::State::WaitSuback) &&
            now - d.state_since > 10 * kSecond) {
            errno = ETIMEDOUT;
            drop_connection(d, now, "set-up");
        }
    }
}

void Shard::run() {
    for (Device& d : devices_) connect_queue_.push_back(static_cast<unsigned>(&d - devices_.data()));
    std::vector<epoll_event> events(1024);
    const Nanos begun = now_ns();
    Nanos drain_deadline = 0;
    Nanos last_timeout_check = begun;
    Nanos last_done_check = begun;
    for (;;) {
        Nanos now = now_ns();
        while (setting_up_ < options_.connect_parallel && !connect_queue_.empty()) {
            Device& d = devices_[connect_queue_.front()];
            connect_queue_.pop_front();
            start_connect(d, now);
        }
        // Every device of every shard subscribed: publishing starts at one instant.
        if (start_ == 0) {
            if (!counted_ready_ && subscribed_ == devices_.size()) {
                counted_ready_ = true;
                if (barrier_.ready.fetch_add(1) + 1 == options_.threads) barrier_.start.store(now + 20 * kMs);
            }
            if (barrier_.failed.load()) return;
            if (barrier_.start.load() != 0 && now >= barrier_.start.load()) {
                start_ = barrier_.start.load();
                const double interval_s = options_.rate > 0 ? options_.batch / options_.rate : 0;
                for (Device& d : devices_) {
                    // Spread the devices' production over one batch interval, as unsynchronised devices are.
                    d.phase = static_cast<Nanos>(interval_s * static_cast<double>(kSecond) * d.index / total_devices_);
                    d.last_progress = now;
                    schedule(d, now);
                }
            } else if (now - begun > static_cast<Nanos>(options_.connect_timeout_s * static_cast<double>(kSecond))) {
                error_ = fmt::format("only {} of {} devices subscribed within {} s", subscribed_, devices_.size(),
                                     options_.connect_timeout_s);
                barrier_.failed.store(true);
                return;
            }
        } else if (now - last_done_check >= 10 * kMs) {
            // Scans every device: at most every 10 ms.
            last_done_check = now;
            if (all_done(now)) return;
            if (now - start_ >= static_cast<Nanos>(options_.timeout_s * static_cast<double>(kSecond))) {
                error_ = fmt::format("not every batch was acked within --timeout {} s", options_.timeout_s);
                return;
            }
            // Producing is over (time up, or every batch sent once): the last acks get drain_timeout.
            if (producing_done(now) || (options_.duration_s <= 0 && all_sent())) {
                if (drain_deadline == 0) {
                    drain_deadline = now + static_cast<Nanos>(options_.drain_timeout_s * static_cast<double>(kSecond));
                }
                if (now >= drain_deadline) return;
            }
        }
        if (now - last_timeout_check >= kSecond) {
            last_timeout_check = now;
            check_setup_timeouts(now);
        }
        // Timers due.
        while (!wakes_.empty() && wakes_.top().at <= now) {
            const Wake wake = wakes_.top();
            wakes_.pop();
            Device& d = devices_[wake.slot];
            if (wake.generation != d.wake_generation) continue;
            if (d.state == Device::State::Backoff) {
                if (now >= d.retry_at) {
                    d.state = Device::State::Idle;
                    connect_queue_.push_back(wake.slot);
                }
                continue;
            }
            const Nanos next = service(d, now);
            if (next != INT64_MAX) schedule(d, next);
        }
        int timeout_ms = 100;
        if (!wakes_.empty()) {
            const Nanos wait = wakes_.top().at - now;
            timeout_ms = static_cast<int>(std::clamp<Nanos>((wait + kMs - 1) / kMs, 0, 100));
        }
        if (start_ == 0 && counted_ready_) timeout_ms = std::min(timeout_ms, 1);
        const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "epoll_wait");
        }
        now = now_ns();
        for (int i = 0; i < n; ++i) {
            Device& d = devices_[events[i].data.u32];
            if (d.fd < 0) continue;
            if (d.state == Device::State::Connecting && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int so_error = 0;
                socklen_t size = sizeof so_error;
                getsockopt(d.fd, SOL_SOCKET, SO_ERROR, &so_error, &size);
                if (so_error != 0) {
                    errno = so_error;
                    drop_connection(d, now, "connect");
                    continue;
                }
                const std::string client_id = "loadgen-" + d.id;
                mqtt::ConnectOptions connect_options;
                connect_options.client_id = client_id.c_str();
                connect_options.keep_alive_s = static_cast<std::uint16_t>(options_.keepalive_s);
                connect_options.clean_session = true;
                std::uint8_t out[256];
                std::size_t written = 0;
                if (mqtt::encode_connect(connect_options, out, sizeof out, &written) != mqtt::Status::Ok) {
                    throw std::runtime_error("cannot encode CONNECT");
                }
                d.state = Device::State::WaitConnack;
                d.state_since = now;
                queue_bytes(d, out, written);
                flush(d, now);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(d, now);
            if (d.fd >= 0 && (events[i].events & EPOLLOUT)) flush(d, now);
        }
    }
}

double percentile_ms(const std::vector<std::uint32_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(rank, sorted.size() - 1)] / 1000.0;
}

void raise_fd_limit(unsigned devices) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t needed = devices + 64;
    if (limit.rlim_cur >= needed) return;
    if (limit.rlim_max < needed) {
        throw std::runtime_error(fmt::format("{} devices need {} file descriptors; the hard limit is {} (ulimit -Hn)",
                                             devices, needed, limit.rlim_max));
    }
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) throw std::system_error(errno, std::generic_category(), "setrlimit");
}

void write_dump(const std::string& path, const std::vector<std::unique_ptr<Shard>>& shards, const Options& options,
                bool acked) {
    std::ofstream out(path);
    if (!out) throw std::runtime_error("cannot write " + path);
    for (const auto& shard : shards) {
        for (const Device& d : shard->devices()) {
            const std::uint64_t sent_through = options.start_seq - 1 + d.highest_sent * options.batch;
            const std::uint64_t from = acked ? options.start_seq : d.watermark + 1;
            const std::uint64_t to = acked ? d.watermark : sent_through;
            for (std::uint64_t seq = from; seq <= to; ++seq)
                out << fmt::format("{},{:016x},{}\n", d.id, d.incarnation, seq);
        }
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

int run(const Options& options) {
    if (options.batch == 0 || options.batch > protocol::kMaxRecordsPerBatch) {
        throw std::invalid_argument("--batch must be 1 to 512");
    }
    if (options.window == 0 || options.devices == 0 || options.batches == 0 || options.threads == 0 ||
        options.start_seq == 0 || options.channels == 0 || options.channels > 256) {
        throw std::invalid_argument("--window, --devices, --batches, --threads, --start-seq must be at least 1");
    }
    raise_fd_limit(options.devices);
    Barrier barrier;
    std::vector<std::unique_ptr<Shard>> shards;
    for (unsigned t = 0; t < options.threads; ++t) {
        std::vector<unsigned> indices;
        for (unsigned i = t; i < options.devices; i += options.threads) indices.push_back(i);
        shards.push_back(std::make_unique<Shard>(options, std::move(indices), barrier, options.devices));
    }
    const Nanos begun = now_ns();
    std::vector<std::exception_ptr> failures(shards.size());
    {
        std::vector<std::jthread> threads;
        for (std::size_t t = 0; t < shards.size(); ++t) {
            threads.emplace_back([&, t] {
                try {
                    shards[t]->run();
                } catch (...) {
                    failures[t] = std::current_exception();
                    barrier.failed.store(true);
                }
            });
        }
    }
    const Nanos ended = now_ns();
    for (const auto& failure : failures) {
        if (failure) std::rethrow_exception(failure);
    }
    Counters total;
    std::string error;
    std::uint64_t produced = 0;
    std::uint64_t unacked_batches = 0;
    std::uint64_t devices_complete = 0;
    for (const auto& shard : shards) {
        add_into(total, shard->counters());
        if (error.empty()) error = shard->error();
        for (const Device& d : shard->devices()) {
            const std::uint64_t acked = (d.watermark - (options.start_seq - 1)) / options.batch;
            produced += d.produced;
            unacked_batches += d.highest_sent - std::min(d.highest_sent, acked);
            if (acked >= d.produced && d.produced > 0) ++devices_complete;
        }
    }
    std::sort(total.latency_us.begin(), total.latency_us.end());
    const Nanos start = barrier.start.load();
    const double publish_s =
        start != 0 && total.last_ack > start ? static_cast<double>(total.last_ack - start) / 1e9 : 0;
    const double elapsed_s = start != 0 ? static_cast<double>(ended - start) / 1e9 : 0;
    double mean_ms = 0;
    for (std::uint32_t us : total.latency_us) mean_ms += us / 1000.0;
    if (!total.latency_us.empty()) mean_ms /= static_cast<double>(total.latency_us.size());

    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    if (!options.dump_acked.empty()) write_dump(options.dump_acked, shards, options, true);
    if (!options.dump_unacked.empty()) write_dump(options.dump_unacked, shards, options, false);

    fmt::print(
        "{{\"devices\": {}, \"devices_complete\": {}, \"window\": {}, \"batch\": {}, \"rate_per_device\": {}, "
        "\"batches_produced\": {}, \"batches_sent\": {}, \"batches_resent\": {}, \"batches_acked\": {}, "
        "\"batches_unacked\": {}, \"readings_sent\": {}, \"readings_acked\": {}, \"rewinds\": {}, "
        "\"acks_received\": {}, \"acks_ignored\": {}, \"disconnects\": {}, \"connect_failures\": {}, "
        "\"bytes_sent\": {}, \"behind_max_batches\": {}, \"connect_s\": {:.3f}, \"publish_s\": {:.3f}, "
        "\"elapsed_s\": {:.3f}, \"acked_readings_per_s\": {:.0f}, "
        "\"ack_latency_ms\": {{\"p50\": {:.3f}, \"p90\": {:.3f}, \"p99\": {:.3f}, \"max\": {:.3f}, \"mean\": {:.3f}}}, "
        "\"cpu_s\": {:.3f}, \"error\": \"{}\"}}\n",
        options.devices, devices_complete, options.window, options.batch, options.rate, produced, total.batches_sent,
        total.batches_resent, total.batches_acked, unacked_batches, total.batches_sent * options.batch,
        total.readings_acked, total.rewinds, total.acks_received, total.acks_ignored, total.disconnects,
        total.connect_failures, total.bytes_sent, total.behind_max,
        start != 0 ? static_cast<double>(start - begun) / 1e9 : 0.0, publish_s, elapsed_s,
        publish_s > 0 ? static_cast<double>(total.readings_acked) / publish_s : 0.0,
        percentile_ms(total.latency_us, 0.50), percentile_ms(total.latency_us, 0.90),
        percentile_ms(total.latency_us, 0.99), total.latency_us.empty() ? 0.0 : total.latency_us.back() / 1000.0,
        mean_ms, cpu_s, error);
    std::fflush(stdout);
    return error.empty() && unacked_batches == 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"fieldlink-loadgen: many simulated devices publishing pre-encoded batches (bench/run.py --loadgen)"};
    app.add_option("--host", options.host, "broker IPv4 address");
    app.add_option("--port", options.port, "broker port");
    app.add_option("--devices", options.devices, "simulated devices (one MQTT connection each)");
    app.add_option("--prefix", options.prefix, "device ids are <prefix>-NNNNN");
    app.add_option("--window", options.window, "batches in flight per device (published, not yet acked)");
    app.add_option("--batch", options.batch, "readings per batch (1 to 512)");
    app.add_option("--batches", options.batches, "batches per device, encoded before the start");
    app.add_option("--rate", options.rate, "readings/s per device; 0 = as fast as the acks allow");
    app.add_option("--duration", options.duration_s, "seconds of producing (0: until --batches are sent)");
    app.add_option("--ack-timeout-ms", options.ack_timeout_ms, "resend the window after this long without an ack");
    app.add_option("--channels", options.channels, "sensor channels the readings cycle through");
    app.add_option("--connect-parallel", options.connect_parallel, "connections set up at once");
    app.add_option("--threads", options.threads, "threads, each with its own epoll and share of the devices");
    app.add_option("--keepalive", options.keepalive_s, "MQTT keep-alive seconds (0: none)");
    app.add_option("--connect-timeout", options.connect_timeout_s, "seconds for every device to subscribe");
    app.add_option("--drain-timeout", options.drain_timeout_s, "seconds to wait for the last acks after producing");
    app.add_option("--timeout", options.timeout_s, "seconds from the first publish until it gives up");
    app.add_option("--seed", options.seed, "incarnations are derived from this and the device number");
    app.add_option("--start-seq", options.start_seq, "first seq of every device (continue an earlier run)");
    app.add_flag("--no-birth", options.no_birth, "do not publish a retained birth status");
    app.add_flag("--floor-one", options.floor_one,
                 "floor_seq 1 on every batch (allowed for a device that never drops readings): acks then depend "
                 "on what the gateway knows is stored below the batch");
    app.add_option("--dump-acked,--dump-sent", options.dump_acked,
                   "write device,incarnation,seq of every reading covered by a commit ack");
    app.add_option("--dump-unacked", options.dump_unacked,
                   "write device,incarnation,seq of every reading sent but not covered by an ack");
    CLI11_PARSE(app, argc, argv);
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fieldlink-loadgen: %s\n", e.what());
        return 1;
    }
}
