#include "fieldlink/reader/ram_store.hpp"

namespace fieldlink::reader {

RamRing::RamRing(std::span<RamSlot> slots, std::uint64_t incarnation, FullPolicy policy, std::uint32_t boot) noexcept
    : slots_(slots), incarnation_(incarnation), policy_(policy), boot_(boot) {}

std::size_t RamRing::index_of(std::uint64_t seq) const noexcept {
    return static_cast<std::size_t>((head_ + (seq - oldest_seq_)) % slots_.size());
}

StoreStatus RamRing::append(const protocol::Record& record, std::uint64_t* seq) noexcept {
    if (slots_.empty()) return StoreStatus::Full;
    if (held() == slots_.size()) {
        if (policy_ == FullPolicy::RefuseNew) return StoreStatus::Full;
        head_ = (head_ + 1) % slots_.size();
        ++oldest_seq_;
        ++dropped_;
    }
    RamSlot& slot = slots_[index_of(next_seq_)];
    slot.mono_ms = record.mono_ms;
    slot.value = record.value;
    slot.boot = boot_;
    slot.channel = record.channel;
    if (seq != nullptr) *seq = next_seq_;
    ++next_seq_;
    return StoreStatus::Ok;
}

std::size_t RamRing::read(std::uint64_t from_seq, StoredReading* out, std::size_t max) const noexcept {
    if (out == nullptr) return 0;
    const std::uint64_t start = from_seq > oldest_seq_ ? from_seq : oldest_seq_;
    std::size_t count = 0;
    for (std::uint64_t seq = start; seq < next_seq_ && count < max; ++seq) {
        const RamSlot& slot = slots_[index_of(seq)];
        if (count > 0 && slot.boot != out[0].boot) break;  // a batch carries one boot
        StoredReading& reading = out[count++];
        reading.seq = seq;
        reading.boot = slot.boot;
        reading.record.channel = slot.channel;
        reading.record.mono_ms = slot.mono_ms;
        reading.record.value = slot.value;
    }
    return count;
}

StoreStatus RamRing::trim(std::uint64_t through_seq) noexcept {
    if (through_seq >= next_seq_) return StoreStatus::InvalidArgument;  // cannot trim what does not exist
    if (through_seq < oldest_seq_) return StoreStatus::Ok;
    const std::uint64_t count = through_seq - oldest_seq_ + 1;
    head_ = static_cast<std::size_t>((head_ + count) % slots_.size());
    oldest_seq_ = through_seq + 1;
    return StoreStatus::Ok;
}

StoreStatus RamRing::note_wall_offset(std::int64_t offset_ms) noexcept {
    offset_known_ = true;
    offset_ms_ = offset_ms;
    return StoreStatus::Ok;
}

bool RamRing::wall_offset(std::uint32_t boot, std::int64_t* offset_ms) const noexcept {
    if (offset_ms == nullptr || !offset_known_ || boot != boot_) return false;
    *offset_ms = offset_ms_;
    return true;
}

}  // namespace fieldlink::reader
