// fieldlink-bench-broker-ceiling: how fast the broker alone moves batches.
//
// One Paho client publishes N copies of a real encoded batch (R records, so
// the same size as a reader's batch) with QoS 1 and at most --inflight
// unacknowledged PUBLISHes; another client, subscribed with QoS 1, decodes
// each batch's header and CRC (fieldlink::protocol) and stores nothing. The
// time from the first PUBLISH to the N-th delivery is the broker's ceiling
// for that load: no reader, no saver, no database, no end-to-end window.
// Repeats that --repeat times and prints one JSON line with each round's rate.
// For benchmarks only (bench/run.py).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mqtt/async_client.h>

#include "fieldlink/protocol/codec.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string broker = "tcp://127.0.0.1:1883";
    std::string topic = "fieldlink-bench/ceiling";
    std::uint64_t messages = 400;
    unsigned records = 256;
    unsigned inflight = 100;
    unsigned repeat = 5;
    unsigned timeout_s = 120;
};

std::vector<std::uint8_t> make_batch(unsigned records) {
    std::vector<fieldlink::protocol::Record> body(records);
    for (unsigned i = 0; i < records; ++i) {
        body[i].channel = static_cast<std::uint8_t>(i % 16);
        body[i].mono_ms = 1000 + i / 16;
        body[i].value = 20.0 + 0.01 * i;
    }
    fieldlink::protocol::BatchHeader header;
    header.incarnation = 0x6265'6e63'6800'0001;
    header.first_seq = 1;
    header.floor_seq = 1;
    header.count = static_cast<std::uint16_t>(records);
    std::vector<std::uint8_t> out(fieldlink::protocol::kMaxBatchSize);
    std::size_t written = 0;
    if (fieldlink::protocol::encode_batch(header, body.data(), out.data(), out.size(), &written) !=
        fieldlink::protocol::CodecResult::Ok) {
        throw std::runtime_error("cannot encode the benchmark batch");
    }
    out.resize(written);
    return out;
}

// Counts PUBACKs so that the publisher keeps at most `limit` in flight.
class InflightWindow final : public mqtt::iaction_listener {
public:
    explicit InflightWindow(unsigned limit) : limit_(limit) {}

    void acquire() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return in_flight_ < limit_; });
        ++in_flight_;
    }
    // Waits until every PUBLISH got its PUBACK (or failed).
    bool drain(std::chrono::seconds timeout) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [this] { return in_flight_ == 0; });
    }
    void on_success(const mqtt::token&) override { release(); }
    void on_failure(const mqtt::token&) override {
        ++failures;
        release();
    }
    std::atomic<std::uint64_t> failures{0};

private:
    void release() {
        {
            std::lock_guard lock(mutex_);
            --in_flight_;
        }
        cv_.notify_all();
    }

    const unsigned limit_;
    std::mutex mutex_;
    std::condition_variable cv_;
    unsigned in_flight_ = 0;
};

struct Delivered {
    std::mutex mutex;
    std::condition_variable cv;
    std::uint64_t messages = 0;
    std::uint64_t readings = 0;
    std::uint64_t undecodable = 0;
    Clock::time_point last{};
};

struct Round {
    double seconds = 0;
    std::uint64_t readings = 0;
    bool complete = false;
};

mqtt::connect_options connect_options() {
    return mqtt::connect_options_builder()
        .mqtt_version(MQTTVERSION_3_1_1)
        .clean_session(true)
        .keep_alive_interval(std::chrono::seconds(30))
        .connect_timeout(std::chrono::seconds(5))
        .finalize();
}

