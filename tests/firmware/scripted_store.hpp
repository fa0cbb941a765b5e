// A ReadingStore for the tests of the reader's parts: readings and per-boot
// wall-clock offsets set up directly, scripted results for append and
// note_wall_offset, and counts of the calls a part makes.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "fieldlink/reader/reading_store.hpp"

namespace fieldlink::test {

class ScriptedStore final : public reader::ReadingStore {
public:
    explicit ScriptedStore(std::uint32_t boot = 0) : boot_(boot) {}

    // A held reading of any boot, with the next seq.
    void add(std::uint32_t boot, std::uint8_t channel, std::uint64_t mono_ms, double value) {
        reader::StoredReading r;
        r.seq = next_++;
        r.boot = boot;
        r.record.channel = channel;
        r.record.mono_ms = mono_ms;
        r.record.value = value;
        held_.push_back(r);
    }
    void set_offset(std::uint32_t boot, std::int64_t offset_ms) { offsets_[boot] = offset_ms; }
    const std::vector<reader::StoredReading>& readings() const { return held_; }

    reader::StoreStatus append(const protocol::Record& record, std::uint64_t* seq) override {
        ++appends;
        if (append_status != reader::StoreStatus::Ok) return append_status;
        add(boot_, record.channel, record.mono_ms, record.value);
        *seq = next_ - 1;
        return reader::StoreStatus::Ok;
    }
    std::size_t read(std::uint64_t from_seq, reader::StoredReading* out, std::size_t max) override {
        ++reads;
        if (fail_reads) return 0;
        std::size_t n = 0;
        for (const reader::StoredReading& r : held_) {
            if (r.seq < from_seq) continue;
            if (n == max || (n > 0 && r.boot != out[0].boot)) break;
            out[n++] = r;
        }
        return n;
    }
    reader::StoreStatus trim(std::uint64_t through_seq) override {
        while (!held_.empty() && held_.front().seq <= through_seq) held_.erase(held_.begin());
        return reader::StoreStatus::Ok;
    }
    std::uint64_t incarnation() const override { return incarnation_value; }
    std::uint32_t boot() const override { return boot_; }
    std::uint64_t oldest_seq() const override { return held_.empty() ? next_ : held_.front().seq; }
    std::uint64_t next_seq() const override { return next_; }
    std::uint64_t held() const override { return held_.size(); }
    std::uint64_t dropped() const override { return dropped_value; }
    reader::StoreStatus note_wall_offset(std::int64_t offset_ms) override {
        ++notes;
        if (note_status == reader::StoreStatus::Ok || note_status == reader::StoreStatus::Full) {
            offsets_[boot_] = offset_ms;
        }
        return note_status;
    }
    bool wall_offset(std::uint32_t boot, std::int64_t* offset_ms) override {
        ++offset_queries[boot];
        const auto found = offsets_.find(boot);
        if (found == offsets_.end()) return false;
        *offset_ms = found->second;
        return true;
    }
    bool noted(std::uint32_t boot, std::int64_t* offset_ms) const {
        const auto found = offsets_.find(boot);
        if (found == offsets_.end()) return false;
        *offset_ms = found->second;
        return true;
    }

    // Script.
    reader::StoreStatus append_status = reader::StoreStatus::Ok;
    reader::StoreStatus note_status = reader::StoreStatus::Ok;
    bool fail_reads = false;
    std::uint64_t incarnation_value = 0x1122334455667788ull;
    std::uint64_t dropped_value = 0;

    // Observations.
    int appends = 0;
    int reads = 0;
    int notes = 0;
    std::map<std::uint32_t, int> offset_queries;

private:
    std::uint32_t boot_;
    std::uint64_t next_ = 1;
    std::vector<reader::StoredReading> held_;
    std::map<std::uint32_t, std::int64_t> offsets_;
};

}  // namespace fieldlink::test
