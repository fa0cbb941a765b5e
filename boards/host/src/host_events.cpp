#include "host_events.hpp"

#include <sys/time.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace fieldlink::boards::host {
namespace {

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::Error: return "error";
        case LogLevel::Warn: return "warn";
        case LogLevel::Info: return "info";
        case LogLevel::Debug: return "debug";
    }
    return "?";
}

const char* store_status_name(reader::StoreStatus status) {
    switch (status) {
        case reader::StoreStatus::Ok: return "ok";
        case reader::StoreStatus::Full: return "full";
        case reader::StoreStatus::IoError: return "io_error";
        case reader::StoreStatus::InvalidArgument: return "invalid_argument";
    }
    return "unknown";
}

}  // namespace

void Logger::write(LogLevel level, const std::string& message) const {
    timeval now{};
    ::gettimeofday(&now, nullptr);
    tm utc{};
    ::gmtime_r(&now.tv_sec, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    fmt::print(stderr, "{}.{:03}Z {} fieldlink-reader[{}]: {}\n", stamp, now.tv_usec / 1000, level_name(level), device_,
               message);
}

RecordFile::~RecordFile() {
    if (file_ != nullptr) std::fclose(file_);
}

bool RecordFile::open(const std::string& path) {
    file_ = std::fopen(path.c_str(), "a");
    return file_ != nullptr;
}

bool RecordFile::write(const std::string& device, std::uint64_t incarnation, const reader::StoredReading& reading) {
    if (file_ == nullptr) return true;
    const int n =
        std::fprintf(file_, "%s,%016llx,%llu,%lu,%u,%llu,%.17g\n", device.c_str(),
                     static_cast<unsigned long long>(incarnation), static_cast<unsigned long long>(reading.seq),
                     static_cast<unsigned long>(reading.boot), static_cast<unsigned>(reading.record.channel),
                     static_cast<unsigned long long>(reading.record.mono_ms), reading.record.value);
    return n > 0 && std::fflush(file_) == 0;
}

void HostEvents::on_reading(const reader::StoredReading& reading) {
    if (record_ != nullptr && !record_failed_ && !record_->write(device_, incarnation_, reading)) {
        record_failed_ = true;
        log_.log(LogLevel::Error, "cannot write the record file: {}", std::strerror(errno));
    }
}

void HostEvents::on_sample_failed(std::uint8_t channel, hal::SensorStatus status) {
    // A broken sensor fails at every period: warn at first, then only now and then.
    const std::uint64_t failures = ++sample_failures_[channel];
    const LogLevel level = failures <= 3 || failures % 100 == 0 ? LogLevel::Warn : LogLevel::Debug;
    log_.log(level, "channel {}: no reading stored: {} (failure {} of this channel)", channel, hal::to_string(status),
             failures);
}

void HostEvents::on_store_error(reader::StoreStatus status) {
    if (status == reader::StoreStatus::Full) {
        log_.log(LogLevel::Warn, "store full: not sampling until commit acks free room");
    } else {
        log_.log(LogLevel::Error, "store error: {}", store_status_name(status));
    }
}

void HostEvents::on_connecting(const char* host, std::uint16_t port) {
    log_.log(LogLevel::Debug, "connecting to {}:{}", host, port);
}

void HostEvents::on_connected(bool is_reconnect) {
    failed_attempts_ = 0;
    log_.log(LogLevel::Info, "{} to the broker", is_reconnect ? "reconnected" : "connected");
}

void HostEvents::on_ready() { log_.log(LogLevel::Info, "subscribed to commit acks; publishing"); }

void HostEvents::on_link_down(mqtt::Status reason, hal::TransportStatus transport, bool was_up,
                              std::uint32_t retry_in_ms) {
    std::string cause = transport == hal::TransportStatus::Ok
                            ? std::string(mqtt::to_string(reason))
                            : fmt::format("{} ({})", mqtt::to_string(reason), hal::to_string(transport));
    if (transport != hal::TransportStatus::Ok && transport_detail_) {
        if (const std::string detail = transport_detail_(); !detail.empty()) cause += ": " + detail;
    }
    if (was_up) {
        log_.log(LogLevel::Warn, "connection lost: {}; reconnecting in {} ms", cause, retry_in_ms);
        return;
    }
    // The first failures are worth a warning; a long outage would flood the log.
    ++failed_attempts_;
    const LogLevel level = failed_attempts_ <= 3 || failed_attempts_ % 10 == 0 ? LogLevel::Warn : LogLevel::Debug;
    log_.log(level, "cannot connect (attempt {}): {}; retrying in {} ms", failed_attempts_, cause, retry_in_ms);
}

void HostEvents::on_batch_sent(const protocol::BatchHeader& header, std::uint16_t packet_id) {
    log_.log(LogLevel::Debug, "batch seq {}..{} ({} readings, boot {}, floor {}, offset {}) as packet {}",
             header.first_seq, header.first_seq + header.count - 1, header.count, header.boot, header.floor_seq,
             header.offset_known ? std::to_string(header.wall_offset_ms) : std::string("unknown"), packet_id);
}

void HostEvents::on_ack(const protocol::Ack& ack, reader::AckOutcome outcome) {
    switch (outcome) {
        case reader::AckOutcome::Accepted:
            log_.log(LogLevel::Debug, "commit ack through seq {} (gateway time {})", ack.watermark,
                     ack.gateway_unix_ms);
            return;
        case reader::AckOutcome::Stale:
            log_.log(LogLevel::Debug, "stale commit ack through seq {} ignored", ack.watermark);
            return;
        case reader::AckOutcome::OtherIncarnation:
            log_.log(LogLevel::Info, "commit ack for incarnation {:016x} ignored (this is {:016x})", ack.incarnation,
                     incarnation_);
            return;
        case reader::AckOutcome::AheadOfProduced:
            log_.log(LogLevel::Warn, "commit ack through seq {} ignored: that reading was never produced",
                     ack.watermark);
            return;
        case reader::AckOutcome::Undecodable:
            log_.log(LogLevel::Warn, "undecodable message on the ack topic ignored");
            return;
    }
}

void HostEvents::on_resend(std::uint64_t from_seq, reader::ResendReason reason) {
    log_.log(LogLevel::Info, "resending from seq {} ({})", from_seq, reader::to_string(reason));
}

void HostEvents::on_telemetry_sent(const protocol::Telemetry& t) {
    log_.log(LogLevel::Debug,
             "telemetry: held {}, oldest unacked {} ms, dropped {}, reconnects {}, next seq {}, acked through {}",
             t.held, t.oldest_unacked_age_ms, t.dropped, t.reconnects, t.next_seq, t.acked_through);
}

}  // namespace fieldlink::boards::host
