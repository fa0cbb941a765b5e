// libFuzzer target for the flash spool's recovery: a board whose flash holds
// garbage, another program's data or a strange but CRC-valid log must format
// or recover, and then work. The input chooses a flash shape and holds the
// flash image and a short script of operations (spool_fuzz_input.hpp); the
// target mounts fieldlink::spool::FlashSpool over a RAM flash that never
// fails, runs the script (append, read, trim, wall-clock offsets, remount,
// reboot with a new object), reads everything, appends one more reading and
// reads it back, then reboots once more and reads everything again.
//
// Invariants on every image: each call returns (libFuzzer's -timeout catches
// a loop) with a documented status; mount() is Ok on a usable shape (never
// IoError: the flash never fails) and InvalidArgument on the others; the
// spool never programs a byte that is not erased, nor out of range or
// misaligned; append hands out next_seq, and across any number of reboots a
// sequence number is never handed out twice; the incarnation never changes
// and a log that this run wrote is never formatted away; a boot that wrote
// something gets a new number at the next mount; reads stay at or after
// from_seq, above the floor and within one boot; floor < next_seq; drop
// counts only grow, and only under DropOldest.
//
// Invariants on images whose log is ordered, as every log the spool writes is
// (torn writes and power cuts included; see ordered_log()): also no IoError
// from any call; one sector always free; oldest_seq <= next_seq and held <=
// next_seq - oldest_seq; Full only under RefuseNew; reads ascending and below
// next_seq; every reading appended after recovery reads back, bit for bit,
// until a trim or a counted drop removes it. On a CRC-valid log that breaks
// that order the spool trusts the records it finds, and reads may come back
// out of order or a call may fail with IoError; then a remount must work.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "fieldlink/spool/flash_spool.hpp"
#include "spool_fuzz_input.hpp"

namespace fz = fieldlink::fuzz;
namespace sp = fieldlink::spool;
namespace rd = fieldlink::reader;
namespace fp = fieldlink::protocol;
using rd::StoreStatus;

