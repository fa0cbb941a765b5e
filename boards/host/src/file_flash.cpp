#include "fieldlink/boards/host/file_flash.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace fieldlink::boards::host {

namespace {

constexpr std::size_t kFillChunk = 4096;

bool geometry_ok(const hal::FlashGeometry& geometry) {
    const auto size = geometry.write_size;
    return geometry.sector_size > 0 && geometry.sector_count > 0 && size > 0 && (size & (size - 1)) == 0 &&
           geometry.sector_size % size == 0 && geometry.size() <= (std::uint64_t{1} << 32);
}

// Writes `length` bytes of 0xFF at `offset`.
bool fill_erased(int fd, std::uint64_t offset, std::uint64_t length) {
    std::uint8_t ones[kFillChunk];
    std::memset(ones, 0xFF, sizeof ones);
    while (length > 0) {
        const std::size_t chunk = length < sizeof ones ? static_cast<std::size_t>(length) : sizeof ones;
        const ssize_t done = ::pwrite(fd, ones, chunk, static_cast<off_t>(offset));
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done <= 0) {
            return false;
        }
        offset += static_cast<std::uint64_t>(done);
        length -= static_cast<std::uint64_t>(done);
    }
    return true;
}

// Creates the erased image under a temporary name and renames it into place.
bool create_erased(const std::string& path, std::uint64_t size, int* error, const char** call) {
    const std::string temporary = path + ".new";
    ::unlink(temporary.c_str());
    const int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        *error = errno;
        *call = "open";
        return false;
    }
    bool ok = fill_erased(fd, 0, size);
    if (!ok) {
        *call = "pwrite";
    } else if (::fsync(fd) != 0) {
        ok = false;
        *call = "fsync";
    }
    if (!ok) {
        *error = errno;
    }
    ::close(fd);
    if (ok && ::rename(temporary.c_str(), path.c_str()) != 0) {
        *error = errno;
        *call = "rename";
        ok = false;
    }
    if (!ok) {
        ::unlink(temporary.c_str());
        return false;
    }
    // Make the rename itself durable.
    const auto slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        (void)::fsync(dir);
        ::close(dir);
    }
    return true;
}

}  // namespace

FileFlash::~FileFlash() { close(); }

void FileFlash::close() {
    if (fd_ >= 0) {
        ::close(fd_);  // also drops the lock
        fd_ = -1;
    }
}

hal::FlashStatus FileFlash::failed(const char* call) {
    last_error_ = errno;
    last_call_ = call;
    return hal::FlashStatus::IoError;
}

hal::FlashStatus FileFlash::open(const char* path, hal::FlashGeometry geometry, Durability durability) {
    close();
    last_error_ = 0;
    last_call_ = "";
    if (path == nullptr || !geometry_ok(geometry)) {
        last_error_ = EINVAL;
        last_call_ = "geometry";
        return hal::FlashStatus::InvalidArgument;
    }
    struct stat info {};
    if (::stat(path, &info) != 0) {
        if (errno != ENOENT) {
            return failed("stat");
        }
        if (!create_erased(path, geometry.size(), &last_error_, &last_call_)) {
            return hal::FlashStatus::IoError;
        }
    }
    const int fd = ::open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return failed("open");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const hal::FlashStatus status = failed("flock");
        ::close(fd);
        return status;
    }
    if (::fstat(fd, &info) != 0) {
        const hal::FlashStatus status = failed("fstat");
        ::close(fd);
        return status;
    }
    if (static_cast<std::uint64_t>(info.st_size) != geometry.size()) {
        ::close(fd);
        last_error_ = EINVAL;
        last_call_ = "size";  // another geometry: refuse rather than reshape someone's data
        return hal::FlashStatus::InvalidArgument;
    }
    fd_ = fd;
    geometry_ = geometry;
    durability_ = durability;
    counters_ = {};
    erase_counts_.assign(geometry.sector_count, 0);
    return hal::FlashStatus::Ok;
}

std::uint64_t FileFlash::erase_count(std::uint32_t sector) const {
    return sector < erase_counts_.size() ? erase_counts_[sector] : 0;
}

bool FileFlash::in_range(std::uint32_t address, std::size_t length) const {
    return std::uint64_t{address} + length <= geometry_.size();
}

bool FileFlash::read_fully(std::uint64_t offset, std::uint8_t* out, std::size_t length) {
    while (length > 0) {
        const ssize_t done = ::pread(fd_, out, length, static_cast<off_t>(offset));
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done <= 0) {
            if (done == 0) {
                errno = EIO;  // the file got shorter under us
            }
            return false;
        }
        out += done;
        offset += static_cast<std::uint64_t>(done);
        length -= static_cast<std::size_t>(done);
    }
    return true;
}

bool FileFlash::write_fully(std::uint64_t offset, const std::uint8_t* data, std::size_t length) {
    while (length > 0) {
        const ssize_t done = ::pwrite(fd_, data, length, static_cast<off_t>(offset));
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done <= 0) {
            return false;
        }
        data += done;
        offset += static_cast<std::uint64_t>(done);
        length -= static_cast<std::size_t>(done);
    }
    return true;
}

hal::FlashStatus FileFlash::flush() {
    if (durability_ != Durability::SyncEachOperation) {
        return hal::FlashStatus::Ok;
    }
    while (::fdatasync(fd_) != 0) {
        if (errno != EINTR) {
            return failed("fdatasync");
        }
    }
    return hal::FlashStatus::Ok;
}

hal::FlashStatus FileFlash::read(std::uint32_t address, std::uint8_t* out, std::size_t length) {
    if (fd_ < 0) {
        return hal::FlashStatus::IoError;
    }
    if (out == nullptr && length != 0) {
        return hal::FlashStatus::InvalidArgument;
    }
    if (!in_range(address, length)) {
        return hal::FlashStatus::OutOfRange;
    }
    if (!read_fully(address, out, length)) {
        return failed("pread");
    }
    ++counters_.reads;
    return hal::FlashStatus::Ok;
}

hal::FlashStatus FileFlash::program(std::uint32_t address, const std::uint8_t* data, std::size_t length) {
    if (fd_ < 0) {
        return hal::FlashStatus::IoError;
    }
    if (data == nullptr && length != 0) {
        return hal::FlashStatus::InvalidArgument;
    }
    if (!in_range(address, length)) {
        return hal::FlashStatus::OutOfRange;
    }
    if (address % geometry_.write_size != 0 || length % geometry_.write_size != 0) {
        return hal::FlashStatus::Misaligned;
    }
    scratch_.resize(length);
    if (!read_fully(address, scratch_.data(), length)) {
        return failed("pread");
    }
    for (std::size_t i = 0; i < length; ++i) {
        if ((scratch_[i] & data[i]) != data[i]) {
            return hal::FlashStatus::NotErased;  // a real chip would silently AND the bits
        }
    }
    if (!write_fully(address, data, length)) {
        return failed("pwrite");
    }
    ++counters_.programs;
    counters_.bytes_programmed += length;
    return flush();
}

hal::FlashStatus FileFlash::erase(std::uint32_t sector) {
    if (fd_ < 0) {
        return hal::FlashStatus::IoError;
    }
    if (sector >= geometry_.sector_count) {
        return hal::FlashStatus::OutOfRange;
    }
    if (!fill_erased(fd_, std::uint64_t{sector} * geometry_.sector_size, geometry_.sector_size)) {
        return failed("pwrite");
    }
    ++counters_.erases;
    ++erase_counts_[sector];
    return flush();
}

}  // namespace fieldlink::boards::host
