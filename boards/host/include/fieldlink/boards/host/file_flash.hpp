// Host board flash: a file of sector_count * sector_size bytes with the same
// NOR semantics as a real chip (erase to 0xFF, program only clears bits,
// aligned writes), so the spool behaves on a PC as on a device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fieldlink/hal/flash.hpp"

namespace fieldlink::boards::host {

class FileFlash final : public hal::Flash {
public:
    enum class Durability : std::uint8_t {
        // fdatasync after every program and erase: survives power loss and
        // kill -9. Costs one disk flush per appended reading.
        SyncEachOperation = 0,
        // No flush: survives kill -9 of the process (the kernel keeps the
        // writes) but not a power loss or a kernel crash.
        ProcessCrashOnly = 1,
    };

    FileFlash() = default;
    ~FileFlash();
    FileFlash(const FileFlash&) = delete;
    FileFlash& operator=(const FileFlash&) = delete;

    // Opens the flash file, creating it erased (0xFF) if it does not exist.
    // Creation writes <path>.new and renames it, so a crash never leaves a
    // half-created file. The file is locked: a second process opening the
    // same file gets IoError (last_error() == EWOULDBLOCK).
    // Failures: InvalidArgument (unusable geometry, or an existing file whose
    // size is not sector_size * sector_count: it is left untouched), IoError.
    hal::FlashStatus open(const char* path, hal::FlashGeometry geometry,
                          Durability durability = Durability::SyncEachOperation);
    void close();
    bool is_open() const { return fd_ >= 0; }

    // The errno and the system call of the last failure, for logs.
    int last_error() const { return last_error_; }
    const char* last_call() const { return last_call_; }

    // Erases per sector since open (not stored in the file).
    std::uint64_t erase_count(std::uint32_t sector) const;

    hal::FlashGeometry geometry() const override { return geometry_; }
    hal::FlashStatus read(std::uint32_t address, std::uint8_t* out, std::size_t length) override;
    hal::FlashStatus program(std::uint32_t address, const std::uint8_t* data, std::size_t length) override;
    hal::FlashStatus erase(std::uint32_t sector) override;
    hal::FlashCounters counters() const override { return counters_; }

private:
    hal::FlashStatus failed(const char* call);
    bool in_range(std::uint32_t address, std::size_t length) const;
    bool read_fully(std::uint64_t offset, std::uint8_t* out, std::size_t length);
    bool write_fully(std::uint64_t offset, const std::uint8_t* data, std::size_t length);
    hal::FlashStatus flush();

    int fd_ = -1;
    hal::FlashGeometry geometry_{};
    Durability durability_ = Durability::SyncEachOperation;
    hal::FlashCounters counters_{};
    std::vector<std::uint64_t> erase_counts_;
    std::vector<std::uint8_t> scratch_;  // current contents while checking a program
    int last_error_ = 0;
    const char* last_call_ = "";
};

}  // namespace fieldlink::boards::host
