#include "semihosting.hpp"

namespace fieldlink::boards::mps2_an385::semihosting {
namespace {

constexpr std::uint32_t kSysWrite0 = 0x04;
constexpr std::uint32_t kSysTime = 0x11;
constexpr std::uint32_t kSysExit = 0x18;  // angel_SWIreason_ReportException
constexpr std::uint32_t kApplicationExit = 0x20026;
constexpr std::uint32_t kRunTimeErrorUnknown = 0x20023;

std::uint32_t call(std::uint32_t op, const void* arg) noexcept {
    register std::uint32_t r0 asm("r0") = op;
    register const void* r1 asm("r1") = arg;
    asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

}  // namespace

void write0(const char* text) noexcept { call(kSysWrite0, text); }

std::uint32_t host_time() noexcept {
    const std::uint32_t seconds = call(kSysTime, nullptr);
    return seconds == 0xFFFF'FFFFu ? 0 : seconds;
}

void exit(int code) noexcept {
    // On AArch32 SYS_EXIT takes the reason itself, not a block: only pass/fail.
    call(kSysExit, reinterpret_cast<const void*>(code == 0 ? kApplicationExit : kRunTimeErrorUnknown));
    for (;;) {
    }
}

}  // namespace fieldlink::boards::mps2_an385::semihosting
