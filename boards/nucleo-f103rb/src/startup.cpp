// Vector table, reset handler and the interrupt handlers. The reset handler
// copies .data (with .ramfunc) from flash, zeroes .bss, copies the vector
// table to RAM and points VTOR at it (so exceptions are taken while the
// flash is busy, drivers/ramfunc.hpp), runs the C++ static constructors
// (.init_array), then board_main().
#include <cstdint>
#include <cstring>

#include "board.hpp"
#include "cortex_m3.hpp"
#include "f103_registers.hpp"
#include "hw_access.hpp"
#include "ramfunc.hpp"

extern "C" {
extern std::uint32_t __fieldlink_stack_top[];
extern std::uint32_t __fieldlink_data_start[];
extern std::uint32_t __fieldlink_data_end[];
extern const std::uint32_t __fieldlink_data_load[];
extern std::uint32_t __fieldlink_bss_start[];
extern std::uint32_t __fieldlink_bss_end[];
using InitFunction = void (*)();
extern const InitFunction __fieldlink_init_array_start[];
extern const InitFunction __fieldlink_init_array_end[];

[[noreturn]] void fieldlink_reset_handler();
[[noreturn]] void fieldlink_fault_handler();
void fieldlink_systick_handler();
void fieldlink_usart2_handler();
void __cxa_pure_virtual();
}

namespace board = fieldlink::boards::nucleo_f103rb;
namespace hw = fieldlink::boards::nucleo_f103rb::hw;

namespace fieldlink::boards::nucleo_f103rb {
namespace {

using Vector = void (*)();
constexpr std::size_t kExternalIrqs = 43;  // medium density: positions 0..42 (§10.1.2, Table 63)
constexpr std::uint32_t kLedPin = 5;
constexpr std::uint32_t kLedSteps = 20;
constexpr std::uint32_t kLedStepMs = 100;

struct VectorTable {
    const void* initial_sp;
    Vector system[15];
    Vector external[kExternalIrqs];
};

// Written only by the SysTick handler (64 bits: never wraps).
volatile std::uint64_t g_ticks_ms = 0;
volatile std::uint32_t g_led_pattern = static_cast<std::uint32_t>(LedPattern::Starting);
volatile std::uint32_t g_led_step_ms = 0;
volatile std::uint32_t g_led_step = 0;
F103Usart g_usart2;

[[gnu::section(".ram_vectors"), gnu::used]] VectorTable g_ram_vectors;

}  // namespace

void set_led_pattern(LedPattern pattern) noexcept { g_led_pattern = static_cast<std::uint32_t>(pattern); }
std::uint64_t ticks_ms() noexcept {
    const hw::IrqLock lock;  // a 64-bit load is two loads on the M3
    return g_ticks_ms;
}
std::uint32_t systick_count() noexcept { return hw::read32(core::kSysTickCvr); }
F103Usart& usart2() noexcept { return g_usart2; }

}  // namespace fieldlink::boards::nucleo_f103rb

namespace fieldlink::boards::nucleo_f103rb {
namespace {

constexpr VectorTable make_vectors() {
    VectorTable table{__fieldlink_stack_top, {}, {}};
    for (Vector& v : table.system) v = fieldlink_fault_handler;
    table.system[0] = fieldlink_reset_handler;                       // 1: Reset
    for (std::size_t i = 6; i <= 9; ++i) table.system[i] = nullptr;  // 7..10: reserved
    table.system[12] = nullptr;                                      // 13: reserved
    table.system[14] = fieldlink_systick_handler;                    // 15: SysTick
    for (Vector& v : table.external) v = fieldlink_fault_handler;
    table.external[kUsart2Irq] = fieldlink_usart2_handler;
    return table;
}

[[gnu::section(".vectors"), gnu::used]] constinit const VectorTable g_flash_vectors = make_vectors();

}  // namespace
}  // namespace fieldlink::boards::nucleo_f103rb

// In RAM (runs during flash erases): the tick and the LED pattern.
FIELDLINK_F103_RAMFUNC void fieldlink_systick_handler() {
    board::g_ticks_ms = board::g_ticks_ms + 1;
    const std::uint32_t ms = board::g_led_step_ms + 1;
    if (ms < board::kLedStepMs) {
        board::g_led_step_ms = ms;
        return;
    }
    board::g_led_step_ms = 0;
    const std::uint32_t step = board::g_led_step + 1 == board::kLedSteps ? 0 : board::g_led_step + 1;
    board::g_led_step = step;
    const bool on = ((board::g_led_pattern >> step) & 1u) != 0;
    hw::write32(board::kGpioABase + board::gpio::kBsrr, on ? (1u << board::kLedPin) : (1u << (board::kLedPin + 16)));
}

FIELDLINK_F103_RAMFUNC void fieldlink_usart2_handler() { board::g_usart2.on_interrupt(); }

// A fault or an unexpected interrupt: interrupts off, LD2 flickers fast, for good.
void fieldlink_fault_handler() {
    asm volatile("cpsid i" ::: "memory");
    for (;;) {
        hw::write32(board::kGpioABase + board::gpio::kBsrr, 1u << board::kLedPin);
        hw::delay_cycles(800'000);
        hw::write32(board::kGpioABase + board::gpio::kBsrr, 1u << (board::kLedPin + 16));
        hw::delay_cycles(800'000);
    }
}

void __cxa_pure_virtual() { fieldlink_fault_handler(); }

void fieldlink_reset_handler() {
    const auto bytes = [](const void* begin, const void* end) {
        return static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(end) -
                                        reinterpret_cast<std::uintptr_t>(begin));
    };
    std::memcpy(__fieldlink_data_start, __fieldlink_data_load, bytes(__fieldlink_data_start, __fieldlink_data_end));
    std::memset(__fieldlink_bss_start, 0, bytes(__fieldlink_bss_start, __fieldlink_bss_end));
    std::memcpy(&board::g_ram_vectors, &board::g_flash_vectors, sizeof board::g_ram_vectors);
    hw::write32(board::core::kScbVtor,
                static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&board::g_ram_vectors)));
    asm volatile("dsb\n isb" ::: "memory");
    for (const InitFunction* init = __fieldlink_init_array_start; init != __fieldlink_init_array_end; ++init) (*init)();
    board::board_main();
}
