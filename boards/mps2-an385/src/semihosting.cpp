#include "semihosting.hpp"

namespace fieldlink::boards::mps2_an385::semihosting {
namespace {

constexpr std::uint32_t kSysOpen = 0x01;
constexpr std::uint32_t kSysClose = 0x02;
constexpr std::uint32_t kSysWrite0 = 0x04;
constexpr std::uint32_t kSysWrite = 0x05;
constexpr std::uint32_t kSysRead = 0x06;
constexpr std::uint32_t kSysSeek = 0x0A;
constexpr std::uint32_t kSysFlen = 0x0C;
constexpr std::uint32_t kSysGetCmdline = 0x15;
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

std::uint32_t word(const void* pointer) noexcept { return reinterpret_cast<std::uintptr_t>(pointer); }

}  // namespace

int open(const char* path, OpenMode mode) noexcept {
    std::size_t length = 0;
    while (path[length] != '\0') ++length;
    const std::uint32_t block[3] = {word(path), static_cast<std::uint32_t>(mode), length};
    return static_cast<int>(call(kSysOpen, block));
}

void close(int handle) noexcept {
    const std::uint32_t block[1] = {static_cast<std::uint32_t>(handle)};
    call(kSysClose, block);
}

bool seek(int handle, std::uint32_t position) noexcept {
    const std::uint32_t block[2] = {static_cast<std::uint32_t>(handle), position};
    return call(kSysSeek, block) == 0;
}

// SYS_READ and SYS_WRITE return the count of bytes not transferred.
bool read(int handle, void* out, std::size_t length) noexcept {
    const std::uint32_t block[3] = {static_cast<std::uint32_t>(handle), word(out), length};
    return call(kSysRead, block) == 0;
}

bool write(int handle, const void* data, std::size_t length) noexcept {
    const std::uint32_t block[3] = {static_cast<std::uint32_t>(handle), word(data), length};
    return call(kSysWrite, block) == 0;
}

std::int32_t file_length(int handle) noexcept {
    const std::uint32_t block[1] = {static_cast<std::uint32_t>(handle)};
    return static_cast<std::int32_t>(call(kSysFlen, block));
}

bool command_line(char* out, std::size_t size) noexcept {
    if (size == 0) return false;
    // The host writes the length it used back into the block.
    std::uint32_t block[2] = {word(out), size};
    if (call(kSysGetCmdline, block) != 0 || block[1] >= size) return false;
    out[block[1]] = '\0';
    return true;
}

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
