// Commit acks waiting to be handed to the broker client, newest per
// (ack topic, incarnation). A newer ack of one incarnation says everything an
// older one did (watermarks only grow), so older ones are dropped; acks of two
// incarnations of one device share a topic but never replace each other.
// Thread-safe: the saver's writer puts, the link's sender thread takes.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace fieldlink::gateway {

struct OutgoingAck {
    std::string topic;
    std::uint64_t incarnation = 0;
    std::vector<std::uint8_t> payload;
};

class AckOutbox {
public:
    // Keeps the ack, replacing an older one of the same topic and incarnation.
    // False once closed.
    bool put(const std::string& topic, std::uint64_t incarnation, std::span<const std::uint8_t> payload);

    // Waits until there is something to take and `may_send()` holds, or until
    // closed. Returns every kept ack (ordered by topic, then incarnation) and
    // empties the outbox; empty when closed with nothing sendable.
    // `may_send` is evaluated under the outbox's lock: keep it a flag read.
    std::vector<OutgoingAck> take(const std::function<bool()>& may_send);

    // Returns acks that were taken but could not be sent. An ack put since
    // then for the same topic and incarnation is newer and stays. Kept after close(),
    // so that take() still finds them if the link may send.
    void give_back(std::vector<OutgoingAck> acks);

    // Wakes take() to re-check `may_send` (call after the condition changed).
    void notify();
    // Refuses new acks; take() returns what is left if `may_send()`, else nothing.
    void close();

    std::size_t size() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::map<std::pair<std::string, std::uint64_t>, std::vector<std::uint8_t>> acks_;
    bool closed_ = false;
};

}  // namespace fieldlink::gateway
