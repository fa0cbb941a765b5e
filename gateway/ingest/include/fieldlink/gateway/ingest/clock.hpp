// The gateway's wall clock, behind a seam so tests can fix it.
#pragma once

#include <cstdint>

namespace fieldlink::gateway {

class Clock {
public:
    virtual ~Clock() = default;
    // Milliseconds since the Unix epoch.
    virtual std::int64_t unix_ms() const = 0;
};

class SystemClock final : public Clock {
public:
    std::int64_t unix_ms() const override;
};

}  // namespace fieldlink::gateway
