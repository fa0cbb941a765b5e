// A ReadingStore in RAM: a ring of fixed capacity that loses its contents on
// reset (development boards, tests, and devices without flash). The flash
// spool replaces it without any change to the reader core.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::reader {

// One held reading; its seq is implied by its place in the ring.
struct RamSlot {
    std::uint64_t mono_ms = 0;
    double value = 0.0;
    std::uint32_t boot = 0;
    std::uint8_t channel = 0;
};

// The ring logic over caller-owned slots (capacity-agnostic, not polymorphic).
class RamRing {
public:
    RamRing(std::span<RamSlot> slots, std::uint64_t incarnation, FullPolicy policy, std::uint32_t boot) noexcept;

    StoreStatus append(const protocol::Record& record, std::uint64_t* seq) noexcept;
    std::size_t read(std::uint64_t from_seq, StoredReading* out, std::size_t max) const noexcept;
    StoreStatus trim(std::uint64_t through_seq) noexcept;
    StoreStatus note_wall_offset(std::int64_t offset_ms) noexcept;
    bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) const noexcept;

    std::uint64_t incarnation() const noexcept { return incarnation_; }
    std::uint32_t boot() const noexcept { return boot_; }
    std::uint64_t oldest_seq() const noexcept { return oldest_seq_; }
    std::uint64_t next_seq() const noexcept { return next_seq_; }
    std::uint64_t held() const noexcept { return next_seq_ - oldest_seq_; }
    std::uint64_t dropped() const noexcept { return dropped_; }
    std::size_t capacity() const noexcept { return slots_.size(); }

private:
    std::size_t index_of(std::uint64_t seq) const noexcept;

    std::span<RamSlot> slots_;
    std::uint64_t incarnation_;
    FullPolicy policy_;
    std::uint32_t boot_;
    std::size_t head_ = 0;  // slot of oldest_seq_
    std::uint64_t oldest_seq_ = 1;
    std::uint64_t next_seq_ = 1;
    std::uint64_t dropped_ = 0;
    bool offset_known_ = false;  // the running boot's wall-clock offset; RAM knows no other boot
    std::int64_t offset_ms_ = 0;
};

namespace detail {

template <std::size_t N>
struct ArraySlots {
    std::array<RamSlot, N> slots{};
    std::span<RamSlot> span() noexcept { return slots; }
};

struct BorrowedSlots {
    std::span<RamSlot> slots;
    std::span<RamSlot> span() const noexcept { return slots; }
};

}  // namespace detail

// ReadingStore over a RamRing; Storage decides where the slots live.
template <class Storage>
class BasicRamStore final : public ReadingStore {
public:
    template <class... StorageArgs>
    explicit BasicRamStore(std::uint64_t incarnation, FullPolicy policy = FullPolicy::DropOldest,
                           StorageArgs... storage_args) noexcept
        : storage_{storage_args...}, ring_(storage_.span(), incarnation, policy, 0) {}

    StoreStatus append(const protocol::Record& record, std::uint64_t* seq) override {
        return ring_.append(record, seq);
    }
    std::size_t read(std::uint64_t from_seq, StoredReading* out, std::size_t max) override {
        return ring_.read(from_seq, out, max);
    }
    StoreStatus trim(std::uint64_t through_seq) override { return ring_.trim(through_seq); }
    StoreStatus note_wall_offset(std::int64_t offset_ms) override { return ring_.note_wall_offset(offset_ms); }
    bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) override {
        return ring_.wall_offset(boot, offset_ms);
    }

    std::uint64_t incarnation() const override { return ring_.incarnation(); }
    std::uint32_t boot() const override { return ring_.boot(); }  // RAM forgets: every run is boot 0
    std::uint64_t oldest_seq() const override { return ring_.oldest_seq(); }
    std::uint64_t next_seq() const override { return ring_.next_seq(); }
    std::uint64_t held() const override { return ring_.held(); }
    std::uint64_t dropped() const override { return ring_.dropped(); }

    std::size_t capacity() const noexcept { return ring_.capacity(); }

private:
    Storage storage_;
    RamRing ring_;
};

// Fixed capacity known at compile time; the slots live inside the object.
template <std::size_t Capacity>
using RamStore = BasicRamStore<detail::ArraySlots<Capacity>>;

// Capacity chosen at run time; the caller owns the slots and keeps them alive:
//   RamSpanStore store(incarnation, FullPolicy::DropOldest, std::span<RamSlot>(slots));
using RamSpanStore = BasicRamStore<detail::BorrowedSlots>;

}  // namespace fieldlink::reader
