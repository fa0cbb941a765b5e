// Power-loss sweep: a scripted device life (appends, trims, sector rotation,
// drops or refusals when full, reboots) is cut at every flash program/erase
// index k in turn, with the k-th operation skipped, torn, or completed without
// returning. After the power comes back the spool must mount, still hold every
// reading whose append returned Ok unless a trim covered it (or the drop
// policy dropped and counted it), return only intact readings, and never hand
// out a sequence number that may already be on flash. It must then keep
// working normally.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fieldlink/spool/flash_spool.hpp"
#include "ram_flash.hpp"
#include "spool_format.hpp"  // kSectorHeaderSize, kSlotSize (private to the spool)

namespace fieldlink::testing {
namespace {

using reader::FullPolicy;
using reader::StoredReading;
using reader::StoreStatus;

protocol::Record make_record(std::uint64_t n) {
    return protocol::Record{static_cast<std::uint8_t>(n * 7 % 11), 5000 + 13 * n, static_cast<double>(n) * 1.5 + 0.125};
}

bool same(const StoredReading& a, const StoredReading& b) {
    return a.seq == b.seq && a.boot == b.boot && a.record.channel == b.record.channel &&
           a.record.mono_ms == b.record.mono_ms && std::memcmp(&a.record.value, &b.record.value, sizeof(double)) == 0;
}

// What the device was told, and so what the spool owes it.
struct Reference {
    std::map<std::uint64_t, StoredReading> held;    // append returned Ok
    std::map<std::uint64_t, StoredReading> maybe;   // append failed: may be on flash, then intact
    std::uint64_t trimmed = 0;                      // highest watermark passed to trim (even if it failed)
    std::uint64_t highest_seq = 0;                  // highest seq handed out or attempted
    std::uint64_t dropped_at_check = 0;             // dropped() at the last check
    std::uint64_t incarnation = 0;                  // 0 until the first mount completes
    std::uint64_t produced = 0;                     // readings produced, for their values
    std::map<std::uint32_t, std::int64_t> offsets;  // boot -> wall offset noted with Ok
    std::map<std::uint32_t, std::set<std::int64_t>> maybe_offsets;  // boot -> notes that did not complete
};

enum class Step : std::uint8_t { Ok, Cut, Broken };

class Device {
public:
    Device(hal::FlashGeometry geometry, FullPolicy policy) : ram_(geometry), policy_(policy) {
        fault_ = std::make_unique<FaultFlash>(ram_);
    }

    FaultFlash& fault() { return *fault_; }
    const std::string& error() const { return error_; }
    std::uint32_t slots() const { return (ram_.geometry().sector_size - spool::kSectorHeaderSize) / spool::kSlotSize; }

    // Power comes back: the flash keeps its contents, the cut is over.
    void power_on() { fault_ = std::make_unique<FaultFlash>(ram_); }

    // The flash failed: the power went, or a read glitched.
    bool faulted() const { return !fault_->powered() || fault_->read_failed(); }

    Step boot() {
        store_ = std::make_unique<spool::FlashSpool>(*fault_, random_, spool::SpoolConfig{policy_});
        const StoreStatus status = store_->mount();
        if (status == StoreStatus::IoError && faulted()) {
            return Step::Cut;
        }
        if (status != StoreStatus::Ok) {
            return broken("mount returned " + std::to_string(static_cast<int>(status)));
        }
        return check();
    }

