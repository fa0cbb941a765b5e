#include "host_file_flash.hpp"

#include <cstring>

#include "semihosting.hpp"

namespace fieldlink::boards::mps2_an385 {

bool HostFileFlash::attach(const char* path) noexcept {
    const std::uint32_t size = static_cast<std::uint32_t>(ram_.geometry().size());
    std::memset(memory_, 0xFF, size);
    int handle = semihosting::open(path, semihosting::OpenMode::ReadWrite);
    if (handle < 0) handle = semihosting::open(path, semihosting::OpenMode::Create);
    if (handle < 0) return false;
    std::int32_t length = semihosting::file_length(handle);
    if (length < 0) length = 0;
    const std::uint32_t present = static_cast<std::uint32_t>(length) < size ? static_cast<std::uint32_t>(length) : size;
    // A short file (cut while being created) reads as erased beyond its end.
    if (present != 0 && (!semihosting::seek(handle, 0) || !semihosting::read(handle, memory_, present))) {
        semihosting::close(handle);
        return false;
    }
    handle_ = handle;
    if (present < size && write_through(present, size - present) != hal::FlashStatus::Ok) {
        semihosting::close(handle);
        handle_ = -1;
        return false;
    }
    return true;
}

hal::FlashStatus HostFileFlash::write_through(std::uint32_t address, std::size_t length) noexcept {
    if (handle_ < 0) return hal::FlashStatus::Ok;
    // One SYS_WRITE per operation: the host sees it as one write(2).
    if (!semihosting::seek(handle_, address) || !semihosting::write(handle_, memory_ + address, length)) {
        return hal::FlashStatus::IoError;
    }
    return hal::FlashStatus::Ok;
}

hal::FlashStatus HostFileFlash::program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    const hal::FlashStatus status = ram_.program(address, data, length);
    if (status != hal::FlashStatus::Ok) return status;
    return write_through(address, length);
}

hal::FlashStatus HostFileFlash::erase(std::uint32_t sector) {
    const hal::FlashStatus status = ram_.erase(sector);
    if (status != hal::FlashStatus::Ok) return status;
    const std::uint32_t sector_size = ram_.geometry().sector_size;
    return write_through(sector * sector_size, sector_size);
}

}  // namespace fieldlink::boards::mps2_an385
