#include "fieldlink/mqtt/backoff.hpp"

namespace fieldlink::mqtt {

Backoff::Backoff(std::uint32_t initial_ms, std::uint32_t max_ms) noexcept
    : initial_ms_(initial_ms == 0 ? 1 : initial_ms), max_ms_(max_ms < initial_ms ? initial_ms : max_ms) {
    if (max_ms_ == 0) max_ms_ = 1;
}

std::uint32_t Backoff::next_delay_ms(hal::Random& random) noexcept {
    std::uint64_t base = initial_ms_;
    for (std::uint32_t i = 0; i < attempt_ && base < max_ms_; ++i) base *= 2;
    if (base > max_ms_) base = max_ms_;
    // Stop counting once the cap is reached so the counter cannot overflow.
    if (base < max_ms_) ++attempt_;
    const std::uint64_t half = base / 2;
    const std::uint64_t jitter = random.next_u32() % (base - half + 1);
    return static_cast<std::uint32_t>(half + jitter);
}

}  // namespace fieldlink::mqtt