    Step append() {
        const std::uint64_t attempted = store_->next_seq();
        const StoredReading reading{attempted, store_->boot(), make_record(++ref_.produced)};
        std::uint64_t seq = 0;
        StoreStatus status = store_->append(reading.record, &seq);
        if (status == StoreStatus::Full && policy_ == FullPolicy::RefuseNew) {
            // Like a gateway ack arriving: trim most, then everything if needed.
            for (const std::uint64_t keep : {4u, 1u}) {
                const std::uint64_t next = store_->next_seq();
                const Step step = trim(next > keep ? next - keep : 0);
                if (step != Step::Ok) {
                    return step;
                }
                status = store_->append(reading.record, &seq);
                if (status != StoreStatus::Full) {
                    break;
                }
            }
        }
        if (status == StoreStatus::IoError && faulted()) {
            // If the cut left any trace of the reading record itself (type
            // 'R', firmware/spool/README.md), its seq must never come back.
            const auto& cut = fault_->cut_report();
            if (!fault_->powered() && !cut.erase && cut.length == spool::kSlotSize && cut.changed &&
                cut.data.at(0) == 'R') {
                ref_.maybe[attempted] = reading;
                ref_.highest_seq = std::max(ref_.highest_seq, attempted);
            }
            return Step::Cut;
        }
        if (status != StoreStatus::Ok) {
            return broken("append returned " + std::to_string(static_cast<int>(status)));
        }
        if (seq != attempted) {
            return broken("append gave seq " + std::to_string(seq) + ", next_seq said " + std::to_string(attempted));
        }
        ref_.held[seq] = reading;
        ref_.highest_seq = std::max(ref_.highest_seq, seq);
        return Step::Ok;
    }

    Step trim(std::uint64_t through) {
        ref_.trimmed = std::max(ref_.trimmed, through);
        const StoreStatus status = store_->trim(through);
        if (status == StoreStatus::IoError && faulted()) {
            return Step::Cut;
        }
        if (status != StoreStatus::Ok) {
            return broken("trim returned " + std::to_string(static_cast<int>(status)));
        }
        return Step::Ok;
    }

    Step note_offset(std::int64_t offset_ms) {
        const std::uint32_t boot = store_->boot();
        const StoreStatus status = store_->note_wall_offset(offset_ms);
        if (status == StoreStatus::Ok) {
            ref_.offsets[boot] = offset_ms;
            ref_.maybe_offsets.erase(boot);
            return Step::Ok;
        }
        ref_.maybe_offsets[boot].insert(offset_ms);
        if (status == StoreStatus::IoError && faulted()) {
            return Step::Cut;
        }
        if (status == StoreStatus::Full) {
            return Step::Ok;  // no free slot now: held in RAM until a sector opens
        }
        return broken("note_wall_offset returned " + std::to_string(static_cast<int>(status)));
    }

    // Trims all but the newest `keep` readings.
    Step trim_keeping(std::uint64_t keep) {
        const std::uint64_t next = store_->next_seq();
        return trim(next > keep + 1 ? next - keep - 1 : 0);
    }

    // A batch as the reader would send it: must match what was appended.
    Step read_batch() {
        StoredReading out[4];
        const std::size_t got = store_->read(store_->oldest_seq(), out, 4);
        if (faulted()) {
            return Step::Cut;
        }
        for (std::size_t i = 0; i < got; ++i) {
            if (!matches_reference(out[i])) {
                return broken("read returned a reading that was never appended as such, seq " +
                              std::to_string(out[i].seq));
            }
        }
        return Step::Ok;
    }

    Step appends(std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            const Step step = append();
            if (step != Step::Ok) {
                return step;
            }
        }
        return Step::Ok;
    }

private:
    Step broken(const std::string& what) {
        if (error_.empty()) {
            error_ = what;
        }
        return Step::Broken;
    }

    bool matches_reference(const StoredReading& reading) const {
        for (const auto* table : {&ref_.held, &ref_.maybe}) {
            const auto found = table->find(reading.seq);
            if (found != table->end()) {
                return same(found->second, reading);
            }
        }
        return false;
    }

