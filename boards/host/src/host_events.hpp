// Logging to stderr and the --record-file, as the reader core's observer.
#pragma once

#include <fmt/core.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "fieldlink/reader/reader.hpp"
#include "fieldlink/boards/host/options.hpp"

namespace fieldlink::boards::host {

class Logger {
public:
    Logger(LogLevel level, std::string device) : level_(level), device_(std::move(device)) {}

    bool enabled(LogLevel level) const noexcept { return level <= level_; }

    template <class... Args>
    void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) const {
        if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
    }

private:
    void write(LogLevel level, const std::string& message) const;

    LogLevel level_;
    std::string device_;
};

// Appends one line per produced reading, flushed at once so that a killed
// process leaves every line of every reading it produced.
class RecordFile {
public:
    RecordFile() = default;
    ~RecordFile();
    RecordFile(const RecordFile&) = delete;
    RecordFile& operator=(const RecordFile&) = delete;

    // Opens for appending; false (with errno set) when that fails.
    bool open(const std::string& path);
    // False when the line could not be written.
    bool write(const std::string& device, std::uint64_t incarnation, const reader::StoredReading& reading);

private:
    std::FILE* file_ = nullptr;
};

class HostEvents final : public reader::ReaderEvents {
public:
    HostEvents(const Logger& log, RecordFile* record, std::string device, std::uint64_t incarnation)
        : log_(log), record_(record), device_(std::move(device)), incarnation_(incarnation) {}

    bool record_failed() const noexcept { return record_failed_; }
    // Adds the transport's own reason (e.g. a TLS certificate error) to connection failures.
    void set_transport_detail(std::function<std::string()> detail) { transport_detail_ = std::move(detail); }

    void on_reading(const reader::StoredReading& reading) override;
    void on_sample_failed(std::uint8_t channel, hal::SensorStatus status) override;
    void on_store_error(reader::StoreStatus status) override;
    void on_connecting(const char* host, std::uint16_t port) override;
    void on_connected(bool is_reconnect) override;
    void on_ready() override;
    void on_link_down(mqtt::Status reason, hal::TransportStatus transport, bool was_up,
                      std::uint32_t retry_in_ms) override;
    void on_batch_sent(const protocol::BatchHeader& header, std::uint16_t packet_id) override;
    void on_ack(const protocol::Ack& ack, reader::AckOutcome outcome) override;
    void on_resend(std::uint64_t from_seq, reader::ResendReason reason) override;
    void on_telemetry_sent(const protocol::Telemetry& telemetry) override;

private:
    const Logger& log_;
    RecordFile* record_;
    std::string device_;
    std::uint64_t incarnation_;
    bool record_failed_ = false;
    std::function<std::string()> transport_detail_;
    std::uint32_t failed_attempts_ = 0;                 // consecutive connection failures, to quiet the log
    std::array<std::uint64_t, 256> sample_failures_{};  // per channel, to quiet the log
};

}  // namespace fieldlink::boards::host
