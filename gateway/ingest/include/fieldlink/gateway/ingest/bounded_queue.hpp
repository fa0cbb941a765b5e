// A fixed-capacity multi-producer queue. push() blocks while the queue is
// full: that is the saver's backpressure (Paho's thread stops reading, the
// broker holds the messages). No busy waiting: condition variables only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

namespace fieldlink::gateway {

enum class PopResult {
    Item,     // *out holds the next item
    Timeout,  // the deadline passed with the queue empty
    Closed,   // closed and drained: nothing will ever come
};

template <typename T>
class BoundedQueue {
public:
    explicit BoundedQueue(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

    // Blocks while full. False (and `item` is dropped) once the queue is closed.
    bool push(T item) {
        std::unique_lock lock(mutex_);
        not_full_.wait(lock, [this] { return closed_ || items_.size() < capacity_; });
        if (closed_) return false;
        items_.push_back(std::move(item));
        lock.unlock();
        not_empty_.notify_one();
        return true;
    }

    // Waits without a deadline. Items pushed before close() are still handed out.
    PopResult pop(T* out) {
        std::unique_lock lock(mutex_);
        not_empty_.wait(lock, [this] { return closed_ || !items_.empty(); });
        return take(lock, out);
    }

    // Never waits: Timeout when nothing is queued and the queue is open.
    PopResult try_pop(T* out) {
        std::unique_lock lock(mutex_);
        if (!closed_ && items_.empty()) return PopResult::Timeout;
        return take(lock, out);
    }

    PopResult pop_until(T* out, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        if (!not_empty_.wait_until(lock, deadline, [this] { return closed_ || !items_.empty(); })) {
            return PopResult::Timeout;
        }
        return take(lock, out);
    }

    // Refuses new items and wakes every waiter; queued items can still be popped.
    void close() {
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
        }
        not_full_.notify_all();
        not_empty_.notify_all();
    }

    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return items_.size();
    }

    std::size_t capacity() const noexcept { return capacity_; }

private:
    PopResult take(std::unique_lock<std::mutex>& lock, T* out) {
        if (items_.empty()) return PopResult::Closed;
        *out = std::move(items_.front());
        items_.pop_front();
        lock.unlock();
        not_full_.notify_one();
        return PopResult::Item;
    }

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    std::condition_variable not_full_;
    std::condition_variable not_empty_;
    std::deque<T> items_;
    bool closed_ = false;
};

}  // namespace fieldlink::gateway