    // Right after a mount: compares the whole spool with the reference.
    Step check() {
        auto& store = *store_;
        if (ref_.incarnation != 0 && store.incarnation() != ref_.incarnation) {
            return broken("incarnation changed: the log was not recognised");
        }
        if (store.next_seq() <= ref_.highest_seq) {
            return broken("next_seq " + std::to_string(store.next_seq()) + " may reuse seq " +
                          std::to_string(ref_.highest_seq));
        }
        std::vector<StoredReading> present;
        StoredReading batch[3];
        std::uint64_t from = 0;
        for (;;) {
            const std::size_t got = store.read(from, batch, 3);
            if (faulted()) {
                return Step::Cut;  // the read glitched: no verdict from this mount
            }
            if (got == 0) {
                break;
            }
            for (std::size_t i = 0; i < got; ++i) {
                if (!present.empty() && batch[i].seq <= present.back().seq) {
                    return broken("read went backwards");
                }
                if (batch[i].boot != batch[0].boot) {
                    return broken("a batch mixes boots");
                }
                if (!matches_reference(batch[i])) {
                    return broken("corrupted or unknown reading returned, seq " + std::to_string(batch[i].seq));
                }
                if (batch[i].boot >= store.boot()) {
                    return broken("boot counter did not advance past a stored reading's boot");
                }
                present.push_back(batch[i]);
            }
            from = batch[got - 1].seq + 1;
        }
        std::uint64_t dropped_here = 0;
        std::size_t next_present = 0;
        for (const auto& [seq, reading] : ref_.held) {
            while (next_present < present.size() && present[next_present].seq < seq) {
                ++next_present;
            }
            if (next_present < present.size() && present[next_present].seq == seq) {
                continue;
            }
            if (seq <= ref_.trimmed) {
                continue;  // a trim covered it
            }
            if (policy_ == FullPolicy::DropOldest && seq <= store.floor_seq()) {
                ++dropped_here;
                continue;
            }
            return broken("lost reading seq " + std::to_string(seq) + " (floor " + std::to_string(store.floor_seq()) +
                          ")");
        }
        if (store.dropped() < ref_.dropped_at_check || dropped_here > store.dropped() - ref_.dropped_at_check) {
            return broken("dropped readings not counted");
        }
        if (policy_ == FullPolicy::RefuseNew && (store.dropped() != 0 || store.floor_seq() > ref_.trimmed)) {
            return broken("RefuseNew dropped readings");
        }
        if (store.held() != present.size()) {
            return broken("held() " + std::to_string(store.held()) + " but " + std::to_string(present.size()) +
                          " readable");
        }
        const std::uint64_t oldest = present.empty() ? store.next_seq() : present.front().seq;
        if (store.oldest_seq() != oldest) {
            return broken("oldest_seq() disagrees with the readings");
        }
        // Each boot that still has readings knows the offset it noted.
        std::map<std::uint32_t, std::int64_t> offsets;
        for (const auto& reading : present) {
            if (offsets.count(reading.boot) != 0) {
                continue;
            }
            std::int64_t offset = 0;
            const bool known = store.wall_offset(reading.boot, &offset);
            if (faulted()) {
                return Step::Cut;
            }
            const auto ok = ref_.offsets.find(reading.boot);
            const auto maybe = ref_.maybe_offsets.find(reading.boot);
            const bool is_maybe = maybe != ref_.maybe_offsets.end() && known && maybe->second.count(offset) != 0;
            if (ok != ref_.offsets.end() && !(known && offset == ok->second) && !is_maybe) {
                return broken("wall offset of boot " + std::to_string(reading.boot) + " lost or wrong");
            }
            if (ok == ref_.offsets.end() && known && !is_maybe) {
                return broken("wall offset invented for boot " + std::to_string(reading.boot));
            }
            if (known) {
                offsets[reading.boot] = offset;
            }
        }
        // From here on the recovered state is the reference.
        ref_.offsets = offsets;
        ref_.maybe_offsets.clear();
        ref_.held.clear();
        for (const auto& reading : present) {
            ref_.held[reading.seq] = reading;
        }
        ref_.maybe.clear();
        ref_.dropped_at_check = store.dropped();
        ref_.incarnation = store.incarnation();
        return Step::Ok;
    }

