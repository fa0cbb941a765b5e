// Stand-in transport until the serial link exists (firmware/link/): every
// connection attempt is refused, so the reader samples into the spool and
// retries with backoff, as it would with the gateway unreachable.
#pragma once

#include "fieldlink/hal/transport.hpp"

namespace fieldlink::boards::mps2_an385 {

class NullTransport final : public hal::Transport {
public:
    hal::TransportStatus open(const char*, std::uint16_t, std::uint32_t) override {
        ++opens_;
        return hal::TransportStatus::Unreachable;
    }
    void close() override {}
    hal::TransportStatus send(const std::uint8_t*, std::size_t, std::uint32_t) override {
        return hal::TransportStatus::Closed;
    }
    hal::TransportStatus recv(std::uint8_t*, std::size_t, std::uint32_t, std::size_t* received) override {
        if (received != nullptr) *received = 0;
        return hal::TransportStatus::Closed;
    }
    std::uint32_t opens() const noexcept { return opens_; }

private:
    std::uint32_t opens_ = 0;
};

}  // namespace fieldlink::boards::mps2_an385
