#include "fieldlink/gateway/ingest/clock.hpp"

#include <chrono>

namespace fieldlink::gateway {

std::int64_t SystemClock::unix_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace fieldlink::gateway
