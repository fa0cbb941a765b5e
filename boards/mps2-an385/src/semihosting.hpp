// ARM semihosting (Arm IHI 0081 / "Semihosting for AArch32 and AArch64"):
// requests to the debugger or emulator through `bkpt 0xab`. Test reporting
// only: without a debugger or QEMU's -semihosting the bkpt is a fault.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::boards::mps2_an385::semihosting {

// Writes a NUL-terminated string to the host's console (SYS_WRITE0).
void write0(const char* text) noexcept;

// Seconds since the host's epoch (SYS_TIME); 0 when the host gives none.
std::uint32_t host_time() noexcept;

// Host file I/O for the persistent flash (SYS_OPEN, SYS_CLOSE, SYS_SEEK,
// SYS_READ, SYS_WRITE, SYS_FLEN). A handle is the host's, or -1 on failure.
enum class OpenMode : std::uint32_t {
    ReadWrite = 3,  // "r+b": the file must exist
    Create = 7,     // "w+b": created, or truncated
};
int open(const char* path, OpenMode mode) noexcept;
void close(int handle) noexcept;
// Whole-transfer calls: true only when every byte moved.
bool seek(int handle, std::uint32_t position) noexcept;
bool read(int handle, void* out, std::size_t length) noexcept;
bool write(int handle, const void* data, std::size_t length) noexcept;
// Length of the file in bytes, or -1.
std::int32_t file_length(int handle) noexcept;

// The command line the host passes (SYS_GET_CMDLINE; QEMU: -append, or the
// -semihosting-config arg=... words), NUL-terminated into `out`; false when
// the host has none or it does not fit.
bool command_line(char* out, std::size_t size) noexcept;

// Ends the program (SYS_EXIT): success for 0, failure (QEMU exits 1) otherwise.
[[noreturn]] void exit(int code) noexcept;

}  // namespace fieldlink::boards::mps2_an385::semihosting
