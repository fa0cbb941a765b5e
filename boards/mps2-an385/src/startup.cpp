// Vector table and reset handler: the image's entry from power-on. Copies
// .data from flash, zeroes .bss, runs C++ static constructors (.init_array),
// then the application; its return code goes to the host via semihosting.
#include <cstdint>
#include <cstring>

#include "cmsdk_uart.hpp"
#include "registers.hpp"
#include "semihosting.hpp"
#include "startup.hpp"
#include "systick_clock.hpp"

// Linker-script symbols (mps2-an385.ld); only their addresses mean anything.
extern "C" {
extern std::uint32_t __fieldlink_stack_top[];
extern const char __fieldlink_stack_size[];
extern std::uint32_t __fieldlink_data_start[];
extern std::uint32_t __fieldlink_data_end[];
extern const std::uint32_t __fieldlink_data_load[];
extern std::uint32_t __fieldlink_bss_start[];
extern std::uint32_t __fieldlink_bss_end[];
using InitFunction = void (*)();
extern const InitFunction __fieldlink_init_array_start[];
extern const InitFunction __fieldlink_init_array_end[];

[[noreturn]] void fieldlink_reset_handler();
void fieldlink_fault_handler();
void fieldlink_systick_handler();
void fieldlink_uart0_rx_handler();
void fieldlink_uart0_tx_handler();
void fieldlink_unexpected_handler();

// A pure virtual called through a half-built object: a bug, stop loudly
// (libsupc++'s version would pull in std::terminate and the unwinder).
void __cxa_pure_virtual();
}

namespace fieldlink::boards::mps2_an385 {
namespace {

using Vector = void (*)();
constexpr std::size_t kExternalIrqs = 32;  // AN385 wires IRQ 0..31
constexpr std::uint32_t kStackPattern = 0x57AC'57ACu;

std::uint32_t* stack_bottom() noexcept {
    const auto size = reinterpret_cast<std::uintptr_t>(__fieldlink_stack_size);
    return __fieldlink_stack_top - size / sizeof(std::uint32_t);
}

[[noreturn]] void stop(const char* why) noexcept {
    semihosting::write0(why);
    semihosting::exit(1);
}

}  // namespace
}  // namespace fieldlink::boards::mps2_an385

namespace board = fieldlink::boards::mps2_an385;

void fieldlink_reset_handler() {
    // Paint the stack below this frame, for stack_used().
    std::uint32_t* sp = nullptr;
    asm volatile("mov %0, sp" : "=r"(sp));
    for (std::uint32_t* word = board::stack_bottom(); word < sp - 16; ++word) *word = board::kStackPattern;
    const std::size_t data_bytes = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(__fieldlink_data_end) -
                                                            reinterpret_cast<std::uintptr_t>(__fieldlink_data_start));
    std::memcpy(__fieldlink_data_start, __fieldlink_data_load, data_bytes);
    const std::size_t bss_bytes = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(__fieldlink_bss_end) -
                                                           reinterpret_cast<std::uintptr_t>(__fieldlink_bss_start));
    std::memset(__fieldlink_bss_start, 0, bss_bytes);
    for (const InitFunction* init = __fieldlink_init_array_start; init != __fieldlink_init_array_end; ++init) {
        (*init)();
    }
    board::semihosting::exit(board::board_main());
}

std::size_t board::stack_used() noexcept {
    const std::uint32_t* word = board::stack_bottom();
    while (word < __fieldlink_stack_top && *word == board::kStackPattern) ++word;
    return static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(__fieldlink_stack_top) -
                                    reinterpret_cast<std::uintptr_t>(word));
}

void fieldlink_fault_handler() { board::stop("fieldlink: fault (HardFault/MemManage/BusFault/UsageFault)\n"); }
void fieldlink_unexpected_handler() { board::stop("fieldlink: unexpected interrupt\n"); }
void fieldlink_systick_handler() { board::systick_tick(); }
void fieldlink_uart0_rx_handler() { board::uart0().on_rx_interrupt(); }
void fieldlink_uart0_tx_handler() { board::uart0().on_tx_interrupt(); }
void __cxa_pure_virtual() { board::stop("fieldlink: pure virtual call\n"); }

namespace fieldlink::boards::mps2_an385 {
namespace {

struct VectorTable {
    const void* initial_sp;
    Vector system[15];
    Vector external[kExternalIrqs];
};

constexpr VectorTable make_vectors() {
    VectorTable table{__fieldlink_stack_top, {}, {}};
    table.system[0] = fieldlink_reset_handler;  // 1: Reset
    for (std::size_t i = 1; i < 15; ++i) table.system[i] = fieldlink_unexpected_handler;
    for (std::size_t i = 2; i <= 5; ++i) table.system[i] = fieldlink_fault_handler;  // 3..6: faults
    for (std::size_t i = 6; i <= 9; ++i) table.system[i] = nullptr;                  // 7..10: reserved
    table.system[12] = nullptr;                                                      // 13: reserved
    table.system[14] = fieldlink_systick_handler;                                    // 15: SysTick
    for (Vector& v : table.external) v = fieldlink_unexpected_handler;
    table.external[kUart0RxIrq] = fieldlink_uart0_rx_handler;
    table.external[kUart0TxIrq] = fieldlink_uart0_tx_handler;
    return table;
}

[[gnu::section(".vectors"), gnu::used]] constinit const VectorTable g_vectors = make_vectors();

}  // namespace
}  // namespace fieldlink::boards::mps2_an385
