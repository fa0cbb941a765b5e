#include "fieldlink/gateway/ingest/lru_map.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fieldlink::gateway {
namespace {

using Map = LruMap<std::string, int>;

std::vector<std::pair<std::string, int>> entries(const Map& map) {
    std::vector<std::pair<std::string, int>> out;
    map.for_each([&](const std::string& key, int value) { out.emplace_back(key, value); });
    return out;
}

TEST(LruMap, RefusesZeroCapacity) { EXPECT_THROW(Map(0), std::invalid_argument); }

TEST(LruMap, FindsWhatWasInserted) {
    Map map(3);
    EXPECT_TRUE(map.empty());
    EXPECT_EQ(map.find("a"), nullptr);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    ASSERT_NE(map.find("a"), nullptr);
    EXPECT_EQ(*map.find("a"), 1);
    EXPECT_EQ(*map.peek("b"), 2);
    EXPECT_EQ(map.size(), 2u);
    EXPECT_EQ(map.capacity(), 3u);
}

TEST(LruMap, AssignReplacesTheValueWithoutGrowing) {
    Map map(2);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("a", 5);
    EXPECT_EQ(map.size(), 1u);
    EXPECT_EQ(*map.find("a"), 5);
    *map.find("a") = 6;  // find gives a reference into the map
    EXPECT_EQ(*map.peek("a"), 6);
}

TEST(LruMap, NewKeyInAFullMapPushesOutTheLeastRecentlyUsed) {
    Map map(3);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    map.insert_or_assign("c", 3);
    map.insert_or_assign("d", 4);
    EXPECT_EQ(map.size(), 3u);
    EXPECT_FALSE(map.contains("a"));
    EXPECT_EQ(entries(map), (std::vector<std::pair<std::string, int>>{{"b", 2}, {"c", 3}, {"d", 4}}));
}

TEST(LruMap, FindAndAssignMakeAnEntryTheMostRecent) {
    Map map(3);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    map.insert_or_assign("c", 3);
    map.find("a");                 // order now b, c, a
    map.insert_or_assign("b", 7);  // c, a, b
    map.insert_or_assign("d", 4);  // c goes
    EXPECT_FALSE(map.contains("c"));
    EXPECT_EQ(entries(map), (std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 7}, {"d", 4}}));
}

TEST(LruMap, PeekAndContainsDoNotChangeTheOrder) {
    Map map(2);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    EXPECT_NE(map.peek("a"), nullptr);
    EXPECT_TRUE(map.contains("a"));
    map.insert_or_assign("c", 3);
    EXPECT_FALSE(map.contains("a")) << "a was still the least recently used";
}

TEST(LruMap, EraseOldestAndErase) {
    Map map(4);
    EXPECT_FALSE(map.erase_oldest());
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    map.insert_or_assign("c", 3);
    EXPECT_TRUE(map.erase_oldest());
    EXPECT_FALSE(map.contains("a"));
    EXPECT_TRUE(map.erase("c"));
    EXPECT_FALSE(map.erase("c"));
    EXPECT_EQ(entries(map), (std::vector<std::pair<std::string, int>>{{"b", 2}}));
    EXPECT_TRUE(map.erase_oldest());
    EXPECT_TRUE(map.empty());
    map.insert_or_assign("e", 5);  // still usable when emptied
    EXPECT_EQ(*map.find("e"), 5);
}

TEST(LruMap, MovedMapKeepsItsEntriesAndOrder) {
    Map map(2);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    Map moved(std::move(map));
    moved.insert_or_assign("c", 3);
    EXPECT_EQ(entries(moved), (std::vector<std::pair<std::string, int>>{{"b", 2}, {"c", 3}}));
}

TEST(LruMap, CapacityOfOne) {
    Map map(1);
    map.insert_or_assign("a", 1);
    map.insert_or_assign("b", 2);
    EXPECT_EQ(map.size(), 1u);
    EXPECT_EQ(*map.find("b"), 2);
    EXPECT_FALSE(map.contains("a"));
}

// Against a plain model: a map plus a recency counter per key.
TEST(LruMap, MatchesASimpleModelUnderRandomUse) {
    constexpr std::size_t kCapacity = 16;
    std::mt19937 random(4242);
    LruMap<int, int> map(kCapacity);
    std::map<int, std::pair<int, long>> model;  // key -> value, last use
    long clock = 0;
    for (int step = 0; step < 20000; ++step) {
        const int key = static_cast<int>(random() % 40);
        if (random() % 2 == 0) {
            const int value = static_cast<int>(random() % 1000);
            map.insert_or_assign(key, value);
            if (model.count(key) == 0 && model.size() == kCapacity) {
                auto oldest = model.begin();
                for (auto it = model.begin(); it != model.end(); ++it) {
                    if (it->second.second < oldest->second.second) oldest = it;
                }
                model.erase(oldest);
            }
            model[key] = {value, ++clock};
        } else {
            const int* found = map.find(key);
            const auto expected = model.find(key);
            ASSERT_EQ(found != nullptr, expected != model.end()) << "step " << step << " key " << key;
            if (found != nullptr) {
                ASSERT_EQ(*found, expected->second.first);
                expected->second.second = ++clock;
            }
        }
        ASSERT_EQ(map.size(), model.size());
        ASSERT_LE(map.size(), kCapacity);
    }
}

}  // namespace
}  // namespace fieldlink::gateway
