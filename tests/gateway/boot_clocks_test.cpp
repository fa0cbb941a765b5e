#include "fieldlink/gateway/ingest/boot_clocks.hpp"

#include <gtest/gtest.h>

namespace fieldlink::gateway {
namespace {

TEST(BootClocks, LearnsOncePerBoot) {
    BootClocks clocks;
    const DeviceKey key{"dev-1", 1};
    EXPECT_FALSE(clocks.offset_for(key, 0));
    EXPECT_TRUE(clocks.learn(key, 0, 100));
    EXPECT_FALSE(clocks.learn(key, 0, 105)) << "the same boot again needs no second fill";
    EXPECT_EQ(clocks.offset_for(key, 0), 105) << "but the newest offset is kept";
    EXPECT_FALSE(clocks.offset_for(key, 1));
    EXPECT_FALSE(clocks.offset_for({"dev-1", 2}, 0));
    EXPECT_FALSE(clocks.offset_for({"dev-2", 1}, 0));
}

TEST(BootClocks, KeepsOnlyTheNewestBoots) {
    BootClocks clocks;
    const DeviceKey key{"dev-1", 1};
    for (std::uint32_t boot = 0; boot < BootClocks::kBootsPerIncarnation + 2; ++boot) clocks.learn(key, boot, boot);
    EXPECT_FALSE(clocks.offset_for(key, 0));
    EXPECT_FALSE(clocks.offset_for(key, 1));
    EXPECT_EQ(clocks.offset_for(key, BootClocks::kBootsPerIncarnation + 1), BootClocks::kBootsPerIncarnation + 1);
}

TEST(BootClocks, MergeTakesOverStagedKnowledge) {
    BootClocks committed;
    BootClocks staged;
    staged.learn({"dev-1", 1}, 3, 42);
    EXPECT_FALSE(committed.offset_for({"dev-1", 1}, 3));
    committed.merge(staged);
    EXPECT_EQ(committed.offset_for({"dev-1", 1}, 3), 42);
}

}  // namespace
}  // namespace fieldlink::gateway
