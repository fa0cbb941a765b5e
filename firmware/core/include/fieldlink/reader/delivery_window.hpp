// The delivery window: which reading goes out next, which batches are in
// flight, and how commit acks move both. Only the commit ack's watermark W
// moves it (a PUBACK says nothing about the database); a rewind sends again
// from W + 1. Bookkeeping over sequence numbers only: the caller passes in what
// the store and the clock say, so every edge can be tested on its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fieldlink/reader/config_defaults.hpp"
#include "fieldlink/reader/reader_events.hpp"

namespace fieldlink::reader {

inline constexpr std::size_t kMaxWindow = FIELDLINK_READER_MAX_WINDOW;

// A batch published and not yet covered by a commit ack.
struct InFlightBatch {
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::uint16_t packet_id = 0;
};

class DeliveryWindow {
public:
    // Everything through `acked_through` is committed or dropped (a flash
    // spool keeps its backlog across reboots): send from acked_through + 1,
    // nothing in flight.
    void start(std::uint64_t acked_through) noexcept;

    std::uint64_t acked_through() const noexcept { return acked_through_; }  // W
    // First seq not yet published since the last rewind (S).
    std::uint64_t next_send_seq() const noexcept { return next_send_seq_; }
    std::size_t in_flight() const noexcept { return count_; }
    // Oldest first.
    std::span<const InFlightBatch> in_flight_batches() const noexcept {
        return std::span<const InFlightBatch>(batches_.data(), count_);
    }

    // `limit` (1 .. kMaxWindow) batches are in flight: wait for a commit ack.
    bool full(std::size_t limit) const noexcept;

    // Where the next batch starts: S, moved up to `oldest_held` when the store
    // dropped readings below it while full.
    std::uint64_t next_to_send(std::uint64_t oldest_held) noexcept;

    // floor_seq for a batch from first_seq: nothing below it is ever sent again
    // (all committed, or dropped by the store), and never above first_seq.
    std::uint64_t floor_for(std::uint64_t first_seq, std::uint64_t oldest_held) const noexcept;

    // Batch first_seq .. last_seq went out as packet_id at `now` (the ack timer
    // starts with the first batch in flight). False, and nothing changes, when
    // kMaxWindow batches are in flight already or last_seq < first_seq.
    bool sent(std::uint64_t first_seq, std::uint64_t last_seq, std::uint16_t packet_id, std::uint64_t now) noexcept;

    // How an ack of this incarnation with `watermark` fits: Stale when not above
    // W (duplicate or out of order), AheadOfProduced when it covers seqs at or
    // after `next_seq` (never produced), else Accepted.
    AckOutcome judge(std::uint64_t watermark, std::uint64_t next_seq) const noexcept;

    // A watermark judged Accepted: W moves to it, the batches it covers leave
    // the window, S skips what the gateway already has, and the ack timer
    // restarts at `now`. A watermark not above W is ignored (false).
    bool acknowledge(std::uint64_t watermark, std::uint64_t now) noexcept;

    // Batches are in flight and W has not moved for timeout_ms.
    bool timed_out(std::uint64_t now, std::uint32_t timeout_ms) const noexcept;
    // When timed_out() becomes true; false when nothing is in flight.
    bool ack_deadline_ms(std::uint32_t timeout_ms, std::uint64_t* at) const noexcept;

    // Forgets the batches in flight (the link dropped, or acks stopped) and
    // sends again from W + 1, restarting the ack timer at `now`. True when that
    // repeats readings already sent (a resend); *from is W + 1 either way.
    bool rewind(std::uint64_t now, std::uint64_t* from) noexcept;

    // Every seq below `next_seq` is covered by a commit ack.
    bool covers(std::uint64_t next_seq) const noexcept { return acked_through_ + 1 >= next_seq; }

private:
    std::uint64_t acked_through_ = 0;
    std::uint64_t next_send_seq_ = 1;
    std::array<InFlightBatch, kMaxWindow> batches_{};
    std::size_t count_ = 0;
    std::uint64_t last_progress_ms_ = 0;  // last advance of W, or the window became non-empty
};

}  // namespace fieldlink::reader