    RamFlash ram_;
    std::unique_ptr<FaultFlash> fault_;
    SeededRandom random_{0x5EED};
    FullPolicy policy_;
    std::unique_ptr<spool::FlashSpool> store_;
    Reference ref_;
    std::string error_;
};

#define FIELDLINK_STEP(expression)       \
    do {                                 \
        const Step step_ = (expression); \
        if (step_ != Step::Ok) {         \
            return step_;                \
        }                                \
    } while (false)

// The scripted life of a device; stops at the first cut.
Step scenario(Device& device) {
    const std::uint64_t slots = device.slots();
    FIELDLINK_STEP(device.boot());  // formats
    FIELDLINK_STEP(device.appends(slots + 3));
    FIELDLINK_STEP(device.note_offset(1000));
    FIELDLINK_STEP(device.read_batch());
    FIELDLINK_STEP(device.trim(3));
    FIELDLINK_STEP(device.appends(slots));
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.appends(5));
    FIELDLINK_STEP(device.note_offset(-2000));
    FIELDLINK_STEP(device.note_offset(-2000));  // unchanged: no write
    FIELDLINK_STEP(device.trim_keeping(4));
    FIELDLINK_STEP(device.read_batch());
    // More than the flash holds: drops, or refusals answered by trims.
    FIELDLINK_STEP(device.appends(slots * 5));
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.trim_keeping(2));
    for (int i = 0; i < 3; ++i) {
        FIELDLINK_STEP(device.appends(slots / 2 + 1));
        FIELDLINK_STEP(device.note_offset(3000 + i));  // learned again, a little different
        FIELDLINK_STEP(device.trim_keeping(1));
    }
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.trim_keeping(0));
    FIELDLINK_STEP(device.appends(3));
    return device.boot();
}

// After the power returns: recover, then live on. Reboots come right after
// the recovery too, while the head may still end in the torn record.
Step recover_and_continue(Device& device) {
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.read_batch());
    FIELDLINK_STEP(device.appends(1));
    FIELDLINK_STEP(device.note_offset(-77));
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.appends(device.slots() * 3));
    FIELDLINK_STEP(device.trim_keeping(3));
    FIELDLINK_STEP(device.boot());
    FIELDLINK_STEP(device.appends(5));
    return device.boot();
}

struct SweepCase {
    const char* name;
    hal::FlashGeometry geometry;
    FullPolicy policy;
};

void PrintTo(const SweepCase& sweep, std::ostream* out) { *out << sweep.name; }

class PowerLossSweep : public ::testing::TestWithParam<SweepCase> {};

// Operations of the recovery (mount erases, boot markers, first appends) at
// which a second cut is tried after every first cut.
constexpr std::uint64_t kSecondCuts = 6;

