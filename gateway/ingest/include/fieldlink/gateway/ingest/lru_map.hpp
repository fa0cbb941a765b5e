// A map of at most `capacity` entries that forgets its least recently used
// entry to make room for a new one. It bounds the writer thread's per-device
// state: the devices a gateway meets over its life are unbounded, its memory
// is not, and everything it forgets can be reloaded or relearnt.
//
// Lookups are O(log n) (an ordered map, so keys need only operator<); making an
// entry the most recently used is O(1) (a splice in the age list). Not thread
// safe: each instance belongs to one thread, like the state it holds.
//
// Memory per entry (libstdc++, 64-bit): one map node (32 bytes of tree links +
// Key + Value + 8) and one list node (24 bytes), each rounded up by malloc.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <stdexcept>
#include <utility>

namespace fieldlink::gateway {

template <typename Key, typename Value, typename Compare = std::less<>>
class LruMap {
public:
    // Throws std::invalid_argument when capacity is 0 (such a map could hold nothing).
    explicit LruMap(std::size_t capacity) : capacity_(capacity) {
        if (capacity_ == 0) throw std::invalid_argument("LruMap: capacity must be at least 1");
    }
    // The age list points into the map's nodes, so a copy would point into the
    // original; moving keeps the nodes where they are.
    LruMap(const LruMap&) = delete;
    LruMap& operator=(const LruMap&) = delete;
    LruMap(LruMap&&) = default;
    LruMap& operator=(LruMap&&) = default;
    ~LruMap() = default;

    std::size_t size() const noexcept { return slots_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }
    bool empty() const noexcept { return slots_.empty(); }

    // The value under `key`, now the most recently used; nullptr when absent.
    template <typename K>
    Value* find(const K& key) {
        const auto found = slots_.find(key);
        if (found == slots_.end()) return nullptr;
        touch(found->second);
        return &found->second.value;
    }

    // Looks without changing the order (for const readers).
    template <typename K>
    const Value* peek(const K& key) const {
        const auto found = slots_.find(key);
        return found == slots_.end() ? nullptr : &found->second.value;
    }

    template <typename K>
    bool contains(const K& key) const {
        return slots_.find(key) != slots_.end();
    }

    // Stores `value` under `key` as the most recently used entry. A new key in
    // a full map first pushes out the least recently used entry.
    template <typename V>
    Value& insert_or_assign(const Key& key, V&& value) {
        if (const auto found = slots_.find(key); found != slots_.end()) {
            found->second.value = std::forward<V>(value);
            touch(found->second);
            return found->second.value;
        }
        if (slots_.size() >= capacity_) erase_oldest();
        const auto slot = slots_.emplace(key, Slot{Value(std::forward<V>(value)), {}}).first;
        try {
            slot->second.age = ages_.insert(ages_.end(), &slot->first);
        } catch (...) {
            slots_.erase(slot);  // never leave an entry the age list does not know
            throw;
        }
        return slot->second.value;
    }

    // Forgets the least recently used entry. False when the map is empty.
    bool erase_oldest() {
        if (ages_.empty()) return false;
        const auto oldest = slots_.find(*ages_.front());
        ages_.pop_front();
        slots_.erase(oldest);
        return true;
    }

    template <typename K>
    bool erase(const K& key) {
        const auto found = slots_.find(key);
        if (found == slots_.end()) return false;
        ages_.erase(found->second.age);
        slots_.erase(found);
        return true;
    }

    // Calls fn(key, value) for every entry, least recently used first; the order does not change.
    template <typename Fn>
    void for_each(Fn&& fn) const {
        for (const Key* key : ages_) fn(*key, slots_.find(*key)->second.value);
    }

private:
    using Ages = std::list<const Key*>;  // least recently used first; each points at its key in slots_

    struct Slot {
        Value value;
        typename Ages::iterator age;
    };

    void touch(Slot& slot) noexcept { ages_.splice(ages_.end(), ages_, slot.age); }

    std::size_t capacity_;
    std::map<Key, Slot, Compare> slots_;
    Ages ages_;
};

}  // namespace fieldlink::gateway
