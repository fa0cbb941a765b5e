#include "fieldlink/boards/host/monotonic_clock.hpp"

#include <time.h>

namespace fieldlink::boards::host {
namespace {

std::uint64_t monotonic_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace

MonotonicClock::MonotonicClock() : boot_ns_(monotonic_ns()) {}

std::uint64_t MonotonicClock::now_ms() const { return (monotonic_ns() - boot_ns_) / 1'000'000u; }

void MonotonicClock::sleep_ms(std::uint32_t ms) {
    timespec duration{};
    duration.tv_sec = static_cast<time_t>(ms / 1000);
    duration.tv_nsec = static_cast<long>(ms % 1000) * 1'000'000L;
    ::nanosleep(&duration, nullptr);  // EINTR ends the sleep early on purpose
}

}  // namespace fieldlink::boards::host
