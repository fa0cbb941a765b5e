// Writes the seed corpus of the spool fuzz target (tests/fuzz/corpus/spool/):
// flash images made by the real FlashSpool (formatted, in use, wrapped with
// drops, full, many boots, torn, two incarnations) and foreign contents (text,
// zeros, noise, a FAT boot sector), each with a script of operations in the
// layout of spool_fuzz_input.hpp. Deterministic. Built and run by
// make_seeds.sh:
//
//   make_spool_seeds OUTPUT_DIR
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fieldlink/spool/flash_spool.hpp"
#include "spool_fuzz_input.hpp"

namespace fz = fieldlink::fuzz;
namespace sp = fieldlink::spool;
namespace rd = fieldlink::reader;
namespace fp = fieldlink::protocol;

namespace {

class CountingRandom final : public fieldlink::hal::Random {
public:
    explicit CountingRandom(std::uint64_t seed) : state_(seed) {}
    std::uint32_t next_u32() override { return static_cast<std::uint32_t>(next_u64()); }
    std::uint64_t next_u64() override { return state_ = state_ * 6364136223846793005ull + 1442695040888963407ull; }

private:
    std::uint64_t state_;
};

using Bytes = std::vector<std::uint8_t>;

// (opcode, argument) pairs; see Run::operation in fuzz_spool.cpp.
const Bytes kScript = {
    1, 15,   // read a window
    0, 5,    // append
    7, 9,    // append a burst of 10
    2, 3,    // trim a little
    5, 100,  // note a wall-clock offset
    3, 0,    // remount
    1, 7,    // read
    6, 0,    // ask for an earlier boot's offset
    7, 15,   // a burst of 16
    4, 0,    // reboot with a new object
    2, 7,    // trim
    1, 3,    // read
};

std::string g_out;

void write_seed(const char* name, std::uint8_t control, const Bytes& script, const std::uint8_t* image,
                std::size_t length) {
    Bytes data;
    data.push_back(control);
    data.push_back(static_cast<std::uint8_t>(script.size() / 2));
    data.insert(data.end(), script.begin(), script.end());
    data.insert(data.end(), image, image + length);
    const std::string path = g_out + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(data.data(), 1, data.size(), f) != data.size() || std::fclose(f) != 0) {
        std::fprintf(stderr, "make_spool_seeds: cannot write %s\n", path.c_str());
        std::exit(1);
    }
}

void write_image(const char* name, std::uint8_t control, const fz::StaticFlash& flash, const Bytes& script = kScript) {
    write_seed(name, control, script, flash.bytes, flash.size());
}

fp::Record record(std::uint64_t i) { return fp::Record{static_cast<std::uint8_t>(i % 3), 1000 * i, 0.5 * i - 3.0}; }

void check(rd::StoreStatus s, const char* what) {
    if (s != rd::StoreStatus::Ok) {
        std::fprintf(stderr, "make_spool_seeds: %s failed (%d)\n", what, static_cast<int>(s));
        std::exit(1);
    }
}

// A spool over `flash`, mounted; appends `count` readings.
void fill(fz::StaticFlash& flash, std::uint64_t seed, int count, rd::FullPolicy policy = rd::FullPolicy::DropOldest) {
    CountingRandom random(seed);
    sp::FlashSpool spool(flash, random, sp::SpoolConfig{policy});
    check(spool.mount(), "mount");
    for (int i = 0; i < count; ++i) {
        const rd::StoreStatus s = spool.append(record(spool.next_seq()), nullptr);
        if (s == rd::StoreStatus::Full) break;
        check(s, "append");
    }
}