int run(const Options& options) {
    const std::vector<std::uint8_t> payload = make_batch(options.records);
    const std::string suffix = std::to_string(::getpid());
    mqtt::async_client subscriber(options.broker, "fieldlink-bench-ceiling-sub-" + suffix,
                                  static_cast<mqtt::iclient_persistence*>(nullptr));
    mqtt::async_client publisher(options.broker, "fieldlink-bench-ceiling-pub-" + suffix,
                                 static_cast<mqtt::iclient_persistence*>(nullptr));

    Delivered delivered;
    subscriber.set_message_callback([&delivered](mqtt::const_message_ptr message) {
        const std::string& bytes = message->get_payload();
        fieldlink::protocol::BatchView view;
        const bool ok = fieldlink::protocol::decode_batch(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                                          bytes.size(), &view) == fieldlink::protocol::CodecResult::Ok;
        const auto now = Clock::now();
        {
            std::lock_guard lock(delivered.mutex);
            delivered.last = now;
            ++delivered.messages;
            if (ok) {
                delivered.readings += view.header.count;
            } else {
                ++delivered.undecodable;
            }
        }
        delivered.cv.notify_one();
    });
    subscriber.connect(connect_options())->wait();
    subscriber.subscribe(options.topic, 1)->wait();
    publisher.connect(connect_options())->wait();

    // Rounds on the same connections: Paho's connect and disconnect take about a second each.
    InflightWindow window(options.inflight);
    std::vector<Round> rounds;
    for (unsigned round = 0; round < options.repeat; ++round) {
        {
            std::lock_guard lock(delivered.mutex);
            delivered.messages = 0;
            delivered.readings = 0;
        }
        const auto start = Clock::now();
        for (std::uint64_t i = 0; i < options.messages; ++i) {
            window.acquire();
            publisher.publish(options.topic, payload.data(), payload.size(), 1, false, nullptr, window);
        }
        Round result;
        std::unique_lock lock(delivered.mutex);
        result.complete = delivered.cv.wait_for(lock, std::chrono::seconds(options.timeout_s),
                                                [&] { return delivered.messages >= options.messages; });
        result.seconds = std::chrono::duration<double>(delivered.last - start).count();
        result.readings = delivered.readings;
        lock.unlock();
        rounds.push_back(result);
        window.drain(std::chrono::seconds(10));  // the next round starts from an idle link
    }
    publisher.disconnect()->wait();
    subscriber.disconnect()->wait();

    bool ok = delivered.undecodable == 0 && window.failures.load() == 0;
    std::string rates;
    for (const Round& r : rounds) {
        ok = ok && r.complete && r.seconds > 0;
        rates += fmt::format("{}{:.1f}", rates.empty() ? "" : ", ", r.seconds > 0 ? r.readings / r.seconds : 0.0);
    }
    fmt::print(
        "{{\"messages\": {}, \"records_per_message\": {}, \"payload_bytes\": {}, \"inflight\": {}, "
        "\"undecodable\": {}, \"publish_failures\": {}, \"complete\": {}, \"readings_per_s\": [{}]}}\n",
        options.messages, options.records, payload.size(), options.inflight, delivered.undecodable,
        window.failures.load(), ok ? "true" : "false", rates);
    std::fflush(stdout);
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{
        "fieldlink-bench-broker-ceiling: the rate at which the broker delivers N batches of R records\n"
        "to a QoS 1 subscriber that decodes them and stores nothing. Prints one JSON line."};
    app.option_defaults()->always_capture_default();
    app.add_option("--broker", options.broker, "Broker URI");
    app.add_option("--topic", options.topic, "Topic to use (keep it outside fieldlink/v1/ so no saver stores it)");
    app.add_option("--messages", options.messages, "Batches to send")->check(CLI::Range(1, 10'000'000));
    app.add_option("--records", options.records, "Records per batch")
        ->check(CLI::Range(1u, static_cast<unsigned>(fieldlink::protocol::kMaxRecordsPerBatch)));
    app.add_option("--inflight", options.inflight, "Most PUBLISHes awaiting their PUBACK")
        ->check(CLI::Range(1u, 65535u));
    app.add_option("--repeat", options.repeat, "Rounds of --messages batches, each timed on its own")
        ->check(CLI::Range(1u, 1000u));
    app.add_option("--timeout", options.timeout_s, "Seconds to wait for every delivery of a round");
    CLI11_PARSE(app, argc, argv);
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fieldlink-bench-broker-ceiling: %s\n", e.what());
        return 1;
    }
}
