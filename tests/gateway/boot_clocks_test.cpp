#include "fieldlink/gateway/ingest/boot_clocks.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

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

TEST(BootClocks, ForgetsTheIncarnationThatLearntLeastRecently) {
    BootClocks clocks(2);
    clocks.learn({"dev-1", 1}, 0, 10);
    clocks.learn({"dev-2", 1}, 0, 20);
    clocks.learn({"dev-1", 1}, 1, 11);  // dev-1 learnt again: dev-2 is now the oldest
    EXPECT_TRUE(clocks.offset_for({"dev-2", 1}, 0)) << "looking does not make it recent";
    clocks.learn({"dev-3", 1}, 0, 30);
    EXPECT_EQ(clocks.size(), 2u);
    EXPECT_FALSE(clocks.offset_for({"dev-2", 1}, 0));
    EXPECT_EQ(clocks.offset_for({"dev-1", 1}, 0), 10);
    EXPECT_EQ(clocks.offset_for({"dev-1", 1}, 1), 11);
    EXPECT_TRUE(clocks.learn({"dev-2", 1}, 0, 21)) << "forgotten, so its NULL rows need filling again";
}

TEST(BootClocks, MergeKeepsTheStagedOrderAndTheBound) {
    BootClocks committed(2);
    committed.learn({"dev-0", 1}, 0, 1);
    BootClocks staged(3);
    staged.learn({"dev-1", 1}, 0, 10);
    staged.learn({"dev-2", 1}, 0, 20);
    staged.learn({"dev-3", 1}, 0, 30);
    committed.merge(staged);
    EXPECT_EQ(committed.size(), 2u);
    EXPECT_FALSE(committed.offset_for({"dev-0", 1}, 0));
    EXPECT_FALSE(committed.offset_for({"dev-1", 1}, 0));
    EXPECT_EQ(committed.offset_for({"dev-2", 1}, 0), 20);
    EXPECT_EQ(committed.offset_for({"dev-3", 1}, 0), 30) << "the most recently learnt stays";
}

TEST(BootClocks, RefusesZeroCapacity) { EXPECT_THROW(BootClocks(0), std::invalid_argument); }

}  // namespace
}  // namespace fieldlink::gateway