TEST_P(PowerLossSweep, EveryCutPointRecovers) {
    const SweepCase& sweep = GetParam();
    std::uint64_t operations = 0;
    {
        Device device(sweep.geometry, sweep.policy);
        ASSERT_EQ(scenario(device), Step::Ok) << device.error();
        operations = device.fault().operations();
    }
    ASSERT_GT(operations, 20u);

    struct Mode {
        CutMode mode;
        std::uint64_t seed;
    };
    const Mode modes[] = {{CutMode::Skip, 0}, {CutMode::Complete, 0}, {CutMode::Torn, 1},
                          {CutMode::Torn, 2}, {CutMode::Torn, 3},     {CutMode::Torn, 4}};
    std::uint64_t runs = 0;
    for (std::uint64_t cut = 0; cut < operations; ++cut) {
        for (const Mode& mode : modes) {
            Device device(sweep.geometry, sweep.policy);
            device.fault().cut_power_at(cut, mode.mode, mode.seed * 1000003 + cut);
            const Step first = scenario(device);
            std::ostringstream where;
            where << sweep.name << ": power cut at operation " << cut << " of " << operations << " ("
                  << to_string(mode.mode) << ", seed " << mode.seed << ")";
            ASSERT_EQ(first, Step::Cut) << where.str() << ": " << device.error();
            device.power_on();
            const Step after = recover_and_continue(device);
            ASSERT_EQ(after, Step::Ok) << where.str() << ": " << device.error();
            ++runs;
        }
        // A second cut while recovering from a torn operation.
        for (std::uint64_t second = 0; second < kSecondCuts; ++second) {
            Device device(sweep.geometry, sweep.policy);
            device.fault().cut_power_at(cut, CutMode::Torn, cut * 7 + second);
            ASSERT_EQ(scenario(device), Step::Cut);
            device.power_on();
            device.fault().cut_power_at(second, CutMode::Torn, cut * 13 + second);
            const Step interrupted = recover_and_continue(device);
            std::ostringstream where;
            where << sweep.name << ": torn cut at operation " << cut << ", then at operation " << second
                  << " of the recovery";
            ASSERT_NE(interrupted, Step::Broken) << where.str() << ": " << device.error();
            device.power_on();
            ASSERT_EQ(recover_and_continue(device), Step::Ok) << where.str() << ": " << device.error();
            ++runs;
        }
    }
    RecordProperty("cut_points", static_cast<int>(operations));
    RecordProperty("runs", static_cast<int>(runs));
    std::printf("%s: %llu cut points x (%zu modes + %llu second cuts) = %llu power cuts recovered\n", sweep.name,
                static_cast<unsigned long long>(operations), sizeof modes / sizeof modes[0],
                static_cast<unsigned long long>(kSecondCuts), static_cast<unsigned long long>(runs));
}

// A read that fails once (a bus glitch, not a power cut) in any operation:
// the operation reports IoError, nothing is damaged, a remount recovers all.
TEST_P(PowerLossSweep, EveryFailedReadRecovers) {
    const SweepCase& sweep = GetParam();
    std::uint64_t reads = 0;
    {
        Device device(sweep.geometry, sweep.policy);
        device.fault().fail_read_at(~0ull);  // count only
        ASSERT_EQ(scenario(device), Step::Ok) << device.error();
        reads = device.fault().reads();
    }
    for (std::uint64_t read = 0; read < reads; ++read) {
        Device device(sweep.geometry, sweep.policy);
        device.fault().fail_read_at(read);
        const Step first = scenario(device);
        ASSERT_EQ(first, Step::Cut) << sweep.name << ": read " << read << " of " << reads << ": " << device.error();
        device.power_on();
        ASSERT_EQ(recover_and_continue(device), Step::Ok)
            << sweep.name << ": failed read " << read << ": " << device.error();
    }
}

INSTANTIATE_TEST_SUITE_P(
    Spool, PowerLossSweep,
    ::testing::Values(SweepCase{"DropOldest_6slots_5sectors_w4", {256, 5, 4}, FullPolicy::DropOldest},
                      SweepCase{"RefuseNew_6slots_5sectors_w4", {256, 5, 4}, FullPolicy::RefuseNew},
                      SweepCase{"DropOldest_4slots_3sectors_w8", {192, 3, 8}, FullPolicy::DropOldest},
                      SweepCase{"RefuseNew_4slots_3sectors_w8", {192, 3, 8}, FullPolicy::RefuseNew},
                      SweepCase{"DropOldest_2slots_2sectors_w32", {128, 2, 32}, FullPolicy::DropOldest},
                      SweepCase{"RefuseNew_2slots_2sectors_w1", {128, 2, 1}, FullPolicy::RefuseNew}),
    [](const ::testing::TestParamInfo<SweepCase>& param) { return std::string(param.param.name); });

}  // namespace
}  // namespace fieldlink::testing
