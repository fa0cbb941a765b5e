#include "fieldlink/reader/sampler.hpp"

#include "fieldlink/protocol/values.hpp"

namespace fieldlink::reader {

Sampler::Sampler(ReadingStore& store, hal::Sensors& sensors, ReaderEvents* events) noexcept
    : store_(store), sensors_(sensors), events_(events) {}

void Sampler::start(std::span<const std::uint32_t> periods_ms, std::uint64_t now) noexcept {
    periods_ms_ = periods_ms.size() > kMaxChannels ? periods_ms.first(kMaxChannels) : periods_ms;
    for (std::size_t ch = 0; ch < periods_ms_.size(); ++ch) next_due_ms_[ch] = now;
    sampling_ = true;
}

bool Sampler::next_due_ms(std::uint64_t* at) const noexcept {
    if (!sampling_ || periods_ms_.empty()) return false;
    std::uint64_t earliest = next_due_ms_[0];
    for (std::size_t ch = 1; ch < periods_ms_.size(); ++ch) {
        if (next_due_ms_[ch] < earliest) earliest = next_due_ms_[ch];
    }
    *at = earliest;
    return true;
}

void Sampler::sample_due(std::uint64_t now) noexcept {
    if (!sampling_) return;
    for (std::size_t ch = 0; ch < periods_ms_.size(); ++ch) {
        if (now < next_due_ms_[ch]) continue;
        const auto channel = static_cast<std::uint8_t>(ch);
        double value = 0.0;
        hal::SensorStatus sensed = sensors_.read(channel, &value);
        // NaN means "no value": the protocol cannot carry it, so it is never stored.
        if (sensed == hal::SensorStatus::Ok && protocol::is_nan(value)) sensed = hal::SensorStatus::NoValue;
        if (sensed == hal::SensorStatus::Ok) {
            protocol::Record record;
            record.channel = channel;
            record.mono_ms = now;
            record.value = value;
            std::uint64_t seq = 0;
            const StoreStatus stored = store_.append(record, &seq);
            if (stored == StoreStatus::Ok) {
                refusing_ = false;
                ++counters_.produced;
                if (events_ != nullptr) events_->on_reading(StoredReading{seq, store_.boot(), record});
            } else if (stored == StoreStatus::Full) {
                ++counters_.refused;
                if (!refusing_ && events_ != nullptr) events_->on_store_error(stored);
                refusing_ = true;
            } else {
                ++counters_.store_errors;
                if (events_ != nullptr) events_->on_store_error(stored);
            }
        } else {
            ++counters_.sensor_errors;
            if (events_ != nullptr) events_->on_sample_failed(channel, sensed);
        }
        const std::uint32_t period = periods_ms_[ch];
        next_due_ms_[ch] += period;
        if (next_due_ms_[ch] <= now) next_due_ms_[ch] = now + period;
    }
}

}  // namespace fieldlink::reader
