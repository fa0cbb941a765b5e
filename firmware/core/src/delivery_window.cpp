#include "fieldlink/reader/delivery_window.hpp"

namespace fieldlink::reader {

void DeliveryWindow::start(std::uint64_t acked_through) noexcept {
    acked_through_ = acked_through;
    next_send_seq_ = acked_through + 1;
    count_ = 0;
}

bool DeliveryWindow::full(std::size_t limit) const noexcept { return count_ >= limit || count_ >= kMaxWindow; }

std::uint64_t DeliveryWindow::next_to_send(std::uint64_t oldest_held) noexcept {
    if (next_send_seq_ < oldest_held) next_send_seq_ = oldest_held;
    return next_send_seq_;
}

std::uint64_t DeliveryWindow::floor_for(std::uint64_t first_seq, std::uint64_t oldest_held) const noexcept {
    const std::uint64_t floor = oldest_held > acked_through_ + 1 ? oldest_held : acked_through_ + 1;
    return floor < first_seq ? floor : first_seq;
}

bool DeliveryWindow::sent(std::uint64_t first_seq, std::uint64_t last_seq, std::uint16_t packet_id,
                          std::uint64_t now) noexcept {
    if (count_ >= kMaxWindow || last_seq < first_seq) return false;
    if (count_ == 0) last_progress_ms_ = now;
    batches_[count_++] = InFlightBatch{first_seq, last_seq, packet_id};
    next_send_seq_ = last_seq + 1;
    return true;
}

AckOutcome DeliveryWindow::judge(std::uint64_t watermark, std::uint64_t next_seq) const noexcept {
    if (watermark <= acked_through_) return AckOutcome::Stale;
    if (watermark >= next_seq) return AckOutcome::AheadOfProduced;
    return AckOutcome::Accepted;
}

bool DeliveryWindow::acknowledge(std::uint64_t watermark, std::uint64_t now) noexcept {
    if (watermark <= acked_through_) return false;
    acked_through_ = watermark;
    std::size_t covered = 0;
    while (covered < count_ && batches_[covered].last_seq <= acked_through_) ++covered;
    for (std::size_t i = covered; i < count_; ++i) batches_[i - covered] = batches_[i];
    count_ -= covered;
    if (next_send_seq_ <= acked_through_) next_send_seq_ = acked_through_ + 1;
    last_progress_ms_ = now;
    return true;
}

bool DeliveryWindow::timed_out(std::uint64_t now, std::uint32_t timeout_ms) const noexcept {
    return count_ > 0 && now - last_progress_ms_ >= timeout_ms;
}

bool DeliveryWindow::ack_deadline_ms(std::uint32_t timeout_ms, std::uint64_t* at) const noexcept {
    if (count_ == 0) return false;
    *at = last_progress_ms_ + timeout_ms;
    return true;
}

bool DeliveryWindow::rewind(std::uint64_t now, std::uint64_t* from) noexcept {
    count_ = 0;
    last_progress_ms_ = now;
    *from = acked_through_ + 1;
    const bool resend = next_send_seq_ > *from;
    next_send_seq_ = *from;
    return resend;
}

}  // namespace fieldlink::reader
