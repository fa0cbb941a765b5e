#include <gtest/gtest.h>

#include "fakes.hpp"
#include "fieldlink/mqtt/backoff.hpp"

namespace fieldlink::mqtt {
namespace {

TEST(Backoff, DoublesUpToTheCapWithEqualJitter) {
    test::FakeRandom random;
    Backoff backoff(500, 10'000);
    // Random 0 gives the lower end of each range: half the base delay.
    random.value = 0;
    const std::uint32_t expected_low[] = {250, 500, 1'000, 2'000, 4'000, 5'000, 5'000, 5'000};
    for (std::uint32_t low : expected_low) EXPECT_EQ(backoff.next_delay_ms(random), low);

    // The largest jitter reaches the base delay itself and never exceeds the cap.
    backoff.reset();
    const std::uint32_t bases[] = {500, 1'000, 2'000, 4'000, 8'000, 10'000, 10'000};
    for (std::uint32_t base : bases) {
        random.value = base - base / 2;  // jitter modulo (base - base/2 + 1) is the maximum
        EXPECT_EQ(backoff.next_delay_ms(random), base);
    }
}

TEST(Backoff, StaysInsideTheJitterRange) {
    test::FakeRandom random;
    Backoff backoff(100, 3'000);
    std::uint32_t base = 100;
    for (int attempt = 0; attempt < 50; ++attempt) {
        random.value = 0x9E3779B9u * static_cast<std::uint32_t>(attempt + 1);
        const std::uint32_t delay = backoff.next_delay_ms(random);
        EXPECT_GE(delay, base / 2);
        EXPECT_LE(delay, base);
        base = base * 2 > 3'000 ? 3'000 : base * 2;
    }
}

TEST(Backoff, ResetStartsOver) {
    test::FakeRandom random;
    Backoff backoff(1'000, 60'000);
    for (int i = 0; i < 5; ++i) backoff.next_delay_ms(random);
    backoff.reset();
    EXPECT_EQ(backoff.next_delay_ms(random), 500u);
}

}  // namespace
}  // namespace fieldlink::mqtt