namespace {

[[noreturn]] void violated(const char* what, int line) {
    std::fprintf(stderr, "fuzz_spool: invariant violated (line %d): %s\n", line, what);
    std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : violated(#cond, __LINE__))
// Checked only when the log is ordered (Run::ordered_, see ordered_log()).
#define ORDERED_CHECK(cond) ((!ordered_ || (cond)) ? (void)0 : violated(#cond " (ordered log)", __LINE__))

class FixedRandom final : public fieldlink::hal::Random {
public:
    std::uint32_t next_u32() override { return static_cast<std::uint32_t>(next_u64() >> 32); }
    std::uint64_t next_u64() override {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);  // splitmix64
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

private:
    std::uint64_t state_ = 1;
};

struct Appended {
    std::uint64_t seq;
    std::uint32_t boot;
    fp::Record record;
};

std::uint64_t bits_of(double value) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

constexpr std::size_t kBurst = 16;
constexpr std::size_t kMaxAppended = fz::kMaxOperations * kBurst + 16;

// Whether the log that mount() will find in this image (the newest valid
// header, and the sectors before it with the same incarnation and consecutive
// sector numbers, as mount() walks them) keeps the order the spool writes
// (below). Checked before the first mount, which may erase sectors of the
// log. Blank or foreign flash (no valid header) is formatted: ordered.
bool ordered_log(const fz::StaticFlash& flash) {
    const fieldlink::hal::FlashGeometry g = flash.geometry();
    const auto header_at = [&](std::uint32_t sector, sp::SectorHeader* header) {
        return sp::decode_header(flash.bytes + std::size_t{sector} * g.sector_size, g, header);
    };
    bool found = false;
    sp::SectorHeader head;
    std::uint32_t head_sector = 0;
    for (std::uint32_t sector = 0; sector < g.sector_count; ++sector) {
        sp::SectorHeader header;
        if (header_at(sector, &header) && (!found || header.sector_seq > head.sector_seq)) {
            found = true;
            head = header;
            head_sector = sector;
        }
    }
    if (!found) return true;
    std::uint32_t tail = head_sector;
    std::uint32_t live = 1;
    for (std::uint32_t expected = head.sector_seq; live < g.sector_count && expected > 1; --expected) {
        const std::uint32_t before = tail == 0 ? g.sector_count - 1 : tail - 1;
        sp::SectorHeader header;
        if (!header_at(before, &header) || header.incarnation != head.incarnation ||
            header.sector_seq != expected - 1) {
            break;
        }
        tail = before;
        ++live;
    }
    // In write order, every header's base seq, marker's next seq and
    // reading's seq is the spool's next_seq at that moment, which never goes
    // down and goes up with every reading; floors (headers, trim markers)
    // never go down either.
    std::uint64_t next = 0;
    std::uint64_t floor = 0;
    std::uint64_t tail_max = 0;  // highest seq in the tail sector
    std::uint32_t boot = 0;      // highest boot counter
    for (std::uint32_t k = 0; k < live; ++k) {
        const std::uint32_t sector = (tail + k) % g.sector_count;
        sp::SectorHeader header;
        header_at(sector, &header);
        if (header.base_seq < next || header.floor < floor) return false;
        next = header.base_seq;
        floor = header.floor;
        if (header.boot > boot) boot = header.boot;
        for (std::uint32_t i = 0; i < sp::slots_per_sector(g.sector_size); ++i) {
            sp::Slot slot;
            sp::decode_slot(flash.bytes + std::size_t{sector} * g.sector_size + sp::slot_offset(i), header, &slot);
            if (slot.kind != sp::Slot::Kind::Blank && slot.kind != sp::Slot::Kind::Bad && slot.boot > boot) {
                boot = slot.boot;
            }
            if (slot.kind == sp::Slot::Kind::Reading) {
                if (slot.seq < next) return false;
                next = slot.seq + 1;
                if (k == 0) tail_max = slot.seq;
            } else if (slot.kind != sp::Slot::Kind::Blank && slot.kind != sp::Slot::Kind::Bad) {
                if (slot.next_seq < next) return false;
                next = slot.next_seq;
                if (slot.kind == sp::Slot::Kind::Trim) {
                    if (slot.value < floor) return false;
                    floor = slot.value;
                }
            }
        }
    }
    // Every sector in the log: only a cut between opening the last free sector
    // and erasing the tail leaves that, and the new head's floor then already
    // covers the tail (DropOldest), so mount() erases it.
    if (live == g.sector_count && head.floor < tail_max) return false;
    // Within one run's reach of the end of its numbering (the spool takes
    // 2^31 - 2^16 boots, 2^31 - 2^20 sectors or 2^62 - 2^33 readings to get
    // there: only a crafted image is this close), a log is formatted once a
    // mount finds a counter past the mark (spool_format.hpp): not held to the
    // checks of a log that keeps its incarnation.
    constexpr std::uint32_t kReachBoots = 256;
    constexpr std::uint32_t kReachSectors = 1u << 16;
    constexpr std::uint64_t kReachSeqs = 1u << 16;
    if (boot >= sp::kBootExhausted - kReachBoots || head.sector_seq > sp::kSectorSeqExhausted - kReachSectors ||
        next > sp::kSeqExhausted - kReachSeqs) {
        return false;
    }
    return true;
}

class Run {
public:
    Run(fz::StaticFlash& flash, sp::SpoolConfig config) : flash_(flash), config_(config) {}
    ~Run() { destroy(); }

    // The first mount of the image. False when the shape is unusable.
    bool start() {
        ordered_ = ordered_log(flash_);
        create();
        programs_before_mount_ = flash_.counters().programs;
        const StoreStatus s = spool().mount();
        if (!sp::FlashSpool::usable(flash_.geometry())) {
            FUZZ_CHECK(s == StoreStatus::InvalidArgument && !spool().mounted());
            FUZZ_CHECK(spool().append(fp::Record{}, nullptr) == StoreStatus::IoError);
            return false;
        }
        FUZZ_CHECK(flash_.misuses == 0);
        if (mount_failed(s)) return false;
        incarnation_ = spool().incarnation();
        if (spool().stats().formatted) FUZZ_CHECK(incarnation_ != 0);  // a format never picks 0
        dropped_ = dropped_at_start_ = spool().dropped();
        check_state();
        verify_all();
        return true;
    }

    void operation(std::uint8_t opcode, std::uint8_t argument) {
        if (down_) return;
        switch (opcode % 8) {
            case 0: append(argument); break;
            case 1: read_window(argument); break;
            case 2: trim(spool().oldest_seq() - 1 + argument % 8); break;
            case 3: reboot(false); break;
            case 4: reboot(true); break;
            case 5: note_offset(static_cast<std::int64_t>(argument) * 1000 - 100'000); break;
            case 6: {
                std::int64_t first = 0;
                std::int64_t second = 0;
                const std::uint32_t boot = spool().boot() - 1 - argument % 3;
                const bool known = spool().wall_offset(boot, &first);
                if (!spool().mounted()) {
                    FUZZ_CHECK(!known);
                    ORDERED_CHECK(false);
                    remount_after_error();
                    break;
                }
                ORDERED_CHECK(spool().wall_offset(boot, &second) == known && (!known || first == second));
                break;
            }
            default:
                for (unsigned i = 0; i <= argument % kBurst; ++i) {
                    if (!append(static_cast<std::uint8_t>(argument + i))) break;
                }
                break;
        }
        if (down_) return;
        forget_removed();
        check_state();
    }

    // After the script, whatever the image was: the spool takes one more
    // reading (under RefuseNew, if full, once everything is trimmed), gives
    // it back, and still gives it back after a reboot (ordered logs).
    void finish() {
        if (down_) return;
        verify_all();
        if (down_) return;
        check_usable();
        if (!down_) reboot(true);
    }

private:
    sp::FlashSpool& spool() { return *std::launder(reinterpret_cast<sp::FlashSpool*>(storage_)); }
    void create() {
        new (storage_) sp::FlashSpool(flash_, random_, config_);
        alive_ = true;
    }
    void destroy() {
        if (alive_) spool().~FlashSpool();
        alive_ = false;
    }

    // True when `s` is IoError, which the flash (it never fails) cannot
    // explain: allowed only on unordered logs; then the spool is mounted
    // again, as the reader does after any IoError.
    bool io_error(StoreStatus s) {
        FUZZ_CHECK(flash_.misuses == 0);  // the spool asked the flash for something it cannot do
        if (s != StoreStatus::IoError) return false;
        ORDERED_CHECK(false);
        FUZZ_CHECK(!spool().mounted());
        remount_after_error();
        return true;
    }

    // mount()'s result on a usable shape: Ok, or (unordered logs only)
    // IoError, after which this run stops ("down"). True when down.
    bool mount_failed(StoreStatus status) {
        FUZZ_CHECK(flash_.misuses == 0);
        FUZZ_CHECK(status == StoreStatus::Ok || status == StoreStatus::IoError);
        FUZZ_CHECK(spool().mounted() == (status == StoreStatus::Ok));
        ORDERED_CHECK(status == StoreStatus::Ok);  // never IoError: the flash never fails
        down_ = status != StoreStatus::Ok;
        return down_;
    }

    // The way back after an IoError (reads and wall_offset() report it by
    // unmounting): mount() again.
    void remount_after_error() {
        programs_before_mount_ = flash_.counters().programs;
        if (mount_failed(spool().mount())) return;
        ORDERED_CHECK(spool().incarnation() == incarnation_ && !spool().stats().formatted);
    }

    void check_state() {
        sp::FlashSpool& s = spool();
        FUZZ_CHECK(s.mounted());
        const sp::SpoolStats st = s.stats();
        FUZZ_CHECK(st.live_sectors >= 1 && st.live_sectors <= st.sector_count);
        FUZZ_CHECK(st.head_slots_used <= st.slots_per_sector);
        if (!ordered_) return;
        FUZZ_CHECK(s.floor_seq() < s.next_seq());
        FUZZ_CHECK(s.incarnation() == incarnation_);
        FUZZ_CHECK(st.durable_floor <= s.floor_seq());
        // Drops only under DropOldest, and counts only grow.
        FUZZ_CHECK(s.dropped() >= dropped_);
        if (config_.full_policy == rd::FullPolicy::RefuseNew) FUZZ_CHECK(s.dropped() == dropped_);
        dropped_ = s.dropped();
        FUZZ_CHECK(st.live_sectors < st.sector_count);  // one sector always stays free
        FUZZ_CHECK(s.oldest_seq() <= s.next_seq());
        FUZZ_CHECK(s.held() <= s.next_seq() - s.oldest_seq());
        for (std::size_t i = 0; i < appended_count_; ++i) {
            FUZZ_CHECK(appended_[i].seq > s.floor_seq() && appended_[i].seq < s.next_seq());
            FUZZ_CHECK(appended_[i].seq >= s.oldest_seq());
        }
    }

    bool append(std::uint8_t argument) {
        sp::FlashSpool& s = spool();
        const fp::Record record{argument, clock_ms_ += 250, argument * 0.25 - 7.0};
        const std::uint64_t expected = s.next_seq();
        const std::uint64_t held = s.held();
        std::uint64_t seq = 0;
        const StoreStatus status = s.append(record, &seq);
        if (io_error(status)) return false;
        if (status == StoreStatus::Full) {
            ORDERED_CHECK(config_.full_policy == rd::FullPolicy::RefuseNew);
            FUZZ_CHECK(s.next_seq() == expected && s.held() == held);  // Full changes nothing
            return false;
        }
        FUZZ_CHECK(status == StoreStatus::Ok);
        FUZZ_CHECK(seq == expected && s.next_seq() == seq + 1);
        ORDERED_CHECK(seq > max_seq_handed_out_);
        max_seq_handed_out_ = seq;
        if (appended_count_ < kMaxAppended) appended_[appended_count_++] = Appended{seq, s.boot(), record};
        return true;
    }

    void check_usable() {
        sp::FlashSpool& s = spool();
        const fp::Record record{7, clock_ms_ += 250, 1.5};
        std::uint64_t seq = 0;
        StoreStatus status = s.append(record, &seq);
        if (io_error(status)) return;
        if (status == StoreStatus::Full) {
            ORDERED_CHECK(config_.full_policy == rd::FullPolicy::RefuseNew);
            trim(s.next_seq() - 1);
            if (down_) return;
            forget_removed();
            status = s.append(record, &seq);
            if (io_error(status)) return;
        }
        ORDERED_CHECK(status == StoreStatus::Ok);
        if (status != StoreStatus::Ok) return;
        ORDERED_CHECK(seq > max_seq_handed_out_ && s.next_seq() == seq + 1);
        max_seq_handed_out_ = seq;
        if (appended_count_ < kMaxAppended) appended_[appended_count_++] = Appended{seq, s.boot(), record};
        rd::StoredReading out[1];
        const std::size_t n = read_from(seq, 1, out);  // checks the record if it comes back
        if (down_ || !s.mounted()) return;
        ORDERED_CHECK(n == 1 && out[0].seq == seq);
        forget_removed();
        check_state();
    }

    // One read; those readings that this run appended come back as they were.
    std::size_t read_from(std::uint64_t from, std::size_t max, rd::StoredReading* out) {
        sp::FlashSpool& s = spool();
        const std::size_t n = s.read(from, out, max);
        FUZZ_CHECK(n <= max);
        if (!s.mounted()) {
            FUZZ_CHECK(n == 0);
            ORDERED_CHECK(false);
            remount_after_error();
            return 0;
        }
        for (std::size_t i = 0; i < n; ++i) {
            FUZZ_CHECK(out[i].seq >= from && out[i].seq > s.floor_seq() && out[i].boot == out[0].boot);
            if (!ordered_) continue;
            FUZZ_CHECK(out[i].seq < s.next_seq() && (i == 0 || out[i].seq > out[i - 1].seq));
            for (std::size_t k = 0; k < appended_count_; ++k) {
                if (appended_[k].seq != out[i].seq) continue;
                FUZZ_CHECK(appended_[k].boot == out[i].boot);
                FUZZ_CHECK(appended_[k].record.channel == out[i].record.channel);
                FUZZ_CHECK(appended_[k].record.mono_ms == out[i].record.mono_ms);
                FUZZ_CHECK(bits_of(appended_[k].record.value) == bits_of(out[i].record.value));
            }
        }
        return n;
    }

    void read_window(std::uint8_t argument) {
        rd::StoredReading out[16];
        read_from(spool().oldest_seq() + argument % 4, 1 + argument % 16u, out);
    }

    // Reads the whole log in batches. Ordered: every reading appended (and not
    // yet trimmed or dropped) is among them, and no more than held().
    void verify_all() {
        sp::FlashSpool& s = spool();
        static bool seen[kMaxAppended];
        std::memset(seen, 0, sizeof seen);
        rd::StoredReading out[16];
        std::uint64_t from = 0;
        std::uint64_t total = 0;
        for (std::uint64_t round = 0; round <= s.held() + 1; ++round) {
            const std::size_t n = read_from(from, 16, out);
            if (n == 0 || down_) break;
            total += n;
            std::uint64_t last = 0;
            for (std::size_t i = 0; i < n; ++i) {
                if (out[i].seq > last) last = out[i].seq;
                for (std::size_t k = 0; k < appended_count_; ++k) {
                    if (appended_[k].seq == out[i].seq) seen[k] = true;
                }
            }
            if (last == UINT64_MAX) break;
            from = last + 1;
        }
        if (!ordered_ || down_) return;
        FUZZ_CHECK(total <= s.held());
        for (std::size_t k = 0; k < appended_count_; ++k) FUZZ_CHECK(seen[k]);
    }

    void trim(std::uint64_t through) {
        sp::FlashSpool& s = spool();
        const std::uint64_t next = s.next_seq();
        const std::uint64_t held = s.held();
        const StoreStatus status = s.trim(through);
        if (io_error(status)) return;
        if (through >= next) {
            FUZZ_CHECK(status == StoreStatus::InvalidArgument && s.held() == held);
            return;
        }
        FUZZ_CHECK(status == StoreStatus::Ok && s.floor_seq() >= through);
        ORDERED_CHECK(s.held() == 0 || s.oldest_seq() > through);
        if (through > trimmed_) trimmed_ = through;
    }

    void note_offset(std::int64_t offset) {
        sp::FlashSpool& s = spool();
        const StoreStatus status = s.note_wall_offset(offset);
        if (io_error(status)) return;
        FUZZ_CHECK(status == StoreStatus::Ok || status == StoreStatus::Full);
        std::int64_t got = 0;
        FUZZ_CHECK(s.wall_offset(s.boot(), &got) && got == offset);
    }

    // A new boot: mount again (the same object, or a new one as after a reset).
    void reboot(bool new_object) {
        const std::uint64_t next = spool().next_seq();
        const std::uint32_t boot = spool().boot();
        const std::uint64_t durable_floor = spool().stats().durable_floor;
        const std::uint64_t dropped = spool().dropped();
        // A boot that wrote nothing at all may share its number with the next
        // (flash_spool.hpp); one that wrote anything may not.
        const bool wrote = flash_.counters().programs != programs_before_mount_;
        if (new_object) {
            destroy();
            create();
        }
        programs_before_mount_ = flash_.counters().programs;
        if (mount_failed(spool().mount())) return;
        ORDERED_CHECK(!spool().stats().formatted);  // the log this run wrote is still there
        ORDERED_CHECK(spool().incarnation() == incarnation_);
        ORDERED_CHECK(spool().next_seq() >= next);  // no seq is ever handed out twice
        if (wrote) ORDERED_CHECK(spool().boot() != boot);
        ORDERED_CHECK(spool().floor_seq() >= durable_floor);
        ORDERED_CHECK(spool().dropped() == dropped);
        forget_removed();
        check_state();
        verify_all();
    }

    // Readings at or below the floor are gone: trimmed by this run, or (only
    // under DropOldest) dropped, and then counted.
    void forget_removed() {
        const std::uint64_t floor = spool().floor_seq();
        std::uint64_t dropped_here = 0;
        std::size_t kept = 0;
        for (std::size_t i = 0; i < appended_count_; ++i) {
            if (appended_[i].seq > floor) {
                appended_[kept++] = appended_[i];
            } else if (appended_[i].seq > trimmed_) {
                ++dropped_here;
            }
        }
        appended_count_ = kept;
        if (!ordered_) return;
        if (dropped_here > 0) FUZZ_CHECK(config_.full_policy == rd::FullPolicy::DropOldest);
        ours_dropped_ += dropped_here;
        FUZZ_CHECK(spool().dropped() - dropped_at_start_ >= ours_dropped_);  // every drop is counted
    }

    fz::StaticFlash& flash_;
    sp::SpoolConfig config_;
    FixedRandom random_;
    alignas(sp::FlashSpool) unsigned char storage_[sizeof(sp::FlashSpool)];
    bool alive_ = false;
    bool ordered_ = false;
    bool down_ = false;  // mount() failed (unordered logs only): nothing more to do

    std::uint64_t incarnation_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t dropped_at_start_ = 0;
    std::uint64_t ours_dropped_ = 0;  // readings of this run removed without a trim
    std::uint64_t trimmed_ = 0;
    std::uint64_t max_seq_handed_out_ = 0;
    std::uint64_t clock_ms_ = 0;
    std::uint64_t programs_before_mount_ = 0;
    Appended appended_[kMaxAppended];
    std::size_t appended_count_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t control = data[0];
    const std::size_t operations = data[1] & fz::kMaxOperations;
    if (size < 2 + 2 * operations) return 0;
    const std::uint8_t* script = data + 2;
    const std::uint8_t* image = script + 2 * operations;
    const std::size_t image_length = size - 2 - 2 * operations;

    static fz::StaticFlash flash;
    flash.reset(fz::geometry_of(fz::kShapes[control & 0x0F]));
    fz::load_image(control, image, image_length, flash);

    sp::SpoolConfig config;
    config.full_policy = (control & fz::kPolicyRefuse) != 0 ? rd::FullPolicy::RefuseNew : rd::FullPolicy::DropOldest;
    alignas(Run) static unsigned char storage[sizeof(Run)];
    Run* run = new (storage) Run(flash, config);
    if (run->start()) {
        for (std::size_t i = 0; i < operations; ++i) run->operation(script[2 * i], script[2 * i + 1]);
        run->finish();
    }
    run->~Run();
    return 0;
}
