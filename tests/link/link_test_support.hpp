// What the link tests share: a frame encoded into a vector, checked to succeed.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "fieldlink/link/frame.hpp"

namespace fieldlink::link::test {

using Bytes = std::vector<std::uint8_t>;

inline Bytes encode(FrameType type, std::uint16_t seq, const Bytes& payload) {
    Bytes out(kMaxWireSize);
    std::size_t n = 0;
    EXPECT_EQ(encode_frame(type, seq, payload.data(), payload.size(), out.data(), out.size(), &n), LinkStatus::Ok);
    out.resize(n);
    return out;
}

}  // namespace fieldlink::link::test
