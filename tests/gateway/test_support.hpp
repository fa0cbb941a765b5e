// Helpers shared by the gateway tests: temp dirs, fakes for the seams, batch builders.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "fieldlink/gateway/ingest/broker_link.hpp"
#include "fieldlink/gateway/ingest/clock.hpp"
#include "fieldlink/gateway/ingest/log.hpp"
#include "fieldlink/protocol/codec.hpp"

namespace fieldlink::gateway::test {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "fieldlink-gw-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

class FixedClock final : public Clock {
public:
    explicit FixedClock(std::int64_t now) : now_(now) {}
    std::int64_t unix_ms() const override { return now_.load(); }
    void set(std::int64_t now) { now_.store(now); }

private:
    std::atomic<std::int64_t> now_;
};

struct Published {
    std::string topic;
    std::vector<std::uint8_t> payload;
};

// Records every publish; can pretend to be disconnected.
class RecordingPublisher final : public AckPublisher {
public:
    bool publish_ack(const std::string& topic, std::uint64_t /*incarnation*/,
                     std::span<const std::uint8_t> payload) override {
        std::lock_guard lock(mutex_);
        if (!connected_) return false;
        published_.push_back({topic, {payload.begin(), payload.end()}});
        return true;
    }
    void set_connected(bool connected) {
        std::lock_guard lock(mutex_);
        connected_ = connected;
    }
    std::vector<Published> published() const {
        std::lock_guard lock(mutex_);
        return published_;
    }
    // Decoded acks sent to one device's ack topic, in order.
    std::vector<protocol::Ack> acks_for(const std::string& device) const {
        std::vector<protocol::Ack> acks;
        for (const Published& p : published()) {
            if (p.topic != "fieldlink/v1/" + device + "/ack") continue;
            protocol::Ack ack;
            EXPECT_EQ(protocol::decode_ack(p.payload.data(), p.payload.size(), &ack), protocol::CodecResult::Ok);
            acks.push_back(ack);
        }
        return acks;
    }

private:
    mutable std::mutex mutex_;
    bool connected_ = true;
    std::vector<Published> published_;
};

// A logger that keeps the test output quiet (errors only).
inline Logger& quiet_logger() {
    static Logger logger(LogLevel::Error);
    return logger;
}

struct BatchSpec {
    std::uint64_t incarnation = 0xa1;
    std::uint64_t first_seq = 1;
    std::uint64_t floor_seq = 1;  // 1: no floor (the device may still send anything from seq 1)
    std::uint32_t boot = 0;
    bool offset_known = false;
    std::int64_t wall_offset_ms = 0;
    std::size_t count = 2;
    std::uint64_t mono_start_ms = 1000;
};

// Record i: channel i % 3, mono_ms start + 100 i, value seq + 0.5.
inline std::vector<protocol::Record> records_for(const BatchSpec& spec) {
    std::vector<protocol::Record> records;
    for (std::size_t i = 0; i < spec.count; ++i) {
        records.push_back({static_cast<std::uint8_t>(i % 3), spec.mono_start_ms + 100 * i,
                           static_cast<double>(spec.first_seq + i) + 0.5});
    }
    return records;
}

inline protocol::BatchHeader header_for(const BatchSpec& spec) {
    protocol::BatchHeader header;
    header.incarnation = spec.incarnation;
    header.first_seq = spec.first_seq;
    header.floor_seq = spec.floor_seq;
    header.boot = spec.boot;
    header.wall_offset_ms = spec.wall_offset_ms;
    header.offset_known = spec.offset_known;
    header.count = static_cast<std::uint16_t>(spec.count);
    return header;
}

// A binary batch made by the shared codec.
inline std::vector<std::uint8_t> encode(const BatchSpec& spec) {
    const auto records = records_for(spec);
    std::vector<std::uint8_t> out(protocol::kMaxBatchSize);
    std::size_t written = 0;
    const auto status = protocol::encode_batch(header_for(spec), records.data(), out.data(), out.size(), &written);
    EXPECT_EQ(status, protocol::CodecResult::Ok);
    out.resize(written);
    return out;
}

inline std::span<const std::uint8_t> bytes(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace fieldlink::gateway::test