constexpr std::uint8_t kFix = fz::kFixHeaders | fz::kFixSlots;

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_spool_seeds OUTPUT_DIR\n");
        return 2;
    }
    g_out = argv[1];
    static fz::StaticFlash flash;

    // Blank flash of a few shapes: format, then the script.
    for (const std::uint8_t shape : {0, 4, 8, 12}) {
        flash.reset(fz::geometry_of(fz::kShapes[shape]));
        const std::string name = "blank-shape" + std::to_string(shape) + ".bin";
        write_seed(name.c_str(), static_cast<std::uint8_t>(shape | kFix), kScript, nullptr, 0);
    }
    // Unusable shapes: mount() must say InvalidArgument.
    write_seed("unusable-one-sector.bin", 13, kScript, nullptr, 0);
    write_seed("unusable-write-size.bin", 15, kScript, nullptr, 0);

    // In use: formatted, readings, an offset, a trim, a second boot.
    {
        flash.reset(fz::geometry_of(fz::kShapes[1]));
        CountingRandom random(0x1122334455667788ull);
        {
            sp::FlashSpool spool(flash, random);
            check(spool.mount(), "mount");
            for (int i = 0; i < 4; ++i) check(spool.append(record(i), nullptr), "append");
            check(spool.note_wall_offset(1'700'000'000'000), "offset");
            check(spool.trim(2), "trim");
        }
        std::size_t last = 0;
        {
            sp::FlashSpool spool(flash, random);
            check(spool.mount(), "remount");
            check(spool.append(record(9), nullptr), "append");
            const sp::SpoolStats st = spool.stats();
            last = std::size_t{st.head_sector} * fz::kShapes[1].sector_size + sp::slot_offset(st.head_slots_used - 1);
        }
        write_image("in-use-shape1.bin", 1 | kFix, flash);
        // The same, torn: the last record only partly programmed (no CRC repair).
        for (std::size_t i = 8; i < sp::kSlotSize; ++i) flash.bytes[last + i] = 0xFF;
        write_image("in-use-torn-last-slot.bin", 1 | fz::kFixHeaders, flash);
    }

    // Wrapped around many times under DropOldest, readings dropped and counted.
    flash.reset(fz::geometry_of(fz::kShapes[5]));
    fill(flash, 7, 150);
    write_image("wrapped-drop-oldest-shape5.bin", 5 | kFix, flash);

    // Full under RefuseNew.
    flash.reset(fz::geometry_of(fz::kShapes[7]));
    fill(flash, 8, 100, rd::FullPolicy::RefuseNew);
    write_image("full-refuse-new-shape7.bin", 7 | kFix | fz::kPolicyRefuse, flash);

    // Many boots: mount, append, offset, trim, again and again.
    {
        flash.reset(fz::geometry_of(fz::kShapes[9]));
        CountingRandom random(9);
        for (int boot = 0; boot < 6; ++boot) {
            sp::FlashSpool spool(flash, random);
            check(spool.mount(), "mount");
            for (int i = 0; i < 5; ++i) check(spool.append(record(spool.next_seq()), nullptr), "append");
            check(spool.note_wall_offset(1'000 * boot), "offset");
            check(spool.trim(spool.next_seq() - 3), "trim");
        }
        write_image("many-boots-shape9.bin", 9 | kFix, flash);
    }

    // Two incarnations: sectors 0-3 from one spool, 4-7 from another.
    {
        const fieldlink::hal::FlashGeometry g = fz::geometry_of(fz::kShapes[3]);
        flash.reset(g);
        fill(flash, 1, 20);
        static std::uint8_t first[fz::kMaxFlashSize];
        std::memcpy(first, flash.bytes, flash.size());
        flash.reset(g);
        fill(flash, 2, 10);
        std::memcpy(flash.bytes, first, 4 * std::size_t{g.sector_size});
        write_image("two-incarnations-shape3.bin", 3 | kFix, flash);
    }

    // Regression seeds of finding 1 (docs/fuzzing.md, "Findings"): CRC-valid
    // values the spool never writes, which it now refuses (each failed as
    // described before the fix).
    {
        const fieldlink::hal::FlashGeometry g = fz::geometry_of(fz::kShapes[3]);
        const auto header = [&](std::uint32_t sector, std::uint32_t sector_seq, std::uint32_t boot, std::uint64_t base,
                                std::uint64_t floor) {
            sp::SectorHeader h;
            h.incarnation = 0x0123456789ABCDEFull;
            h.sector_seq = sector_seq;
            h.boot = boot;
            h.base_seq = base;
            h.floor = floor;
            sp::encode_header(h, g, flash.bytes + std::size_t{sector} * g.sector_size);
        };
        const auto marker = [&](std::uint32_t sector, std::uint32_t slot, std::uint8_t type, std::uint32_t sector_seq,
                                std::uint32_t boot, std::uint64_t next, std::uint64_t value) {
            sp::encode_marker(type, boot, next, value, 0x0123456789ABCDEFull, sector_seq,
                              flash.bytes + std::size_t{sector} * g.sector_size + sp::slot_offset(slot));
        };
        const Bytes appends_and_reboot = {7, 15, 4, 0, 1, 15};
        // A trim marker whose floor (500) is above its next seq (5), in a full
        // head sector: the header that mount() writes next has floor >= base
        // seq, which decode_header refuses, and mount() fails with IoError,
        // on every boot.
        flash.reset(g);
        header(0, 1, 0, 1, 0);
        marker(0, 0, sp::kTypeBoot, 1, 1, 5, 0);
        marker(0, 1, sp::kTypeTrim, 1, 1, 5, 500);
        marker(0, 2, sp::kTypeBoot, 1, 2, 5, 0);
        marker(0, 3, sp::kTypeBoot, 1, 3, 5, 0);
        write_image("regression-trim-floor-above-next-seq.bin", 3, flash, appends_and_reboot);
        // Base seq 2^64 - 1, a full head sector and a bad (torn) last slot:
        // next_seq wraps to 0, the next header would have base seq 0, which
        // no header may have, and mount() fails with IoError, on every boot.
        flash.reset(g);
        header(0, 1, 0, ~std::uint64_t{0}, 0);
        for (std::uint32_t slot = 0; slot < 3; ++slot)
            marker(0, slot, sp::kTypeBoot, 1, slot + 1, ~std::uint64_t{0}, 0);
        flash.bytes[sp::slot_offset(3)] = 0x52;
        write_image("regression-base-seq-wraps.bin", 3, flash, appends_and_reboot);
        // Sector number 2^32 - 2: two sectors later the number wraps to 0, the
        // next mount ignores that sector, next_seq goes back and its readings
        // are gone (their seqs would be handed out again).
        flash.reset(g);
        header(0, 0xFFFFFFFEu, 0, 1, 0);
        write_image("regression-sector-number-wraps.bin", 3, flash, appends_and_reboot);
        // Boot counter 2^32 - 1: the next boot is 0, and so is the one after.
        flash.reset(g);
        header(0, 1, 0xFFFFFFFFu, 1, 0);
        write_image("regression-boot-counter-wraps.bin", 3, flash, Bytes{0, 1, 4, 0, 1, 15});
    }

    // Foreign contents: none of them holds a valid header, so mount formats.
    {
        flash.reset(fz::geometry_of(fz::kShapes[3]));
        const char text[] =
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit. FLSP is not a header without its CRC. ";
        write_seed("foreign-text-repeated.bin", 3 | kFix | fz::kRepeatImage, kScript,
                   reinterpret_cast<const std::uint8_t*>(text), sizeof text - 1);
        static std::uint8_t zeros[512] = {};
        write_seed("foreign-zeros.bin", 2 | kFix | fz::kRepeatImage, kScript, zeros, sizeof zeros);
        std::uint8_t noise[700];
        CountingRandom random(42);
        for (std::uint8_t& b : noise) b = static_cast<std::uint8_t>(random.next_u64() >> 56);
        write_seed("foreign-noise.bin", 4 | kFix, kScript, noise, sizeof noise);
        std::uint8_t fat[512];
        std::memset(fat, 0, sizeof fat);
        const std::uint8_t boot_sector[] = {0xEB, 0x3C, 0x90, 'M', 'S', 'D', 'O', 'S', '5', '.', '0', 0x00, 0x02, 0x01};
        std::memcpy(fat, boot_sector, sizeof boot_sector);
        fat[510] = 0x55;
        fat[511] = 0xAA;
        write_seed("foreign-fat-boot-sector.bin", 4 | kFix, kScript, fat, sizeof fat);
    }
    return 0;
}
